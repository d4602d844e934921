package repair

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cnlink/cnlink/window"
)

// TestSimulation runs a publisher and registered subscribers against each
// other with seeded loss of every kind of traffic (data, repairs, NAKs,
// status reports, heartbeats) and overruns, on a simulated clock, and
// checks the promise: every subscriber delivers every message, in order,
// once, and nothing is ever unrepairable for a registered subscriber.
func TestSimulation(t *testing.T) {
	for _, tc := range []struct {
		seed uint64
		subs int
		loss float64
	}{
		{1, 1, 0}, {2, 3, 0.1}, {3, 5, 0.3}, {4, 8, 0.5}, {5, 2, 0.7}, {6, 16, 0.2},
	} {
		t.Run(fmt.Sprintf("seed=%d/subs=%d/loss=%v", tc.seed, tc.subs, tc.loss), func(t *testing.T) {
			simulate(t, tc.seed, tc.subs, tc.loss, 3000)
		})
	}
}

func simulate(t *testing.T, seed uint64, nsubs int, loss float64, total int) {
	r := rand.New(rand.NewPCG(seed, 0))
	drop := func() bool { return r.Float64() < loss }
	isn := window.Seq(0xFFFFFF00) // across the wrap
	pub := NewPublisher(isn, PublisherConfig{History: 128, SubscriberTimeout: time.Hour, RepairHoldoff: 200 * time.Microsecond})
	type sub struct {
		st   *Subscriber
		next window.Seq
		got  int
	}
	subs := make([]*sub, nsubs)
	for i := range subs {
		subs[i] = &sub{st: NewSubscriber(SubscriberConfig{Window: 128, NakDelay: time.Millisecond, NakMax: 8 * time.Millisecond, Seed: seed + uint64(i)})}
		subs[i].st.Start(isn)
		subs[i].next = isn
		pub.OnStatus(uint32(i+1), isn, 16+r.IntN(112), false, 0)
	}
	payload := func(m window.Seq) []byte { return []byte(fmt.Sprint(uint32(m))) }
	deliver := func(s *sub, m window.Seq, now time.Duration) {
		msg, ok := pub.History().Get(m)
		if !ok {
			return
		}
		s.st.OnData(m, pub.History().Oldest(), msg, now)
	}
	sent := 0
	const step = 50 * time.Microsecond
	var now time.Duration
	for now = 0; now < 60*time.Second; now += step {
		// Publish a burst as far as flow control allows.
		for b := 0; b < 8 && sent < total && pub.CanPush(4); b++ {
			m, _, _ := pub.Push(payload(pub.History().Next()), nil)
			sent++
			for _, s := range subs {
				if !drop() {
					deliver(s, m, now)
				} else if r.IntN(4) == 0 {
					s.st.OnOverrun(now)
				}
			}
		}
		if now%time.Millisecond == 0 {
			for _, s := range subs {
				if !drop() {
					s.st.OnHeartbeat(pub.History().Next(), pub.History().Oldest(), now)
				}
			}
		}
		done := 0
		for i, s := range subs {
			for {
				d, ok := s.st.Pop()
				if !ok {
					break
				}
				if d.MSN != s.next || d.Lost != 0 || string(d.Data) != string(payload(d.MSN)) {
					t.Fatalf("sub %d: got MSN %d lost %d, want %d", i, d.MSN, d.Lost, s.next)
				}
				s.next++
				s.got++
			}
			if _, n := s.st.Unrepairable(); n != 0 {
				t.Fatalf("sub %d: %d unrepairable at %v (position %d, oldest %d)", i, n, now, s.st.Position(), pub.History().Oldest())
			}
			if n, ok := s.st.TakeNak(now, 32); ok && !drop() {
				pub.OnNak(uint32(i+1), n.Ranges, n.Tail, n.TailStart, now)
			}
			if r.IntN(4) == 0 && !drop() {
				pub.OnStatus(uint32(i+1), s.st.Position(), 128, false, now)
			}
			if s.got == total {
				done++
			}
		}
		if done == nsubs {
			break
		}
		for _, rg := range pub.PlanMulticast(now, nil) {
			for m := rg.Start; m.LessEq(rg.End); m++ {
				for _, s := range subs {
					if !drop() {
						deliver(s, m, now)
					}
				}
			}
		}
		for i, s := range subs {
			m := pub.Member(uint32(i + 1))
			for k := 0; k < 16 && !m.Pending.Empty(); k++ {
				lo, _ := m.Pending.Min()
				m.Pending.RemoveBelow(lo + 1)
				if !drop() {
					deliver(s, lo, now)
				}
			}
		}
		pub.SetBlocked(now, sent < total && !pub.CanPush(4))
	}
	for i, s := range subs {
		if s.got != total {
			t.Fatalf("sub %d delivered %d of %d by %v", i, s.got, total, now)
		}
	}
	t.Logf("done at %v", now)
}

// FuzzSimulation runs the simulation with fuzzed seeds, subscriber counts
// and loss rates.
func FuzzSimulation(f *testing.F) {
	f.Add(uint64(1), uint8(3), uint8(30))
	f.Add(uint64(7), uint8(7), uint8(70))
	f.Fuzz(func(t *testing.T, seed uint64, subs, lossPct uint8) {
		simulate(t, seed, 1+int(subs%8), float64(lossPct%75)/100, 400)
	})
}
