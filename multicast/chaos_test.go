package multicast

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/fault"
	"github.com/cnlink/cnlink/transport/memnet"
)

// chaosScenarios is the number of seeded scenarios of TestChaosMulticast.
const chaosScenarios = 160

// subPlan is one subscriber's part in a scenario.
type subPlan struct {
	rcvbuf     int              // memnet receive buffer (bytes, doubled as SO_RCVBUF)
	faults     *fault.Direction // receive-side faults (nil: plain memnet, window sized by rcvbuf)
	slow       time.Duration    // sleep per message read
	stallAt    int              // stop reading after this many messages (-1: never)
	noRegister bool             // unregistered, OnLoss Continue: loss allowed, reported
	lateJoin   int              // join after this many messages were published (0: from the start)
	fromOldest bool
	killAt     int // close the subscriber after reading this many (-1: never)
}

type mscenario struct {
	seed    uint64
	msgs    int
	maxSize int
	history int
	laggard time.Duration
	pubLoss float64 // multicast datagrams the publisher's sends lose
	subs    []subPlan
}

func drawMScenario(seed uint64) mscenario {
	r := rand.New(rand.NewPCG(seed, 0x6d63))
	sc := mscenario{seed: seed, msgs: 200 + r.IntN(1200), maxSize: 1 + r.IntN(600), history: 32 << r.IntN(6)}
	if r.IntN(3) == 0 {
		sc.pubLoss = r.Float64() * 0.2
	}
	n := 1 + r.IntN(6)
	anyStall := false
	for range n {
		p := subPlan{rcvbuf: 1024 << r.IntN(7), stallAt: -1, killAt: -1}
		if r.IntN(2) == 0 {
			p.faults = &fault.Direction{Loss: r.Float64() * 0.3}
			if r.IntN(3) == 0 {
				p.faults.Duplicate = r.Float64() * 0.1
			}
			if r.IntN(3) == 0 {
				p.faults.Reorder = r.Float64() * 0.2
			}
			if r.IntN(4) == 0 {
				p.faults.Corrupt = r.Float64() * 0.05
			}
			if r.IntN(3) == 0 {
				p.faults.OverrunBurst = fault.Burst{P: r.Float64() * 0.05, Len: r.IntN(8)}
			}
		}
		switch r.IntN(8) {
		case 0:
			p.slow = time.Duration(1+r.IntN(200)) * time.Microsecond
		case 1:
			p.noRegister = true
		case 2:
			p.lateJoin = r.IntN(sc.msgs)
			p.fromOldest = r.IntN(2) == 0
		case 3:
			p.killAt = r.IntN(sc.msgs)
		case 4:
			if !anyStall {
				p.stallAt = r.IntN(sc.msgs)
				anyStall = true
			}
		}
		sc.subs = append(sc.subs, p)
	}
	if anyStall {
		// A stalled reader would hold the publisher for ever: drop laggards.
		sc.laggard = time.Duration(50+r.IntN(500)) * time.Millisecond
	}
	return sc
}

func (sc mscenario) String() string {
	s := fmt.Sprintf("seed=%d msgs=%d size<=%d history=%d laggard=%v publoss=%.2f", sc.seed, sc.msgs, sc.maxSize, sc.history, sc.laggard, sc.pubLoss)
	for i, p := range sc.subs {
		s += fmt.Sprintf("\n  sub%d: rcvbuf=%d slow=%v stall=%d noreg=%v late=%d oldest=%v kill=%d", i, p.rcvbuf, p.slow, p.stallAt, p.noRegister, p.lateJoin, p.fromOldest, p.killAt)
		if p.faults != nil {
			s += fmt.Sprintf(" faults=%+v", *p.faults)
		}
	}
	return s
}

// chaosPayload is message i's content: its index, then a pattern.
func chaosPayload(i, size int) []byte {
	b := make([]byte, max(8, size))
	binary.LittleEndian.PutUint64(b, uint64(i))
	for k := 8; k < len(b); k++ {
		b[k] = byte(i*31 + k)
	}
	return b
}

func chaosCheck(b []byte) (int, error) {
	if len(b) < 8 {
		return 0, fmt.Errorf("message of %d bytes", len(b))
	}
	i := int(binary.LittleEndian.Uint64(b))
	for k := 8; k < len(b); k++ {
		if b[k] != byte(i*31+k) {
			return i, fmt.Errorf("message %d corrupted at byte %d", i, k)
		}
	}
	return i, nil
}

