//go:build linux

package multicast

// An unprivileged subscriber over real netlink. The kernel checks
// CAP_NET_ADMIN against the credentials of the task that sends
// (netlink_sendmsg -> netlink_allowed -> ns_capable on current), at each
// send, and the subscriber sends from its own goroutines on threads the
// test does not control: dropping the capability on one locked thread of
// this process would not cover them. So the subscriber runs in a child
// process (this test binary re-executed) that never had the capability:
// it is started from a locked thread whose bounding set lost
// CAP_NET_ADMIN, so that the exec (as root) cannot give it back, and every
// thread of the child lacks it from birth.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/transport"
	"golang.org/x/sys/unix"
)

// The child's parameters, in its environment.
const (
	unprivEnv     = "CNLINK_MULTICAST_UNPRIV_CHILD" // "1": run as the child
	unprivPortEnv = "CNLINK_MULTICAST_UNPRIV_PORT"  // the publisher's port
	unprivChEnv   = "CNLINK_MULTICAST_UNPRIV_CH"    // channel val
	unprivTagEnv  = "CNLINK_MULTICAST_UNPRIV_TAG"   // payload tag
)

// unprivResult is what the child reports, as one JSON line after
// "RESULT ".
type unprivResult struct {
	NetAdmin        bool   // CAP_NET_ADMIN in the child's effective set (must be false)
	EvenErr         string // Subscribe to an even group
	EvenIsPerm      bool   // ... matched ErrPermission
	RawSendErr      string // a raw unicast to the publisher's port
	RawSendIsPerm   bool
	SubscribeErr    string
	N               int
	Lost            uint64
	FirstMSN        uint32
	LastMSN         uint32
	FirstIdx        uint64
	LastIdx         uint64
	FirstLost       uint64
	Base            uint32
	Problems        []string
	NProblems       int
	Err             string
	ErrTyped        string // "" if typed
	ErrIsGone       bool
	ErrLostCount    uint64 // a *LostError's Count: loss at the tail, with no message left to carry it
	Stats           SubscriberStats
	Drops           uint64
	DropsErr        string
	RcvBuf          int
	ReadBufferError string
}

func init() {
	if os.Getenv(unprivEnv) != "1" {
		return
	}
	res := unprivChild()
	b, _ := json.Marshal(res)
	fmt.Printf("RESULT %s\n", b)
	os.Exit(0)
}

