//go:build linux

package hostile

// Case 3: the learning squatter, with real processes. The test binary is
// re-executed (TestMain dispatches on CNLINK_HOSTILE_ROLE) as the peer A,
// which dials the test's endpoint B and streams, and is then killed; and
// as the squatter, which binds A's port once it is free, listens to what
// B sends there and forges.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
)

// Parameters passed to the children.
const (
	envTarget = "CNLINK_HOSTILE_TARGET" // B's port
	envCount  = "CNLINK_HOSTILE_COUNT"  // messages A sends
	envKey    = "CNLINK_HOSTILE_KEY"    // stream key of A's messages
	envPort   = "CNLINK_HOSTILE_PORT"   // the port the squatter binds (A's)
	envOracle = "CNLINK_HOSTILE_ORACLE" // "epoch,next": A's epoch and next DSN, as A's own tap saw them
)

// child is a re-executed test binary playing a role; its stdout lines
// are its reports.
type child struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *strings.Builder
	mu     sync.Mutex
	log    []string
	done   chan struct{}
}

func startChild(t *testing.T, role string, env ...string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{roleEnv + "=" + role}, env...)...)
	// A child outlives nothing: it dies with the test process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, lines: make(chan string, 100), stderr: new(strings.Builder), done: make(chan struct{})}
	cmd.Stderr = &lockedWriter{w: c.stderr, mu: &c.mu}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.done)
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.mu.Lock()
			c.log = append(c.log, sc.Text())
			c.mu.Unlock()
			c.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
		_ = cmd.Wait()
	})
	return c
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// wait returns the fields of the child's next report starting with word.
func (c *child) wait(t *testing.T, word string, timeout time.Duration) map[string]string {
	t.Helper()
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				t.Fatalf("the %s child ended without reporting %q:\n%s", c.cmd.Env[len(os.Environ())], word, c.output())
			}
			f := strings.Fields(l)
			if len(f) == 0 || f[0] != word {
				continue
			}
			kv := make(map[string]string)
			for _, x := range f[1:] {
				if k, v, ok := strings.Cut(x, "="); ok {
					kv[k] = v
				}
			}
			return kv
		case <-tm.C:
			t.Fatalf("no %q report from the child within %v:\n%s", word, timeout, c.output())
		}
	}
}

func (c *child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return "stdout:\n  " + strings.Join(c.log, "\n  ") + "\nstderr:\n" + c.stderr.String()
}

func num(t *testing.T, kv map[string]string, k string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(kv[k], 0, 64)
	if err != nil {
		t.Fatalf("report field %s=%q: %v", k, kv[k], err)
	}
	return v
}