// TestChaosMulticast runs seeded scenarios of one publisher and up to six
// subscribers over the in-memory network in deterministic time: loss,
// duplication, reordering and corruption at each subscriber and on the
// publisher's multicasts, real overruns from small receive buffers and
// injected ones, slow, stalled and killed readers, unregistered
// subscribers that may lose, late joins. Checks: every registered, live
// subscriber delivers every message once, in order, byte-exact, and ends
// with nil after the publisher's Close returned nil; an unregistered one
// never skips silently (each gap is Message.Lost); a stalled one is
// evicted with a typed error; the publisher never hangs. Rerun one with
// -run 'TestChaosMulticast/seed=N$'.
func TestChaosMulticast(t *testing.T) {
	for seed := uint64(1); seed <= chaosScenarios; seed++ {
		sc := drawMScenario(seed)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) { runMScenario(t, sc) })
		})
	}
}

type subResult struct {
	i         int
	delivered int
	first     int // index of the first message delivered (-1: none)
	start     int // where its stream started: first, less the loss reported on it
	lost      uint64
	err       error
	stats     SubscriberStats
	fail      error
}

func runMScenario(t *testing.T, sc mscenario) {
	const group = 2
	net := memnet.New(memnet.Config{})
	ptr, err := net.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	var ptrT transport.Transport = ptr
	if sc.pubLoss > 0 {
		ptrT = fault.Wrap(ptr, fault.Config{Seed: sc.seed, Send: fault.Direction{Loss: sc.pubLoss}})
	}
	wait := 0
	for _, p := range sc.subs {
		if p.lateJoin == 0 && !p.noRegister {
			wait++
		}
	}
	pub, err := NewPublisher(ptrT, PublisherConfig{Group: group, History: sc.history, HistoryBytes: sc.history * 700,
		LaggardTimeout: sc.laggard, SubscriberTimeout: 500 * time.Millisecond, WaitSubscribers: wait})
	if err != nil {
		t.Fatal(err)
	}
	// On any exit, failures included, end everything so that the bubble
	// can finish: subscribers, their readers, the publisher.
	var (
		mu      sync.Mutex
		started []*Subscriber
		readers sync.WaitGroup
	)
	defer func() {
		pub.Abort()
		mu.Lock()
		for _, s := range started {
			s.Close()
		}
		mu.Unlock()
		readers.Wait()
	}()
	r := rand.New(rand.NewPCG(sc.seed, 2))
	sizes := make([]int, sc.msgs)
	for i := range sizes {
		sizes[i] = 1 + r.IntN(sc.maxSize)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	results := make(chan subResult, len(sc.subs))
	var joins []chan struct{}
	start := func(i int, p subPlan) {
		tr, err := net.Open(0)
		if err != nil {
			t.Error(err)
			return
		}
		_ = tr.SetReadBuffer(p.rcvbuf)
		var st transport.Transport = tr
		if p.faults != nil {
			st = fault.Wrap(tr, fault.Config{Seed: sc.seed*16 + uint64(i), Recv: *p.faults})
		}
		cfg := SubscriberConfig{Group: group, Window: 256, NoRegister: p.noRegister, FromOldest: p.fromOldest,
			PublisherTimeout: time.Minute, Seed: sc.seed + uint64(i)}
		if p.noRegister {
			cfg.OnLoss = Continue
		}
		s, err := Subscribe(st, cfg)
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		started = append(started, s)
		mu.Unlock()
		readers.Add(1)
		go func() {
			defer readers.Done()
			res := subResult{i: i, first: -1}
			next := -1
			for m := range s.Recv() {
				idx, err := chaosCheck(m.Data)
				if err == nil && next >= 0 && idx != next+int(m.Lost) {
					err = fmt.Errorf("got message %d with Lost %d after %d", idx, m.Lost, next-1)
				}
				if err == nil && m.Lost != 0 && !p.noRegister {
					err = fmt.Errorf("a registered subscriber reported %d lost", m.Lost)
				}
				if err == nil && len(m.Data) != max(8, sizes[idx]) {
					err = fmt.Errorf("message %d: %d bytes, want %d", idx, len(m.Data), max(8, sizes[idx]))
				}
				if err != nil && res.fail == nil {
					res.fail = err
				}
				if res.first < 0 {
					res.first = idx
					res.start = idx - int(m.Lost)
				}
				next = idx + 1
				res.delivered++
				res.lost += m.Lost
				if p.slow > 0 {
					time.Sleep(p.slow)
				}
				if res.delivered == p.killAt {
					s.Close()
				}
				if res.delivered == p.stallAt {
					// Stop reading for a long while (the laggard timeout
					// ends the subscription meanwhile, unless its
					// buffers hold the rest of the stream).
					time.Sleep(2 * time.Minute)
				}
			}
			res.err = s.Err()
			res.stats = s.Stats()
			results <- res
		}()
	}
	for i, p := range sc.subs {
		if p.lateJoin == 0 {
			start(i, p)
		} else {
			c := make(chan struct{})
			joins = append(joins, c)
			go func() {
				// Join once the publisher has sent that many (Publish
				// returning only queued them).
				for pub.Stats().Published < uint64(p.lateJoin) {
					select {
					case <-pub.Done():
					case <-time.After(50 * time.Microsecond):
						continue
					}
					break
				}
				start(i, p)
				close(c)
			}()
		}
	}
	synctest.Wait() // subscribers have joined the group
	for i, n := range sizes {
		if err := pub.Publish(ctx, chaosPayload(i, n)); err != nil {
			t.Fatalf("publish %d: %v\n%v", i, err, sc)
		}
		if i%50 == 0 {
			synctest.Wait() // let late joiners in at their point
		}
	}
	for _, c := range joins {
		<-c
	}
	closeErr := pub.Close(ctx)
	ps := pub.Stats()
	for range sc.subs {
		res := <-results
		p := sc.subs[res.i]
		desc := fmt.Sprintf("sub%d: delivered %d first %d lost %d err %v\n%+v\npublisher close %v %+v\n%v", res.i, res.delivered, res.first, res.lost, res.err, res.stats, closeErr, ps, sc)
		if res.fail != nil {
			t.Fatalf("%v: %s", res.fail, desc)
		}
		var ev *EvictedError
		killed := p.killAt >= 0 && res.delivered >= p.killAt
		stalled := p.stallAt >= 0 && res.delivered >= p.stallAt
		switch {
		case killed:
			if !errors.Is(res.err, ErrClosed) {
				t.Fatalf("killed subscriber ended with %v: %s", res.err, desc)
			}
		case stalled:
			// Evicted, unless its buffers (Recv's, the reorder buffer)
			// held the rest of the stream.
			// Or it missed the EVICT and found the publisher gone.
			// Or it missed the EVICT and found its messages gone (the
			// publisher no longer waited for it).
			if !errors.Is(res.err, ErrEvicted) && !errors.Is(res.err, ErrPublisherGone) && !errors.Is(res.err, ErrLost) && (res.err != nil || res.delivered != sc.msgs) {
				t.Fatalf("stalled subscriber ended with %v after %d of %d, want ErrEvicted: %s", res.err, res.delivered, sc.msgs, desc)
			}
		case p.noRegister:
			// May lose, never silently: first + delivered + lost spans to the end.
			// Its NAKs may outlive the publisher (it does not wait for it).
			if res.err != nil && !errors.Is(res.err, ErrLost) && !errors.Is(res.err, ErrPublisherGone) {
				t.Fatalf("unregistered subscriber ended with %v: %s", res.err, desc)
			}
			if res.err == nil && res.delivered > 0 && res.start+res.delivered+int(res.lost) != sc.msgs {
				t.Fatalf("unregistered subscriber: start %d + delivered %d + lost %d != %d: %s", res.start, res.delivered, res.lost, sc.msgs, desc)
			}
		case sc.laggard > 0 && ps.EvictedLaggard > 0 && (errors.As(res.err, &ev) && ev.Reason == EvictLaggard ||
			errors.Is(res.err, ErrLost) || errors.Is(res.err, ErrPublisherGone)):
			// Whoever holds the window for LaggardTimeout is dropped: a
			// subscriber slowed by loss too. If its EVICT is lost, it
			// finds the loss, or the publisher gone, first. What it
			// delivered was checked.
		default:
			if closeErr != nil || res.err != nil {
				t.Fatalf("registered subscriber ended with %v (publisher Close %v): %s", res.err, closeErr, desc)
			}
			want := sc.msgs
			if p.lateJoin == 0 && res.first != 0 && res.delivered != 0 {
				// WaitSubscribers held the stream until it registered.
				t.Fatalf("started at %d: %s", res.first, desc)
			}
			if p.lateJoin != 0 {
				// It starts where it first heard the stream (or at the
				// oldest message then retained): nothing, if it came
				// after the end; then contiguously to the end.
				want = sc.msgs - res.first
				if res.delivered == 0 {
					want = 0
				}
			}
			if res.delivered != want {
				t.Fatalf("delivered %d, want %d: %s", res.delivered, want, desc)
			}
		}
	}
}
