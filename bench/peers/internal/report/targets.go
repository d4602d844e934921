package report

import (
	"fmt"

	"github.com/cnlink/cnlink/bench"
)

// Target is one performance target (docs/ARCHITECTURE.md §6) checked
// against a run.
type Target struct {
	What     string  // the target, in words
	How      string  // what was divided by what
	Got      float64 // the measured value (a ratio, or a count)
	Want     float64 // the bound
	AtMost   bool    // Got must be <= Want (otherwise >=)
	Unit     string  // "x", "%", "ms", "B", "retrans/msg", ...: how Got and Want print
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
	case "B":
		return Bytes(v)
	case UnitRetrans:
		return fmt.Sprintf("%.3g %s", v, t.Unit)
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

// TargetSize is the message size the throughput targets are set at, and
// TargetBigSize that of the large-message target.
const (
	TargetSize    = 256
	TargetBigSize = 16384
)

// Targets evaluates the performance targets of docs/ARCHITECTURE.md §6,
// reliable multicast's (issue 14) and issue 15's on r, in that order. A
// target whose benchmarks are missing from r is not Measured (and so
// not a pass).
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
	add(Target{What: "request/reply p50 at most 1.5x the raw netlink ping-pong p50 (issue 15; was 2x)",
		How: RequestReplyName + " ÷ " + RawPingPongName + " (p50-us)", Want: 1.5, AtMost: true, Unit: "x"}, v, ok)
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

	// Issue 15.
	big := ReliableName(0, TargetBigSize)
	v, ok = ratio(big, RawName(TargetBigSize), UnitMsgs)
	add(Target{What: "16 KiB, no loss: at least 1.0x raw netlink, one message per datagram (issue 15)",
		How: big + " ÷ " + RawName(TargetBigSize) + " (msgs/s)", Want: 1, Unit: "x"}, v, ok)
	v, ok = ratio(rel0, RawBatchedName(TargetSize), UnitMsgs)
	add(Target{What: "256 B, no loss: at least 25% of batched raw netlink, the kernel's ceiling (issue 15)",
		How: rel0 + " ÷ " + RawBatchedName(TargetSize) + " (msgs/s)", Want: 0.25, Unit: "%"}, v, ok)
	// One retransmission in one run is a miss: the largest sample,
	// not a median.
	var lossless []string
	for _, size := range bench.Sizes {
		lossless = append(lossless, ReliableName(0, size))
	}
	for _, n := range SessionCounts {
		lossless = append(lossless, SessionsName(n))
	}
	v, ok = r.maxOf(lossless, UnitRetrans)
	add(Target{What: "no loss: exactly 0 retransmissions, in every run of every size and session count (issue 15)",
		How:  "largest retrans/msg of any run of Reliable/loss=0/size=N (every size) and Sessions/n=N (every n)",
		Want: 0, AtMost: true, Unit: UnitRetrans}, v, ok)
	many, one := SessionsName(SessionsTargetN), SessionsName(1)
	v, ok = ratio(many, one, UnitMsgs)
	add(Target{What: fmt.Sprintf("%s sessions on one endpoint: aggregate msgs/s at least 0.8x one session's (issue 15)", thousands(SessionsTargetN)),
		How: many + " ÷ " + one + " (msgs/s)", Want: 0.8, Unit: "x"}, v, ok)
	v, ok = r.Median(many, UnitSessionBytes)
	add(Target{What: fmt.Sprintf("an idle established session at most 16 KiB resident, per session end, at %s sessions (issue 15)", thousands(SessionsTargetN)),
		How: many + " (" + UnitSessionBytes + ")", Want: 16 << 10, AtMost: true, Unit: "B"}, v, ok)
	return ts
}

// maxOf is the largest value in unit over every run of the named
// benchmarks, and false when any of them has none.
func (r *Results) maxOf(names []string, unit string) (float64, bool) {
	var m float64
	for i, name := range names {
		v, ok := r.Max(name, unit)
		if !ok {
			return 0, false
		}
		if i == 0 || v > m {
			m = v
		}
	}
	return m, len(names) > 0
}

// thousands prints n with a comma between thousands: 1,000.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