// Case 3. Child A opens an endpoint on a kernel-assigned port, dials B
// (this test's endpoint) and streams; B's application reads and checks
// every message. The test kills A with SIGKILL: no RST, B knows nothing.
// A squatter process binds A's old port and listens: B's DATA (the test
// sends one after A died, and Flushes) and keepalive PINGs carry B's
// epoch and DSNs. The squatter forges an ACK with STATUS_REQ (ack = B's
// epoch + 1) that also acknowledges B's DATA, to learn A's epoch from
// B's answer and to fake the delivery; then DATA with A's epoch and the
// right DSNs, a request, a PING, a FIN. A's epoch and next DSN are
// handed to the squatter too (A's own tap saw them) as the worst case:
// a squatter that knows everything.
//
// B's session is pinned to A's kernel-stamped credentials: the first
// datagram from A's port with another pid ends it with ErrPeerGone
// (Rejected["credentials_changed"]), B answers nothing (nothing learnt),
// its application gets nothing forged and its Flush fails.
func TestLearningSquatter(t *testing.T) {
	testenv.RequireNetAdmin(t)
	tb, err := transport.Open(transport.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// B's keepalive (10 s; A pings B every second while alive) leaves
	// the squatter time to bind A's port before B sends there, even on a
	// loaded machine: a send to a port nobody holds ends the session at
	// once (ECONNREFUSED), which would pre-empt the attack. The test
	// makes B send (DATA) once the squatter holds the port.
	b, err := reliable.NewEndpoint(tb, &reliable.Config{KeepAlive: 10 * time.Second, DeadPeerTimeout: 30 * time.Second})
	if err != nil {
		tb.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	mem := watchMem()

	const n, key = 200, 0xa0a0
	peer := startChild(t, "peer",
		fmt.Sprintf("%s=%d", envTarget, b.LocalPort()), fmt.Sprintf("%s=%d", envCount, n), fmt.Sprintf("%s=%d", envKey, key))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	sb, err := b.Accept(ctx)
	if err != nil {
		t.Fatalf("accept: %v\n%s", err, peer.output())
	}
	scratch := make([]byte, 0, msgSize)
	for i := range n {
		select {
		case m := <-sb.Recv():
			if err := checkMsg(m, key, i, scratch); err != nil {
				t.Fatalf("from A: message %d: %v", i, err)
			}
		case <-sb.Done():
			t.Fatalf("B's session ended after %d of A's messages: %v", i, sb.Err())
		case <-ctx.Done():
			t.Fatalf("B got %d of A's %d messages", i, n)
		}
	}
	ready := peer.wait(t, "ready", 10*time.Second)
	aPort, aPID := uint32(num(t, ready, "port")), num(t, ready, "pid")
	aEpoch, aNext := num(t, ready, "epoch"), num(t, ready, "next")
	if sb.Peer() != aPort {
		t.Fatalf("B's session is with port %d, A reports port %d", sb.Peer(), aPort)
	}
	if c := sb.PeerCreds(); !c.Valid || uint64(c.PID) != aPID {
		t.Fatalf("B's session is pinned to %+v, A is pid %d", c, aPID)
	}
	t.Logf("A: pid %d port %d epoch %#x next DSN %#x; B: port %d", aPID, aPort, aEpoch, aNext, b.LocalPort())

	// A dies without a word.
	if err := peer.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-peer.done
	_ = peer.cmd.Wait()
	killedAt := time.Now()
	st0 := b.Stats()

	squatter := startChild(t, "squatter",
		fmt.Sprintf("%s=%d", envPort, aPort), fmt.Sprintf("%s=%d", envTarget, b.LocalPort()),
		fmt.Sprintf("%s=%d,%d", envOracle, aEpoch, aNext))
	bound := squatter.wait(t, "bound", 10*time.Second)
	sPID := num(t, bound, "pid")
	t.Logf("squatter: pid %d bound A's port %d %v after A's death (after %s attempts)", sPID, aPort, time.Since(killedAt).Round(time.Millisecond), bound["attempts"])
	if err := sb.Err(); err != nil {
		t.Fatalf("B's session ended before the squatter sent anything (the test lost its race with B's keepalive): %v", err)
	}

	// B's application sends after A died, and wants it acknowledged.
	endAt := make(chan time.Time, 1)
	go func() {
		<-sb.Done()
		endAt <- time.Now()
	}()
	if err := sb.Send(ctx, []byte("from B, after A died")); err != nil {
		t.Fatalf("B's Send: %v", err)
	}
	flushErr := make(chan error, 1)
	go func() {
		fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
		defer fcancel()
		flushErr <- sb.Flush(fctx)
	}()

	first := squatter.wait(t, "first", 10*time.Second)
	firstAt := time.Unix(0, int64(num(t, first, "unixnano")))
	var ended time.Time
	select {
	case ended = <-endAt:
	case <-time.After(5 * time.Second):
		t.Fatalf("B's session did not end within 5s of the squatter's first datagram\n%s", squatter.output())
	}
	latency := ended.Sub(firstAt)
	done := squatter.wait(t, "done", 10*time.Second)
	st1 := b.Stats()
	d := rejectedDelta(st0, st1)
	t.Logf("squatter heard %s, learnt epoch %s, sent %s forged frames in %s datagrams, got %s frames back (%s)",
		first["heard"], done["learnt"], done["frames"], done["datagrams"], done["answers"], done["answertypes"])
	t.Logf("B's session ended %v after the squatter's first forged datagram: %v", latency, sb.Err())
	t.Logf("B Rejected delta %v; ResetsSent %d", d, st1.ResetsSent)

	if latency > time.Second {
		t.Errorf("B's session ended %v after the squatter's first datagram, want within 1s", latency)
	}
	if latency < 0 {
		t.Errorf("B's session ended %v before the squatter's first datagram: %v", -latency, sb.Err())
	}
	if err := sb.Err(); !errors.Is(err, reliable.ErrPeerGone) {
		t.Errorf("B's session ended with %v, want ErrPeerGone", err)
	}
	if d["credentials_changed"] == 0 {
		t.Errorf("Rejected[credentials_changed] did not move: %v", d)
	}
	select {
	case err := <-flushErr:
		if err == nil {
			t.Errorf("B's Flush succeeded after A died: the squatter's ACK was taken")
		} else if !errors.Is(err, reliable.ErrPeerGone) {
			t.Errorf("B's Flush: %v, want ErrPeerGone", err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("B's Flush did not return")
	}
	if done["learnt"] != "none" {
		t.Errorf("the squatter learnt A's epoch from B's answer: %s (A's was %#x)", done["learnt"], aEpoch)
	}
	if done["answers"] != "0" {
		t.Errorf("B answered the squatter: %s frames (%s)", done["answers"], done["answertypes"])
	}
	// Nothing forged reached B's application.
	for {
		select {
		case m := <-sb.Recv():
			t.Errorf("B's application received %s after A's %d messages", describe(m), n)
			continue
		default:
		}
		break
	}
	select {
	case q := <-sb.Requests():
		t.Errorf("B's application received a request: %s", describe(q.Data))
	default:
	}
	if t.Failed() {
		t.Logf("squatter output:\n%s", squatter.output())
	}
	mem.check(t, "squatter", 8<<20)
}

// runPeerRole is child A: dial B, stream, report, wait to be killed.
func runPeerRole() int {
	target, _ := strconv.ParseUint(os.Getenv(envTarget), 10, 32)
	n, _ := strconv.Atoi(os.Getenv(envCount))
	key, _ := strconv.ParseUint(os.Getenv(envKey), 10, 64)
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "peer: "+format+"\n", args...)
		return 1
	}
	c, err := transport.Open(transport.Config{})
	if err != nil {
		return fail("open: %v", err)
	}
	tp := newTap(c, reliable.DefaultChannel, uint32(target))
	ep, err := reliable.NewEndpoint(tp, nil)
	if err != nil {
		return fail("endpoint: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := ep.Dial(ctx, uint32(target), transport.CbID{})
	if err != nil {
		return fail("dial: %v", err)
	}
	for i := range n {
		if err := s.Send(ctx, appendMsg(nil, key, i)); err != nil {
			return fail("send %d: %v", i, err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		return fail("flush: %v", err)
	}
	v := tp.view()
	fmt.Printf("ready port=%d pid=%d epoch=%d next=%d\n", ep.LocalPort(), os.Getpid(), v.peerEpoch, uint32(v.peerNext))
	_ = os.Stdout.Sync()
	time.Sleep(30 * time.Second) // the test kills us long before
	return fail("not killed")
}

// runSquatterRole is the squatter: bind A's port once free, listen, forge.
func runSquatterRole() int {
	port, _ := strconv.ParseUint(os.Getenv(envPort), 10, 32)
	target, _ := strconv.ParseUint(os.Getenv(envTarget), 10, 32)
	var oEpoch, oNext uint32
	if _, err := fmt.Sscanf(os.Getenv(envOracle), "%d,%d", &oEpoch, &oNext); err != nil {
		fmt.Fprintf(os.Stderr, "squatter: %s: %v\n", envOracle, err)
		return 1
	}
	var c *transport.Conn
	var err error
	attempts := 0
	for deadline := time.Now().Add(5 * time.Second); ; {
		attempts++
		if c, err = transport.Open(transport.Config{Port: uint32(port)}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "squatter: bind %d: %v\n", port, err)
			return 1
		}
		time.Sleep(2 * time.Millisecond)
	}
	defer c.Close()
	fmt.Printf("bound port=%d pid=%d attempts=%d\n", c.LocalPort(), os.Getpid(), attempts)
	_ = os.Stdout.Sync()

	type rx struct {
		f   transport.Frame
		h   wire.Header
		at  time.Time
		err error
	}
	frames := make(chan rx, 1024)
	go func() {
		buf := make([]byte, 1<<16)
		for {
			p, err := c.Receive(buf)
			if err != nil {
				frames <- rx{err: err}
				return
			}
			if p.From != uint32(target) {
				continue
			}
			sc := transport.NewScanner(p.Data)
			for sc.Next() {
				f := *sc.Frame()
				h, err := wire.ParseHeader(f.Payload)
				if err != nil {
					continue
				}
				f.Payload = append([]byte(nil), f.Payload...)
				frames <- rx{f: f, h: h, at: time.Now()}
			}
		}
	}()
	send := func(b []byte) {
		if err := c.Send(transport.Addr{Port: uint32(target)}, b); err != nil {
			fmt.Fprintf(os.Stderr, "squatter: send: %v\n", err)
		}
	}

	// Listen: B's DATA and PINGs carry B's epoch (cn_msg.ack) and DSN.
	var heard rx
	for heard.h.Type != wire.TypeData && heard.h.Type != wire.TypePing {
		select {
		case heard = <-frames:
			if heard.err != nil {
				fmt.Fprintf(os.Stderr, "squatter: receive: %v\n", heard.err)
				return 1
			}
		case <-time.After(8 * time.Second):
			fmt.Fprintf(os.Stderr, "squatter: heard nothing from B\n")
			return 1
		}
	}
	bEpoch, bSeq := heard.f.Ack, heard.f.Seq
	ch := heard.f.ID
	nFrames, nDgrams := 0, 0

	// First forged datagram: an ACK with STATUS_REQ that acknowledges B's
	// DATA (a Flush would return) and asks B for its status, whose ACK
	// would carry A's epoch + 1 and A's next DSN.
	ack := frame(nil, wire.Frame{ID: ch, Port: uint32(port), Seq: bSeq, Ack: bEpoch + 1, Type: wire.TypeAck, Flags: wire.FlagStatusReq, Arg: bSeq + 1},
		ackBody(bSeq+1+4096), nil)
	firstAt := time.Now()
	send(ack)
	nFrames, nDgrams = nFrames+1, nDgrams+1
	fmt.Printf("first unixnano=%d heard=%s/seq=%#x/epoch=%#x\n", firstAt.UnixNano(), heard.h.Type, bSeq, bEpoch)
	_ = os.Stdout.Sync()

	answers := 0
	var types []string
	learnt := "none"
	epoch, next := oEpoch, oNext
	collect := func(d time.Duration) {
		tm := time.After(d)
		for {
			select {
			case r := <-frames:
				if r.err != nil {
					return
				}
				if r.at.Before(firstAt) {
					continue // sent before the forgery: B's own DATA, PINGs
				}
				desc := fmt.Sprintf("%s/seq=%#x/ack=%#x/arg=%#x", r.h.Type, r.f.Seq, r.f.Ack, r.h.Arg)
				if r.h.Type == wire.TypeData || r.h.Type == wire.TypePing {
					// B's own frames (a retransmission on its way
					// when the forgery arrived): nothing learnt.
					types = append(types, "own:"+desc)
					continue
				}
				answers++
				types = append(types, desc)
				if r.h.Type == wire.TypeAck && r.f.Ack != bEpoch+1 {
					epoch, next = r.f.Ack-1, r.h.Arg
					learnt = fmt.Sprintf("%#x/next=%#x", epoch, next)
				}
			case <-tm:
				return
			}
		}
	}
	collect(300 * time.Millisecond)

	// Then the injection, with A's epoch and the right DSNs.
	var b []byte
	for i := range uint32(10) {
		b = frame(b, wire.Frame{ID: ch, Port: uint32(port), Seq: next + i, Ack: epoch, Type: wire.TypeData}, nil, forged("squatter", int(i)))
		nFrames++
		if i%3 == 2 {
			send(b)
			b = b[:0]
			nDgrams++
		}
	}
	b = frame(b, wire.Frame{ID: ch, Port: uint32(port), Seq: next + 10, Ack: epoch, Type: wire.TypeData, Flags: wire.FlagRequest}, nil, forged("squatter request", 10))
	b = frame(b, wire.Frame{ID: ch, Port: uint32(port), Seq: next + 11, Ack: epoch, Type: wire.TypePing, Flags: wire.FlagStatusReq}, nil, nil)
	b = frame(b, wire.Frame{ID: ch, Port: uint32(port), Seq: bSeq, Ack: bEpoch + 1, Type: wire.TypeAck, Arg: bSeq + 1}, ackBody(bSeq+1+4096), nil)
	b = frame(b, wire.Frame{ID: ch, Port: uint32(port), Seq: next + 11, Ack: epoch, Type: wire.TypeData, Flags: wire.FlagFin}, nil, nil)
	send(b)
	nFrames, nDgrams = nFrames+4, nDgrams+1
	for i := range uint32(5) {
		send(frame(nil, wire.Frame{ID: ch, Port: uint32(port), Seq: next + 12 + i, Ack: epoch, Type: wire.TypePing}, nil, nil))
		nFrames, nDgrams = nFrames+1, nDgrams+1
		time.Sleep(20 * time.Millisecond)
	}
	collect(300 * time.Millisecond)
	if len(types) == 0 {
		types = append(types, "-")
	}
	fmt.Printf("done learnt=%s frames=%d datagrams=%d answers=%d answertypes=%s\n", learnt, nFrames, nDgrams, answers, strings.Join(types, ","))
	_ = os.Stdout.Sync()
	return 0
}