// unprivChild is the child's whole life: check it is unprivileged, try
// the even group, subscribe to the odd one, report READY once pinned,
// consume until the stream ends, report.
func unprivChild() (res unprivResult) {
	res.NetAdmin = testenv.NetAdmin()
	port64, _ := strconv.ParseUint(os.Getenv(unprivPortEnv), 10, 32)
	chv, _ := strconv.ParseUint(os.Getenv(unprivChEnv), 10, 32)
	tag64, _ := strconv.ParseUint(os.Getenv(unprivTagEnv), 10, 32)
	ch := transport.CbID{Idx: 0x434e4c4b, Val: uint32(chv)}
	pubPort, tag := uint32(port64), uint32(tag64)

	// An even group is closed to the unprivileged.
	if tr, err := transport.Open(transport.Config{}); err == nil {
		s, err := Subscribe(tr, SubscriberConfig{Group: groupUnprivEven, Channel: ch})
		if err == nil {
			res.EvenErr = "<nil>"
			_ = s.Close()
		} else {
			res.EvenErr, res.EvenIsPerm = err.Error(), errors.Is(err, ErrPermission)
		}
		_ = tr.Close()
	}
	// A raw send to a user port is refused.
	if tr, err := transport.Open(transport.Config{}); err == nil {
		b, _ := wire.Append(nil, &wire.Frame{ID: ch, Type: wire.TypeStatus, Port: tr.LocalPort()}, nil, nil)
		if err := tr.Send(transport.Addr{Port: pubPort}, b); err != nil {
			res.RawSendErr, res.RawSendIsPerm = err.Error(), errors.Is(err, transport.ErrPermission) && errors.Is(err, unix.EPERM)
		} else {
			res.RawSendErr = "<nil>"
		}
		_ = tr.Close()
	}

	c, err := transport.Open(transport.Config{})
	if err != nil {
		res.SubscribeErr = err.Error()
		return res
	}
	if err := c.SetReadBuffer(4 << 10); err != nil {
		res.ReadBufferError = err.Error()
	}
	tr := &probedConn{Conn: c}
	tr.rcvbuf, _ = c.ReadBuffer()
	res.RcvBuf = tr.rcvbuf
	sub, err := Subscribe(tr, SubscriberConfig{Group: groupUnprivOdd, Channel: ch, Publisher: pubPort, PublisherTimeout: 2 * time.Second})
	if err != nil {
		res.SubscribeErr = err.Error()
		_ = tr.Close()
		return res
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	if err := waitFor(ctx, func() bool { p, _ := sub.Publisher(); return p == pubPort }); err != nil {
		res.SubscribeErr = "never pinned the publisher: " + err.Error()
		return res
	}
	fmt.Println("READY")
	r := startReader(ctx, sub, readOpts{tag: tag, allowLoss: true, pace: func(k int) {
		if k%64 == 0 {
			time.Sleep(100 * time.Microsecond) // a little slow: the 4 KiB socket overruns
		}
	}})
	<-r.done
	x := &r.res
	res.N, res.Lost, res.FirstMSN, res.LastMSN, res.FirstIdx, res.LastIdx = x.n, x.lost, x.firstMSN, x.lastMSN, x.firstIdx, x.lastIdx
	res.FirstLost, res.Base, res.Problems, res.NProblems = x.firstLost, x.base, x.problems, x.nProblems
	if x.err != nil {
		res.Err, res.ErrTyped, res.ErrIsGone = x.err.Error(), typedErr(x.err), errors.Is(x.err, ErrPublisherGone)
		if le := (*LostError)(nil); errors.As(x.err, &le) {
			res.ErrLostCount = le.Count
		}
	} else if x.ctxErr != nil {
		res.Err = "reader: " + x.ctxErr.Error()
	}
	_ = sub.Close()
	res.Stats = sub.Stats()
	d, derr := tr.Drops()
	res.Drops = d
	if derr != nil {
		res.DropsErr = derr.Error()
	}
	return res
}

// startUnprivileged starts cmd from a thread whose bounding set and
// capability sets lack CAP_NET_ADMIN. The thread is never handed back to
// the scheduler: its goroutine ends locked, and the runtime retires it.
func startUnprivileged(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	var onThread func()
	onThread = func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The main thread: it cannot be retired, only parked, and
			// /proc/self/status shows its capabilities. Hold it while
			// another goroutine gets another thread.
			done := make(chan struct{})
			go func() { defer close(done); onThread() }()
			<-done
			runtime.UnlockOSThread()
			return
		}
		// Deliberately no UnlockOSThread: this thread stays unprivileged.
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, unix.CAP_NET_ADMIN, 0, 0, 0); err != nil {
			errc <- fmt.Errorf("PR_CAPBSET_DROP: %w", err)
			return
		}
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- fmt.Errorf("capget: %w", err)
			return
		}
		const bit = 1 << unix.CAP_NET_ADMIN
		data[0].Effective &^= bit
		data[0].Permitted &^= bit
		data[0].Inheritable &^= bit
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- fmt.Errorf("capset: %w", err)
			return
		}
		errc <- cmd.Start()
	}
	go onThread()
	return <-errc
}

