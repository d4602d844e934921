//go:build linux

package hostile

// The legitimate side of every test: two endpoints over real netlink with
// one session and verified message streams, and the measurements (rates,
// memory, counters) the tests assert on.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
)

// sockCfg is the socket configuration of the legitimate endpoints: large
// kernel buffers, as a production endpoint would have.
var sockCfg = transport.Config{ReadBuffer: 4 << 20, WriteBuffer: 4 << 20}

// legit is the legitimate pair: the victim endpoint V (the one the
// attacks aim at) accepted a session dialed by the peer endpoint P. P's
// transport is wrapped in a tap, which learns the session's epochs and
// sequence numbers from the frames P sends and receives and can inject
// hand-made frames from P's own socket (a hostile peer inside a valid
// session).
type legit struct {
	v, p   *reliable.Endpoint
	vs, ps *reliable.Session // V's and P's side of the session
	tap    *tap
	start  time.Time

	mu     sync.Mutex
	events []string // timestamped, for the failure report
}

// event records what happened when, for the failure report.
func (l *legit) event(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, fmt.Sprintf("%8.3fs  ", time.Since(l.start).Seconds())+fmt.Sprintf(format, args...))
}

// report logs, when t failed, the events and every counter of both
// endpoints and sessions.
func (l *legit) report(t *testing.T) {
	t.Helper()
	if !t.Failed() {
		return
	}
	l.mu.Lock()
	ev := strings.Join(l.events, "\n  ")
	l.mu.Unlock()
	t.Logf("events:\n  %s", ev)
	t.Logf("victim endpoint (port %d): %+v\nvictim session: %+v", l.v.LocalPort(), l.v.Stats(), l.vs.Stats())
	t.Logf("peer endpoint (port %d): %+v\npeer session: %+v", l.p.LocalPort(), l.p.Stats(), l.ps.Stats())
	t.Logf("tap: %s; %d datagrams (%d bytes) from the victim; injected %d (%d busy)", l.tap, l.tap.rxDgrams.Load(), l.tap.rxBytes.Load(), l.tap.injected.Load(), l.tap.injectBusy.Load())
}

