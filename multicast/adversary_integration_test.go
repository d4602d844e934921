//go:build linux

package multicast

// Adversaries over real netlink that listen before they forge: a socket
// joins the group, learns the publisher's port, epoch and MSNs from the
// real traffic, then sends well-formed frames with the right channel and
// epoch from its own port. Kernel-stamped ports (and credentials) must
// make every one of them harmless.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/transport"
)

// spy is the adversary's socket: it joins the group and records what the
// real publisher reveals, and what is sent to the spy itself.
type spy struct {
	tr *probedConn
	ch transport.CbID

	mu        sync.Mutex
	pubPort   uint32
	epoch     uint32
	next      uint32 // one past the newest MSN seen (MDATA or heartbeat)
	oldest    uint32
	haveNext  bool
	repairsMC map[uint32]int // MSNs multicast as repairs, while watching
	watch     bool

	unicastData  atomic.Int64 // MDATA frames sent to the spy's own port
	unicastOther atomic.Int64 // other frames sent to it (heartbeats...)
	done         chan struct{}
}

func startSpy(t *testing.T, group uint32, ch transport.CbID) *spy {
	t.Helper()
	sp := &spy{tr: openProbed(t, transport.Config{Groups: []uint32{group}, ReadBuffer: 1 << 20}), ch: ch,
		repairsMC: map[uint32]int{}, done: make(chan struct{})}
	go sp.run()
	t.Cleanup(func() { _ = sp.tr.Close(); <-sp.done })
	return sp
}

func (sp *spy) run() {
	defer close(sp.done)
	buf := make([]byte, 1<<16)
	var r wire.Reader
	for {
		p, err := sp.tr.Receive(buf)
		if err != nil {
			return
		}
		if p.Overrun || p.Truncated {
			continue
		}
		r.Reset(p.Data)
		for r.Next() {
			f, err := r.Frame()
			if err != nil || f.ID != sp.ch {
				continue
			}
			if p.Group == 0 {
				if f.Header.Type == wire.TypeMData {
					sp.unicastData.Add(1)
				} else {
					sp.unicastOther.Add(1)
				}
				continue
			}
			sp.mu.Lock()
			switch f.Header.Type {
			case wire.TypeMData:
				if sp.pubPort == 0 {
					sp.pubPort, sp.epoch = p.From, f.Ack
				}
				if !sp.haveNext || int32(f.Seq+1-sp.next) > 0 {
					sp.next, sp.haveNext = f.Seq+1, true
				}
				sp.oldest = f.Header.Arg
				if sp.watch && f.Header.Flags&wire.FlagRepair != 0 {
					sp.repairsMC[f.Seq]++
				}
			case wire.TypeHeartbeat:
				if sp.pubPort == 0 {
					sp.pubPort, sp.epoch = p.From, f.Ack
				}
				if !sp.haveNext || int32(f.Seq-sp.next) > 0 {
					sp.next, sp.haveNext = f.Seq, true
				}
				sp.oldest = f.Header.Arg
			}
			sp.mu.Unlock()
		}
	}
}

// learned returns what the spy knows of the stream.
func (sp *spy) learned() (port, epoch, next, oldest uint32, ok bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.pubPort, sp.epoch, sp.next, sp.oldest, sp.pubPort != 0 && sp.haveNext
}

// frame encodes one frame of the adversary's.
func (sp *spy) frame(dst []byte, typ wire.Type, seq, ack, arg uint32, flags uint16, body, payload []byte) []byte {
	if pad := len(dst) % 4; pad != 0 {
		dst = append(dst, make([]byte, 4-pad)...)
	}
	out, err := wire.Append(dst, &wire.Frame{ID: sp.ch, Seq: seq, Ack: ack, Port: sp.tr.LocalPort(), Type: typ, Flags: flags, Arg: arg}, body, payload)
	if err != nil {
		panic(err)
	}
	return out
}

// send sends b, ignoring a full queue (the adversary does not care).
func (sp *spy) send(t *testing.T, dst transport.Addr, b []byte) bool {
	err := sp.tr.Send(dst, b)
	switch {
	case err == nil:
		return true
	case errors.Is(err, transport.ErrPeerBusy):
		return false
	}
	t.Errorf("adversary send to %+v: %v", dst, err)
	return false
}

func (sp *spy) waitLearned(t *testing.T, pubPort uint32) {
	t.Helper()
	mustWait(t, 5*time.Second, "the adversary to learn the stream", func() bool {
		p, _, _, _, ok := sp.learned()
		return ok && p == pubPort
	})
}

