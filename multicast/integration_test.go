//go:build linux

package multicast

// Real-netlink tests of the multicast guarantees, with real goroutines
// (no synctest) so that they also run under -race: every message to every
// subscriber in order exactly once, or a typed error; kernel drops covered
// by repair; flow control, laggards, vanishing subscribers, late join,
// loss beyond the history, publisher restarts.

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/transport"
)

// TestIntegrationMulticastMillion: one publisher, eight subscribers with 4
// to 64 KiB receive buffers, millionN messages of 64..256 bytes (10^6
// without -race). Every subscriber delivers every message in order exactly
// once, ends with a nil error after the publisher's Close returned nil,
// and every datagram the kernel dropped for its socket (the Drops column
// of /proc/net/netlink, read as the socket closes) shows as an overrun the
// subscriber repaired: Overruns > 0 whenever Drops > 0, Received equal to
// the messages delivered (no message accepted twice, none missing).
func TestIntegrationMulticastMillion(t *testing.T) {
	requireRoot(t)
	ch := randomChannel()
	pub, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupMillion, Channel: ch})
	bufs := []int{4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10, 4 << 10, 8 << 10, 16 << 10}
	subs := make([]*Subscriber, len(bufs))
	trs := make([]*probedConn, len(bufs))
	for i, b := range bufs {
		subs[i], trs[i] = startSubscriber(t, transport.Config{ReadBuffer: b}, SubscriberConfig{Group: groupMillion, Channel: ch, Publisher: pub.Port()})
	}
	waitPinned(t, pub, subs, len(subs))
	ctx := testCtx(t, integrationLimit)
	const tag = 0x4d494c4c
	readers := make([]*testReader, len(subs))
	for i, s := range subs {
		readers[i] = startReader(ctx, s, readOpts{tag: tag})
	}
	n := millionN
	t0 := time.Now()
	if err := publishRange(ctx, pub, tag, 0, uint64(n)); err != nil {
		t.Fatalf("%v after %v; %s", err, time.Since(t0), fmtPubStats(pub.Stats()))
	}
	tPub := time.Since(t0)
	if err := closePub(t, pub, 30*time.Second); err != nil {
		t.Fatalf("publisher Close: %v; %s", err, fmtPubStats(pub.Stats()))
	}
	tClose := time.Since(t0)
	ps := pub.Stats()
	t.Logf("%d messages: published in %v, closed after %v (%.0f msgs/s); race %v; %s", n, tPub, tClose, float64(n)/tClose.Seconds(), raceEnabled, fmtPubStats(ps))
	if ps.Published != uint64(n) {
		t.Errorf("publisher counts %d published, want %d", ps.Published, n)
	}
	var totalDrops uint64
	for i, r := range readers {
		res := r.wait(t, 30*time.Second)
		s := subs[i].Stats()
		if !trs[i].isClosed() {
			t.Errorf("sub %d: socket still open after the subscription ended", i)
		}
		drops, derr := trs[i].Drops()
		if derr != nil {
			t.Errorf("sub %d: reading its Drops from /proc/net/netlink: %v", i, derr)
		}
		totalDrops += drops
		rb := trs[i].rcvbuf
		t.Logf("sub %d rcvbuf %d (SO_RCVBUF %d): kernel drops %d; %s", i, bufs[i], rb, drops, fmtStats(s))
		checkComplete(t, "sub "+itoa(i), res, n)
		if drops > 0 && s.Overruns == 0 {
			t.Errorf("sub %d: the kernel dropped %d datagrams for it, but it saw no overrun", i, drops)
		}
		if s.Overruns > drops {
			t.Errorf("sub %d: %d overruns but only %d kernel drops: every ENOBUFS follows a drop", i, s.Overruns, drops)
		}
		if s.Received != uint64(res.n) || s.Delivered != uint64(res.n) {
			t.Errorf("sub %d: Received %d, Delivered %d, reader took %d: want all equal", i, s.Received, s.Delivered, res.n)
		}
		if s.Lost != 0 {
			t.Errorf("sub %d: Stats.Lost %d", i, s.Lost)
		}
	}
	t.Logf("kernel drops over all subscribers: %d; repairs: %d unicast, %d multicast", totalDrops, ps.RepairsUnicast, ps.RepairsMulticast)
}

func itoa(i int) string {
	const d = "0123456789"
	if i < 10 {
		return d[i : i+1]
	}
	return itoa(i/10) + d[i%10:i%10+1]
}

// TestIntegrationMulticastSlowReader: a subscriber whose application
// takes its messages slowly holds the publisher back (flow control): at no
// moment has the publisher sent more than History messages beyond what
// that subscriber's Recv channel and reorder buffer can hold, Publish
// blocks, and everything is delivered to it and to the fast ones.
func TestIntegrationMulticastSlowReader(t *testing.T) {
	requireRoot(t)
	ch := randomChannel()
	const history, recvBuf = 256, 16
	pub, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupSlow, Channel: ch, History: history})
	slow, _ := startSubscriber(t, transport.Config{ReadBuffer: 64 << 10}, SubscriberConfig{Group: groupSlow, Channel: ch, Publisher: pub.Port(), RecvBuffer: recvBuf})
	fast1, _ := startSubscriber(t, transport.Config{ReadBuffer: 4 << 10}, SubscriberConfig{Group: groupSlow, Channel: ch, Publisher: pub.Port()})
	fast2, _ := startSubscriber(t, transport.Config{}, SubscriberConfig{Group: groupSlow, Channel: ch, Publisher: pub.Port()})
	waitPinned(t, pub, []*Subscriber{slow, fast1, fast2}, 3)
	base := pub.Stats().Next
	ctx := testCtx(t, 30*time.Second)
	const tag, n = 0x534c4f57, 4000
	rs := startReader(ctx, slow, readOpts{tag: tag, pace: func(k int) {
		if k%8 == 0 {
			time.Sleep(time.Millisecond)
		}
	}})
	r1 := startReader(ctx, fast1, readOpts{tag: tag})
	r2 := startReader(ctx, fast2, readOpts{tag: tag})

	// Watch the flow-control bound while publishing: read Next first,
	// then what the slow reader took (which only grows).
	stop := make(chan struct{})
	var worst atomic.Int64
	var samples atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ahead := int64(pub.Stats().Next-base) - rs.taken.Load()
			samples.Add(1)
			for {
				w := worst.Load()
				if ahead <= w || worst.CompareAndSwap(w, ahead) {
					break
				}
			}
		}
	})
	t0 := time.Now()
	err := publishRange(ctx, pub, tag, 0, n)
	tPub := time.Since(t0)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if err := closePub(t, pub, 20*time.Second); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ps := pub.Stats()
	t.Logf("published %d in %v; worst lead over the slow reader %d messages (%d samples); %s", n, tPub, worst.Load(), samples.Load(), fmtPubStats(ps))
	// The publisher may lead the slow reader by History messages beyond
	// its STATUS position, which counts what sits in Recv (RecvBuffer),
	// the one message the owner holds for it, and the one the reader has
	// taken from Recv but not counted yet.
	if bound := int64(history + recvBuf + 2); worst.Load() > bound {
		t.Errorf("the publisher ran %d messages ahead of a slow registered reader; flow control allows %d", worst.Load(), bound)
	}
	if ps.Blocked == 0 {
		t.Errorf("Publish never blocked although a reader takes 1 ms per 8 messages")
	}
	if min := time.Duration(n/8-history-recvBuf) * time.Millisecond; tPub < min/2 {
		t.Errorf("publishing %d messages took %v; a reader at 8 messages/ms should hold it back about %v", n, tPub, min)
	}
	checkComplete(t, "slow", rs.wait(t, 10*time.Second), n)
	checkComplete(t, "fast 4KiB", r1.wait(t, 10*time.Second), n)
	checkComplete(t, "fast", r2.wait(t, 10*time.Second), n)
	t.Logf("slow: %s", fmtStats(slow.Stats()))
}