// newLegit opens the pair; cfg (nil: defaults) configures both endpoints.
func newLegit(t *testing.T, cfg *reliable.Config) *legit {
	t.Helper()
	testenv.RequireNetAdmin(t)
	tv, err := transport.Open(sockCfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := reliable.NewEndpoint(tv, cfg)
	if err != nil {
		tv.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	tp, err := transport.Open(sockCfg)
	if err != nil {
		t.Fatal(err)
	}
	tp2 := newTap(tp, reliable.DefaultChannel, v.LocalPort())
	p, err := reliable.NewEndpoint(tp2, cfg)
	if err != nil {
		tp.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	acc := make(chan *reliable.Session, 1)
	accErr := make(chan error, 1)
	go func() {
		s, err := v.Accept(ctx)
		accErr <- err
		acc <- s
	}()
	ps, err := p.Dial(ctx, v.LocalPort(), transport.CbID{})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if err := <-accErr; err != nil {
		t.Fatalf("accept: %v", err)
	}
	vs := <-acc
	if vs.Peer() != p.LocalPort() {
		t.Fatalf("accepted a session from port %d, want %d", vs.Peer(), p.LocalPort())
	}
	if !tp2.ready() {
		t.Fatalf("the tap did not see the handshake: %s", tp2)
	}
	l := &legit{v: v, p: p, vs: vs, ps: ps, tap: tp2, start: time.Now()}
	l.event("session open: victim port %d, peer port %d; %s", v.LocalPort(), p.LocalPort(), tp2)
	for _, side := range []struct {
		name string
		s    *reliable.Session
	}{{"victim", vs}, {"peer", ps}} {
		go func() { // ends when the endpoints close, at the latest
			<-side.s.Done()
			l.event("the %s's session ended: %v", side.name, side.s.Err())
		}()
	}
	t.Cleanup(func() { l.report(t) })
	return l
}

// alive fails t unless both sides of the session are open.
func (l *legit) alive(t *testing.T, when string) {
	t.Helper()
	if err := l.vs.Err(); err != nil {
		t.Errorf("%s: the victim's session ended: %v", when, err)
	}
	if err := l.ps.Err(); err != nil {
		t.Errorf("%s: the peer's session ended: %v", when, err)
	}
}

// closeGracefully ends the session from P (Close must return nil: V's
// engine holds everything) and checks that V's side ends with
// ErrPeerClosed.
func (l *legit) closeGracefully(t *testing.T) {
	t.Helper()
	complete := !t.Failed() // every stream delivered everything
	if err := l.ps.Close(); err != nil {
		t.Errorf("the peer's Close: %v (want nil: the victim holds everything)", err)
	}
	// Drain what is left (only after a failure can anything be: Done
	// waits until the application has taken it).
	extra := 0
	timeout := time.After(5 * time.Second)
	for done := false; !done; {
		select {
		case m := <-l.vs.Recv():
			if complete && extra == 0 {
				t.Errorf("the victim's application got a message after the stream was complete: %s", describe(m))
			}
			extra++
		case <-l.vs.Done():
			if err := l.vs.Err(); !errors.Is(err, reliable.ErrPeerClosed) {
				t.Errorf("the victim's session ended with %v, want ErrPeerClosed", err)
			}
			done = true
		case <-timeout:
			t.Errorf("the victim's session did not end within 5s of the peer's Close")
			done = true
		}
	}
	if extra > 0 {
		t.Logf("%d messages were still in the victim's Recv", extra)
	}
}

// Message contents: message i of a stream is a function of the stream's
// key and i, every byte of it, so that the receiver detects any message
// lost, duplicated, reordered or forged.

const msgSize = 128

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// appendMsg appends message i of stream key: the index, the key, then
// words derived from both.
func appendMsg(dst []byte, key uint64, i int) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(i))
	dst = binary.LittleEndian.AppendUint64(dst, key)
	h := splitmix(key ^ splitmix(uint64(i)))
	for j := 16; j < msgSize; j += 8 {
		dst = binary.LittleEndian.AppendUint64(dst, splitmix(h+uint64(j)))
	}
	return dst
}

// checkMsg says how b differs from message i of stream key.
func checkMsg(b []byte, key uint64, i int, scratch []byte) error {
	want := appendMsg(scratch[:0], key, i)
	if string(b) == string(want) {
		return nil
	}
	if len(b) == msgSize && binary.LittleEndian.Uint64(b[8:]) == key {
		return fmt.Errorf("got message %d, want %d (lost, duplicated or reordered)", binary.LittleEndian.Uint64(b), i)
	}
	return fmt.Errorf("want message %d, got something else: %s", i, describe(b))
}

// describe prints a message briefly.
func describe(b []byte) string {
	if len(b) > 48 {
		return fmt.Sprintf("%d bytes %q...", len(b), b[:48])
	}
	return fmt.Sprintf("%d bytes %q", len(b), b)
}

// flow is one verified stream of messages on a session, sent as fast as
// the window allows, checked message by message on the other side.
type flow struct {
	name     string
	key      uint64
	from, to *reliable.Session

	sent atomic.Int64 // messages queued (Send returned nil)
	got  atomic.Int64 // messages received and verified in order

	sendCtx, recvCtx   context.Context
	stopSend, stopRecv context.CancelFunc
	sendDone, recvDone chan struct{}
	mu                 sync.Mutex
	errs               []string
	sendErr            error
	lastRecvErr        error
}

// startFlow starts a stream from one side of a session to the other.
func startFlow(name string, key uint64, from, to *reliable.Session) *flow {
	f := &flow{name: name, key: key, from: from, to: to, sendDone: make(chan struct{}), recvDone: make(chan struct{})}
	f.sendCtx, f.stopSend = context.WithCancel(context.Background())
	f.recvCtx, f.stopRecv = context.WithCancel(context.Background())
	go f.sender()
	go f.receiver()
	return f
}

func (f *flow) fail(format string, args ...any) {
	f.mu.Lock()
	if len(f.errs) < 10 {
		f.errs = append(f.errs, fmt.Sprintf(format, args...))
	}
	f.mu.Unlock()
}

func (f *flow) sender() {
	defer close(f.sendDone)
	const batch = 32
	msgs := make([][]byte, batch)
	for j := range msgs {
		msgs[j] = make([]byte, 0, msgSize)
	}
	i := 0
	for f.sendCtx.Err() == nil {
		for j := range msgs {
			msgs[j] = appendMsg(msgs[j][:0], f.key, i+j)
		}
		n, err := f.from.SendBatch(f.sendCtx, msgs)
		i += n
		f.sent.Store(int64(i))
		if err != nil {
			if f.sendCtx.Err() == nil {
				f.mu.Lock()
				f.sendErr = err
				f.mu.Unlock()
			}
			return
		}
	}
}

func (f *flow) receiver() {
	defer close(f.recvDone)
	buf := make([][]byte, 256)
	scratch := make([]byte, 0, msgSize)
	broken := false
	for {
		n, err := f.to.RecvBatch(f.recvCtx, buf)
		if err != nil {
			f.mu.Lock()
			f.lastRecvErr = err
			f.mu.Unlock()
			return
		}
		for _, m := range buf[:n] {
			i := int(f.got.Load())
			if !broken {
				if err := checkMsg(m, f.key, i, scratch); err != nil {
					f.fail("%s: message %d: %v", f.name, i, err)
					broken = true
				}
			} else {
				f.fail("%s: after the first bad message: %s", f.name, describe(m))
			}
			f.got.Add(1)
			f.to.Recycle(m)
		}
	}
}

// finish stops sending, waits until everything queued was delivered and
// verified, and reports what went wrong; the session stays open.
func (f *flow) finish(t *testing.T) {
	t.Helper()
	f.stopSend()
	<-f.sendDone
	sent := f.sent.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.from.Flush(ctx); err != nil {
		t.Errorf("%s: Flush after the stream: %v", f.name, err)
	}
	for f.got.Load() < sent && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // room for anything extra to show up
	f.stopRecv()
	<-f.recvDone
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.errs {
		t.Errorf("%s", e)
	}
	if f.sendErr != nil {
		t.Errorf("%s: sending failed: %v", f.name, f.sendErr)
	}
	if got := f.got.Load(); got != sent {
		t.Errorf("%s: %d messages sent, %d received (last receive error %v)", f.name, sent, got, f.lastRecvErr)
	}
	if !errors.Is(f.lastRecvErr, context.Canceled) {
		t.Errorf("%s: the receiver stopped with %v", f.name, f.lastRecvErr)
	}
}

// abMeasure alternates unflooded and flooded periods of d each, rounds
// times (interleaving cancels most of the drift of a machine shared with
// other tests), and returns the flows' delivery rates in msgs/s over the
// unflooded and the flooded periods. attack runs the flood until its
// context ends; floodTime is how long it ran in total.
func (l *legit) abMeasure(rounds int, d time.Duration, flows []*flow, attack func(ctx context.Context)) (off, on []float64, floodTime time.Duration) {
	count := func() []int64 {
		c := make([]int64, len(flows))
		for i, f := range flows {
			c[i] = f.got.Load()
		}
		return c
	}
	offN, onN := make([]int64, len(flows)), make([]int64, len(flows))
	var offT, onT time.Duration
	for range rounds {
		c0, t0 := count(), time.Now()
		time.Sleep(d)
		c1, t1 := count(), time.Now()
		for i := range flows {
			offN[i] += c1[i] - c0[i]
		}
		offT += t1.Sub(t0)

		ctx, cancel := context.WithTimeout(context.Background(), d)
		done := make(chan struct{})
		c0, t0 = count(), time.Now()
		l.event("flood on (delivered so far: %v)", c0)
		go func() { defer close(done); attack(ctx) }()
		<-ctx.Done()
		c1, t1 = count(), time.Now()
		cancel()
		<-done
		l.event("flood off (delivered so far: %v; victim %+v)", c1, l.v.Stats())
		for i := range flows {
			onN[i] += c1[i] - c0[i]
		}
		onT += t1.Sub(t0)
	}
	for i := range flows {
		off = append(off, float64(offN[i])/offT.Seconds())
		on = append(on, float64(onN[i])/onT.Seconds())
	}
	return off, on, onT
}

// checkRates asserts that every flow kept at least half its unflooded
// rate under the flood, and logs both.
func checkRates(t *testing.T, what string, flows []*flow, off, on []float64) {
	t.Helper()
	for i, f := range flows {
		t.Logf("%s: %s: %.0f msgs/s unflooded, %.0f msgs/s flooded (%.0f%%)", what, f.name, off[i], on[i], 100*on[i]/off[i])
		if on[i] < off[i]/2 {
			t.Errorf("%s: %s fell to %.0f msgs/s under the flood, below half its unflooded %.0f msgs/s", what, f.name, on[i], off[i])
		}
	}
}

// Memory.

// heapInuse returns HeapInuse after a collection.
func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// rss returns the process's resident set size in bytes (0 if unknown).
func rss() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// memWatch samples HeapInuse (without collecting) until stopped, to
// report the peak during an attack.
type memWatch struct {
	before, beforeRSS uint64
	peak              atomic.Uint64
	stop              chan struct{}
	done              chan struct{}
}

func watchMem() *memWatch {
	w := &memWatch{before: heapInuse(), beforeRSS: rss(), stop: make(chan struct{}), done: make(chan struct{})}
	w.peak.Store(w.before)
	go func() {
		defer close(w.done)
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tk.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapInuse > w.peak.Load() {
					w.peak.Store(m.HeapInuse)
				}
			}
		}
	}()
	return w
}