const forgedTag = 0x464f5247 // "FORG": a forged message delivered fails checkPayload

// TestIntegrationMulticastAdversaryForgedFrames: an adversary that learned
// the epoch and MSNs sends, from its own port, by multicast to the group
// and by unicast to each subscriber: MDATA for the MSNs the publisher is
// about to use (and as repairs), a HEARTBEAT with FIN at the current MSN
// (accepted, it would end the stream early with a nil error), a HEARTBEAT
// far ahead (it would make subscribers NAK and lose), a HEARTBEAT with a
// new epoch (a fake restart), and EVICT with every reason. Subscribers,
// pinned by configuration or by the first frame they heard, deliver the
// real stream whole and nothing forged, end with a nil error, and count
// what they dropped in Stats().Rejected.
func TestIntegrationMulticastAdversaryForgedFrames(t *testing.T) {
	requireRoot(t)
	ch := randomChannel()
	pub, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupAdvForge, Channel: ch, History: 1024})
	type target struct {
		name string
		sub  *Subscriber
		tr   *probedConn
		r    *testReader
		sent int // forged datagrams that reached its queue (sends that succeeded)
	}
	var ts []*target
	for _, c := range []struct {
		name   string
		pinned bool
		rcvbuf int
	}{{"pinned", true, 1 << 20}, {"learned", false, 1 << 20}, {"learned-4KiB", false, 4 << 10}} {
		cfg := SubscriberConfig{Group: groupAdvForge, Channel: ch}
		if c.pinned {
			cfg.Publisher = pub.Port()
		}
		s, tr := startSubscriber(t, transport.Config{ReadBuffer: c.rcvbuf}, cfg)
		ts = append(ts, &target{name: c.name, sub: s, tr: tr})
	}
	subs := []*Subscriber{ts[0].sub, ts[1].sub, ts[2].sub}
	waitPinned(t, pub, subs, len(subs))
	sp := startSpy(t, groupAdvForge, ch)
	ctx := testCtx(t, 30*time.Second)
	const tag, n = 0x52454131, 20000
	for _, x := range ts {
		x.r = startReader(ctx, x.sub, readOpts{tag: tag})
	}
	if err := publishRange(ctx, pub, tag, 0, 1000); err != nil {
		t.Fatal(err)
	}
	sp.waitLearned(t, pub.Port())
	_, epoch, _, _, _ := sp.learned()
	if epoch != pub.Epoch() {
		t.Fatalf("the adversary learned epoch %#x, the publisher's is %#x", epoch, pub.Epoch())
	}

	// Forge while the real stream runs.
	stop := make(chan struct{})
	var mcSent, mcTried atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		var buf [256]byte
		var b []byte
		for round := 0; ; round++ {
			select {
			case <-stop:
				return
			default:
			}
			_, epoch, next, oldest, _ := sp.learned()
			b = b[:0]
			switch round % 6 {
			case 0, 1: // the next MSNs, before the publisher sends them
				for k := range uint32(8) {
					b = sp.frame(b, wire.TypeMData, next+k, epoch, oldest, 0, nil, fillPayload(buf[:], forgedTag, uint64(k)))
				}
			case 2: // as repairs of what subscribers may miss
				for k := range uint32(8) {
					b = sp.frame(b, wire.TypeMData, next-1-k, epoch, oldest, wire.FlagRepair, nil, fillPayload(buf[:], forgedTag, uint64(k)))
				}
			case 3: // the stream ends here (FIN), and again far ahead
				hb := wire.AppendHeartbeat(nil, wire.Heartbeat{Window: 1 << 20, MaxMessage: 200, MaxDatagram: 8192})
				b = sp.frame(b, wire.TypeHeartbeat, next, epoch, oldest, wire.FlagFin, hb, nil)
				b = sp.frame(b, wire.TypeHeartbeat, next+100000, epoch, next+99000, wire.FlagStatusReq, hb, nil)
			case 4: // a restart
				hb := wire.AppendHeartbeat(nil, wire.Heartbeat{Window: 64, MaxMessage: 200, MaxDatagram: 8192})
				b = sp.frame(b, wire.TypeHeartbeat, next, epoch+1, oldest, 0, hb, nil)
				b = sp.frame(b, wire.TypeMData, next, epoch^0x5a5a5a5a, oldest, 0, nil, fillPayload(buf[:], forgedTag, 0))
			case 5: // eviction, every reason
				for r := uint32(1); r <= 4; r++ {
					b = sp.frame(b, wire.TypeEvict, next, epoch, r, 0, nil, nil)
				}
			}
			mcTried.Add(1)
			if sp.send(t, transport.Addr{Group: groupAdvForge}, b) {
				mcSent.Add(1)
			}
			for _, x := range ts {
				if sp.send(t, transport.Addr{Port: x.tr.LocalPort()}, b) {
					x.sent++ // only this goroutine writes it until wg.Wait
				}
			}
			time.Sleep(200 * time.Microsecond)
		}
	})
	err := publishRange(ctx, pub, tag, 1000, n)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if err := closePub(t, pub, 15*time.Second); err != nil {
		t.Fatalf("Close: %v; %s", err, fmtPubStats(pub.Stats()))
	}
	t.Logf("forged datagrams multicast: %d of %d; %s", mcSent.Load(), mcTried.Load(), fmtPubStats(pub.Stats()))
	for _, x := range ts {
		res := x.r.wait(t, 10*time.Second)
		s := x.sub.Stats()
		drops, _ := x.tr.Drops()
		t.Logf("%s: %d forged unicasts queued, kernel drops %d; %s", x.name, x.sent, drops, fmtStats(s))
		checkComplete(t, x.name, res, n)
		// Every forged datagram that reached the socket is rejected:
		// at most the kernel's drops are missing from the count.
		if want := uint64(mcSent.Load()) + uint64(x.sent); s.Rejected+drops < want {
			t.Errorf("%s: Rejected %d (+ %d kernel drops) below the %d forged datagrams sent to it", x.name, s.Rejected, drops, want)
		}
		if port, ep := x.sub.Publisher(); port != pub.Port() || ep != pub.Epoch() {
			t.Errorf("%s: pinned port %d epoch %#x, want the publisher's %d %#x", x.name, port, ep, pub.Port(), pub.Epoch())
		}
	}
}