// TestIntegrationMulticastStalledLaggard: a subscriber whose application
// stops taking messages, with LaggardTimeout set on the publisher: it is
// dropped and ends with an error matching ErrEvicted (reason laggard)
// after delivering in order what it took; the publisher is held back only
// about LaggardTimeout, and the other subscribers get everything.
func TestIntegrationMulticastStalledLaggard(t *testing.T) {
	requireRoot(t)
	ch := randomChannel()
	const laggard = 300 * time.Millisecond
	pub, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupStalled, Channel: ch, History: 256, LaggardTimeout: laggard})
	stalled, _ := startSubscriber(t, transport.Config{}, SubscriberConfig{Group: groupStalled, Channel: ch, Publisher: pub.Port(), RecvBuffer: 8})
	others := make([]*Subscriber, 3)
	for i := range others {
		others[i], _ = startSubscriber(t, transport.Config{ReadBuffer: 4 << 10 << i}, SubscriberConfig{Group: groupStalled, Channel: ch, Publisher: pub.Port()})
	}
	waitPinned(t, pub, append([]*Subscriber{stalled}, others...), 4)
	ctx := testCtx(t, 30*time.Second)
	const tag, n = 0x5354414c, 20000
	resume := make(chan struct{})
	rst := startReader(ctx, stalled, readOpts{tag: tag, stallAt: 100, resume: resume})
	var rs []*testReader
	for _, s := range others {
		rs = append(rs, startReader(ctx, s, readOpts{tag: tag}))
	}
	t0 := time.Now()
	if err := publishRange(ctx, pub, tag, 0, n); err != nil {
		t.Fatalf("%v (the publisher stayed blocked on the stalled subscriber?); %s", err, fmtPubStats(pub.Stats()))
	}
	tPub := time.Since(t0)
	err := waitDone(t, stalled, 10*time.Second)
	t.Logf("published %d in %v; stalled subscriber ended after %v with %v; %s", n, tPub, time.Since(t0), err, fmtStats(stalled.Stats()))
	var ev *EvictedError
	switch {
	case !errors.Is(err, ErrEvicted):
		t.Errorf("stalled subscriber ended with %v, want ErrEvicted", err)
	case !errors.As(err, &ev):
		t.Errorf("stalled subscriber: %v is not an *EvictedError", err)
	case ev.Reason != EvictLaggard:
		t.Errorf("stalled subscriber evicted for %v, want %v", ev.Reason, EvictLaggard)
	}
	if tPub > 10*laggard+2*time.Second {
		t.Errorf("publishing took %v with LaggardTimeout %v", tPub, laggard)
	}
	if err := closePub(t, pub, 20*time.Second); err != nil {
		t.Fatalf("Close: %v; %s", err, fmtPubStats(pub.Stats()))
	}
	ps := pub.Stats()
	t.Logf("%s", fmtPubStats(ps))
	if ps.Evicted == 0 {
		t.Errorf("publisher counts no eviction")
	}
	for i, r := range rs {
		checkComplete(t, "other "+itoa(i), r.wait(t, 10*time.Second), n)
	}
	// What the stalled one took, and what was left in its Recv, is in
	// order and intact; it ends with the typed error.
	close(resume)
	res := rst.wait(t, 5*time.Second)
	checkClean(t, "stalled", res)
	if !errors.Is(res.err, ErrEvicted) {
		t.Errorf("stalled reader saw Recv end with %v, want ErrEvicted", res.err)
	}
	t.Logf("stalled subscriber delivered %d in all", res.n)
}

