package repair

import (
	"testing"
	"time"

	"github.com/cnlink/cnlink/window"
)

const ms = time.Millisecond

func pushN(t *testing.T, p *Publisher, n int) {
	t.Helper()
	for range n {
		if _, _, ok := p.Push([]byte("m"), nil); !ok {
			t.Fatalf("push refused at %d", p.History().Next())
		}
	}
}

func TestPublisherFlowControl(t *testing.T) {
	p := NewPublisher(1000, PublisherConfig{History: 64})
	if _, ok := p.Limit(); ok {
		t.Fatal("limit without registered subscribers")
	}
	pushN(t, p, 100) // no one registered: the history just rolls
	if p.History().Oldest() != 1036 || p.History().Next() != 1100 {
		t.Fatalf("history [%d, %d)", p.History().Oldest(), p.History().Next())
	}
	// A registration below Oldest is clamped to it: it cannot pin what is gone.
	if r := p.OnStatus(7, 1000, 16, false, 0); r != StatusRegistered {
		t.Fatalf("OnStatus = %v", r)
	}
	if m := p.Member(7); m.Pos != 1036 {
		t.Fatalf("pos %d, want 1036", m.Pos)
	}
	// Its window is 16: nothing beyond 1036+16 = 1052; we are at 1100.
	if p.CanPush(1) {
		t.Fatal("CanPush beyond the subscriber's window")
	}
	if r := p.OnStatus(7, 1090, 16, false, ms); r != StatusUpdated {
		t.Fatalf("OnStatus = %v", r)
	}
	pushN(t, p, 6)
	if p.CanPush(1) {
		t.Fatal("CanPush at pos+window")
	}
	// An old STATUS cannot move the position back; a forged one beyond
	// Next is stale and moves nothing.
	p.OnStatus(7, 1080, 16, false, 2*ms)
	if r := p.OnStatus(7, 5000, 16, false, 2*ms); r != StatusStale || p.Member(7).Pos != 1090 {
		t.Fatalf("stale status: %v pos %d", r, p.Member(7).Pos)
	}
	// The window is capped by the history.
	p.OnStatus(7, 1106, 1<<20, false, 3*ms)
	if l, _ := p.Limit(); l != 1106+64 {
		t.Fatalf("limit %d", l)
	}
	// Leave: no limit any more.
	if p.OnStatus(7, 0, 0, true, 4*ms); p.Member(7) != nil {
		t.Fatal("member after leave")
	}
}

func TestPublisherNakVerdicts(t *testing.T) {
	p := NewPublisher(0, PublisherConfig{History: 10})
	pushN(t, p, 20) // [10, 20)
	rg := func(a, b window.Seq) []window.Range { return []window.Range{{Start: a, End: b}} }
	if v := p.OnNak(9, rg(15, 20), false, 0, 0); v != NakUnsent {
		t.Fatalf("NAK reaching Next: %v", v)
	}
	if m := p.Member(9); m != nil && !m.Pending.Empty() {
		t.Fatal("an unsent NAK queued something")
	}
	if v := p.OnNak(9, rg(15, 16), true, 21, 0); v != NakUnsent {
		t.Fatalf("tail beyond Next: %v", v)
	}
	if v := p.OnNak(9, rg(5, 12), false, 0, 0); v != NakTooOld {
		t.Fatalf("NAK below Oldest: %v", v)
	}
	if c := p.Member(9).Pending.Count(); c != 3 {
		t.Fatalf("queued %d, want 10..12", c)
	}
	if v := p.OnNak(9, nil, true, 18, 0); v != NakQueued || p.Member(9).Pending.Count() != 5 {
		t.Fatalf("tail: %v, %d queued", v, p.Member(9).Pending.Count())
	}
	if v := p.OnNak(9, rg(12, 11), false, 0, 0); v != NakUnsent {
		t.Fatalf("reversed range: %v", v)
	}
}

