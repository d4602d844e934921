package report

import "fmt"

// Target is one performance target (docs/ARCHITECTURE.md §6) checked
// against a run.
type Target struct {
	What     string  // the target, in words
	How      string  // what was divided by what
	Got      float64 // the measured value (a ratio, or a count)
	Want     float64 // the bound
	AtMost   bool    // Got must be <= Want (otherwise >=)
	Unit     string  // "x", "%", "allocs", "ms": how Got and Want print
	Measured bool    // false when a benchmark the target needs is missing
}

// Pass reports whether the target is met.
func (t Target) Pass() bool {
	if !t.Measured {
		return false
	}
	if t.AtMost {
		return t.Got <= t.Want
	}
	return t.Got >= t.Want
}

// Margin says by how much the target is met or missed, relative to the
// bound: "+20%" means 20% better than required, "-35%" 35% short of it.
func (t Target) Margin() string {
	if !t.Measured {
		return "not measured"
	}
	if t.Want == 0 {
		if t.Got == 0 {
			return "exactly"
		}
		return fmt.Sprintf("%s over", t.format(t.Got))
	}
	var m float64
	if t.AtMost {
		m = (t.Want - t.Got) / t.Want
	} else {
		m = (t.Got - t.Want) / t.Want
	}
	return fmt.Sprintf("%+.0f%%", 100*m)
}

func (t Target) format(v float64) string {
	switch t.Unit {
	case "x":
		return fmt.Sprintf("%.2fx", v)
	case "%":
		return fmt.Sprintf("%.0f%%", 100*v)
	case "ms":
		return fmt.Sprintf("%.2f ms", v)
	default:
		return fmt.Sprintf("%.2f %s", v, t.Unit)
	}
}

// GotString and WantString print the measured value and the bound.
func (t Target) GotString() string {
	if !t.Measured {
		return "—"
	}
	return t.format(t.Got)
}

func (t Target) WantString() string {
	op := ">="
	if t.AtMost {
		op = "<="
	}
	return op + " " + t.format(t.Want)
}

// TargetSize is the message size the throughput targets are set at.
const TargetSize = 256

// Targets evaluates the performance targets of docs/ARCHITECTURE.md §6
// on r.
func (r *Results) Targets() []Target {
	ratio := func(a, b, unit string) (float64, bool) {
		x, ok1 := r.Median(a, unit)
		y, ok2 := r.Median(b, unit)
		if !ok1 || !ok2 || y == 0 {
			return 0, false
		}
		return x / y, true
	}
	rel0 := ReliableName(0, TargetSize)
	var ts []Target
	add := func(t Target, v float64, ok bool) {
		t.Got, t.Measured = v, ok
		ts = append(ts, t)
	}
	v, ok := ratio(rel0, RawName(TargetSize), UnitMsgs)
	add(Target{What: "256 B, no loss: at least 5x raw netlink, one message per datagram",
		How: rel0 + " ÷ " + RawName(TargetSize) + " (msgs/s)", Want: 5, Unit: "x"}, v, ok)
	v, ok = ratio(rel0, KCPName(0, TargetSize), UnitMsgs)
	add(Target{What: "256 B, no loss: at least 20x kcp-go",
		How: rel0 + " ÷ " + KCPName(0, TargetSize) + " (msgs/s)", Want: 20, Unit: "x"}, v, ok)
	v, ok = ratio(ReliableName(1, TargetSize), rel0, UnitMsgs)
	add(Target{What: "256 B, 1% loss: at least 80% of its own loss-free rate",
		How: ReliableName(1, TargetSize) + " ÷ " + rel0 + " (msgs/s)", Want: 0.8, Unit: "%"}, v, ok)
	v, ok = ratio(ReliableName(10, TargetSize), rel0, UnitMsgs)
	add(Target{What: "256 B, 10% loss: at least 50% of its own loss-free rate",
		How: ReliableName(10, TargetSize) + " ÷ " + rel0 + " (msgs/s)", Want: 0.5, Unit: "%"}, v, ok)
	v, ok = ratio(RequestReplyName, RawPingPongName, UnitP50)
	add(Target{What: "request/reply p50 at most 2x the raw netlink ping-pong p50",
		How: RequestReplyName + " ÷ " + RawPingPongName + " (p50-us)", Want: 2, AtMost: true, Unit: "x"}, v, ok)
	v, ok = r.Median(RequestReplyLossyName, UnitP99)
	add(Target{What: "request/reply p99 at 1% loss at most 5 ms",
		How: RequestReplyLossyName + " (p99-us)", Want: 5, AtMost: true, Unit: "ms"}, v/1000, ok)
	// Allocations are counted process-wide, so a run charges both ends.
	// The receive path is allowed one (the message handed to the
	// application), so "0 on send" shows as at most 1 in total.
	v, ok = r.Median(rel0, UnitAllocs)
	add(Target{What: "0 allocations per message on the send path (at most 1 on receive: the delivered payload)",
		How: rel0 + " allocs/op, sender and receiver together", Want: 1, AtMost: true, Unit: "allocs/msg"}, v, ok)
	// Issue 14: reliable multicast delivers every message to every
	// subscriber; raw multicast's rate counts what each happened to get.
	mc, raw := MulticastName(MulticastTargetSubs, 0), RawMulticastName(MulticastTargetSubs, 0)
	v, ok = ratio(mc, raw, UnitMsgs)
	add(Target{What: fmt.Sprintf("multicast, %d subscribers, 256 B: reliable (every message to every subscriber) at least 50%% of raw multicast's per-subscriber rate", MulticastTargetSubs),
		How: mc + " ÷ " + raw + " (msgs/s)", Want: 0.5, Unit: "%"}, v, ok)
	return ts
}