// TestIntegrationMulticastVanishingSubscriber: registered subscribers that
// go away mid-stream. One closes its Subscriber (LEAVE), one loses its
// socket under it (a process that died): the publisher drops the second
// after SubscriberTimeout and continues; the rest get everything.
func TestIntegrationMulticastVanishingSubscriber(t *testing.T) {
	requireRoot(t)
	ch := randomChannel()
	const subTimeout = 300 * time.Millisecond
	pub, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupVanish, Channel: ch, History: 512, SubscriberTimeout: subTimeout})
	cfg := SubscriberConfig{Group: groupVanish, Channel: ch, Publisher: pub.Port(), KeepaliveInterval: subTimeout / 4}
	leaver, _ := startSubscriber(t, transport.Config{}, cfg)
	dier, dierTr := startSubscriber(t, transport.Config{}, cfg)
	// A subscriber that sends nothing (unregistered, big queue: no NAK)
	// finds its socket gone only through Receive.
	quietCfg := cfg
	quietCfg.NoRegister = true
	quiet, quietTr := startSubscriber(t, transport.Config{ReadBuffer: 4 << 20}, quietCfg)
	stay := make([]*Subscriber, 2)
	for i := range stay {
		stay[i], _ = startSubscriber(t, transport.Config{ReadBuffer: 4 << 10 << (2 * i)}, cfg)
	}
	waitPinned(t, pub, append([]*Subscriber{leaver, dier, quiet}, stay...), 4)
	ctx := testCtx(t, 30*time.Second)
	const tag, n = 0x56414e49, 30000
	rl := startReader(ctx, leaver, readOpts{tag: tag})
	rd := startReader(ctx, dier, readOpts{tag: tag})
	rq := startReader(ctx, quiet, readOpts{tag: tag})
	var rs []*testReader
	var last time.Time
	var maxGap time.Duration // the longest the stream stood still, at stay[0]
	for i, s := range stay {
		o := readOpts{tag: tag}
		if i == 0 {
			o.onMsg = func(int, *Message) {
				now := time.Now()
				if !last.IsZero() && now.Sub(last) > maxGap {
					maxGap = now.Sub(last)
				}
				last = now
			}
		}
		rs = append(rs, startReader(ctx, s, o))
	}
	var killedAt, leftAt time.Time
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = waitFor(ctx, func() bool { return rl.taken.Load() >= n/4 })
		leftAt = time.Now()
		_ = leaver.Close()
		_ = waitFor(ctx, func() bool { return rd.taken.Load() >= n/2 })
		killedAt = time.Now()
		_ = dierTr.Conn.Close() // the process vanished: no LEAVE
		_ = quietTr.Conn.Close()
	})
	t0 := time.Now()
	if err := publishRange(ctx, pub, tag, 0, n); err != nil {
		t.Fatalf("%v; %s", err, fmtPubStats(pub.Stats()))
	}
	tPub := time.Since(t0)
	wg.Wait()
	if err := closePub(t, pub, 20*time.Second); err != nil {
		t.Fatalf("Close: %v; %s", err, fmtPubStats(pub.Stats()))
	}
	ps := pub.Stats()
	t.Logf("published %d in %v (left at %v, killed at %v); %s", n, tPub, leftAt.Sub(t0), killedAt.Sub(t0), fmtPubStats(ps))
	for i, r := range rs {
		checkComplete(t, "staying "+itoa(i), r.wait(t, 10*time.Second), n)
	}
	t.Logf("the stream stood still at most %v (SubscriberTimeout %v)", maxGap, subTimeout)
	if slack := 2 * time.Second; maxGap > subTimeout+slack {
		t.Errorf("the stream stood still %v: the vanished subscriber held it longer than SubscriberTimeout %v (+%v)", maxGap, subTimeout, slack)
	}
	lres := rl.wait(t, 5*time.Second)
	checkClean(t, "leaver", lres)
	if !errors.Is(lres.err, ErrClosed) {
		t.Errorf("leaver ended with %v, want ErrClosed", lres.err)
	}
	dres := rd.wait(t, 5*time.Second)
	checkClean(t, "dier", dres)
	if dres.err == nil {
		t.Errorf("the subscriber whose socket closed under it ended with a nil error after %d of %d messages", dres.n, n)
	}
	qres := rq.wait(t, 5*time.Second)
	checkClean(t, "quiet dier", qres)
	if qres.err == nil {
		t.Errorf("the quiet subscriber whose socket closed under it ended with a nil error after %d of %d messages", qres.n, n)
	}
	t.Logf("leaver took %d (%v), dier took %d (%v), quiet dier took %d (%v)", lres.n, lres.err, dres.n, dres.err, qres.n, qres.err)
	// The vanished subscriber held the publisher back at most about
	// SubscriberTimeout (it is dropped then, or sooner when a repair to
	// its port meets ECONNREFUSED).
	if tPub > 10*time.Second {
		t.Errorf("publishing took %v with SubscriberTimeout %v", tPub, subTimeout)
	}
}

// TestIntegrationMulticastPublisherEnd: the publisher ends at the worst
// moment (mid-burst, while subscribers with 4 KiB buffers are repairing):
// Abort, Close with a deadline too short to finish, and Close racing
// concurrent Publish calls. A subscriber may end with a nil error only if
// it delivered every message whose Publish returned nil (a clean Close
// promises that); otherwise with a typed error, after delivering in order
// and intact what it delivered.
func TestIntegrationMulticastPublisherEnd(t *testing.T) {
	requireRoot(t)
	for _, mode := range []string{"abort", "close-deadline", "close-racing-publish", "close-close-abort"} {
		for round := range 3 {
			t.Run(mode+"/"+itoa(round), func(t *testing.T) { publisherEnd(t, mode, round) })
		}
	}
}