// nakFrame encodes a NAK from the adversary for the stream of epoch.
func (sp *spy) nakFrame(dst []byte, epoch uint32, rs []wire.Range, tail bool, tailStart uint32) []byte {
	var flags uint16
	var arg uint32
	if tail {
		flags, arg = wire.FlagTail, tailStart
	}
	seq := tailStart
	if len(rs) > 0 {
		seq = rs[0].Start
	}
	return sp.frame(dst, wire.TypeNak, seq, epoch+1, arg, flags, wire.AppendNak(nil, rs), nil)
}

// TestIntegrationMulticastAdversaryNak: forged NAKs for MSNs the publisher
// never sent (beyond Next, a valid range mixed with an unsent one, a tail
// from beyond Next, a reversed range) are rejected whole and counted in
// NaksUnsent, and nothing is sent for them, by unicast or multicast. A
// NAK for MSNs before the stream's first MSN (never sent either) must not
// be repaired. A valid NAK from the same socket is repaired, so the
// silence above is not the adversary's deafness.
func TestIntegrationMulticastAdversaryNak(t *testing.T) {
	requireRoot(t)
	ch := randomChannel()
	pub, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupAdvNak, Channel: ch, History: 1024})
	sub, _ := startSubscriber(t, transport.Config{}, SubscriberConfig{Group: groupAdvNak, Channel: ch, Publisher: pub.Port()})
	waitPinned(t, pub, []*Subscriber{sub}, 1)
	sp := startSpy(t, groupAdvNak, ch)
	ctx := testCtx(t, 20*time.Second)
	const tag, n = 0x4e414b31, 500
	r := startReader(ctx, sub, readOpts{tag: tag})
	if err := publishRange(ctx, pub, tag, 0, n); err != nil {
		t.Fatal(err)
	}
	mustWait(t, 5*time.Second, "the subscriber to take everything", func() bool { return r.taken.Load() == n })
	sp.waitLearned(t, pub.Port())
	mustWait(t, 5*time.Second, "the adversary to see the whole stream", func() bool {
		_, _, next, _, _ := sp.learned()
		return next == pub.Stats().Next && pub.Stats().Published == n
	})
	_, epoch, next, _, _ := sp.learned()
	ps0 := pub.Stats()
	oldest := ps0.Oldest
	isn := next - n
	sp.mu.Lock()
	sp.watch = true
	sp.mu.Unlock()
	cases := []struct {
		name      string
		rs        []wire.Range
		tail      bool
		tailStart uint32
	}{
		{"at next", []wire.Range{{Start: next, End: next}}, false, 0},
		{"far ahead", []wire.Range{{Start: next + 100, End: next + 200}}, false, 0},
		{"valid then unsent", []wire.Range{{Start: oldest, End: oldest + 5}, {Start: next - 2, End: next + 3}}, false, 0},
		{"tail beyond next", nil, true, next + 1},
		{"reversed", []wire.Range{{Start: next - 5, End: next - 10}}, false, 0},
		{"valid and tail beyond", []wire.Range{{Start: oldest, End: oldest + 1}}, true, next + 50},
		{"just below half the space ahead", []wire.Range{{Start: next + 1<<31 - 2, End: next + 1<<31 - 1}}, false, 0},
	}
	for _, c := range cases {
		sp.send(t, transport.Addr{Port: pub.Port()}, sp.nakFrame(nil, epoch, c.rs, c.tail, c.tailStart))
	}
	mustWait(t, 2*time.Second, "the publisher to handle the NAKs", func() bool { return pub.Stats().Naks-ps0.Naks >= uint64(len(cases)) })
	time.Sleep(100 * time.Millisecond) // give any (wrong) repair time to arrive
	ps1 := pub.Stats()
	t.Logf("after %d unsent NAKs: %s; adversary got %d MDATA unicast, %d other", len(cases), fmtPubStats(ps1), sp.unicastData.Load(), sp.unicastOther.Load())
	if got := ps1.NaksUnsent - ps0.NaksUnsent; got != uint64(len(cases)) {
		t.Errorf("NaksUnsent grew by %d for %d NAKs of unsent MSNs", got, len(cases))
	}
	if ps1.RepairsUnicast != ps0.RepairsUnicast || ps1.RepairsMulticast != ps0.RepairsMulticast || sp.unicastData.Load() != 0 {
		t.Errorf("repairs sent for unsent MSNs: unicast %d -> %d, multicast %d -> %d, %d MDATA to the adversary",
			ps0.RepairsUnicast, ps1.RepairsUnicast, ps0.RepairsMulticast, ps1.RepairsMulticast, sp.unicastData.Load())
	}
	sp.mu.Lock()
	if len(sp.repairsMC) != 0 {
		t.Errorf("repairs multicast for unsent NAKs: %v", sp.repairsMC)
	}
	sp.mu.Unlock()

	t.Run("before the first MSN", func(t *testing.T) {
		// MSNs before the stream's first were never sent either (the
		// publisher knows its first MSN): they must be counted as
		// unsent, not answered as too old.
		ps0 := pub.Stats()
		sp.send(t, transport.Addr{Port: pub.Port()}, sp.nakFrame(nil, epoch, []wire.Range{{Start: isn - 1000, End: isn - 1}}, false, 0))
		mustWait(t, 2*time.Second, "the publisher to handle the NAK", func() bool { return pub.Stats().Naks > ps0.Naks })
		ps1 := pub.Stats()
		if ps1.NaksUnsent == ps0.NaksUnsent {
			t.Errorf("a NAK for MSNs %d..%d, before the stream's first MSN %d, was not counted as unsent (too old: %d -> %d)", isn-1000, isn-1, isn, ps0.NaksTooOld, ps1.NaksTooOld)
		}
		if ps1.RepairsUnicast != ps0.RepairsUnicast || ps1.RepairsMulticast != ps0.RepairsMulticast {
			t.Errorf("repairs sent for MSNs before the stream")
		}
	})

	// Control: a NAK for MSNs the publisher did send is repaired, to the
	// adversary's own port (any subscriber may ask).
	ps2 := pub.Stats()
	sp.send(t, transport.Addr{Port: pub.Port()}, sp.nakFrame(nil, epoch, []wire.Range{{Start: next - 4, End: next - 1}}, false, 0))
	mustWait(t, 2*time.Second, "the control repair to reach the adversary", func() bool { return sp.unicastData.Load() == 4 })
	if ps := pub.Stats(); ps.NaksUnsent != ps2.NaksUnsent {
		t.Errorf("a valid NAK counted as unsent")
	}
	if err := closePub(t, pub, 10*time.Second); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkComplete(t, "subscriber", r.wait(t, 5*time.Second), n)
}

