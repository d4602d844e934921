//go:build linux

package interop

// The harness: running the C peer, Go endpoints on real netlink sockets,
// and the message contents both sides verify.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
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
	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
)

// cpeer is a running C peer process.
type cpeer struct {
	t      *testing.T
	cmd    *exec.Cmd
	args   []string
	port   uint32
	stderr lockedBuffer
	exited chan struct{}
	last   string // the last line of stdout: the results
	err    error  // of cmd.Wait
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startPeer runs the C peer with args (and -v: its diagnostics are logged
// when the test fails) and waits until it has bound its port.
func startPeer(t *testing.T, args ...string) *cpeer {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	args = append(args, "-v")
	p := &cpeer{t: t, args: args, exited: make(chan struct{})}
	p.cmd = exec.Command(peerBin, args...)
	p.cmd.Stderr = &p.stderr
	if dir := os.Getenv("CNLINK_INTEROP_LOGDIR"); dir != "" {
		// Keep every C peer's diagnostics (add -vv to its arguments for
		// a line per datagram received and per ACK sent).
		f, err := os.CreateTemp(dir, strings.ReplaceAll(t.Name(), "/", "_")+"-*.log")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		p.cmd.Stderr = io.MultiWriter(&p.stderr, f)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	portc := make(chan uint32, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			if v, ok := strings.CutPrefix(s.Text(), "port "); ok {
				n, _ := strconv.ParseUint(v, 10, 32)
				portc <- uint32(n)
				continue
			}
			p.last = s.Text()
		}
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			st := p.stderr.String()
			if len(st) > 8000 {
				st = "…" + st[len(st)-8000:]
			}
			t.Logf("C peer %v (port %d), stderr:\n%s", p.args, p.port, st)
		}
	})
	select {
	case p.port = <-portc:
	case <-p.exited:
		t.Fatalf("the C peer %v exited before binding: %v\n%s", args, p.err, p.stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("the C peer %v did not print its port", args)
	}
	return p
}

// kill ends the process (SIGKILL) and waits for it.
func (p *cpeer) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// wait waits for the peer to exit and returns its results (key=value).
func (p *cpeer) wait(timeout time.Duration) (map[string]string, error) {
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.kill()
		return nil, fmt.Errorf("the C peer did not exit within %v", timeout)
	}
	res := map[string]string{}
	for _, kv := range strings.Fields(p.last) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			res[k] = v
		}
	}
	if res["result"] == "" {
		return res, fmt.Errorf("the C peer printed no results (exit: %v)", p.err)
	}
	return res, nil
}