func publisherEnd(t *testing.T, mode string, round int) {
	ch := randomChannel()
	pub, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupAbort, Channel: ch, History: 1024})
	var subs []*Subscriber
	for i := range 4 {
		s, _ := startSubscriber(t, transport.Config{ReadBuffer: 4 << 10 << (i % 3)}, SubscriberConfig{
			Group: groupAbort, Channel: ch, Publisher: pub.Port(), PublisherTimeout: 500 * time.Millisecond})
		subs = append(subs, s)
	}
	waitPinned(t, pub, subs, len(subs))
	ctx := testCtx(t, 20*time.Second)
	tag := uint32(0x454e4400 + round)
	var rs []*testReader
	for _, s := range subs {
		rs = append(rs, startReader(ctx, s, readOpts{tag: tag}))
	}
	// Publishers: two goroutines publish disjoint halves of the index
	// space? No: indexes must follow MSNs, so one goroutine publishes and
	// counts what Publish accepted.
	var accepted atomic.Int64
	pubDone := make(chan error, 1)
	go func() {
		var buf [256]byte
		for i := uint64(0); ; i++ {
			if err := pub.Publish(ctx, fillPayload(buf[:], tag, i)); err != nil {
				pubDone <- err
				return
			}
			accepted.Add(1)
		}
	}()
	// Wait until the stream is in full swing and someone is repairing.
	mustWait(t, 10*time.Second, "repairs under way", func() bool {
		ps := pub.Stats()
		return accepted.Load() > 5000 && ps.Naks > 0
	})
	time.Sleep(time.Duration(rand.IntN(5000)) * time.Microsecond)
	var cerr error
	switch mode {
	case "abort":
		pub.Abort()
	case "close-deadline":
		cctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+rand.IntN(3))*time.Millisecond)
		cerr = pub.Close(cctx)
		cancel()
	case "close-racing-publish":
		cerr = closePub(t, pub, 15*time.Second)
	case "close-close-abort":
		// Two Closes and an Abort at once: all return, none hangs; the
		// Closes report the abort (not nil) unless they finished first.
		errs := make(chan error, 2)
		for range 2 {
			go func() { errs <- closePub(t, pub, 15*time.Second) }()
		}
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
		aborted := make(chan struct{})
		go func() { pub.Abort(); close(aborted) }()
		for range 2 {
			select {
			case e := <-errs:
				if e != nil && cerr == nil {
					cerr = e
				}
				if e == nil {
					t.Logf("a Close returned nil before the Abort")
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("Close hangs with a concurrent Close and Abort")
			}
		}
		select {
		case <-aborted:
		case <-time.After(5 * time.Second):
			t.Fatalf("Abort hangs with concurrent Closes")
		}
		if cerr == nil && pub.Err() != nil {
			ps := pub.Stats()
			t.Errorf("both Closes returned nil (\"every registered subscriber confirmed everything\") although the concurrent Abort ended the publisher: Err %v, %d of %d accepted messages published", pub.Err(), ps.Published, accepted.Load())
		}
		if cerr == nil {
			cerr = pub.Err() // nil Err: a clean end; subscribers must then have everything
		}
	}
	perr := <-pubDone
	if !errors.Is(perr, ErrClosed) {
		t.Errorf("Publish after the end returned %v, want ErrClosed", perr)
	}
	n := int(accepted.Load())
	ps := pub.Stats()
	t.Logf("%s: Close %v, publisher Err %v, %d accepted; %s", mode, cerr, pub.Err(), n, fmtPubStats(ps))
	switch mode {
	case "close-close-abort":
		if pub.Err() != nil && !errors.Is(pub.Err(), ErrClosed) {
			t.Errorf("Err after Close, Close and Abort: %v, want nil or ErrClosed", pub.Err())
		}
	case "abort":
		if !errors.Is(pub.Err(), ErrClosed) {
			t.Errorf("Err after Abort: %v, want ErrClosed", pub.Err())
		}
	case "close-racing-publish":
		if cerr != nil {
			t.Errorf("Close with 15 s: %v", cerr)
		}
	}
	if cerr == nil && mode != "abort" && ps.Published != uint64(n) {
		t.Errorf("Close returned nil but %d of %d accepted messages were published", ps.Published, n)
	}
	for i, r := range rs {
		res := r.wait(t, 10*time.Second)
		name := mode + " sub " + itoa(i)
		checkClean(t, name, res)
		switch {
		case res.err == nil:
			if res.n != n || (n > 0 && res.lastIdx != uint64(n-1)) {
				t.Errorf("%s: nil error after %d of %d accepted messages (last index %d)", name, res.n, n, res.lastIdx)
			}
			if mode == "abort" || cerr != nil {
				t.Errorf("%s: nil error although the publisher was aborted (Close: %v)", name, cerr)
			}
		case cerr == nil && mode != "abort":
			t.Errorf("%s: ended with %v after %d of %d although Close returned nil", name, res.err, res.n, n)
		}
		t.Logf("%s: %d delivered, %v; %s", name, res.n, res.err, fmtStats(subs[i].Stats()))
	}
}

// TestIntegrationMulticastLateJoin: a subscriber that joins a running
// stream starts at the publisher's position then (its first message is at
// or after the publisher's Next before it joined) and then delivers every
// message to the end; with FromOldest it starts exactly at the oldest
// message the publisher retained, and repairs its way up.
func TestIntegrationMulticastLateJoin(t *testing.T) {
	requireRoot(t)
	t.Run("current", func(t *testing.T) {
		ch := randomChannel()
		pub, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupLateJoin, Channel: ch, History: 512})
		early, _ := startSubscriber(t, transport.Config{}, SubscriberConfig{Group: groupLateJoin, Channel: ch, Publisher: pub.Port()})
		waitPinned(t, pub, []*Subscriber{early}, 1)
		ctx := testCtx(t, 20*time.Second)
		const tag, n = 0x4c415445, 30000
		re := startReader(ctx, early, readOpts{tag: tag})
		pubDone := make(chan error, 1)
		go func() { pubDone <- publishRange(ctx, pub, tag, 0, n) }()
		mustWait(t, 10*time.Second, "the stream to be under way", func() bool { return re.taken.Load() > n/4 })
		atJoin := pub.Stats()
		late, _ := startSubscriber(t, transport.Config{ReadBuffer: 8 << 10}, SubscriberConfig{Group: groupLateJoin, Channel: ch, Publisher: pub.Port()})
		rl := startReader(ctx, late, readOpts{tag: tag})
		if err := <-pubDone; err != nil {
			t.Fatal(err)
		}
		if err := closePub(t, pub, 15*time.Second); err != nil {
			t.Fatalf("Close: %v", err)
		}
		checkComplete(t, "early", re.wait(t, 10*time.Second), n)
		res := rl.wait(t, 10*time.Second)
		checkClean(t, "late", res)
		t.Logf("joined at publisher [%d, %d): first delivered MSN %d (index %d), last %d, %d delivered, %v; %s",
			atJoin.Oldest, atJoin.Next, res.firstMSN, res.firstIdx, res.lastMSN, res.n, res.err, fmtStats(late.Stats()))
		switch {
		case res.n == 0:
			t.Fatalf("late subscriber delivered nothing (%v)", res.err)
		case int32(res.firstMSN-atJoin.Next) < 0:
			t.Errorf("late subscriber started at MSN %d, before the publisher's Next %d when it joined", res.firstMSN, atJoin.Next)
		}
		if res.err != nil || res.lastIdx != n-1 || res.firstLost != 0 || res.lost != 0 {
			t.Errorf("late subscriber: delivered up to index %d of %d, lost %d, ended %v: want every message from its start to the end", res.lastIdx, n-1, res.lost, res.err)
		}
	})
	t.Run("oldest", func(t *testing.T) {
		ch := randomChannel()
		const history = 1000
		pub, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupLateJoin, Channel: ch, History: history})
		ctx := testCtx(t, 20*time.Second)
		const tag, n1, n2 = 0x4f4c4400, 3000, 2000
		if err := publishRange(ctx, pub, tag, 0, n1); err != nil {
			t.Fatal(err)
		}
		mustWait(t, 5*time.Second, "the publisher to send everything", func() bool {
			ps := pub.Stats()
			return ps.Published == n1 && ps.Next-ps.Oldest == history
		})
		atJoin := pub.Stats()
		late, _ := startSubscriber(t, transport.Config{ReadBuffer: 4 << 10}, SubscriberConfig{Group: groupLateJoin, Channel: ch, Publisher: pub.Port(), FromOldest: true})
		rl := startReader(ctx, late, readOpts{tag: tag})
		mustWait(t, 5*time.Second, "the late subscriber to register", func() bool { return pub.Stats().Subscribers == 1 })
		if err := publishRange(ctx, pub, tag, n1, n1+n2); err != nil {
			t.Fatal(err)
		}
		if err := closePub(t, pub, 15*time.Second); err != nil {
			t.Fatalf("Close: %v", err)
		}
		res := rl.wait(t, 10*time.Second)
		t.Logf("joined FromOldest at publisher [%d, %d): first delivered MSN %d (index %d), %d delivered, %v; %s",
			atJoin.Oldest, atJoin.Next, res.firstMSN, res.firstIdx, res.n, res.err, fmtStats(late.Stats()))
		checkClean(t, "late", res)
		if res.firstMSN != atJoin.Oldest || res.firstIdx != n1-history {
			t.Errorf("FromOldest started at MSN %d (index %d), want the oldest retained %d (index %d)", res.firstMSN, res.firstIdx, atJoin.Oldest, n1-history)
		}
		if res.err != nil || res.lastIdx != n1+n2-1 || res.n != history+n2 {
			t.Errorf("FromOldest: %d delivered up to index %d, ended %v: want %d up to %d and nil", res.n, res.lastIdx, res.err, history+n2, n1+n2-1)
		}
	})
}