// TestIntegrationMulticastAdversaryNakFlood: another port floods the
// publisher with about 10^5 NAK frames a second (valid ranges, so that
// every one that passes costs a repair) while a real stream runs to
// subscribers with 4 KiB buffers that need repairs: the publisher rate
// limits (NaksRateLimited > 0) and the stream still completes.
func TestIntegrationMulticastAdversaryNakFlood(t *testing.T) {
	requireRoot(t)
	ch := randomChannel()
	pub, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupAdvFlood, Channel: ch})
	var subs []*Subscriber
	for i := range 4 {
		s, _ := startSubscriber(t, transport.Config{ReadBuffer: 4 << 10 << (i % 2)}, SubscriberConfig{Group: groupAdvFlood, Channel: ch, Publisher: pub.Port()})
		subs = append(subs, s)
	}
	waitPinned(t, pub, subs, len(subs))
	sp := startSpy(t, groupAdvFlood, ch)
	ctx := testCtx(t, 40*time.Second)
	const tag = 0x464c4f44
	n := 50000
	if raceEnabled {
		n = 20000
	}
	var rs []*testReader
	for _, s := range subs {
		rs = append(rs, startReader(ctx, s, readOpts{tag: tag}))
	}
	if err := publishRange(ctx, pub, tag, 0, 500); err != nil {
		t.Fatal(err)
	}
	sp.waitLearned(t, pub.Port())
	stop := make(chan struct{})
	var frames, busy atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Go(func() {
		const perDatagram = 50
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		var b []byte
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			// 100 NAK frames per millisecond: 10^5 a second.
			for range 2 {
				_, epoch, next, _, _ := sp.learned()
				b = b[:0]
				for k := range uint32(perDatagram) {
					s := next - 1 - k%16
					b = sp.nakFrame(b, epoch, []wire.Range{{Start: s, End: s}}, false, 0)
				}
				if err := sp.tr.Send(transport.Addr{Port: pub.Port()}, b); err == nil {
					frames.Add(perDatagram)
				} else if errors.Is(err, transport.ErrPeerBusy) {
					busy.Add(1)
				} else if errors.Is(err, transport.ErrPeerGone) {
					return // the publisher closed
				} else {
					t.Errorf("flood: %v", err)
					return
				}
			}
		}
	})
	err := publishRange(ctx, pub, tag, 500, uint64(n))
	cerr := closePub(t, pub, 20*time.Second)
	close(stop)
	wg.Wait()
	el := time.Since(t0)
	ps := pub.Stats()
	t.Logf("flood: %d NAK frames in %v (%.0f/s), %d datagrams refused busy; %s", frames.Load(), el, float64(frames.Load())/el.Seconds(), busy.Load(), fmtPubStats(ps))
	if err != nil {
		t.Fatalf("publishing under the flood: %v", err)
	}
	if cerr != nil {
		t.Fatalf("Close under the flood: %v", cerr)
	}
	if ps.NaksRateLimited == 0 {
		t.Errorf("no NAK rate limited under a flood of %.0f/s", float64(frames.Load())/el.Seconds())
	}
	for i, r := range rs {
		res := r.wait(t, 10*time.Second)
		t.Logf("sub %d: %s", i, fmtStats(subs[i].Stats()))
		checkComplete(t, "sub "+itoa(i), res, n)
	}
}