// TestIntegrationMulticastUnprivileged: a subscriber without
// CAP_NET_ADMIN (a child process that never had it) on an odd group,
// following a publisher with a tiny history that nobody registered with
// runs at full speed: it receives; its STATUS and NAK sends fail with
// EPERM, so Stats().Unprivileged becomes true and it never registers; the
// kernel drops for its 4 KiB socket show as loss in Message.Lost, never
// as a silent gap: delivered + lost covers every MSN from the start to the
// last delivered. Subscribing to an even group fails with ErrPermission.
func TestIntegrationMulticastUnprivileged(t *testing.T) {
	requireRoot(t)
	ch := randomChannel()
	pub, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupUnprivOdd, Channel: ch, History: 16})
	const tag, n = 0x554e5052, 20000
	ctx := testCtx(t, 50*time.Second)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$", "-test.count=1")
	cmd.Env = append(os.Environ(), unprivEnv+"=1",
		unprivPortEnv+"="+strconv.FormatUint(uint64(pub.Port()), 10),
		unprivChEnv+"="+strconv.FormatUint(uint64(ch.Val), 10),
		unprivTagEnv+"="+strconv.FormatUint(tag, 10))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := startUnprivileged(cmd); err != nil {
		t.Fatalf("starting the unprivileged child: %v", err)
	}
	if !testenv.NetAdmin() {
		t.Fatalf("this process lost CAP_NET_ADMIN starting the child")
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var result string
	ready := false
	next := func(d time.Duration) (string, bool) {
		select {
		case l, ok := <-lines:
			return l, ok
		case <-time.After(d):
			return "", false
		}
	}
	for !ready && result == "" {
		l, ok := next(15 * time.Second)
		if !ok {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("the child never got ready; stderr:\n%s", stderr.String())
		}
		switch {
		case l == "READY":
			ready = true
		case strings.HasPrefix(l, "RESULT "):
			result = l
		default:
			t.Logf("child: %s", l)
		}
	}
	if ready {
		if err := publishRange(ctx, pub, tag, 0, n); err != nil {
			t.Fatal(err)
		}
		if err := closePub(t, pub, 10*time.Second); err != nil {
			t.Errorf("Close: %v", err)
		}
		for result == "" {
			l, ok := next(40 * time.Second)
			if !ok {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("no result from the child; stderr:\n%s", stderr.String())
			}
			if strings.HasPrefix(l, "RESULT ") {
				result = l
			} else {
				t.Logf("child: %s", l)
			}
		}
	}
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("child: %v; stderr:\n%s", err, stderr.String())
	}
	var res unprivResult
	if err := json.Unmarshal([]byte(strings.TrimPrefix(result, "RESULT ")), &res); err != nil {
		t.Fatalf("child result %q: %v", result, err)
	}
	ps := pub.Stats()
	t.Logf("child: %d delivered (index %d..%d), lost %d, ended %q; kernel drops %d (SO_RCVBUF %d); %s", res.N, res.FirstIdx, res.LastIdx, res.Lost, res.Err, res.Drops, res.RcvBuf, fmtStats(res.Stats))
	t.Logf("even group: %q; raw send: %q; %s", res.EvenErr, res.RawSendErr, fmtPubStats(ps))
	if res.NetAdmin {
		t.Fatalf("the child has CAP_NET_ADMIN: the test proves nothing")
	}
	if res.SubscribeErr != "" {
		t.Fatalf("child could not subscribe to odd group %d: %s", groupUnprivOdd, res.SubscribeErr)
	}
	if !res.EvenIsPerm {
		t.Errorf("unprivileged Subscribe to even group %d: %q, want an error matching ErrPermission", groupUnprivEven, res.EvenErr)
	}
	if !res.RawSendIsPerm {
		t.Errorf("unprivileged raw unicast: %q, want ErrPermission and EPERM", res.RawSendErr)
	}
	if res.NProblems > 0 {
		t.Errorf("child saw %d problems: %s", res.NProblems, strings.Join(res.Problems, "; "))
	}
	if !res.Stats.Unprivileged || res.Stats.Registered {
		t.Errorf("child stats Unprivileged %v Registered %v, want true, false", res.Stats.Unprivileged, res.Stats.Registered)
	}
	if res.Stats.Naks != 0 || res.Stats.Statuses != 0 || ps.Naks != 0 || ps.Statuses != 0 {
		t.Errorf("NAK or STATUS got through: child sent %d NAKs %d STATUS, publisher handled %d NAKs %d STATUS", res.Stats.Naks, res.Stats.Statuses, ps.Naks, ps.Statuses)
	}
	if res.N == 0 {
		t.Fatalf("the child delivered nothing (%s)", res.Err)
	}
	if res.FirstIdx-res.FirstLost != 0 {
		t.Errorf("first message index %d with Lost %d: the messages before it are unaccounted", res.FirstIdx, res.FirstLost)
	}
	if span := uint64(res.LastMSN-res.Base) + 1; res.N+int(res.Lost) != int(span) {
		t.Errorf("delivered %d + lost %d = %d, want the span %d of MSNs: a silent gap", res.N, res.Lost, res.N+int(res.Lost), span)
	}
	if res.Stats.Lost != res.Lost+res.ErrLostCount {
		t.Errorf("Stats.Lost %d, sum of Message.Lost %d + the LostError's %d", res.Stats.Lost, res.Lost, res.ErrLostCount)
	}
	if res.Lost == 0 || res.Drops == 0 {
		t.Errorf("no loss (Lost %d, kernel drops %d): the test did not make the unprivileged subscriber lose", res.Lost, res.Drops)
	}
	if res.Drops > 0 && res.Stats.Overruns == 0 {
		t.Errorf("kernel dropped %d datagrams for the child, which saw no overrun", res.Drops)
	}
	switch {
	case res.Err == "":
		if res.LastIdx != n-1 {
			t.Errorf("nil error at index %d, want the last %d", res.LastIdx, n-1)
		}
	case res.ErrTyped != "":
		t.Errorf("child ended with an untyped error: %s", res.ErrTyped)
	case res.ErrLostCount > 0:
		// The tail was lost: everything is accounted for with it.
		if got := int(res.LastIdx) + 1 + int(res.ErrLostCount); got != n {
			t.Errorf("last index %d + %d lost at the tail = %d, want %d", res.LastIdx, res.ErrLostCount, got, n)
		}
	case !res.ErrIsGone:
		t.Errorf("child ended with %s, want nil, a LostError for the tail, or ErrPublisherGone", res.Err)
	}
}

