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
		{"expiries probe; the last resort needs an answer not in kind", func(f *fixture) {
			f.snd.Push(0, 0)
			f.snd.Push(10*us, 1)
			if d := f.deadline(); d != 2*time.Millisecond {
				t.Fatalf("Deadline = %v, want the initial RTO after the oldest send (2ms)", d)
			}
			if a := f.r.OnTimer(2*time.Millisecond - 1); a != (Action{}) {
				t.Fatalf("OnTimer before the deadline = %+v", a)
			}
			// Each expiry probes and doubles the RTO; the timer runs
			// from the probe: 2, 2+4, 6+8 ms.
			at := 2 * time.Millisecond
			for i := range MaxProbes {
				if a := f.r.OnTimer(at); a != (Action{RTO: true, Probe: true}) {
					t.Fatalf("expiry %d = %+v, want a probe only", i+1, a)
				}
				at += f.r.RTT().RTO()
				if d := f.deadline(); d != at {
					t.Fatalf("Deadline after probe %d = %v, want %v", i+1, d, at)
				}
			}
			// A silent peer: probing goes on.
			if a := f.r.OnTimer(at); a != (Action{RTO: true, Probe: true}) {
				t.Fatalf("expiry after %d probes nobody answered = %+v, want another probe", MaxProbes, a)
			}
			f.r.ProbeSent(102, at)
			at += f.r.RTT().RTO()
			// A peer that answers, but does not name the probe: the
			// last resort resends the oldest transmission only.
			f.ack(at-time.Millisecond, 100)
			if n := f.r.OnAnswer(99, nil, at-time.Millisecond); n != 0 {
				t.Fatalf("OnAnswer(99) = %d", n)
			}
			if a := f.r.OnTimer(at); a != (Action{RTO: true, Lost: 1}) {
				t.Fatalf("expiry after an answer not in kind = %+v, want the oldest record lost", a)
			}
			if seq, _, ok := f.snd.PopLost(at); !ok || seq != 100 || f.snd.Lost() != 0 {
				t.Fatalf("PopLost = %v %v (lost left %d), want 100 alone", seq, ok, f.snd.Lost())
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

// The answer to a probe (an ACK whose seq names the PING or a later DSN)
// declares lost exactly what it leaves unacknowledged from before the
// probe; answers that name something older, or nothing we sent, prove
// nothing.
func TestRecoveryProbeAnswer(t *testing.T) {
	// DSNs 100, 101, 102 at 0, 10, 20 µs; the probe at 2 ms carries 103.
	setup := func(t *testing.T) *fixture {
		f := newFixture(t, 0, 10*us, 20*us)
		if a := f.r.OnTimer(2 * time.Millisecond); !a.Probe {
			t.Fatalf("OnTimer = %+v, want a probe", a)
		}
		f.r.ProbeSent(103, 2*time.Millisecond)
		return f
	}
	t.Run("names the probe: what is unacknowledged before it is lost", func(t *testing.T) {
		f := setup(t)
		f.snd.Push(2*time.Millisecond, 3) // 103, in the probe's own turn: not judged
		f.ack(2100*us, 101)
		if n := f.r.OnAnswer(102, nil, 2100*us); n != 0 {
			t.Fatalf("OnAnswer(102) = %d: seq 102 was sent before the probe, it proves nothing", n)
		}
		if n := f.r.OnAnswer(103, nil, 2100*us); n != 2 {
			t.Fatalf("OnAnswer(103) = %d, want 2 (101 and 102)", n)
		}
		for _, want := range []window.Seq{101, 102} {
			if seq, _, ok := f.snd.PopLost(2100 * us); !ok || seq != want {
				t.Fatalf("PopLost = %v %v, want %v", seq, ok, want)
			}
		}
		if n := f.r.OnAnswer(103, nil, 2200*us); n != 0 {
			t.Fatalf("a second answer to the same probe declared %d lost", n)
		}
	})
	t.Run("a slow peer: everything acknowledged, nothing lost", func(t *testing.T) {
		f := setup(t)
		f.ack(3*time.Millisecond, 103)
		if n := f.r.OnAnswer(103, nil, 3*time.Millisecond); n != 0 || f.snd.Lost() != 0 {
			t.Fatalf("OnAnswer = %d, lost %d; want 0", n, f.snd.Lost())
		}
	})
	t.Run("seq beyond anything sent is ignored", func(t *testing.T) {
		f := setup(t)
		if n := f.r.OnAnswer(104, nil, 2100*us); n != 0 {
			t.Fatalf("OnAnswer(104) = %d, want 0 (never sent)", n)
		}
		if n := f.r.OnAnswer(103+1<<31, nil, 2100*us); n != 0 {
			t.Fatalf("OnAnswer(far away) = %d, want 0", n)
		}
	})
	t.Run("a second probe with the same seq keeps the first one's time", func(t *testing.T) {
		f := setup(t)
		f.snd.MarkLost(window.Range{Start: 100, End: 100})
		f.snd.PopLost(3 * time.Millisecond) // 100 again at 3 ms, after the first probe
		f.r.OnTimer(20 * time.Millisecond)
		f.r.ProbeSent(103, 20*time.Millisecond)
		// The answer may be to the first probe, which 100's second copy
		// followed: 100 must not be judged by it.
		if n := f.r.OnAnswer(103, nil, 20100*us); n != 2 {
			t.Fatalf("OnAnswer = %d, want 2 (101 and 102, not 100)", n)
		}
	})
	t.Run("SACK ranges perhaps cut short: only above the lowest is judged", func(t *testing.T) {
		// 60 records; the ACK reports SureRanges single-DSN ranges, the
		// lowest at 120: 100..119 may be in ranges the receiver left out.
		f := newFixture(t)
		for i := range 60 {
			f.snd.Push(time.Duration(i)*us, i)
		}
		// 100..119 went out again at 1 ms: sent after what the ACK
		// below SACKs, so RACK leaves them alone and only the probe's
		// answer can judge them.
		f.snd.MarkLost(window.Range{Start: 100, End: 119})
		for range 20 {
			f.snd.PopLost(time.Millisecond)
		}
		f.r.OnTimer(2 * time.Millisecond)
		f.r.ProbeSent(160, 2*time.Millisecond)
		var ranges []window.Range
		for i := range SureRanges {
			at := window.Seq(150 - 2*i) // 150, 148, ... 120
			ranges = append(ranges, window.Range{Start: at, End: at})
		}
		f.ack(2100*us, 100, ranges...)
		for { // what RACK's packet threshold declared: resent, not judged again
			if _, _, ok := f.snd.PopLost(2100 * us); !ok {
				break
			}
		}
		n := f.r.OnAnswer(160, ranges, 2100*us)
		for {
			seq, _, ok := f.snd.PopLost(2100 * us)
			if !ok {
				break
			}
			if seq.Less(120) {
				t.Fatalf("record %v below the lowest reported range declared lost", seq)
			}
		}
		if n == 0 {
			t.Fatal("nothing declared lost above the lowest range")
		}
	})
	t.Run("no probe outstanding: nothing", func(t *testing.T) {
		f := newFixture(t, 0, 10*us)
		if n := f.r.OnAnswer(102, nil, time.Millisecond); n != 0 {
			t.Fatalf("OnAnswer without a probe = %d", n)
		}
	})
}

// Restart moves the retransmission timer to now: what waited for a busy
// peer's queue left only then.
func TestRecoveryRestart(t *testing.T) {
	f := newFixture(t, 0)
	f.r.Restart(5 * time.Millisecond)
	if d := f.deadline(); d != 7*time.Millisecond {
		t.Fatalf("Deadline after Restart(5ms) = %v, want 7ms", d)
	}
	f.ack(6*time.Millisecond, 101)
	f.r.Restart(8 * time.Millisecond) // nothing in flight: no effect
	if d := f.deadline(); d != -1 {
		t.Fatalf("Deadline with nothing in flight = %v", d)
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