// TestIntegrationMulticastAdversaryStatus: while a registered subscriber
// that stopped reading holds the publisher back, the adversary sends
// STATUS from its own port with positions beyond Next (just beyond, far,
// half the MSN space away) and a huge window: the publisher ignores them
// (counted as rejected) and does not send one message more than the real
// subscriber allows. When the reader resumes, everything is delivered.
func TestIntegrationMulticastAdversaryStatus(t *testing.T) {
	requireRoot(t)
	ch := randomChannel()
	const history, recvBuf = 128, 8
	pub, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupAdvStatus, Channel: ch, History: history, SubscriberTimeout: time.Second})
	sub, _ := startSubscriber(t, transport.Config{}, SubscriberConfig{Group: groupAdvStatus, Channel: ch, Publisher: pub.Port(), RecvBuffer: recvBuf})
	waitPinned(t, pub, []*Subscriber{sub}, 1)
	base := pub.Stats().Next
	sp := startSpy(t, groupAdvStatus, ch)
	ctx := testCtx(t, 20*time.Second)
	const tag, n = 0x53544154, 2000
	resume := make(chan struct{})
	r := startReader(ctx, sub, readOpts{tag: tag, stallAt: 50, resume: resume})
	pubDone := make(chan error, 1)
	go func() { pubDone <- publishRange(ctx, pub, tag, 0, n) }()
	// Wait until the publisher is held: Next stands still.
	var held uint32
	mustWait(t, 5*time.Second, "the publisher to be held back", func() bool {
		a := pub.Stats().Next
		time.Sleep(50 * time.Millisecond)
		held = pub.Stats().Next
		return a == held && held != base && pub.Stats().Blocked > 0
	})
	sp.waitLearned(t, pub.Port())
	_, epoch, _, _, _ := sp.learned()
	ps0 := pub.Stats()
	positions := []uint32{held + 1, held + 1000, held + history*4, held + 1<<31 - 1}
	for _, pos := range positions {
		b := sp.frame(nil, wire.TypeStatus, pos, epoch+1, 1<<20, 0, nil, nil)
		sp.send(t, transport.Addr{Port: pub.Port()}, b)
	}
	mustWait(t, 2*time.Second, "the publisher to handle the STATUS", func() bool { return pub.Stats().Statuses-ps0.Statuses >= uint64(len(positions)) })
	time.Sleep(200 * time.Millisecond)
	ps1 := pub.Stats()
	lead := int64(ps1.Next-base) - r.taken.Load()
	t.Logf("held at %d (%d ahead of the reader, which took %d); after forged STATUS: %s", held, lead, r.taken.Load(), fmtPubStats(ps1))
	if ps1.Next != held {
		t.Errorf("forged STATUS moved the publisher from %d to %d", held, ps1.Next)
	}
	if bound := int64(history + recvBuf + 2); lead > bound {
		t.Errorf("publisher %d ahead of a stalled registered reader; flow control allows %d", lead, bound)
	}
	if got := ps1.Rejected - ps0.Rejected; got < uint64(len(positions)) {
		t.Errorf("Rejected grew by %d for %d STATUS beyond Next", got, len(positions))
	}
	if ps1.Registered != ps0.Registered {
		t.Errorf("a STATUS beyond Next registered the adversary (%d -> %d)", ps0.Registered, ps1.Registered)
	}
	close(resume)
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	if err := closePub(t, pub, 10*time.Second); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkComplete(t, "subscriber", r.wait(t, 5*time.Second), n)
}

