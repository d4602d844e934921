package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cnlink/cnlink/internal/testenv"
)

// The README's program, as two processes: the server and a client that
// makes requests, streams messages and closes.
func TestEchoTwoProcesses(t *testing.T) {
	testenv.RequireNetAdmin(t)
	bin := filepath.Join(t.TempDir(), "echo")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	name := fmt.Sprintf("echo-test-%d", os.Getpid())
	srv := exec.Command(bin, "-serve", "-name", name)
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() string {
		select {
		case l := <-lines:
			return l
		case <-time.After(10 * time.Second):
			t.Fatal("the server said nothing for 10s")
			return ""
		}
	}
	if l := next(); !strings.HasPrefix(l, "listening on port ") {
		t.Fatalf("server: %q", l)
	}
	out, err := exec.Command(bin, "-name", name, "hello", "world").CombinedOutput()
	if err != nil {
		t.Fatalf("client: %v\n%s", err, out)
	}
	if got, want := string(out), "reply: hello\nreply: world\n"; got != want {
		t.Fatalf("client printed %q, want %q", got, want)
	}
	for _, want := range []string{"message from", "message from", "closed by the client"} {
		if l := next(); !strings.Contains(l, want) {
			t.Fatalf("server printed %q, want %q", l, want)
		}
	}
	srv.Process.Signal(syscall.SIGINT)
	if err := srv.Wait(); err != nil {
		t.Fatalf("server exit: %v", err)
	}
}
