package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cnlink/cnlink/internal/leakcheck"
	"github.com/cnlink/cnlink/internal/testenv"
)

// TestMain fails the binary if run leaves a goroutine or socket behind.
func TestMain(m *testing.M) { leakcheck.Main(m) }

func small() options {
	return options{Subs: 3, N: 20000, Size: 64, Rcvbuf: 4096, Timeout: time.Minute}
}

// Every subscriber gets every message: run returns nil and says so.
func TestRunDelivers(t *testing.T) {
	testenv.RequireNetAdmin(t)
	var out bytes.Buffer
	if err := run(context.Background(), small(), &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	if !strings.Contains(out.String(), "every subscriber got all 20000 messages") {
		t.Errorf("no success line in:\n%s", out.String())
	}
	if n := strings.Count(out.String(), " ok\n"); n != 3 {
		t.Errorf("%d subscribers ok, want 3:\n%s", n, out.String())
	}
}

// A subscriber that never reads, with -laggards: the publisher drops it
// (EVICT laggard) and finishes for the others, and run reports failure
// naming the evicted subscriber.
func TestRunStuckSubscriberEvicted(t *testing.T) {
	testenv.RequireNetAdmin(t)
	o := small()
	o.Stuck, o.Laggards = 1, 500*time.Millisecond
	var out bytes.Buffer
	err := run(context.Background(), o, &out)
	t.Logf("\n%s", out.String())
	if !errors.Is(err, errFailed) {
		t.Fatalf("run = %v, want errFailed", err)
	}
	if !strings.Contains(err.Error(), "#2:") || !strings.Contains(err.Error(), "laggard") {
		t.Errorf("error does not name subscriber #2 as a laggard: %v", err)
	}
	if n := strings.Count(out.String(), " ok\n"); n != 2 {
		t.Errorf("%d subscribers ok, want the 2 that read:\n%s", n, out.String())
	}
}

// Without -laggards the publisher waits for the subscriber that never
// reads: the run cannot finish, and fails when its timeout ends.
func TestRunStuckSubscriberTimesOut(t *testing.T) {
	testenv.RequireNetAdmin(t)
	o := small()
	o.Subs, o.Stuck, o.Timeout = 2, 1, time.Second
	var out bytes.Buffer
	err := run(context.Background(), o, &out)
	t.Logf("\n%s", out.String())
	if !errors.Is(err, errFailed) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("run = %v, want errFailed after the timeout", err)
	}
}

// The program's exit status: 0 when everything was delivered, 1 when a
// subscriber lost messages.
func TestExitStatus(t *testing.T) {
	testenv.RequireNetAdmin(t)
	bin := filepath.Join(t.TempDir(), "pubsub")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"-subs", "2", "-n", "5000"}, 0},
		{[]string{"-subs", "2", "-n", "5000", "-stuck", "1", "-laggards", "100ms"}, 1},
		{[]string{"-subs", "0"}, 1},
	} {
		out, err := exec.Command(bin, c.args...).CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if code != c.code {
			t.Errorf("pubsub %s: exit %d, want %d\n%s", strings.Join(c.args, " "), code, c.code, out)
		}
	}
}

func TestOptionsCheck(t *testing.T) {
	for _, o := range []options{
		{Subs: 0, N: 1, Size: 8},
		{Subs: 1, N: 0, Size: 8},
		{Subs: 1, N: 1, Size: 7},
		{Subs: 1, N: 1, Size: 8, Rcvbuf: -1},
		{Subs: 1, N: 1, Size: 8, Stuck: 2},
		{Subs: 1, N: 1, Size: 8, Group: 3},
		{Subs: 1, N: 1, Size: 8, Group: 34},
	} {
		if err := o.check(); err == nil {
			t.Errorf("%+v passed", o)
		}
	}
	o := options{Subs: 1, N: 1, Size: 8, Group: 32}
	if err := o.check(); err != nil {
		t.Errorf("%+v: %v", o, err)
	}
}

// verify tells the right message from a lost, duplicated, short or
// corrupted one.
func TestVerify(t *testing.T) {
	msg := func(i uint64) []byte {
		m := make([]byte, 32)
		stamp(m, i)
		return m
	}
	if err := verify(msg(5), 5, 32); err != nil {
		t.Fatal(err)
	}
	bad := msg(5)
	bad[20]++
	for name, c := range map[string]struct {
		m []byte
		i uint64
	}{
		"other index": {msg(4), 5},
		"short":       {msg(5)[:31], 5},
		"corrupted":   {bad, 5},
	} {
		if err := verify(c.m, c.i, 32); err == nil {
			t.Errorf("%s passed", name)
		}
	}
}
