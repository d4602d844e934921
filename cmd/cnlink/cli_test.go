//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/transport"
)

// These tests build the cnlink binary and run it as a user would, over
// real netlink. Sessions between processes need CAP_NET_ADMIN; ls and
// proc need none.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// cnlinkBin builds the command once per test binary.
func cnlinkBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "cnlink-cli-test-")
		if buildErr != nil {
			return
		}
		_ = os.Chmod(binDir, 0o755) // TestCLILsUnprivileged runs it as nobody
		binPath = filepath.Join(binDir, "cnlink")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cliProc is a running cnlink.
type cliProc struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
	err            error
}

func start(t *testing.T, stdin io.Reader, args ...string) *cliProc {
	t.Helper()
	p := &cliProc{t: t, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(cnlinkBin(t), args...)
	p.cmd.Stdin = stdin
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the process to exit and returns its status.
func (p *cliProc) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("%v did not exit within %v\nstdout:\n%s\nstderr:\n%s", p.cmd.Args, d, p.stdout, p.stderr)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatal(p.err)
	}
	return 0
}

func (p *cliProc) signal(sig os.Signal) { _ = p.cmd.Process.Signal(sig) }

// waitOutput polls buf until re matches and returns the submatches.
func waitOutput(t *testing.T, p *cliProc, buf *syncBuffer, re string, d time.Duration) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(d)
	for {
		if m := rx.FindStringSubmatch(buf.String()); m != nil {
			return m
		}
		select {
		case <-p.done:
			if m := rx.FindStringSubmatch(buf.String()); m != nil {
				return m
			}
			t.Fatalf("%v exited (%v) before printing %q\nstdout:\n%s\nstderr:\n%s", p.cmd.Args, p.err, re, p.stdout, p.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v: no %q within %v\nstdout:\n%s\nstderr:\n%s", p.cmd.Args, re, d, p.stdout, p.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runCLI runs cnlink to completion.
func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	p := start(t, strings.NewReader(stdin), args...)
	code = p.wait(30 * time.Second)
	return code, p.stdout.String(), p.stderr.String()
}

// startListen starts cnlink listen with args and returns it and its port.
func startListen(t *testing.T, args ...string) (*cliProc, string) {
	t.Helper()
	p := start(t, nil, append([]string{"listen"}, args...)...)
	m := waitOutput(t, p, p.stderr, `listening on port (\d+)`, 10*time.Second)
	return p, m[1]
}

func uniqueName(t *testing.T) string {
	return fmt.Sprintf("cnlink-cli-test-%x", rand.Uint64())
}

func TestCLIUsageExit2(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"send"},
		{"send", "-to"},
		{"ping", "-to", "x", "-c", "x"},
		{"listen", "-port", "1", "-name", "x"},
		{"ls", "extra"},
	} {
		code, stdout, stderr := runCLI(t, "", args...)
		if code != 2 {
			t.Errorf("cnlink %q: exit %d, want 2; stderr %q", args, code, stderr)
		}
		if stdout != "" {
			t.Errorf("cnlink %q: stdout %q", args, stdout)
		}
		if len(args) > 0 && (!strings.HasPrefix(stderr, "cnlink: ") || strings.Count(stderr, "cnlink: ") != 1) {
			t.Errorf("cnlink %q: stderr %q, want one line prefixed cnlink: ", args, stderr)
		}
	}
	code, stdout, _ := runCLI(t, "", "help")
	if code != 0 || !strings.Contains(stdout, "ping") || !strings.Contains(stdout, "listen") {
		t.Errorf("cnlink help: exit %d, %q", code, stdout)
	}
	code, _, stderr := runCLI(t, "", "send", "-h")
	if code != 0 || !strings.Contains(stderr, "usage: cnlink send") || !strings.Contains(stderr, "-to") {
		t.Errorf("cnlink send -h: exit %d, %q", code, stderr)
	}
}

