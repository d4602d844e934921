//go:build linux

package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// TestIntegrationExecComm: exec events carry the command name, read from
// /proc the moment the event arrives. /bin/true is held as a zombie (not
// reaped) until its exec event is seen, so that its name is still there
// to read however slow this machine is; sleep is alive throughout.
func TestIntegrationExecComm(t *testing.T) {
	m, err := Listen(context.Background(), Config{Events: MaskExec})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer m.Close()
	c := collect(m, nil)

	for _, tc := range []struct{ path, comm string }{
		{"/bin/true", "true"},
		{"sleep", "sleep"},
	} {
		args := []string{}
		if tc.comm == "sleep" {
			args = append(args, "10")
		}
		cmd := exec.Command(tc.path, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		var ev Event
		waitFor(t, 10*time.Second, fmt.Sprintf("exec of %s, pid %d", tc.path, pid), func() bool {
			var ok bool
			ev, ok = c.find(func(e Event) bool { return e.Kind == KindExec && e.PID == pid })
			return ok
		})
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if got := ev.CommString(); got != tc.comm {
			t.Errorf("exec of %s: Comm %q, want %q (%v)", tc.path, got, tc.comm, ev)
		}
		t.Logf("%v", ev)
	}
}

// TestIntegrationExecCommOff: Config.NoExecComm leaves Comm empty.
func TestIntegrationExecCommOff(t *testing.T) {
	m, err := Listen(context.Background(), Config{Events: MaskExec, NoExecComm: true})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer m.Close()
	c := collect(m, nil)
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	var ev Event
	waitFor(t, 10*time.Second, "exec of sleep", func() bool {
		var ok bool
		ev, ok = c.find(func(e Event) bool { return e.Kind == KindExec && e.PID == pid })
		return ok
	})
	if ev.Comm != ([CommLen]byte{}) {
		t.Errorf("Comm %q with NoExecComm", ev.CommString())
	}
}

// TestIntegrationNamespaceFailsFast runs this test binary again inside new
// user and pid namespaces, where cn_proc ignores subscriptions: Listen
// must fail at once with a *NamespaceError instead of probing for ~10 s.
func TestIntegrationNamespaceFailsFast(t *testing.T) {
	if os.Getenv("CNLINK_PROC_NS_CHILD") == "1" {
		start := time.Now()
		m, err := Listen(context.Background(), Config{})
		if err == nil {
			m.Close()
			fmt.Println("RESULT: Listen succeeded")
			return
		}
		var ne *NamespaceError
		fmt.Printf("RESULT: namespace=%v errNoAnswer=%v elapsed_ms=%d err=%v\n",
			errors.As(err, &ne), errors.Is(err, ErrNoAnswer), time.Since(start).Milliseconds(), err)
		return
	}
	requireRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestIntegrationNamespaceFailsFast$", "-test.v")
	cmd.Env = append(os.Environ(), "CNLINK_PROC_NS_CHILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
	}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Skipf("cannot run in new user+pid namespaces: %v\n%s", err, out)
	}
	t.Logf("child (%v):\n%s", time.Since(start).Round(time.Millisecond), out)
	if !regexpMatch(`RESULT: namespace=true errNoAnswer=true elapsed_ms=\d{1,2} `, string(out)) {
		t.Errorf("child did not fail fast with a *NamespaceError")
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }
