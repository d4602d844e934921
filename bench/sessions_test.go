//go:build linux

package bench_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cnlink/cnlink/bench"
	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
)

// sessionCounts are the session counts of BenchmarkSessions.
var sessionCounts = []int{1, 10, 100, 1000}

const (
	// sessionSize is the payload of BenchmarkSessions' messages.
	sessionSize = 256
	// maxDialers is how many dialing endpoints BenchmarkSessions spreads
	// its sessions over.
	maxDialers = 4
	// dialsInFlight bounds the handshakes under way plus the sessions
	// dialed but not yet accepted, below the default AcceptBacklog (64),
	// so that no SYN is refused for a full backlog.
	dialsInFlight = 32
	// setupTimeout bounds opening (and flushing) all sessions of a run.
	setupTimeout = 2 * time.Minute
)

// BenchmarkSessions is many sessions on one endpoint: one accepting
// endpoint and min(n, 4) dialing endpoints, each over its own socket, all
// with the default reliable.Config, and n sessions spread round-robin over
// the dialers, all established before the timer starts. Each dialing
// session streams its share of b.N 256-byte messages (b.N/n, some get one
// more; some none when b.N < n) with SendBatch in batches of 64 from its
// own goroutine; each accepted session has a receiver goroutine draining
// RecvBatch (recycling every message) and checking that exactly its share
// arrives, in order and whole.
//
// msgs/s is the aggregate over all sessions; retrans/msg the frames sent
// again by all 2n session ends (handshakes included), per message.
//
// B/session is the resident memory one established, idle session costs,
// per session end: both ends of every session live in this process, so it
// is the growth of the Go runtime's memory (runtime/metrics: total, less
// the heap that is free or released to the OS; after runtime.GC and
// debug.FreeOSMemory) from before the sessions were opened (endpoints
// already open) to when all n are established and idle, divided by 2n.
// B/session-after is the same growth measured once more after the
// throughput run, with every message acknowledged and delivered and the
// senders and receivers gone. The growth of RSS (/proc/self/statm), which
// also counts memory the runtime has freed but not returned, is logged.
func BenchmarkSessions(b *testing.B) {
	testenv.RequireNetAdmin(b)
	for _, n := range sessionCounts {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) { benchSessions(b, n) })
	}
}

func openSessionEndpoint(b *testing.B) *reliable.Endpoint {
	b.Helper()
	tr, err := transport.Open(transport.Config{ReadBuffer: sockBuffer, WriteBuffer: sockBuffer})
	if err != nil {
		b.Fatalf("transport: %v", err)
	}
	ep, err := reliable.NewEndpoint(tr, nil)
	if err != nil {
		tr.Close()
		b.Fatalf("endpoint: %v", err)
	}
	return ep
}

// sessionsChannel is the connector channel of session i: each dialer has
// up to n/4 sessions with the one accepting port, so they differ by
// channel.
func sessionsChannel(i int) transport.CbID {
	return transport.CbID{Idx: benchChannel.Idx, Val: uint32(i)}
}

// sessionKey identifies an accepted session: the dialer's port and the
// channel.
type sessionKey struct {
	port uint32
	ch   transport.CbID
}

func benchSessions(b *testing.B, n int) {
	b.ReportAllocs()
	b.SetBytes(sessionSize)
	nd := min(n, maxDialers)
	acc := openSessionEndpoint(b)
	dialers := make([]*reliable.Endpoint, 0, nd)
	defer func() {
		acc.Close()
		for _, d := range dialers {
			d.Close()
		}
	}()
	for range nd {
		dialers = append(dialers, openSessionEndpoint(b))
	}
	// Everything the run keeps per session is allocated before the first
	// memory reading, so that the growth is the sessions'.
	out := make([]*reliable.Session, n) // dialed: session i sends share(i)
	in := make([]*reliable.Session, n)  // accepted: the peer of out[i]
	index := make(map[sessionKey]int, n)
	for i := range n {
		index[sessionKey{dialers[i%nd].LocalPort(), sessionsChannel(i)}] = i
	}
	total := b.N
	share := func(i int) int {
		k := total / n
		if i < total%n {
			k++
		}
		return k
	}
	errs := make(chan error, 2*n)

	before := readMemory()
	t0 := time.Now()
	if err := openSessions(acc, dialers, out, in, index); err != nil {
		b.Fatal(err)
	}
	established := time.Since(t0)
	if err := flushSessions(out, in); err != nil {
		b.Fatalf("idle: %v", err)
	}
	idle := readMemory()
	var handshakeRetrans uint64
	for i := range n {
		handshakeRetrans += out[i].Stats().Retransmits + in[i].Stats().Retransmits
	}

	ctx, cancel := context.WithTimeoutCause(context.Background(), runTimeout, errors.New("run timed out"))
	defer cancel()
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		want := share(i)
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			err := sendShare(ctx, out[i], want)
			if err != nil {
				err = fmt.Errorf("session %d: %w", i, err)
				fail(err)
			}
			errs <- err
		}()
		go func() {
			defer wg.Done()
			<-start
			err := recvShare(ctx, in[i], want)
			if err != nil {
				err = fmt.Errorf("session %d: %w", i, err)
				fail(err)
			}
			errs <- err
		}()
	}
	b.ResetTimer()
	close(start)
	wg.Wait()
	b.StopTimer()
	close(errs)
	if err := context.Cause(ctx); err != nil {
		// The first failure, and then the other goroutines' view of it.
		var all []error
		for e := range errs {
			if e != nil && len(all) < 4 {
				all = append(all, e)
			}
		}
		b.Fatalf("%v\n(first reports: %v)", err, errors.Join(all...))
	}
	bench.ReportRate(b, total)
	var retrans, timeouts, dups uint64
	var srtt time.Duration
	for i := range n {
		so, si := out[i].Stats(), in[i].Stats()
		retrans += so.Retransmits + si.Retransmits
		timeouts += so.TimeoutRetransmits + si.TimeoutRetransmits
		dups += so.DuplicatesSuppressed + si.DuplicatesSuppressed
		srtt = max(srtt, so.SRTT)
	}
	bench.ReportRetransmits(b, retrans, total)
	var spurious, busy, overruns uint64
	rejected := make(map[string]uint64)
	for _, ep := range append([]*reliable.Endpoint{acc}, dialers...) {
		st := ep.Stats()
		spurious += st.SpuriousRetransmits
		busy += st.PeerBusy
		overruns += st.Overruns
		for k, v := range st.Rejected {
			rejected[k] += v
		}
	}

	// Idle again: every message acknowledged (the receivers took them
	// all), senders and receivers gone.
	if err := flushSessions(out, in); err != nil {
		b.Fatalf("idle after the run: %v", err)
	}
	after := readMemory()
	ends := float64(2 * n)
	b.ReportMetric(float64(idle.goBytes-before.goBytes)/ends, "B/session")
	b.ReportMetric(float64(after.goBytes-before.goBytes)/ends, "B/session-after")
	// One line per run: the testing package keeps only the first ten
	// lines a benchmark logs over all its runs.
	b.Logf("b.N=%d: opened in %v (%.0f µs a session, %d retransmissions); retransmissions %d (%d after an RTO, %d found spurious, %d duplicates at the receivers, largest SRTT %v), EAGAIN %d, ENOBUFS %d, rejected %v; per session end, idle / after the run: Go runtime %.0f / %.0f B (heap objects %.0f / %.0f, stacks %.0f / %.0f), RSS %.0f / %.0f B",
		total, established.Round(time.Millisecond), float64(established.Microseconds())/float64(n), handshakeRetrans,
		retrans, timeouts, spurious, dups, srtt, busy, overruns, rejected,
		float64(idle.goBytes-before.goBytes)/ends, float64(after.goBytes-before.goBytes)/ends,
		float64(idle.objects-before.objects)/ends, float64(after.objects-before.objects)/ends,
		float64(idle.stacks-before.stacks)/ends, float64(after.stacks-before.stacks)/ends,
		float64(idle.rss-before.rss)/ends, float64(after.rss-before.rss)/ends)
}