// eperm is a subscriber socket that behaves as an unprivileged one on
// send (every send to a user port or group is refused with EPERM, as the
// kernel refuses it) and that loses, as a kernel overrun, every group
// datagram carrying an MDATA at or after dropFrom: a deterministic tail
// loss on real netlink.
type eperm struct {
	*probedConn
	ch       transport.CbID
	dropFrom atomic.Uint32
	armed    atomic.Bool
	dropped  atomic.Int64
}

func (c *eperm) Send(dst transport.Addr, b []byte) error {
	if dst.Port != 0 || dst.Group != 0 {
		return &transport.OpError{Op: "send", Addr: dst, Kind: transport.ErrPermission, Err: unix.EPERM}
	}
	return c.probedConn.Send(dst, b)
}

func (c *eperm) Receive(buf []byte) (transport.Packet, error) {
	p, err := c.probedConn.Receive(buf)
	if err != nil || p.Overrun || p.Group == 0 {
		return p, err
	}
	var r wire.Reader
	r.Reset(p.Data)
	for r.Next() {
		if f, ferr := r.Frame(); ferr == nil && f.ID == c.ch && f.Header.Type == wire.TypeMData && c.armed.Load() && int32(f.Seq-c.dropFrom.Load()) >= 0 {
			c.dropped.Add(1)
			return transport.Packet{Overrun: true}, nil
		}
	}
	return p, nil
}

// TestIntegrationMulticastUnprivilegedTailLoss: an unprivileged
// subscriber (its sends refused with EPERM) whose last datagrams before
// the publisher's FIN are lost. It cannot repair; the loss must still
// show: as Message.Lost on a later message (there is none), or as a typed
// error. Ending with a nil error after delivering fewer messages than
// were published, with the difference counted nowhere, is a silent gap.
func TestIntegrationMulticastUnprivilegedTailLoss(t *testing.T) {
	requireRoot(t)
	ch := randomChannel()
	pub, _ := startPublisher(t, transport.Config{}, PublisherConfig{Group: groupUnprivOdd, Channel: ch, History: 16})
	const tag, n = 0x5441494c, 3000
	tr := &eperm{probedConn: openProbed(t, transport.Config{}), ch: ch}
	sub, err := Subscribe(tr, SubscriberConfig{Group: groupUnprivOdd, Channel: ch, Publisher: pub.Port(), PublisherTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	waitPinned(t, pub, []*Subscriber{sub}, 0)
	mustWait(t, 5*time.Second, "the subscriber to find it is unprivileged", func() bool { return sub.Stats().Unprivileged })
	base := pub.Stats().Next
	tr.dropFrom.Store(base + n - 5)
	tr.armed.Store(true)
	ctx := testCtx(t, 20*time.Second)
	r := startReader(ctx, sub, readOpts{tag: tag, allowLoss: true})
	if err := publishRange(ctx, pub, tag, 0, n); err != nil {
		t.Fatal(err)
	}
	if err := closePub(t, pub, 10*time.Second); err != nil {
		t.Fatalf("Close: %v", err)
	}
	res := r.wait(t, 10*time.Second)
	s := sub.Stats()
	t.Logf("%d delivered (index %d..%d), lost %d, ended %v; %d datagrams dropped at the tail; %s", res.n, res.firstIdx, res.lastIdx, res.lost, res.err, tr.dropped.Load(), fmtStats(s))
	checkClean(t, "unprivileged", res)
	if tr.dropped.Load() == 0 && !errors.Is(res.err, ErrLost) {
		// (The subscriber may lose the tail on its own, before the
		// injected drop: then the LostError is what is checked.)
		t.Fatalf("nothing dropped at the tail: the test proves nothing")
	}
	if res.err == nil && res.accounted() != n {
		t.Errorf("ended with a nil error after delivering %d and reporting %d lost of %d published: %d messages vanished silently", res.n, res.lost, n, n-int(res.accounted()))
	}
	if res.err != nil && !errors.Is(res.err, ErrLost) && !errors.Is(res.err, ErrPublisherGone) {
		t.Errorf("ended with %v, want nil with the tail reported lost, or ErrLost", res.err)
	}
}