// The port hijacker's parameters, in its environment.
const (
	hijackEnv = "CNLINK_MULTICAST_HIJACK_CHILD" // "port group chval epoch next oldest"
)

func init() {
	v := os.Getenv(hijackEnv)
	if v == "" {
		return
	}
	os.Exit(hijackChild(v))
}

// hijackChild binds the port of a publisher that crashed and speaks for
// it, with its epoch and its next MSNs: what another process could do.
func hijackChild(v string) int {
	var port, group, chv, epoch, next, oldest uint32
	if _, err := fmt.Sscan(v, &port, &group, &chv, &epoch, &next, &oldest); err != nil {
		fmt.Fprintln(os.Stderr, "bad parameters:", err)
		return 2
	}
	var c *transport.Conn
	for range 100 {
		var err error
		if c, err = transport.Open(transport.Config{Port: port}); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c == nil {
		fmt.Fprintln(os.Stderr, "could not bind port", port)
		return 2
	}
	defer c.Close()
	ch := transport.CbID{Idx: 0x434e4c4b, Val: chv}
	frame := func(dst []byte, typ wire.Type, seq, arg uint32, flags uint16, body, payload []byte) []byte {
		if pad := len(dst) % 4; pad != 0 {
			dst = append(dst, make([]byte, 4-pad)...)
		}
		out, _ := wire.Append(dst, &wire.Frame{ID: ch, Seq: seq, Ack: epoch, Port: port, Type: typ, Flags: flags, Arg: arg}, body, payload)
		return out
	}
	var buf [256]byte
	sent := 0
	for round := range 50 {
		var b []byte
		for k := range uint32(8) {
			b = frame(b, wire.TypeMData, next+k, oldest, 0, nil, fillPayload(buf[:], forgedTag, uint64(k)))
		}
		if round%5 == 4 {
			hb := wire.AppendHeartbeat(nil, wire.Heartbeat{Window: 1024, MaxMessage: 200, MaxDatagram: 8192})
			b = frame(b, wire.TypeHeartbeat, next+8, oldest, wire.FlagFin, hb, nil)
		}
		if err := c.Send(transport.Addr{Group: group}, b); err == nil || errors.Is(err, transport.ErrPeerGone) {
			sent++
		}
		time.Sleep(2 * time.Millisecond)
	}
	fmt.Printf("SENT %d\n", sent)
	return 0
}

// TestIntegrationMulticastAdversaryPortHijack: the publisher crashes (its
// socket closes, no FIN) and another process binds its port at once and
// multicasts, with the publisher's epoch, the MSNs that come next and a
// FIN after them. The port matches what the subscriber pinned; the
// kernel-stamped credentials (another PID) do not: the subscriber must
// deliver none of it and end with a typed error, not with nil.
func TestIntegrationMulticastAdversaryPortHijack(t *testing.T) {
	requireRoot(t)
	ch := randomChannel()
	var tr *probedConn
	var port uint32
	for range 20 {
		port = 0x71000000 + rand.Uint32N(1<<24)
		if c, err := transport.Open(transport.Config{Port: port}); err == nil {
			tr = &probedConn{Conn: c}
			t.Cleanup(func() { _ = tr.Close() })
			break
		}
	}
	if tr == nil {
		t.Fatal("no free fixed port")
	}
	pub, err := NewPublisher(tr, PublisherConfig{Group: groupAdvHijack, Channel: ch, History: 256})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Abort)
	sub, _ := startSubscriber(t, transport.Config{ReadBuffer: 1 << 20}, SubscriberConfig{Group: groupAdvHijack, Channel: ch, Publisher: port, PublisherTimeout: 10 * time.Second})
	waitPinned(t, pub, []*Subscriber{sub}, 1)
	ctx := testCtx(t, 30*time.Second)
	const tag, n = 0x484a434b, 1000
	r := startReader(ctx, sub, readOpts{tag: tag})
	if err := publishRange(ctx, pub, tag, 0, n); err != nil {
		t.Fatal(err)
	}
	mustWait(t, 5*time.Second, "the subscriber to take everything", func() bool { return r.taken.Load() == n })
	ps := pub.Stats()
	_ = tr.Conn.Close() // the crash
	<-pub.Done()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %d %d %d %d %d", hijackEnv, port, groupAdvHijack, ch.Val, pub.Epoch(), ps.Next, ps.Oldest))
	out, err := cmd.CombinedOutput()
	t.Logf("hijacker: %v: %s", err, strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("hijacker failed: %v", err)
	}
	res := r.wait(t, 15*time.Second)
	s := sub.Stats()
	t.Logf("subscriber: %d delivered, ended %v; %s", res.n, res.err, fmtStats(s))
	checkClean(t, "subscriber", res) // a forged payload fails here
	if res.n != n {
		t.Errorf("delivered %d, want the real %d and nothing more", res.n, n)
	}
	if res.err == nil {
		t.Errorf("the subscriber ended with a nil error: it took the hijacker's FIN for the publisher's")
	}
}