func TestPublisherPlanMulticast(t *testing.T) {
	p := NewPublisher(0, PublisherConfig{History: 100, RepairHoldoff: ms})
	pushN(t, p, 50)
	for port := uint32(1); port <= 4; port++ {
		p.OnStatus(port, 0, 100, false, 0)
	}
	rg := func(a, b window.Seq) []window.Range { return []window.Range{{Start: a, End: b}} }
	p.OnNak(1, rg(10, 20), false, 0, 0)
	p.OnNak(2, rg(15, 25), false, 0, 0)
	got := p.PlanMulticast(0, nil)
	// Two of four (half) miss 15..20: multicast it; the rest stays unicast.
	if len(got) != 1 || got[0] != (window.Range{Start: 15, End: 20}) {
		t.Fatalf("plan %v", got)
	}
	if c1, c2 := p.Member(1).Pending.Count(), p.Member(2).Pending.Count(); c1 != 5 || c2 != 5 {
		t.Fatalf("left for unicast: %d, %d", c1, c2)
	}
	// Within the holdoff a NAK of what was just multicast queues nothing.
	p.OnNak(3, rg(15, 20), false, 0, ms/2)
	if c := p.Member(3).Pending.Count(); c != 0 {
		t.Fatalf("queued %d within the holdoff", c)
	}
	p.OnNak(3, rg(15, 20), false, 0, 2*ms)
	if c := p.Member(3).Pending.Count(); c != 6 {
		t.Fatalf("queued %d after the holdoff", c)
	}
	// With eight members, two are not half: unicast only.
	for port := uint32(5); port <= 8; port++ {
		p.OnStatus(port, 0, 100, false, 0)
	}
	p.OnNak(4, rg(15, 20), false, 0, 2*ms)
	if got := p.PlanMulticast(2*ms, nil); len(got) != 0 {
		t.Fatalf("plan %v with 2 of 8", got)
	}
}

func TestPublisherExpire(t *testing.T) {
	p := NewPublisher(0, PublisherConfig{History: 8, SubscriberTimeout: 100 * ms, LaggardTimeout: 30 * ms})
	p.OnStatus(1, 0, 8, false, 0)
	p.OnStatus(2, 0, 8, false, 0)
	pushN(t, p, 8)
	p.SetBlocked(10*ms, true) // both hold the window closed
	p.OnStatus(2, 8, 8, false, 20*ms)
	p.SetBlocked(20*ms, true) // 2 moved: only 1 holds it
	if d := p.Deadline(); d != 40*ms {
		t.Fatalf("deadline %v, want 40ms (1's laggard time)", d)
	}
	if ev := p.Expire(39*ms, nil); len(ev) != 0 {
		t.Fatalf("early eviction %v", ev)
	}
	ev := p.Expire(40*ms, nil)
	if len(ev) != 1 || ev[0].Port != 1 || ev[0].Reason != EvictLaggard {
		t.Fatalf("evictions %v", ev)
	}
	// 2 falls silent: timed out after SubscriberTimeout from its last STATUS.
	ev = p.Expire(120*ms, nil)
	if len(ev) != 1 || ev[0].Port != 2 || ev[0].Reason != EvictTimeout {
		t.Fatalf("evictions %v", ev)
	}
	// An unregistered port with repairs queued is kept until they are sent.
	p.OnNak(3, []window.Range{{Start: 2, End: 3}}, false, 0, 130*ms)
	if ev := p.Expire(500*ms, nil); len(ev) != 0 || p.Member(3) == nil {
		t.Fatal("dropped a port with queued repairs")
	}
	// ... and its timeout, which Expire does not act on, is no deadline.
	if d := p.Deadline(); d != -1 {
		t.Fatalf("deadline %v for a port Expire keeps", d)
	}
}

func TestPublisherMaxSubscribers(t *testing.T) {
	p := NewPublisher(0, PublisherConfig{MaxSubscribers: 2})
	pushN(t, p, 4)
	p.OnStatus(1, 0, 8, false, 0)
	p.OnNak(2, []window.Range{{Start: 1, End: 1}}, false, 0, 0)
	// A registration takes the place of a port that only NAKs.
	if r := p.OnStatus(3, 0, 8, false, 0); r != StatusRegistered || p.Member(2) != nil {
		t.Fatalf("third: %v, NAK-only member kept: %v", r, p.Member(2) != nil)
	}
	if r := p.OnStatus(4, 0, 8, false, 0); r != StatusRefused {
		t.Fatalf("fourth: %v", r)
	}
	if v := p.OnNak(5, []window.Range{{Start: 1, End: 1}}, false, 0, 0); v != NakNoRoom {
		t.Fatalf("NAK from a fifth: %v", v)
	}
}

func TestPublisherNakBeforeFirst(t *testing.T) {
	p := NewPublisher(1000, PublisherConfig{History: 100})
	pushN(t, p, 10)
	if v := p.OnNak(9, []window.Range{{Start: 990, End: 1001}}, false, 0, 0); v != NakUnsent {
		t.Fatalf("NAK before the first MSN: %v", v)
	}
	if v := p.OnNak(9, nil, true, 999, 0); v != NakUnsent {
		t.Fatalf("tail before the first MSN: %v", v)
	}
	if v := p.OnNak(9, nil, true, 1010, 0); v != NakQueued {
		t.Fatalf("tail at Next: %v", v)
	}
}