// openSessions dials len(out) sessions concurrently, session i from
// dialers[i%len(dialers)] on sessionsChannel(i), and accepts them all on
// acc while dialing, storing each accepted session at its dialed peer's
// index. At most dialsInFlight sessions are being dialed or wait for
// Accept at any time.
func openSessions(acc *reliable.Endpoint, dialers []*reliable.Endpoint, out, in []*reliable.Session, index map[sessionKey]int) error {
	n := len(out)
	ctx, cancel := context.WithTimeoutCause(context.Background(), setupTimeout, errors.New("setup timed out"))
	defer cancel()
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	slots := make(chan struct{}, dialsInFlight)
	accepted := make(chan error, 1)
	go func() {
		for range n {
			s, err := acc.Accept(ctx)
			if err != nil {
				err = fmt.Errorf("accept: %w", err)
				fail(err)
				accepted <- err
				return
			}
			i, ok := index[sessionKey{s.Peer(), s.Channel()}]
			if !ok || in[i] != nil {
				err := fmt.Errorf("accepted an unexpected session from port %d on channel %v", s.Peer(), s.Channel())
				fail(err)
				accepted <- err
				return
			}
			in[i] = s
			<-slots
		}
		accepted <- nil
	}()
	var wg sync.WaitGroup
	for i := range n {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := dialers[i%len(dialers)].Dial(ctx, acc.LocalPort(), sessionsChannel(i))
			if err != nil {
				fail(fmt.Errorf("dial session %d: %w", i, err))
				return
			}
			out[i] = s
		}()
	}
	wg.Wait()
	aerr := <-accepted
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return aerr
}

// flushSessions waits until every session of both sides has everything it
// sent acknowledged, and checks that it did: nothing is in flight.
func flushSessions(out, in []*reliable.Session) error {
	ctx, cancel := context.WithTimeoutCause(context.Background(), setupTimeout, errors.New("flush timed out"))
	defer cancel()
	for _, side := range [][]*reliable.Session{out, in} {
		for i, s := range side {
			if err := s.Flush(ctx); err != nil {
				return fmt.Errorf("flush session %d: %w", i, err)
			}
		}
	}
	for i := range out {
		so, si := out[i].Stats(), in[i].Stats()
		if so.Sent != si.Received || si.Sent != so.Received {
			return fmt.Errorf("session %d not idle: sent %d, peer received %d; peer sent %d, received %d",
				i, so.Sent, si.Received, si.Sent, so.Received)
		}
	}
	return nil
}

// sendShare sends want stamped messages on s in batches of sendBatch.
func sendShare(ctx context.Context, s *reliable.Session, want int) error {
	if want == 0 {
		return nil
	}
	batch := make([][]byte, min(sendBatch, want))
	for i := range batch {
		batch[i] = make([]byte, sessionSize)
	}
	for sent := 0; sent < want; {
		k := min(len(batch), want-sent)
		for i := range k {
			bench.Stamp(batch[i], uint64(sent+i))
		}
		m, err := s.SendBatch(ctx, batch[:k])
		sent += m
		if err != nil {
			if ctx.Err() != nil {
				err = context.Cause(ctx)
			}
			return fmt.Errorf("SendBatch after %d of %d messages: %w", sent, want, err)
		}
	}
	return nil
}

// recvShare receives and checks exactly want messages on s, recycling
// each.
func recvShare(ctx context.Context, s *reliable.Session, want int) error {
	if want == 0 {
		return nil
	}
	c := bench.Checker{Size: sessionSize}
	buf := make([][]byte, min(recvBatch, want))
	for int(c.Count()) < want {
		k, err := s.RecvBatch(ctx, buf)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("after %d of %d messages: %w", c.Count(), want, context.Cause(ctx))
			}
			return fmt.Errorf("receiving session ended after %d of %d messages: %w", c.Count(), want, err)
		}
		for _, m := range buf[:k] {
			if err := c.Check(m); err != nil {
				return err
			}
			s.Recycle(m)
		}
	}
	return c.Done(want)
}

// memory is one reading of the process's memory.
type memory struct {
	goBytes int64 // the Go runtime's memory less its free and released heap
	rss     int64 // resident set size
	// Parts of goBytes: heap objects and goroutine stacks.
	objects, stacks int64
}

var memorySamples = []metrics.Sample{
	{Name: "/memory/classes/total:bytes"},
	{Name: "/memory/classes/heap/released:bytes"},
	{Name: "/memory/classes/heap/free:bytes"},
	{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/memory/classes/heap/stacks:bytes"},
}

// readMemory collects garbage, returns what it can to the OS, and reads
// the memory in use.
func readMemory() memory {
	runtime.GC()
	debug.FreeOSMemory()
	s := make([]metrics.Sample, len(memorySamples))
	copy(s, memorySamples)
	metrics.Read(s)
	m := memory{
		goBytes: int64(s[0].Value.Uint64() - s[1].Value.Uint64() - s[2].Value.Uint64()),
		objects: int64(s[3].Value.Uint64()),
		stacks:  int64(s[4].Value.Uint64()),
	}
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.ParseInt(f[1], 10, 64)
			m.rss = pages * int64(os.Getpagesize())
		}
	}
	return m
}