// expectOK waits for the peer and fails t unless it reports result=ok
// and exits 0. It returns the results.
func (p *cpeer) expectOK(t *testing.T, timeout time.Duration) map[string]string {
	t.Helper()
	res, err := p.wait(timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("C peer: %s", p.last)
	if res["result"] != "ok" || p.err != nil {
		t.Errorf("C peer: result=%s end=%s (exit %v), want result=ok", res["result"], res["end"], p.err)
	}
	return res
}

func num(res map[string]string, k string) uint64 {
	n, _ := strconv.ParseUint(res[k], 10, 64)
	return n
}

// newEndpoint opens a Go endpoint on a real netlink socket with 4 MiB
// kernel buffers.
func newEndpoint(t *testing.T, cfg *reliable.Config) *reliable.Endpoint {
	t.Helper()
	return newEndpointSock(t, transport.Config{ReadBuffer: 4 << 20, WriteBuffer: 4 << 20}, cfg)
}

// newEndpointSock opens a Go endpoint on a netlink socket configured by tc.
func newEndpointSock(t *testing.T, tc transport.Config, cfg *reliable.Config) *reliable.Endpoint {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	testenv.RequireNetAdmin(t)
	tr, err := transport.Open(tc)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := reliable.NewEndpoint(tr, cfg)
	if err != nil {
		tr.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	return ep
}

func portArg(ep *reliable.Endpoint) string { return strconv.FormatUint(uint64(ep.LocalPort()), 10) }

// Message contents, as cpeer makes and checks them: message i is i as 8
// little-endian bytes, then byte j is byte(i*0x9E3779B97F4A7C15 >> 8*(j%8))
// ^ byte(j). Requests use i | reqBit.

const reqBit = 1 << 63

func fillMsg(p []byte, i uint64) []byte {
	binary.LittleEndian.PutUint64(p, i)
	for j := 8; j < len(p); j++ {
		p[j] = byte((i*0x9E3779B97F4A7C15)>>(8*(j&7))) ^ byte(j)
	}
	return p
}

func checkMsg(p []byte, i uint64) bool {
	if len(p) < 8 || binary.LittleEndian.Uint64(p) != i {
		return false
	}
	for j := 8; j < len(p); j++ {
		if p[j] != byte((i*0x9E3779B97F4A7C15)>>(8*(j&7)))^byte(j) {
			return false
		}
	}
	return true
}

func mix64(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// cLen is the length of cpeer's message i with -size size (and -vary).
func cLen(i uint64, size int, vary bool) int {
	if !vary || size <= 8 {
		return size
	}
	return 8 + int(mix64(i)%uint64(size-7))
}

// goLen is the length of the Go side's message i: 64 to 256 bytes.
func goLen(i int) int { return 64 + (i*37)%193 }

// next returns the session's next message, or its error once it ended
// and everything it received was taken.
func next(ctx context.Context, s *reliable.Session) ([]byte, error) {
	select {
	case m := <-s.Recv():
		return m, nil
	default:
	}
	select {
	case m := <-s.Recv():
		return m, nil
	case <-s.Done():
		select {
		case m := <-s.Recv():
			return m, nil
		default:
			return nil, s.Err()
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// recvStream takes n messages from s and checks each is cpeer's message i
// (of -size size, -vary vary), in order.
func recvStream(ctx context.Context, s *reliable.Session, n, size int, vary bool) error {
	for i := range n {
		m, err := next(ctx, s)
		if err != nil {
			return fmt.Errorf("after %d of %d messages: %w", i, n, err)
		}
		if !checkMsg(m, uint64(i)) || len(m) != cLen(uint64(i), size, vary) {
			return fmt.Errorf("message %d (%d bytes) is not the C peer's message %d", i, len(m), i)
		}
		s.Recycle(m)
	}
	return nil
}

// sendStream sends n verifiable messages of goLen bytes.
func sendStream(ctx context.Context, s *reliable.Session, n int) error {
	buf := make([]byte, 256)
	for i := range n {
		if err := s.Send(ctx, fillMsg(buf[:goLen(i)], uint64(i))); err != nil {
			return fmt.Errorf("Send %d of %d: %w", i, n, err)
		}
	}
	return nil
}

// waitEnd waits until s ended and checks nothing more was delivered.
func waitEnd(ctx context.Context, s *reliable.Session) error {
	m, err := next(ctx, s)
	if err == nil {
		return fmt.Errorf("an extra message of %d bytes arrived", len(m))
	}
	return err
}

// accept takes the next session the C peer opens.
func accept(t *testing.T, ctx context.Context, ep *reliable.Endpoint, p *cpeer) *reliable.Session {
	t.Helper()
	s, err := ep.Accept(ctx)
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	if s.Peer() != p.port {
		t.Fatalf("accepted a session from port %d, want the C peer's %d", s.Peer(), p.port)
	}
	return s
}

func isOneOf(err error, targets ...error) bool {
	for _, e := range targets {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// seedBase seeds the C peer's loss generator: CNLINK_INTEROP_SEED replays
// a run, otherwise every run draws other losses.
var seedBase = func() uint64 {
	if v, err := strconv.ParseUint(os.Getenv("CNLINK_INTEROP_SEED"), 10, 64); err == nil {
		return v
	}
	return uint64(time.Now().UnixNano() % 1e9)
}()

// lossArgs are the C peer's arguments for loss p (a fraction) with the
// k-th seed of this run, which t logs for a replay.
func lossArgs(t *testing.T, p string, k uint64) []string {
	t.Logf("C peer loss %s, seed %d (replay with CNLINK_INTEROP_SEED=%d)", p, seedBase+k, seedBase)
	return []string{"-loss", p, "-seed", strconv.FormatUint(seedBase+k, 10)}
}
