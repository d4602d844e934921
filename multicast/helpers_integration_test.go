//go:build linux

package multicast

// Helpers of the real-netlink tests (TestIntegrationMulticast*): sockets
// that read their kernel Drops column before they close, verifiable
// payloads, and readers that check order, content and loss accounting as
// they go.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cnlink/cnlink/discover"
	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/transport"
)

// Groups of the integration tests: high even numbers, one per test, so
// that nothing else on the machine (the smoke tests use 2 and 6) and no
// other test of this package shares a group. The unprivileged test needs
// an odd one.
const (
	groupMillion     = 20
	groupSlow        = 22
	groupStalled     = 24
	groupVanish      = 26
	groupAbort       = 28
	groupLateJoin    = 30
	groupLoss        = 32
	groupRestart     = 18
	groupAdvForge    = 16
	groupAdvNak      = 14
	groupAdvFlood    = 12
	groupAdvStatus   = 10
	groupAdvHijack   = 8
	groupAdvTable    = 29 // odd: the even ones are all taken
	groupAdvAmp      = 31
	groupRefused     = 4
	groupUnprivOdd   = 27
	groupUnprivEven  = 26 // only joined (refused) by the unprivileged child
	integrationLimit = 60 * time.Second
)

// requireRoot: the integration tests need CAP_NET_ADMIN (CI runs as root,
// where they always run).
func requireRoot(t *testing.T) {
	t.Helper()
	testenv.RequireNetAdmin(t)
}

// testCtx returns t.Context() bounded by d.
func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// randomChannel returns a channel no other stream on the machine uses, so
// that a publisher of another test process on the same group is rejected
// (and counted) instead of pinned.
func randomChannel() transport.CbID {
	return transport.CbID{Idx: 0x434e4c4b, Val: 0x10000 + rand.Uint32N(1<<30)}
}

// probedConn is a netlink socket that reads its own line of
// /proc/net/netlink (the kernel's Drops column) when it is closed, which
// the Publisher or Subscriber owning it does when it ends.
type probedConn struct {
	*transport.Conn
	mu       sync.Mutex
	closed   bool
	drops    uint64
	dropsErr error
	closedAt time.Time
	rcvbuf   int // SO_RCVBUF at open, as the kernel holds it (doubled)
}

func (c *probedConn) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		c.closedAt = time.Now()
		s, err := discover.ByPort(c.LocalPort())
		c.drops, c.dropsErr = s.Drops, err
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// Drops returns the kernel's drop count read at Close, or reads it now
// while open.
func (c *probedConn) Drops() (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.drops, c.dropsErr
	}
	s, err := discover.ByPort(c.LocalPort())
	return s.Drops, err
}

