//go:build linux

package bench_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cnlink/cnlink/bench"
	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/multicast"
	"github.com/cnlink/cnlink/transport"
)

// BenchmarkMulticast is reliable multicast (package multicast) in the
// setup of BenchmarkRawMulticast: one publisher publishes b.N 256-byte
// messages on an even group that no other socket has joined, N
// subscribers each on its own socket with a 4 KiB receive buffer
// (/rcvbuf=65536: 64 KiB), each reading in its own goroutine. The
// publisher coalesces messages into datagrams of at most 8 KiB, as the raw
// run does (its default MaxDatagram; 26 messages per datagram after its
// headers). Everything else is the packages' defaults: the sockets pass
// credentials (the raw subscribers do not), the subscribers register, so
// the publisher runs no further ahead of the slowest one than the window
// its socket holds, and repair what the kernel drops anyway by NAK.
//
// Every subscriber must deliver every message, once, in order and whole
// (bench.Checker on the payload, and consecutive MSNs): unlike the raw
// run's, these msgs/s are messages every subscriber got. ns/op is the wall
// time per message published. The metrics are per subscriber: msgs/s is
// b.N divided by the wall time from the first Publish until the last
// subscriber delivered the last message; repairs/msg the messages that
// reached subscribers as repairs, summed over the subscribers and divided
// by N*b.N; naks/msg the NAK frames the subscribers sent, likewise;
// overruns the ENOBUFS reports a subscriber got, as a mean over the N
// subscribers (as BenchmarkRawMulticast reports them). The publisher's
// Close, which waits for every subscriber's confirmation and sends FIN,
// is not timed.
//
// Run it with BenchmarkRawMulticast in one invocation, so that the ratio
// of the two msgs/s compares the same conditions:
//
//	go test -run '^$' -bench 'Multicast' -benchtime 1s -count 3 ./bench
func BenchmarkMulticast(b *testing.B) {
	testenv.RequireNetAdmin(b)
	for _, n := range mcastSubs {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) { benchMulticast(b, n, mcastRcvbuf) })
	}
	for _, n := range mcastSubs {
		b.Run(fmt.Sprintf("subs=%d/rcvbuf=%d", n, mcastBigRcvbuf), func(b *testing.B) { benchMulticast(b, n, mcastBigRcvbuf) })
	}
}

// mcastStall fails a reliable multicast run when no subscriber delivered
// anything for this long (a stalled engine must not hang the suite).
const mcastStall = stallTimeout

// reliableSub is one subscriber of a BenchmarkMulticast run and its
// reader's outcome.
type reliableSub struct {
	s         *multicast.Subscriber
	port      uint32
	delivered atomic.Uint64 // messages checked so far
	err       error         // set before done closes
	done      chan struct{}
}

// read delivers and checks messages until all total arrived, or the
// subscription ends, or a check fails (fail is then called). Having all
// total, it keeps draining until the stream ends (FIN), so that the
// publisher's Close never waits on it.
func (r *reliableSub) read(total int, all *sync.WaitGroup, fail func(error)) {
	defer close(r.done)
	chk := bench.Checker{Size: mcastSize}
	var prev uint32
	counted := false
	defer func() {
		if !counted {
			all.Done()
		}
	}()
	for m := range r.s.Recv() {
		var err error
		switch {
		case m.Lost != 0:
			err = fmt.Errorf("%d messages lost before MSN %d", m.Lost, m.MSN)
		case chk.Count() > 0 && m.MSN != prev+1:
			err = fmt.Errorf("MSN %d after %d", m.MSN, prev)
		default:
			err = chk.Check(m.Data)
		}
		if err != nil {
			r.err = fmt.Errorf("subscriber %d: %w", r.port, err)
			fail(r.err)
			for range r.s.Recv() {
			}
			return
		}
		prev = m.MSN
		r.delivered.Store(chk.Count())
		if !counted && int(chk.Count()) == total {
			counted = true
			all.Done()
		}
	}
	if !counted {
		r.err = fmt.Errorf("subscriber %d: stream ended after %d of %d messages: %v", r.port, chk.Count(), total, r.s.Err())
		fail(r.err)
	}
}

func benchMulticast(b *testing.B, subs, rcvbuf int) {
	benchMulticastWith(b, subs, transport.Config{ReadBuffer: rcvbuf}, multicast.PublisherConfig{})
}

