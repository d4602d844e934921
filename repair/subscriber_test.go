package repair

import (
	"testing"

	"github.com/cnlink/cnlink/window"
)

func newSub() *Subscriber {
	s := NewSubscriber(SubscriberConfig{Window: 64, NakDelay: 2 * ms, NakMax: 16 * ms, Seed: 1})
	s.Start(100)
	return s
}

func TestSubscriberGapNakedAtOnce(t *testing.T) {
	s := newSub()
	s.OnData(100, 100, []byte{0}, 0)
	if s.NakDeadline() != -1 {
		t.Fatal("NAK scheduled without a gap")
	}
	s.OnData(103, 100, []byte{3}, ms)
	if s.NakDeadline() != ms {
		t.Fatalf("NAK due %v, want at once (1ms)", s.NakDeadline())
	}
	n, ok := s.TakeNak(ms, 32)
	if !ok || len(n.Ranges) != 1 || n.Ranges[0] != (window.Range{Start: 101, End: 102}) || n.Tail {
		t.Fatalf("NAK %+v ok %v", n, ok)
	}
	// The next one waits: at least NakDelay, jittered backoff.
	if d := s.NakDeadline(); d < ms+2*ms*3/4 || d > ms+2*ms*5/4+1 {
		t.Fatalf("retry at %v", d)
	}
	if _, ok := s.TakeNak(ms+ms/2, 32); ok {
		t.Fatal("NAK before its time")
	}
	// The repair arrives: no more NAKs, everything pops in order.
	s.OnData(101, 100, []byte{1}, 2*ms)
	s.OnData(102, 100, []byte{2}, 2*ms)
	if s.NakDeadline() != -1 {
		t.Fatal("NAK still due after the repair")
	}
	for i := range 4 {
		d, ok := s.Pop()
		if !ok || d.MSN != window.Seq(100+i) || d.Data[0] != byte(i) || d.Lost != 0 {
			t.Fatalf("pop %d: %+v %v", i, d, ok)
		}
	}
}

func TestSubscriberOverrun(t *testing.T) {
	s := newSub()
	s.OnData(100, 100, nil, 0)
	s.OnOverrun(ms)
	// Nothing shows the gap yet: the fallback NAK is NakDelay away.
	if s.NakDeadline() != 3*ms {
		t.Fatalf("fallback at %v", s.NakDeadline())
	}
	// The first datagram after the drain shows the gap: NAK at once.
	s.OnData(110, 100, nil, ms+10)
	if s.NakDeadline() != ms+10 {
		t.Fatalf("NAK at %v, want at once", s.NakDeadline())
	}
	n, _ := s.TakeNak(ms+10, 32)
	if len(n.Ranges) != 1 || n.Ranges[0] != (window.Range{Start: 101, End: 109}) || n.Tail {
		t.Fatalf("NAK %+v", n)
	}
	// An overrun with no data after it (the publisher went quiet): the
	// fallback asks for the open tail from above the highest held.
	s2 := newSub()
	s2.OnData(100, 100, nil, 0)
	s2.OnOverrun(ms)
	if _, ok := s2.TakeNak(2*ms, 32); ok {
		t.Fatal("NAK before the fallback")
	}
	n, ok := s2.TakeNak(3*ms, 32)
	if !ok || !n.Tail || n.TailStart != 101 || len(n.Ranges) != 0 {
		t.Fatalf("fallback NAK %+v ok %v", n, ok)
	}
}

func TestSubscriberHeartbeatTail(t *testing.T) {
	s := newSub()
	s.OnData(100, 100, nil, 0)
	s.OnHeartbeat(105, 100, ms)
	n, ok := s.TakeNak(ms, 32)
	if !ok || !n.Tail || n.TailStart != 101 || len(n.Ranges) != 0 {
		t.Fatalf("NAK %+v ok %v", n, ok)
	}
}

func TestSubscriberUnrepairableAndSkip(t *testing.T) {
	s := newSub()
	s.OnData(100, 100, []byte{0}, 0)
	s.OnData(102, 100, []byte{2}, 0)
	s.OnData(105, 100, []byte{5}, 0)
	if _, n := s.Unrepairable(); n != 0 {
		t.Fatalf("unrepairable %d while the publisher holds everything", n)
	}
	// The publisher moved on: it keeps 104 and up. Lost: 101, 103.
	s.OnHeartbeat(106, 104, ms)
	first, n := s.Unrepairable()
	if first != 101 || n != 2 {
		t.Fatalf("unrepairable from %d: %d, want 101: 2", first, n)
	}
	if lost := s.SkipTo(104); lost != 2 {
		t.Fatalf("SkipTo lost %d", lost)
	}
	pops := func(want ...Delivery) {
		t.Helper()
		for i, w := range want {
			d, ok := s.Pop()
			if !ok || d.MSN != w.MSN || d.Lost != w.Lost {
				t.Fatalf("pop %d: %+v %v, want %+v", i, d, ok, w)
			}
		}
		if d, ok := s.Pop(); ok {
			t.Fatalf("extra pop %+v", d)
		}
	}
	pops(Delivery{MSN: 100}, Delivery{MSN: 102, Lost: 1})
	// 104 is still missing and repairable; 105 waits for it.
	if _, n := s.Unrepairable(); n != 0 || !s.Missing() {
		t.Fatalf("after skip: unrepairable %d missing %v", n, s.Missing())
	}
	s.OnData(104, 104, []byte{4}, 2*ms)
	pops(Delivery{MSN: 104, Lost: 1}, Delivery{MSN: 105})
}

func TestSubscriberNoRepair(t *testing.T) {
	s := NewSubscriber(SubscriberConfig{Window: 64, NoRepair: true})
	s.Start(100)
	s.OnData(100, 100, nil, 0)
	s.OnData(104, 100, nil, 0)
	s.OnOverrun(ms)
	if s.NakDeadline() != -1 {
		t.Fatal("a NoRepair subscriber scheduled a NAK")
	}
	d1, _ := s.Pop()
	d2, ok := s.Pop()
	if d1.MSN != 100 || !ok || d2.MSN != 104 || d2.Lost != 3 {
		t.Fatalf("%+v %+v", d1, d2)
	}
	// A heartbeat shows a lost tail: reported on the next message.
	s.OnHeartbeat(108, 100, ms)
	s.OnData(108, 100, nil, ms)
	if d, _ := s.Pop(); d.MSN != 108 || d.Lost != 3 {
		t.Fatalf("%+v", d)
	}
	// Switching an ordinary subscriber to NoRepair turns its gaps into loss.
	s2 := newSub()
	s2.OnData(100, 100, nil, 0)
	s2.OnData(103, 100, nil, 0)
	s2.SetNoRepair()
	s2.Pop()
	if d, _ := s2.Pop(); d.MSN != 103 || d.Lost != 2 {
		t.Fatalf("%+v", d)
	}
}