// check stops the sampling, logs the figures and asserts that HeapInuse
// after the attack (collected) is within bound of before.
func (w *memWatch) check(t *testing.T, what string, bound uint64) {
	t.Helper()
	close(w.stop)
	<-w.done
	after, afterRSS := heapInuse(), rss()
	t.Logf("%s: memory: HeapInuse %s before, %s peak, %s after (bound: +%s); RSS %s before, %s after",
		what, mib(w.before), mib(w.peak.Load()), mib(after), mib(bound), mib(w.beforeRSS), mib(afterRSS))
	if after > w.before+bound {
		t.Errorf("%s: HeapInuse grew from %s to %s, more than the bound of %s", what, mib(w.before), mib(after), mib(bound))
	}
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// Counters.

// statsDelta returns b - a for the counters the tests look at.
func rejectedDelta(a, b reliable.Stats) map[string]uint64 {
	d := make(map[string]uint64)
	for k, v := range b.Rejected {
		if v > a.Rejected[k] {
			d[k] = v - a.Rejected[k]
		}
	}
	return d
}

// settle waits (up to 3 s) until the endpoint's counter key has grown by
// want since st0 (the victim may still be draining its socket) and
// returns the endpoint's Stats then.
func settle(ep *reliable.Endpoint, st0 reliable.Stats, key string, want uint64) reliable.Stats {
	deadline := time.Now().Add(3 * time.Second)
	for {
		st := ep.Stats()
		if st.Rejected[key]-st0.Rejected[key] >= want || time.Now().After(deadline) {
			time.Sleep(20 * time.Millisecond) // and anything beyond it
			return ep.Stats()
		}
		time.Sleep(5 * time.Millisecond)
	}
}