// TestCLIRuntimeFailureExit1: a peer that is not there is a runtime
// failure, reported once.
func TestCLIRuntimeFailureExit1(t *testing.T) {
	testenv.RequireNetAdmin(t)
	code, _, stderr := runCLI(t, "x\n", "send", "-to", uniqueName(t))
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr %q", code, stderr)
	}
	if !strings.HasPrefix(stderr, "cnlink: send: ") || strings.Count(stderr, "\n") != 1 || strings.Contains(stderr, "cnlink: cnlink:") {
		t.Errorf("stderr %q, want one line prefixed once", stderr)
	}
	if !strings.Contains(stderr, "no socket holds the port") {
		t.Errorf("stderr %q does not say why", stderr)
	}
}

func TestCLILs(t *testing.T) {
	c, err := transport.Open(transport.Config{Groups: []uint32{7}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pid := strconv.Itoa(os.Getpid())
	comm, _ := os.ReadFile("/proc/self/comm")
	row := regexp.MustCompile(fmt.Sprintf(`(?m)^%d +%s +%s +\d+ +7 +\d+ +\d+ +\d+$`,
		c.LocalPort(), pid, regexp.QuoteMeta(strings.TrimSpace(string(comm)))))
	for _, args := range [][]string{{"ls"}, {"ls", "-pid", pid}, {"ls", "-port", strconv.Itoa(int(c.LocalPort()))}} {
		code, stdout, stderr := runCLI(t, "", args...)
		if code != 0 {
			t.Fatalf("%q: exit %d: %s", args, code, stderr)
		}
		if !strings.HasPrefix(stdout, "PORT ") || !row.MatchString(stdout) {
			t.Errorf("%q: no line for port %d of pid %s in\n%s", args, c.LocalPort(), pid, stdout)
		}
	}
	_, stdout, _ := runCLI(t, "", "ls", "-pid", "999999999")
	if strings.Contains(stdout, strconv.Itoa(int(c.LocalPort()))) {
		t.Errorf("ls -pid of another process lists our socket:\n%s", stdout)
	}
}

// TestCLILsUnprivileged: without privilege, ls still lists every socket
// but cannot see who holds another user's.
func TestCLILsUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run ls as another user")
	}
	c, err := transport.Open(transport.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmd := exec.Command(cnlinkBin(t), "ls")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ls as nobody: %v\n%s", err, out)
	}
	row := regexp.MustCompile(fmt.Sprintf(`(?m)^%d +- +\? +- +`, c.LocalPort()))
	if !row.Match(out) {
		t.Errorf("ls as nobody: no ownerless line for port %d:\n%s", c.LocalPort(), out)
	}
}

// TestCLIListenSend: the lines sent arrive byte for byte, in order, and
// both sides exit 0.
func TestCLIListenSend(t *testing.T) {
	testenv.RequireNetAdmin(t)
	var in strings.Builder
	want := []string{"hello", "", "  spaces  and\ttabs ", "wörld ✓", strings.Repeat("x", 10000)}
	for i := range 200 {
		want = append(want, fmt.Sprintf("line %d", i))
	}
	for _, l := range want {
		in.WriteString(l + "\n")
	}
	for _, by := range []string{"port", "name"} {
		t.Run(by, func(t *testing.T) {
			var l *cliProc
			var to string
			if by == "name" {
				to = uniqueName(t)
				l, _ = startListen(t, "-name", to, "-once")
			} else {
				l, to = startListen(t, "-once")
			}
			code, stdout, stderr := runCLI(t, in.String(), "send", "-to", to)
			if code != 0 {
				t.Fatalf("send: exit %d: %s%s", code, stdout, stderr)
			}
			if code := l.wait(10 * time.Second); code != 0 {
				t.Fatalf("listen -once: exit %d: %s", code, l.stderr)
			}
			if got := l.stdout.String(); got != in.String() {
				t.Errorf("listen printed %d bytes, want %d; first difference at %d", len(got), in.Len(), firstDiff(got, in.String()))
			}
		})
	}
}