// benchMulticastWith runs BenchmarkMulticast with the subscribers'
// sockets configured by sc and the publisher by pc (Group is set here).
func benchMulticastWith(b *testing.B, subs int, sc transport.Config, pc multicast.PublisherConfig) {
	b.ReportAllocs()
	group := freeEvenGroup()
	ptr, err := transport.Open(transport.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, fail := context.WithCancelCause(context.Background())
	defer fail(nil)

	total := b.N
	var all sync.WaitGroup // every subscriber has delivered total messages
	all.Add(subs)
	readers := make([]*reliableSub, 0, subs)
	var pub *multicast.Publisher
	// cleanup ends everything, whatever state the run is in: the
	// publisher (a no-op after a clean Close), then the subscribers and
	// their readers.
	cleanup := func() {
		if pub != nil {
			pub.Abort()
		} else {
			ptr.Close()
		}
		for _, r := range readers {
			r.s.Close()
			<-r.done
		}
	}
	defer cleanup()
	for range subs {
		tr, err := transport.Open(sc)
		if err != nil {
			b.Fatal(err)
		}
		s, err := multicast.Subscribe(tr, multicast.SubscriberConfig{Group: group, Publisher: ptr.LocalPort()})
		if err != nil {
			b.Fatal(err)
		}
		r := &reliableSub{s: s, port: tr.LocalPort(), done: make(chan struct{})}
		readers = append(readers, r)
		go r.read(total, &all, fail)
	}
	pc.Group = group
	pub, err = multicast.NewPublisher(ptr, pc)
	if err != nil {
		b.Fatal(err)
	}
	// Flow control counts a subscriber once it has registered: start
	// when all have.
	for deadline := time.Now().Add(stallTimeout); pub.Stats().Subscribers < subs; time.Sleep(100 * time.Microsecond) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d subscribers registered within %v", pub.Stats().Subscribers, subs, stallTimeout)
		}
	}
	allDone := make(chan struct{})
	go func() {
		all.Wait()
		close(allDone)
	}()
	// The watchdog fails the run when delivery stops.
	watchdogDone := make(chan struct{})
	go func() {
		defer close(watchdogDone)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		var last uint64
		lastMove := time.Now()
		for {
			select {
			case <-allDone:
				return
			case <-ctx.Done():
				return
			case now := <-tick.C:
				var sum uint64
				for _, r := range readers {
					sum += r.delivered.Load()
				}
				if sum != last {
					last, lastMove = sum, now
				} else if now.Sub(lastMove) > mcastStall {
					fail(fmt.Errorf("no subscriber delivered anything for %v (%d of %d deliveries done; publisher %+v)",
						mcastStall, sum, subs*total, pub.Stats()))
					return
				}
			}
		}
	}()

	msg := make([]byte, mcastSize)
	b.ResetTimer()
	for i := range total {
		bench.Stamp(msg, uint64(i))
		if err := pub.Publish(ctx, msg); err != nil {
			if ctx.Err() != nil {
				err = context.Cause(ctx)
			}
			b.Fatalf("publish %d: %v", i, err)
		}
	}
	select {
	case <-allDone:
	case <-ctx.Done():
		b.Fatal(context.Cause(ctx))
	}
	b.StopTimer()
	<-watchdogDone

	cctx, cancel := context.WithTimeout(ctx, stallTimeout)
	defer cancel()
	if err := pub.Close(cctx); err != nil {
		b.Fatalf("publisher close: %v", err)
	}
	var repaired, naks, overruns float64
	for _, r := range readers {
		select {
		case <-r.done:
		case <-time.After(stallTimeout):
			b.Fatalf("a subscriber's stream did not end within %v of the publisher's Close", stallTimeout)
		}
		if r.err != nil {
			b.Fatal(r.err)
		}
		if err := r.s.Err(); err != nil && !errors.Is(err, multicast.ErrClosed) {
			b.Fatalf("subscriber ended with %v", err)
		}
		st := r.s.Stats()
		repaired += float64(st.Repaired)
		naks += float64(st.Naks)
		overruns += float64(st.Overruns)
	}
	bench.ReportRate(b, total)
	per := float64(subs) * float64(total)
	b.ReportMetric(repaired/per, "repairs/msg")
	b.ReportMetric(naks/per, "naks/msg")
	b.ReportMetric(overruns/float64(subs), "overruns")
}