// TestIntegrationMulticastAdversaryMemberTable: the publisher keeps state
// for at most MaxSubscribers ports, registered or only asking for
// repairs. An adversary with that many sockets keeps NAKing valid MSNs
// (a few NAKs a second each: far below any rate limit) and so holds
// every slot; then a real subscriber joins. Repair-only ports must not
// lock registered subscribers out: it must register and get the stream.
func TestIntegrationMulticastAdversaryMemberTable(t *testing.T) {
	requireRoot(t)
	ch := randomChannel()
	const slots = 4
	pub, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupAdvTable, Channel: ch, MaxSubscribers: slots})
	ctx := testCtx(t, 20*time.Second)
	const tag, n = 0x5441424c, 3000
	if err := publishRange(ctx, pub, tag, 0, 100); err != nil {
		t.Fatal(err)
	}
	sp := startSpy(t, groupAdvTable, ch)
	sp.waitLearned(t, pub.Port())
	var socks []*probedConn
	for range slots {
		socks = append(socks, openProbed(t, transport.Config{}))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			_, epoch, next, _, _ := sp.learned()
			for _, c := range socks {
				b := sp.nakFrame(nil, epoch, []wire.Range{{Start: next - 1, End: next - 1}}, false, 0)
				_ = c.Send(transport.Addr{Port: pub.Port()}, b)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()
	mustWait(t, 5*time.Second, "the adversary's NAKs to be handled", func() bool { return pub.Stats().Naks >= slots })
	sub, _ := startSubscriber(t, transport.Config{}, SubscriberConfig{Group: groupAdvTable, Channel: ch, Publisher: pub.Port()})
	r := startReader(ctx, sub, readOpts{tag: tag})
	_ = waitFor(testCtx(t, 2*time.Second), func() bool { return pub.Stats().Subscribers == 1 || sub.Err() != nil })
	if err := publishRange(ctx, pub, tag, 100, n); err != nil {
		t.Fatal(err)
	}
	if err := closePub(t, pub, 10*time.Second); err != nil {
		t.Fatalf("Close: %v", err)
	}
	res := r.wait(t, 10*time.Second)
	t.Logf("subscriber: %d delivered (index %d..%d), ended %v; %s; %s", res.n, res.firstIdx, res.lastIdx, res.err, fmtStats(sub.Stats()), fmtPubStats(pub.Stats()))
	checkClean(t, "subscriber", res)
	if res.err != nil || res.n == 0 || res.lastIdx != n-1 {
		t.Errorf("a subscriber that joined while repair-only ports held the %d slots: %d delivered up to index %d, ended %v; want the stream to its end and nil", slots, res.n, res.lastIdx, res.err)
	}
}

// TestIntegrationMulticastAdversaryRepairAmplification: many adversary
// ports each NAK the whole history, over and over (within the rate
// limit), so that one small frame asks for thousands of messages, and the
// publisher repairs by multicast what many ports miss: every legitimate
// subscriber (4 KiB buffers) then also receives those repairs. The real
// stream must still complete.
func TestIntegrationMulticastAdversaryRepairAmplification(t *testing.T) {
	requireRoot(t)
	ch := randomChannel()
	pub, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupAdvAmp, Channel: ch, MaxSubscribers: 32})
	var subs []*Subscriber
	for i := range 4 {
		s, _ := startSubscriber(t, transport.Config{ReadBuffer: 4 << 10 << (i % 2)}, SubscriberConfig{Group: groupAdvAmp, Channel: ch, Publisher: pub.Port()})
		subs = append(subs, s)
	}
	waitPinned(t, pub, subs, len(subs))
	ctx := testCtx(t, 45*time.Second)
	const tag = 0x414d504c
	n := 30000
	if raceEnabled {
		n = 10000
	}
	var rs []*testReader
	for _, s := range subs {
		rs = append(rs, startReader(ctx, s, readOpts{tag: tag}))
	}
	if err := publishRange(ctx, pub, tag, 0, 5000); err != nil {
		t.Fatal(err)
	}
	sp := startSpy(t, groupAdvAmp, ch)
	sp.waitLearned(t, pub.Port())
	var socks []*probedConn
	for range 16 {
		socks = append(socks, openProbed(t, transport.Config{ReadBuffer: 4 << 10}))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var naks atomic.Int64
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			_, epoch, next, oldest, _ := sp.learned()
			for _, c := range socks {
				b := sp.nakFrame(nil, epoch, []wire.Range{{Start: oldest, End: next - 1}}, false, 0)
				if c.Send(transport.Addr{Port: pub.Port()}, b) == nil {
					naks.Add(1)
				}
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	// The stream gets 20 s (it needs about 1 s unattacked, 5 s under
	// -race), Close 10 s more; then the attack stops whatever happened.
	t0 := time.Now()
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	err := publishRange(pctx, pub, tag, 5000, uint64(n))
	cancel()
	var cerr error
	if err == nil {
		cerr = closePub(t, pub, 10*time.Second)
	}
	close(stop)
	wg.Wait()
	pub.Abort()
	ps := pub.Stats()
	t.Logf("%d whole-history NAKs from %d ports; stream took %v; %s", naks.Load(), len(socks), time.Since(t0), fmtPubStats(ps))
	work := ps.RepairsMulticast + ps.RepairsUnicast
	if err != nil || cerr != nil || work > 10*uint64(n) {
		// The rate limit counts NAK frames, whatever they ask for.
		t.Errorf("%d NAK frames (%d bytes each) made the publisher repair %d messages (%.0f per NAK, %.0f per published message); publishing: %v; Close: %v: NAKs that ask for the whole history are an amplifier the rate limit does not bound",
			naks.Load(), len(sp.nakFrame(nil, 0, []wire.Range{{}}, false, 0)), work, float64(work)/float64(max(1, naks.Load())), float64(work)/float64(ps.Published), err, cerr)
	}
	for i, r := range rs {
		res := r.wait(t, 10*time.Second)
		t.Logf("sub %d: %d delivered, %v; %s", i, res.n, res.err, fmtStats(subs[i].Stats()))
		if err == nil && cerr == nil {
			checkComplete(t, "sub "+itoa(i), res, n)
		} else {
			checkClean(t, "sub "+itoa(i), res)
		}
	}
}