// TestCLIListenSendRaw: -raw carries any bytes, beyond the message size.
func TestCLIListenSendRaw(t *testing.T) {
	testenv.RequireNetAdmin(t)
	data := make([]byte, 100<<10)
	for i := range data {
		data[i] = byte(rand.IntN(256))
	}
	l, port := startListen(t, "-raw", "-once")
	code, stdout, stderr := runCLI(t, string(data), "send", "-raw", "-to", port)
	if code != 0 {
		t.Fatalf("send -raw: exit %d: %s%s", code, stdout, stderr)
	}
	if code := l.wait(10 * time.Second); code != 0 {
		t.Fatalf("listen -raw -once: exit %d: %s", code, l.stderr)
	}
	if got := l.stdout.String(); got != string(data) {
		t.Errorf("listen printed %d bytes, want %d; first difference at %d", len(got), len(data), firstDiff(got, string(data)))
	}
}

func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestCLIListenNameTaken(t *testing.T) {
	name := uniqueName(t)
	l, port := startListen(t, "-name", name)
	code, _, stderr := runCLI(t, "", "listen", "-name", name)
	if code != 1 {
		t.Fatalf("second listen: exit %d, want 1: %s", code, stderr)
	}
	want := fmt.Sprintf("port %s (name %q) is in use by pid %d (cnlink, uid %d)", port, name, l.cmd.Process.Pid, os.Getuid())
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr %q\nwant it to contain %q", stderr, want)
	}
	l.signal(syscall.SIGTERM)
	if code := l.wait(10 * time.Second); code != 0 {
		t.Errorf("listen after SIGTERM: exit %d: %s", code, l.stderr)
	}
}

func TestCLIPing(t *testing.T) {
	testenv.RequireNetAdmin(t)
	name := uniqueName(t)
	l, _ := startListen(t, "-name", name, "-echo")
	code, stdout, stderr := runCLI(t, "", "ping", "-to", name, "-c", "5", "-i", "10ms")
	if code != 0 {
		t.Fatalf("ping: exit %d\n%s%s", code, stdout, stderr)
	}
	replies := regexp.MustCompile(`(?m)^56 bytes from .*: seq=(\d) time=\d+\.\d{3} ms$`).FindAllStringSubmatch(stdout, -1)
	if len(replies) != 5 {
		t.Errorf("%d reply lines, want 5:\n%s", len(replies), stdout)
	}
	for i, r := range replies {
		if r[1] != strconv.Itoa(i+1) {
			t.Errorf("reply %d has seq %s", i, r[1])
		}
	}
	if !strings.Contains(stdout, "5 probes sent, 5 replies, 0% lost") ||
		!regexp.MustCompile(`rtt min/p50/p90/p99/max = [\d.]+/[\d.]+/[\d.]+/[\d.]+/[\d.]+ ms`).MatchString(stdout) {
		t.Errorf("no summary:\n%s", stdout)
	}
	t.Logf("\n%s", stdout)

	// -comm and -uid check who holds the port before dialing.
	code, _, _ = runCLI(t, "", "ping", "-to", name, "-c", "1", "-comm", "cnlink", "-uid", strconv.Itoa(os.Getuid()))
	if code != 0 {
		t.Errorf("ping -comm cnlink -uid %d: exit %d", os.Getuid(), code)
	}
	code, _, stderr = runCLI(t, "", "ping", "-to", name, "-c", "1", "-comm", "sshd")
	if code != 1 || !strings.Contains(stderr, `want comm "sshd"`) || !strings.Contains(stderr, fmt.Sprintf("pid %d (cnlink", l.cmd.Process.Pid)) {
		t.Errorf("ping -comm sshd: exit %d, stderr %q", code, stderr)
	}

	l.signal(os.Interrupt)
	if code := l.wait(10 * time.Second); code != 0 {
		t.Errorf("listen after SIGINT: exit %d: %s", code, l.stderr)
	}
}