func (c *probedConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// openProbed opens a socket that the test closes at the end whatever
// happens (closing twice is harmless).
func openProbed(t testing.TB, cfg transport.Config) *probedConn {
	t.Helper()
	c, err := transport.Open(cfg)
	if err != nil {
		t.Fatalf("open %+v: %v", cfg, err)
	}
	pc := &probedConn{Conn: c}
	pc.rcvbuf, _ = c.ReadBuffer()
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// startPublisher opens a socket and a publisher on it; the test aborts it
// at the end if it is still running.
func startPublisher(t testing.TB, tcfg transport.Config, cfg PublisherConfig) (*Publisher, *probedConn) {
	t.Helper()
	tr := openProbed(t, tcfg)
	p, err := NewPublisher(tr, cfg)
	if err != nil {
		t.Fatalf("NewPublisher %+v: %v", cfg, err)
	}
	t.Cleanup(p.Abort)
	return p, tr
}

// startSubscriber opens a socket and subscribes on it; the test closes the
// subscriber at the end.
func startSubscriber(t testing.TB, tcfg transport.Config, cfg SubscriberConfig) (*Subscriber, *probedConn) {
	t.Helper()
	tr := openProbed(t, tcfg)
	s, err := Subscribe(tr, cfg)
	if err != nil {
		t.Fatalf("Subscribe %+v: %v", cfg, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, tr
}

// waitFor polls cond every millisecond until it holds or ctx ends.
func waitFor(ctx context.Context, cond func() bool) error {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// mustWait fails t when cond does not hold within d.
func mustWait(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := waitFor(ctx, cond); err != nil {
		t.Fatalf("waiting %v for %s: %v", d, what, err)
	}
}

// waitPinned waits until every subscriber pinned the publisher's port and
// epoch and, unless noRegister, the publisher counts them all registered.
func waitPinned(t testing.TB, p *Publisher, subs []*Subscriber, registered int) {
	t.Helper()
	mustWait(t, 5*time.Second, "subscribers to pin the publisher", func() bool {
		for _, s := range subs {
			if port, epoch := s.Publisher(); port != p.Port() || epoch != p.Epoch() {
				return false
			}
		}
		return p.Stats().Subscribers >= registered
	})
}

// Payloads: 8 bytes index, 4 bytes tag (which stream), then a filler
// derived from both, 64..256 bytes long in all. A delivered message is
// checked byte for byte.

func payloadLen(i uint64) int { return 64 + int((i*7919)%193) }

func fillPayload(buf []byte, tag uint32, i uint64) []byte {
	n := payloadLen(i)
	b := buf[:n]
	binary.LittleEndian.PutUint64(b, i)
	binary.LittleEndian.PutUint32(b[8:], tag)
	x := uint32(i)*2654435761 ^ tag
	for j := 12; j < n; j++ {
		b[j] = byte(x >> (8 * (j % 4)))
		if j%4 == 3 {
			x = x*1664525 + 1013904223
		}
	}
	return b
}

// checkPayload returns the index of a message of stream tag, or why it is
// not one.
func checkPayload(b []byte, tag uint32) (uint64, error) {
	if len(b) < 12 {
		return 0, fmt.Errorf("payload of %d bytes", len(b))
	}
	i := binary.LittleEndian.Uint64(b)
	if got := binary.LittleEndian.Uint32(b[8:]); got != tag {
		return i, fmt.Errorf("payload tag %#x, want %#x (index %d)", got, tag, i)
	}
	if len(b) != payloadLen(i) {
		return i, fmt.Errorf("payload index %d: %d bytes, want %d", i, len(b), payloadLen(i))
	}
	var want [256]byte
	w := fillPayload(want[:], tag, i)
	for j := 12; j < len(b); j++ {
		if b[j] != w[j] {
			return i, fmt.Errorf("payload index %d: byte %d is %#x, want %#x", i, j, b[j], w[j])
		}
	}
	return i, nil
}

// publishRange publishes indexes [from, to) of stream tag.
func publishRange(ctx context.Context, p *Publisher, tag uint32, from, to uint64) error {
	var buf [256]byte
	for i := from; i < to; i++ {
		if err := p.Publish(ctx, fillPayload(buf[:], tag, i)); err != nil {
			return fmt.Errorf("publish %d: %w", i, err)
		}
	}
	return nil
}

// readOpts says how a test reader consumes a subscription.
type readOpts struct {
	tag       uint32
	allowLoss bool                    // Message.Lost may be non-zero
	pace      func(k int)             // called after the k-th message (slow readers)
	stallAt   int                     // > 0: stop taking messages after this many...
	resume    <-chan struct{}         // ...until this is closed (nil: for ever)
	onMsg     func(k int, m *Message) // called for each message
}

// readResult is what a reader saw.
type readResult struct {
	n                  int    // messages delivered
	lost               uint64 // sum of Message.Lost
	firstMSN, lastMSN  uint32
	firstIdx, lastIdx  uint64
	firstLost          uint64
	base               uint32 // MSN - index, the same for every message
	problems           []string
	nProblems          int
	err                error // Subscriber.Err after Recv closed
	recvClosed         bool
	ctxErr             error
	elapsed            time.Duration
	firstAt, lastAt    time.Time
	stalledAt, resumed time.Time
}

func (r *readResult) problem(format string, a ...any) {
	r.nProblems++
	if len(r.problems) < 10 {
		r.problems = append(r.problems, fmt.Sprintf(format, a...))
	}
}

// span is the MSNs the reader accounts for: delivered or reported lost,
// from the first message's start (its MSN minus its Lost) to the last.
func (r *readResult) accounted() uint64 { return uint64(r.n) + r.lost }

// testReader consumes one subscription in a goroutine, checking as it goes:
// MSNs contiguous but for what Message.Lost reports, the payload intact
// and of this stream, index and MSN in step.
type testReader struct {
	sub   *Subscriber
	taken atomic.Int64
	done  chan struct{}
	res   readResult
}

func startReader(ctx context.Context, s *Subscriber, o readOpts) *testReader {
	r := &testReader{sub: s, done: make(chan struct{})}
	go r.run(ctx, o)
	return r
}

func (r *testReader) run(ctx context.Context, o readOpts) {
	defer close(r.done)
	res := &r.res
	start := time.Now()
	defer func() { res.elapsed = time.Since(start) }()
	recv := r.sub.Recv()
	for {
		if o.stallAt > 0 && res.n == o.stallAt && res.stalledAt.IsZero() {
			res.stalledAt = time.Now()
			select {
			case <-o.resume:
				res.resumed = time.Now()
			case <-ctx.Done():
				res.ctxErr = ctx.Err()
				return
			}
		}
		var m Message
		var ok bool
		select {
		case m, ok = <-recv:
		case <-ctx.Done():
			res.ctxErr = ctx.Err()
			return
		}
		if !ok {
			res.recvClosed = true
			res.err = r.sub.Err()
			return
		}
		idx, perr := checkPayload(m.Data, o.tag)
		if perr != nil {
			res.problem("message %d (MSN %d): %v", res.n, m.MSN, perr)
		}
		if m.Lost != 0 && !o.allowLoss {
			res.problem("message %d (MSN %d) reports Lost %d: loss not allowed here", res.n, m.MSN, m.Lost)
		}
		if res.n == 0 {
			res.firstMSN, res.firstIdx, res.firstLost, res.base = m.MSN, idx, m.Lost, m.MSN-uint32(idx)
			res.firstAt = time.Now()
		} else {
			if want := res.lastMSN + 1 + uint32(m.Lost); m.MSN != want {
				res.problem("message %d: MSN %d after %d with Lost %d (want %d): gap, duplicate or reorder", res.n, m.MSN, res.lastMSN, m.Lost, want)
			}
			if perr == nil && idx != res.lastIdx+1+m.Lost {
				res.problem("message %d: index %d after %d with Lost %d", res.n, idx, res.lastIdx, m.Lost)
			}
			if perr == nil && m.MSN-uint32(idx) != res.base {
				res.problem("message %d: MSN %d carries index %d: base %d, want %d", res.n, m.MSN, idx, m.MSN-uint32(idx), res.base)
			}
		}
		res.lastMSN, res.lastIdx, res.lastAt = m.MSN, idx, time.Now()
		res.lost += m.Lost
		res.n++
		r.taken.Store(int64(res.n))
		if o.onMsg != nil {
			o.onMsg(res.n, &m)
		}
		if o.pace != nil {
			o.pace(res.n)
		}
	}
}

// wait waits for the testReader to end (Recv closed, or its ctx ended) and
// returns its result.
func (r *testReader) wait(t testing.TB, d time.Duration) *readResult {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(d):
		t.Fatalf("testReader still running after %v: %d messages, subscriber stats %+v", d, r.taken.Load(), r.sub.Stats())
	}
	return &r.res
}

// checkComplete fails t unless res holds exactly indexes [0, n) of its
// stream, in order, with no loss, and ended with a nil error.
func checkComplete(t testing.TB, name string, res *readResult, n int) {
	t.Helper()
	checkClean(t, name, res)
	if res.err != nil || !res.recvClosed {
		t.Errorf("%s: ended with %v (Recv closed %v, ctx %v), want nil after the publisher's clean Close", name, res.err, res.recvClosed, res.ctxErr)
	}
	if res.n > 0 && res.firstIdx != res.firstLost {
		t.Errorf("%s: the first message delivered is index %d with Lost %d: %d messages before it skipped silently (the subscriber was there before the first Publish)", name, res.firstIdx, res.firstLost, res.firstIdx-res.firstLost)
	}
	if res.n != n || (n > 0 && (res.firstIdx != 0 || res.lastIdx != uint64(n-1))) {
		t.Errorf("%s: delivered %d messages, indexes %d..%d; want %d, 0..%d", name, res.n, res.firstIdx, res.lastIdx, n, n-1)
	}
	if res.lost != 0 {
		t.Errorf("%s: %d messages reported lost", name, res.lost)
	}
}

// checkClean fails t on any order, duplicate or content problem.
func checkClean(t testing.TB, name string, res *readResult) {
	t.Helper()
	if res.nProblems > 0 {
		t.Errorf("%s: %d problems, first: %s", name, res.nProblems, strings.Join(res.problems, "; "))
	}
	if res.err != nil {
		if bad := typedErr(res.err); bad != "" {
			t.Errorf("%s: %s", name, bad)
		}
	}
}

// typedErr returns why err is not one of the package's documented
// endings, or "" if it is.
func typedErr(err error) string {
	for _, s := range []error{ErrClosed, ErrPublisherGone, ErrPublisherRestarted, ErrEvicted, ErrLost, ErrPermission, ErrTransport} {
		if errors.Is(err, s) {
			if strings.Contains(err.Error(), "%!") {
				return fmt.Sprintf("error %q has a formatting fault (%%! verb)", err)
			}
			return ""
		}
	}
	return fmt.Sprintf("error %v (%T) matches none of the package's sentinel errors", err, err)
}

func fmtStats(s SubscriberStats) string {
	return fmt.Sprintf("recv %d deliv %d dup %d repaired %d oow %d naks %d status %d overruns %d lost %d rejected %d %v busy %d reg %v unpriv %v",
		s.Received, s.Delivered, s.Duplicates, s.Repaired, s.OutOfWindow, s.Naks, s.Statuses, s.Overruns, s.Lost, s.Rejected, s.RejectedBy, s.SendBusy, s.Registered, s.Unprivileged)
}

func fmtPubStats(s PublisherStats) string {
	return fmt.Sprintf("pub %d dgrams %d hb %d naks %d unsent %d tooold %d limited %d noroom %d rep-uni %d rep-multi %d busy %d reg %d evicted %d rejected %d %v statuses %d blocked %d subs %d hist [%d,%d)",
		s.Published, s.Datagrams, s.Heartbeats, s.Naks, s.NaksUnsent, s.NaksTooOld, s.NaksRateLimited, s.NaksNoRoom,
		s.RepairsUnicast, s.RepairsMulticast, s.RepairBusy, s.Registered, s.Evicted, s.Rejected, s.RejectedBy, s.Statuses, s.Blocked, s.Subscribers, s.Oldest, s.Next)
}

// waitDone waits for s to end.
func waitDone(t testing.TB, s *Subscriber, d time.Duration) error {
	t.Helper()
	select {
	case <-s.Done():
		return s.Err()
	case <-time.After(d):
		t.Fatalf("subscriber still running after %v: %s", d, fmtStats(s.Stats()))
		return nil
	}
}

// closePub closes p within d and returns what Close returned.
func closePub(t testing.TB, p *Publisher, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return p.Close(ctx)
}