// TestIntegrationMulticastLossBeyondHistory: an unregistered subscriber
// (NoRegister: the publisher does not wait for it) whose application is
// slow falls behind a small history. With OnLoss Fail it ends with a
// *LostError (Count > 0) after delivering, without a gap, every message
// before the first lost one; with Continue every gap shows in Message.Lost
// and delivered + lost covers the whole span of MSNs.
func TestIntegrationMulticastLossBeyondHistory(t *testing.T) {
	requireRoot(t)
	for _, policy := range []LossPolicy{Fail, Continue} {
		t.Run(policy.String(), func(t *testing.T) {
			ch := randomChannel()
			pub, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupLoss, Channel: ch, History: 64})
			// A fast registered subscriber keeps the publisher honest
			// (it paces it); the laggard is unregistered.
			fast, _ := startSubscriber(t, transport.Config{}, SubscriberConfig{Group: groupLoss, Channel: ch, Publisher: pub.Port()})
			lag, lagTr := startSubscriber(t, transport.Config{ReadBuffer: 4 << 10}, SubscriberConfig{Group: groupLoss, Channel: ch, Publisher: pub.Port(),
				NoRegister: true, OnLoss: policy, RecvBuffer: 4, Window: 256})
			waitPinned(t, pub, []*Subscriber{fast, lag}, 1)
			base := pub.Stats().Next // the first message's MSN: turns ran while pinning
			ctx := testCtx(t, 30*time.Second)
			tag := uint32(0x4c4f5300 + policy)
			const n = 20000
			rf := startReader(ctx, fast, readOpts{tag: tag})
			rl := startReader(ctx, lag, readOpts{tag: tag, allowLoss: policy == Continue, pace: func(k int) {
				if k%16 == 0 {
					time.Sleep(200 * time.Microsecond)
				}
			}})
			if err := publishRange(ctx, pub, tag, 0, n); err != nil {
				t.Fatal(err)
			}
			if policy == Continue {
				// Let the laggard catch up before the publisher goes, so
				// that it ends on the FIN.
				end := base + n
				_ = waitFor(testCtx(t, 15*time.Second), func() bool { return int32(lag.Stats().Position-end) >= 0 })
			}
			if err := closePub(t, pub, 15*time.Second); err != nil {
				t.Fatalf("Close: %v", err)
			}
			checkComplete(t, "fast", rf.wait(t, 10*time.Second), n)
			res := rl.wait(t, 20*time.Second)
			s := lag.Stats()
			drops, _ := lagTr.Drops()
			t.Logf("laggard: %d delivered (MSN %d..%d, index %d..%d), lost %d, %v; kernel drops %d; %s", res.n, res.firstMSN, res.lastMSN, res.firstIdx, res.lastIdx, res.lost, res.err, drops, fmtStats(s))
			checkClean(t, "laggard", res)
			if res.n == 0 || res.firstIdx != 0 || res.firstLost != 0 {
				t.Fatalf("laggard: first delivered index %d (Lost %d) of %d delivered: it joined before the stream and must start at 0", res.firstIdx, res.firstLost, res.n)
			}
			switch policy {
			case Fail:
				var le *LostError
				if !errors.As(res.err, &le) || !errors.Is(res.err, ErrLost) {
					t.Fatalf("laggard with OnLoss Fail ended with %v (after %d of %d), want a *LostError", res.err, res.n, n)
				}
				if le.Count == 0 {
					t.Errorf("LostError %+v counts nothing", le)
				}
				if le.First != res.lastMSN+1 {
					t.Errorf("LostError first lost MSN %d, but the last delivered was %d: everything before the gap must be delivered, nothing after", le.First, res.lastMSN)
				}
				if int32(le.Resume-le.First) < int32(min(le.Count, 1<<30)) {
					t.Errorf("LostError %+v: Resume - First below Count", le)
				}
				if s.Lost != le.Count {
					t.Errorf("Stats.Lost %d, LostError.Count %d", s.Lost, le.Count)
				}
			case Continue:
				if res.err != nil {
					t.Errorf("laggard with OnLoss Continue ended with %v, want nil after the FIN", res.err)
				}
				if res.lost == 0 {
					t.Errorf("laggard lost nothing: the test did not make it fall behind")
				}
				if span := uint64(res.lastMSN-res.base) + 1; res.accounted() != span {
					t.Errorf("delivered %d + lost %d = %d, want the span %d of MSNs", res.n, res.lost, res.accounted(), span)
				}
				if res.err == nil && res.lastIdx != n-1 {
					t.Errorf("ended nil at index %d, want %d", res.lastIdx, n-1)
				}
				if s.Lost != res.lost {
					t.Errorf("Stats.Lost %d, sum of Message.Lost %d", s.Lost, res.lost)
				}
			}
		})
	}
}