// TestCLICat: cat sends its input and prints what an echo sends back; an
// interrupt closes it gracefully (exit 0).
func TestCLICat(t *testing.T) {
	testenv.RequireNetAdmin(t)
	_, port := startListen(t, "-echo")
	c := start(t, strings.NewReader("one\ntwo\nthree\n"), "cat", "-to", port)
	waitOutput(t, c, c.stdout, "one\ntwo\nthree\n", 10*time.Second)
	c.signal(os.Interrupt)
	if code := c.wait(10 * time.Second); code != 0 {
		t.Errorf("cat after SIGINT: exit %d: %s", code, c.stderr)
	}
	if got := c.stdout.String(); got != "one\ntwo\nthree\n" {
		t.Errorf("cat printed %q", got)
	}
}

// TestCLICatListenInterrupted: an interrupted listen closes its sessions
// gracefully, so a connected cat ends with status 0.
func TestCLICatListenInterrupted(t *testing.T) {
	testenv.RequireNetAdmin(t)
	l, port := startListen(t)
	pr, pw, err := os.Pipe() // stdin that stays open (a file: Wait copies nothing)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	c := start(t, pr, "cat", "-to", port)
	if _, err := io.WriteString(pw, "ping\n"); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, l, l.stdout, "ping\n", 10*time.Second)
	l.signal(os.Interrupt)
	if code := l.wait(10 * time.Second); code != 0 {
		t.Errorf("listen after SIGINT: exit %d: %s", code, l.stderr)
	}
	if code := c.wait(10 * time.Second); code != 0 {
		t.Errorf("cat after the listener's interrupt: exit %d: %s", code, c.stderr)
	}
}

func TestCLIStat(t *testing.T) {
	testenv.RequireNetAdmin(t)
	l, port := startListen(t)
	code, _, stderr := runCLI(t, "a\nb\n", "send", "-to", port)
	if code != 0 {
		t.Fatalf("send: %d %s", code, stderr)
	}
	code, stdout, stderr := runCLI(t, "", "stat", "-to", port)
	if code != 0 {
		t.Fatalf("stat: exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		fmt.Sprintf("%s  %d  cnlink", port, l.cmd.Process.Pid),
		"endpoint port " + port,
		"datagrams sent",
		"sessions: 0 open, 1 accepted",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stat output lacks %q:\n%s", want, stdout)
		}
	}
	// SIGUSR1 prints the same to the listener's stderr.
	l.signal(syscall.SIGUSR1)
	waitOutput(t, l, l.stderr, "endpoint port "+port, 10*time.Second)
}

// TestCLIProc: an exec of a command the test ran shows with its name.
func TestCLIProc(t *testing.T) {
	p := start(t, nil, "proc", "-duration", "60s")
	waitOutput(t, p, p.stdout, `TIME +EVENT +PID`, 15*time.Second)

	// A command with a name of our own: comm is the basename of the
	// path exec'd, so a symlink to sleep names it.
	name := fmt.Sprintf("cnlprobe%d", rand.IntN(1e6))
	link := filepath.Join(t.TempDir(), name)
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip(err)
	}
	if err := os.Symlink(sleep, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link, "0.05")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// The command line follows the name if the process was still there
	// when proc printed the line.
	waitOutput(t, p, p.stdout, fmt.Sprintf(`(?m)^\S+ +exec +%d +%s(: %s 0\.05)?$`, pid, name, regexp.QuoteMeta(link)), 10*time.Second)
	waitOutput(t, p, p.stdout, fmt.Sprintf(`(?m)^\S+ +exit +%d +%d +%s: status 0`, pid, os.Getpid(), name), 10*time.Second)
	p.signal(os.Interrupt)
	if code := p.wait(10 * time.Second); code != 0 {
		t.Errorf("proc after SIGINT: exit %d: %s", code, p.stderr)
	}
	if !strings.Contains(p.stdout.String(), "fork, ") {
		t.Errorf("no summary:\n%s", p.stdout)
	}
}
