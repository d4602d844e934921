package loss

import (
	"testing"
	"time"

	"github.com/cnlink/cnlink/retry"
	"github.com/cnlink/cnlink/window"
)

const us = time.Microsecond

// fixture is a Sender with n records pushed at the given times, and its
// Recovery, with the default RTT configuration (initial RTO 2 ms, minimum
// 200 µs, granularity 10 µs).
type fixture struct {
	t   *testing.T
	snd *window.Sender[int]
	r   *Recovery[int]
}

func newFixture(t *testing.T, sentAt ...time.Duration) *fixture {
	t.Helper()
	snd := window.NewSender[int](100, window.SenderConfig{Window: 64, ReorderWindowMin: 100 * us})
	f := &fixture{t: t, snd: snd, r: New(snd, retry.RTTConfig{})}
	for i, at := range sentAt {
		snd.Push(at, i)
	}
	return f
}

// ack acknowledges everything before cum (DSNs count from 100) and the
// given ranges, at now.
func (f *fixture) ack(now time.Duration, cum window.Seq, ranges ...window.Range) window.AckResult {
	f.t.Helper()
	res := f.snd.OnAck(now, window.Ack{Cum: cum, Limit: cum + 64, Ranges: ranges}, func(window.Seq, int) {})
	f.r.OnAck(res)
	return res
}

func (f *fixture) deadline() time.Duration {
	f.t.Helper()
	d, ok := f.r.Deadline()
	if !ok {
		return -1
	}
	return d
}

// The retransmission timer: one RTO after the oldest transmission, the
// first expiry asks for a probe and backs off; the next one, without
// progress, declares everything lost; progress ends the episode.
func TestRecoveryRTO(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(f *fixture)
	}{
		{"nothing in flight, no deadline", func(f *fixture) {
			f.ack(0, 100) // nothing sent: a no-op
			if d := f.deadline(); d != -1 {
				t.Fatalf("Deadline = %v with nothing in flight", d)
			}
		}},
		{"first expiry probes, second retransmits", func(f *fixture) {
			f.snd.Push(0, 0)
			f.snd.Push(10*us, 1)
			if d := f.deadline(); d != 2*time.Millisecond {
				t.Fatalf("Deadline = %v, want the initial RTO after the oldest send (2ms)", d)
			}
			if a := f.r.OnTimer(2*time.Millisecond - 1); a != (Action{}) {
				t.Fatalf("OnTimer before the deadline = %+v", a)
			}
			if a := f.r.OnTimer(2 * time.Millisecond); a != (Action{RTO: true, Probe: true}) {
				t.Fatalf("first expiry = %+v, want a probe only", a)
			}
			// The timer now runs from the probe, with the RTO doubled.
			if d := f.deadline(); d != 2*time.Millisecond+4*time.Millisecond {
				t.Fatalf("Deadline after the probe = %v, want 6ms", d)
			}
			if a := f.r.OnTimer(6 * time.Millisecond); a != (Action{RTO: true, Lost: 2}) {
				t.Fatalf("second expiry = %+v, want both records lost", a)
			}
			if f.snd.Lost() != 2 || f.r.RTT().RTO() != 8*time.Millisecond {
				t.Fatalf("lost %d, RTO %v; want 2 and 8ms", f.snd.Lost(), f.r.RTT().RTO())
			}
		}},
		{"progress ends the episode", func(f *fixture) {
			f.snd.Push(0, 0)
			f.snd.Push(0, 1)
			f.r.OnTimer(2 * time.Millisecond) // probe
			res := f.ack(2*time.Millisecond+50*us, 101)
			if res.Acked != 1 || !res.RTTValid {
				t.Fatalf("ack: %+v", res)
			}
			// A sample collapses the backoff: SRTT 2.05ms, RTTVAR
			// 1.025ms, RTO = 2.05 + 4 x 1.025 = 6.15ms, from the oldest
			// transmission (0), not from the probe.
			if d := f.deadline(); d != 6150*us {
				t.Fatalf("Deadline after progress = %v, want 6.15ms", d)
			}
			if a := f.r.OnTimer(6150 * us); a != (Action{RTO: true, Probe: true}) {
				t.Fatalf("expiry after progress = %+v, want a probe again", a)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(newFixture(t)) })
	}
}

// RACK's time threshold: a record sent before an acknowledged one is lost
// once the reordering window has passed since the acknowledged one's
// round trip; Deadline says when, OnTimer declares it.
func TestRecoveryTimeThreshold(t *testing.T) {
	f := newFixture(t, 0, 10*us) // DSN 100 at 0, 101 at 10 µs
	res := f.ack(110*us, 100, window.Range{Start: 101, End: 101})
	if res.NewlyLost != 0 {
		t.Fatalf("lost at once: %+v (below the packet threshold)", res)
	}
	// RACK.rtt = 100 µs (101's round trip); reordering window =
	// max(100 µs, SRTT/4) = 100 µs: 100 is lost at 0 + 100 + 100 µs.
	if d := f.deadline(); d != 200*us {
		t.Fatalf("Deadline = %v, want 200µs", d)
	}
	if a := f.r.OnTimer(200 * us); a != (Action{Lost: 1}) {
		t.Fatalf("OnTimer = %+v, want one record lost by time", a)
	}
	if seq, _, ok := f.snd.PopLost(200 * us); !ok || seq != 100 {
		t.Fatalf("PopLost = %v %v, want 100", seq, ok)
	}
}

// A STATUS_REQ repairs at most once per round trip, and only what was sent
// a round trip before it.
func TestRecoveryStatusRequest(t *testing.T) {
	f := newFixture(t, 0)
	f.ack(100*us, 101) // one sample: SRTT 100 µs
	f.snd.Push(1000*us, 1)
	f.snd.Push(1080*us, 2)
	for _, step := range []struct {
		at       time.Duration
		repaired bool
		lost     int
	}{
		{1050 * us, true, 0},  // 101 is 50 µs old: maybe still on its way
		{1100 * us, false, 0}, // within a round trip of the last repair
		{1150 * us, true, 1},  // 101 is now a round trip old, 102 is not
		{1200 * us, false, 0},
		{1250 * us, true, 1}, // 102; 101 is lost already
		{1400 * us, true, 0},
	} {
		repaired, lost := f.r.OnStatusRequest(step.at)
		if repaired != step.repaired || lost != step.lost {
			t.Fatalf("at %v: repaired %v lost %d, want %v %d", step.at, repaired, lost, step.repaired, step.lost)
		}
	}
}