// TestIntegrationMulticastPublisherRestart: a publisher on a fixed port
// goes away and a new one binds the same port: a subscriber pinned to that
// port ends with ErrPublisherRestarted and delivers nothing of the new
// stream. The old publisher either crashed (its socket closed under it,
// no FIN) or closed while an unregistered subscriber was still behind.
func TestIntegrationMulticastPublisherRestart(t *testing.T) {
	requireRoot(t)
	for _, how := range []string{"crash", "close-behind"} {
		t.Run(how, func(t *testing.T) {
			ch := randomChannel()
			var tr *probedConn
			var port uint32
			for range 20 {
				port = 0x70000000 + rand.Uint32N(1<<24)
				c, err := transport.Open(transport.Config{Port: port})
				if err == nil {
					tr = &probedConn{Conn: c}
					t.Cleanup(func() { _ = tr.Close() })
					break
				}
			}
			if tr == nil {
				t.Fatal("no free fixed port")
			}
			pub1, err := NewPublisher(tr, PublisherConfig{Group: groupRestart, Channel: ch, History: 64})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pub1.Abort)
			cfg := SubscriberConfig{Group: groupRestart, Channel: ch, Publisher: port, PublisherTimeout: 5 * time.Second}
			if how == "close-behind" {
				cfg.NoRegister, cfg.RecvBuffer = true, 1
			}
			sub, _ := startSubscriber(t, transport.Config{}, cfg)
			waitPinned(t, pub1, []*Subscriber{sub}, map[bool]int{true: 0, false: 1}[cfg.NoRegister])
			ctx := testCtx(t, 20*time.Second)
			const tag1, tag2, n = 0x52455331, 0x52455332, 5000
			resume := make(chan struct{})
			o := readOpts{tag: tag1}
			if how == "close-behind" {
				o.stallAt, o.resume = 10, resume
			}
			r := startReader(ctx, sub, o)
			if err := publishRange(ctx, pub1, tag1, 0, n); err != nil {
				t.Fatal(err)
			}
			switch how {
			case "crash":
				mustWait(t, 5*time.Second, "the subscriber to take everything", func() bool { return r.taken.Load() == n })
				_ = tr.Conn.Close()
				<-pub1.Done()
			case "close-behind":
				if err := closePub(t, pub1, 5*time.Second); err != nil {
					t.Fatalf("Close: %v", err)
				}
			}
			t.Logf("first publisher ended: %v (epoch %#x)", pub1.Err(), pub1.Epoch())
			if e := pub1.Err(); e != nil {
				if bad := typedErr(e); bad != "" {
					t.Errorf("first publisher: %s", bad)
				}
			}
			var pub2 *Publisher
			mustWait(t, 2*time.Second, "the port to be free", func() bool {
				c, err := transport.Open(transport.Config{Port: port})
				if err != nil {
					return false
				}
				pc := &probedConn{Conn: c}
				t.Cleanup(func() { _ = pc.Close() })
				pub2, err = NewPublisher(pc, PublisherConfig{Group: groupRestart, Channel: ch})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(pub2.Abort)
				return true
			})
			if err := publishRange(ctx, pub2, tag2, 0, 100); err != nil {
				t.Fatal(err)
			}
			close(resume)
			res := r.wait(t, 10*time.Second)
			t.Logf("subscriber: %d delivered (index %d..%d, first Lost %d), %v; epochs %#x -> %#x; %s", res.n, res.firstIdx, res.lastIdx, res.firstLost, res.err, pub1.Epoch(), pub2.Epoch(), fmtStats(sub.Stats()))
			checkClean(t, "subscriber", res) // includes: nothing of tag2 delivered
			if res.n > 0 && res.firstIdx != res.firstLost {
				t.Errorf("subscriber (pinned before the first Publish) delivered index %d first, with Lost %d: %d messages skipped silently", res.firstIdx, res.firstLost, res.firstIdx-res.firstLost)
			}
			if res.err == nil && (res.n != n || res.firstIdx != 0) {
				t.Errorf("subscriber ended with a nil error after delivering %d of the %d messages (indexes %d..%d), reporting %d lost: a silent gap", res.n, n, res.firstIdx, res.lastIdx, res.lost)
			}
			switch {
			case errors.Is(res.err, ErrPublisherRestarted):
			case how == "close-behind" && errors.Is(res.err, ErrLost):
				// It fell behind the first stream's small history and
				// ended on that loss before it saw the new epoch: typed,
				// and as true.
			default:
				t.Errorf("subscriber ended with %v, want ErrPublisherRestarted", res.err)
			}
			if how == "crash" && res.n != n {
				t.Errorf("delivered %d of the first stream's %d", res.n, n)
			}
			if err := closePub(t, pub2, 5*time.Second); err != nil {
				t.Errorf("second publisher Close: %v", err)
			}
		})
	}
}

// TestIntegrationMulticastRefused: a publisher whose Allow refuses every
// registration. PublisherConfig.Allow says a refused subscriber gets EVICT
// refused, which ends it: it must end with an *EvictedError naming
// EvictRefused (never nil, never a silent stop), and the publisher must
// remember it (later reports get the same answer, not a registration).
func TestIntegrationMulticastRefused(t *testing.T) {
	requireRoot(t)
	ch := randomChannel()
	var asked atomic.Int64
	pub, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupRefused, Channel: ch,
		Allow: func(uint32, transport.Creds) bool { asked.Add(1); return false }})
	sub, _ := startSubscriber(t, transport.Config{}, SubscriberConfig{Group: groupRefused, Channel: ch, Publisher: pub.Port()})
	ctx := testCtx(t, 20*time.Second)
	const tag, n = 0x52454655, 2000
	r := startReader(ctx, sub, readOpts{tag: tag})
	if err := publishRange(ctx, pub, tag, 0, n); err != nil {
		t.Fatal(err)
	}
	res := r.wait(t, 10*time.Second)
	if err := closePub(t, pub, 10*time.Second); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("refused subscriber: %d delivered, %v; Allow asked %d times; %s; %s", res.n, res.err, asked.Load(), fmtStats(sub.Stats()), fmtPubStats(pub.Stats()))
	var ev *EvictedError
	if !errors.As(res.err, &ev) || ev.Reason != EvictRefused {
		t.Fatalf("refused subscriber ended with %v, want *EvictedError{EvictRefused}", res.err)
	}
	if st := pub.Stats(); st.Registered != 0 || st.EvictedRefused == 0 {
		t.Fatalf("publisher registered %d, refused %d", st.Registered, st.EvictedRefused)
	}
}

// TestIntegrationMulticastNoFalseLoss: an unregistered subscriber
// (NoRegister, OnLoss Fail) with a socket big enough that the kernel drops
// nothing and an application that keeps up, behind a publisher with a
// small history that bursts: every message reaches its socket, so it must
// deliver every one. (A publisher that admits a whole burst into its
// history before sending it advertises, in the burst's first datagrams,
// an oldest retained MSN beyond the messages that follow in the same
// burst; a subscriber that believes it declares them lost although they
// are on their way.)
func TestIntegrationMulticastNoFalseLoss(t *testing.T) {
	requireRoot(t)
	ch := randomChannel()
	pub, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupLoss, Channel: ch, History: 64})
	sub, tr := startSubscriber(t, transport.Config{ReadBuffer: 16 << 20}, SubscriberConfig{Group: groupLoss, Channel: ch, Publisher: pub.Port(), NoRegister: true})
	waitPinned(t, pub, []*Subscriber{sub}, 0)
	ctx := testCtx(t, 20*time.Second)
	const tag, n = 0x46414c53, 5000
	r := startReader(ctx, sub, readOpts{tag: tag})
	if err := publishRange(ctx, pub, tag, 0, n); err != nil {
		t.Fatal(err)
	}
	_ = waitFor(testCtx(t, 5*time.Second), func() bool { return r.taken.Load() == n || sub.Stats().Lost > 0 })
	if err := closePub(t, pub, 10*time.Second); err != nil {
		t.Fatalf("Close: %v", err)
	}
	res := r.wait(t, 10*time.Second)
	drops, derr := tr.Drops()
	s := sub.Stats()
	t.Logf("%d delivered, %v; kernel drops %d (%v); %s; %s", res.n, res.err, drops, derr, fmtStats(s), fmtPubStats(pub.Stats()))
	if drops != 0 || s.Overruns != 0 {
		t.Fatalf("the kernel dropped %d datagrams (%d overruns) for a 16 MiB socket: the test cannot tell false loss", drops, s.Overruns)
	}
	checkComplete(t, "unregistered subscriber", res, n)
	if s.Duplicates > 0 && s.Lost > 0 {
		t.Errorf("%d messages declared lost, then %d arrived as duplicates: loss declared for messages in flight", s.Lost, s.Duplicates)
	}
}

// TestIntegrationMulticastBigDatagrams: the publisher coalesces into the
// largest datagrams allowed (64 KiB), eight times a 4 KiB subscriber's
// doubled buffer: the kernel queues such a datagram only on an empty
// queue. Subscribers with 4 KiB to 64 KiB buffers must still get every
// message, in order, once.
func TestIntegrationMulticastBigDatagrams(t *testing.T) {
	requireRoot(t)
	ch := randomChannel()
	pub, _ := startPublisher(t, transport.Config{WriteBuffer: 1 << 20}, PublisherConfig{Group: groupMillion, Channel: ch, MaxDatagram: MaxDatagramLimit})
	bufs := []int{4 << 10, 16 << 10, 64 << 10, 0}
	var subs []*Subscriber
	var trs []*probedConn
	for _, b := range bufs {
		s, tr := startSubscriber(t, transport.Config{ReadBuffer: b}, SubscriberConfig{Group: groupMillion, Channel: ch, Publisher: pub.Port()})
		subs, trs = append(subs, s), append(trs, tr)
	}
	waitPinned(t, pub, subs, len(subs))
	ctx := testCtx(t, 40*time.Second)
	const tag = 0x42494744
	n := 100000
	if raceEnabled {
		n = 30000
	}
	var rs []*testReader
	for _, s := range subs {
		rs = append(rs, startReader(ctx, s, readOpts{tag: tag}))
	}
	t0 := time.Now()
	if err := publishRange(ctx, pub, tag, 0, uint64(n)); err != nil {
		t.Fatalf("%v; %s", err, fmtPubStats(pub.Stats()))
	}
	if err := closePub(t, pub, 20*time.Second); err != nil {
		t.Fatalf("Close: %v; %s", err, fmtPubStats(pub.Stats()))
	}
	t.Logf("%d messages in %v; %s", n, time.Since(t0), fmtPubStats(pub.Stats()))
	for i, r := range rs {
		res := r.wait(t, 10*time.Second)
		drops, _ := trs[i].Drops()
		t.Logf("sub %d (SO_RCVBUF %d): kernel drops %d; %s", i, trs[i].rcvbuf, drops, fmtStats(subs[i].Stats()))
		checkComplete(t, "sub "+itoa(i), res, n)
	}
}

// TestIntegrationMulticastTwoPublishers: two publishers stream at once on
// the same group and channel from different ports. A subscriber pinned to
// one (Publisher set) delivers exactly that one's stream, whose repairs,
// heartbeats and FIN must not mix with the other's; the other's frames
// are rejected and counted.
func TestIntegrationMulticastTwoPublishers(t *testing.T) {
	requireRoot(t)
	ch := randomChannel()
	pubA, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupSlow, Channel: ch, History: 512})
	pubB, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupSlow, Channel: ch, History: 512, UnicastRepairs: true})
	const tagA, tagB = 0x50554241, 0x50554242
	nA, nB := 20000, 15000
	type side struct {
		pub  *Publisher
		tag  uint32
		n    int
		subs []*Subscriber
		rs   []*testReader
	}
	sides := []*side{{pub: pubA, tag: tagA, n: nA}, {pub: pubB, tag: tagB, n: nB}}
	ctx := testCtx(t, 30*time.Second)
	for _, sd := range sides {
		for i := range 2 {
			s, _ := startSubscriber(t, transport.Config{ReadBuffer: 4 << 10 << (3 * i)}, SubscriberConfig{Group: groupSlow, Channel: ch, Publisher: sd.pub.Port()})
			sd.subs = append(sd.subs, s)
		}
	}
	for _, sd := range sides {
		waitPinned(t, sd.pub, sd.subs, len(sd.subs))
		for _, s := range sd.subs {
			sd.rs = append(sd.rs, startReader(ctx, s, readOpts{tag: sd.tag}))
		}
	}
	errs := make(chan error, 2)
	for _, sd := range sides {
		go func() {
			if err := publishRange(ctx, sd.pub, sd.tag, 0, uint64(sd.n)); err != nil {
				errs <- err
				return
			}
			errs <- closePub(t, sd.pub, 15*time.Second)
		}()
	}
	for range sides {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for k, sd := range sides {
		t.Logf("publisher %c: %s", 'A'+k, fmtPubStats(sd.pub.Stats()))
		for i, r := range sd.rs {
			res := r.wait(t, 10*time.Second)
			s := sd.subs[i].Stats()
			name := string(rune('A'+k)) + " sub " + itoa(i)
			t.Logf("%s: %s", name, fmtStats(s))
			checkComplete(t, name, res, sd.n) // the other stream's payloads fail the tag check
			if s.Rejected == 0 {
				t.Errorf("%s: nothing rejected although another publisher streamed on its group and channel", name)
			}
		}
	}
}

// TestIntegrationMulticastSmallWindows: registered subscribers whose
// reorder buffers (Window 8, 64) are far smaller than the publisher's
// history and datagrams (about 30 messages each): the publisher must not
// run further ahead than the smallest window announced, and every
// subscriber gets everything.
func TestIntegrationMulticastSmallWindows(t *testing.T) {
	requireRoot(t)
	ch := randomChannel()
	pub, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupStalled, Channel: ch})
	var subs []*Subscriber
	for _, w := range []int{8, 64, 0} {
		s, _ := startSubscriber(t, transport.Config{ReadBuffer: 4 << 10}, SubscriberConfig{Group: groupStalled, Channel: ch, Publisher: pub.Port(), Window: w, RecvBuffer: 4})
		subs = append(subs, s)
	}
	waitPinned(t, pub, subs, len(subs))
	ctx := testCtx(t, 30*time.Second)
	const tag, n = 0x57494e44, 20000
	var rs []*testReader
	for _, s := range subs {
		rs = append(rs, startReader(ctx, s, readOpts{tag: tag}))
	}
	t0 := time.Now()
	if err := publishRange(ctx, pub, tag, 0, n); err != nil {
		t.Fatalf("%v; %s", err, fmtPubStats(pub.Stats()))
	}
	if err := closePub(t, pub, 15*time.Second); err != nil {
		t.Fatalf("Close: %v; %s", err, fmtPubStats(pub.Stats()))
	}
	t.Logf("%d in %v; %s", n, time.Since(t0), fmtPubStats(pub.Stats()))
	for i, r := range rs {
		res := r.wait(t, 10*time.Second)
		t.Logf("sub %d: %s", i, fmtStats(subs[i].Stats()))
		checkComplete(t, "sub "+itoa(i), res, n)
	}
}

// lossyStart is a subscriber socket that loses the first messages of the
// stream: every group datagram carrying an MDATA below dropBelow comes
// back as a kernel overrun, and while swallow is set its NAKs are lost
// on the way (Send reports success, nothing leaves).
type lossyStart struct {
	*probedConn
	ch        transport.CbID
	dropBelow atomic.Uint32
	armed     atomic.Bool
	swallow   atomic.Bool
	dropped   atomic.Int64
}

func (c *lossyStart) Send(dst transport.Addr, b []byte) error {
	if c.swallow.Load() {
		return nil
	}
	return c.probedConn.Send(dst, b)
}

func (c *lossyStart) Receive(buf []byte) (transport.Packet, error) {
	p, err := c.probedConn.Receive(buf)
	if err != nil || p.Overrun || p.Group == 0 || !c.armed.Load() {
		return p, err
	}
	var r wire.Reader
	r.Reset(p.Data)
	for r.Next() {
		if f, ferr := r.Frame(); ferr == nil && f.ID == c.ch && f.Header.Type == wire.TypeMData && int32(f.Seq-c.dropBelow.Load()) < 0 {
			c.dropped.Add(1)
			return transport.Packet{Overrun: true}, nil
		}
	}
	return p, nil
}

// TestIntegrationMulticastNoSilentStartSkip: an unregistered subscriber
// that heard the stream (pinned, its start set by a heartbeat) before the
// first Publish loses the first 300 messages and cannot have them
// repaired before the small history moves on. With OnLoss Fail it must
// end with a *LostError, or at least deliver its first message with Lost
// counting what went before; starting over silently from the oldest
// retained message, as if it had joined late, is a silent gap.
func TestIntegrationMulticastNoSilentStartSkip(t *testing.T) {
	requireRoot(t)
	ch := randomChannel()
	const history = 64
	pub, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupLoss, Channel: ch, History: history})
	tr := &lossyStart{probedConn: openProbed(t, transport.Config{ReadBuffer: 4 << 20}), ch: ch}
	sub, err := Subscribe(tr, SubscriberConfig{Group: groupLoss, Channel: ch, Publisher: pub.Port(), NoRegister: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	waitPinned(t, pub, []*Subscriber{sub}, 0)
	base := pub.Stats().Next // the first message's MSN
	const tag, lost, n = 0x53544152, 300, 1000
	tr.dropBelow.Store(base + lost)
	tr.swallow.Store(true)
	tr.armed.Store(true)
	ctx := testCtx(t, 20*time.Second)
	r := startReader(ctx, sub, readOpts{tag: tag, allowLoss: true})
	// Publish in bursts no larger than the history, each sent before the
	// next, so that every frame's oldest retained MSN is honest.
	for i := uint64(0); i < n; i += history / 2 {
		if err := publishRange(ctx, pub, tag, i, min(i+history/2, n)); err != nil {
			t.Fatal(err)
		}
		want := min(i+history/2, n)
		mustWait(t, 5*time.Second, "the burst to go out", func() bool { return pub.Stats().Published == want })
		if i >= lost+history {
			tr.swallow.Store(false) // its NAKs get through from now on: too late
		}
	}
	if err := closePub(t, pub, 10*time.Second); err != nil {
		t.Fatalf("Close: %v", err)
	}
	res := r.wait(t, 10*time.Second)
	s := sub.Stats()
	t.Logf("%d datagrams lost at the start; %d delivered (index %d..%d, first Lost %d), lost %d, ended %v; %s", tr.dropped.Load(), res.n, res.firstIdx, res.lastIdx, res.firstLost, res.lost, res.err, fmtStats(s))
	checkClean(t, "subscriber", res)
	if tr.dropped.Load() == 0 {
		t.Fatalf("nothing lost at the start: the test proves nothing")
	}
	if res.n > 0 && res.firstIdx != res.firstLost {
		t.Errorf("the first message delivered is index %d with Lost %d: %d messages the subscriber knew it missed (it heard the stream before the first Publish) vanished silently", res.firstIdx, res.firstLost, res.firstIdx-res.firstLost)
	}
	var le *LostError
	if res.n == 0 && !errors.As(res.err, &le) {
		t.Errorf("nothing delivered, ended with %v: want a *LostError", res.err)
	}
}
