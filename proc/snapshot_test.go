package proc

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

func TestSnapshotSeesSelfAndChild(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	child := exec.Command("/bin/sleep", "10")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()

	ps, err := Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	var self, kid *Process
	for i := range ps {
		if i > 0 && ps[i-1].PID >= ps[i].PID {
			t.Fatalf("not sorted at %d: %d, %d", i, ps[i-1].PID, ps[i].PID)
		}
		switch ps[i].PID {
		case os.Getpid():
			self = &ps[i]
		case child.Process.Pid:
			kid = &ps[i]
		}
	}
	if self == nil || self.ParentPID != os.Getppid() || self.Exe != exe {
		t.Errorf("self: %+v; want ppid %d exe %s", self, os.Getppid(), exe)
	}
	if kid == nil || kid.ParentPID != os.Getpid() || kid.Comm != "sleep" || filepath.Base(kid.Exe) != "sleep" {
		t.Errorf("child: %+v", kid)
	}
}

// TestSnapshotParsesAwkwardNames: the command name is the part of stat
// in parentheses and may contain spaces and parentheses itself.
func TestSnapshotParsesAwkwardNames(t *testing.T) {
	root := t.TempDir()
	write := func(pid, stat string) {
		d := filepath.Join(root, pid)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("42", "42 (a) b (c)) S 7 42 42 0 -1 4194560 100 0 0 0\n")
	write("7", "7 (init) S 0 7 7 0 -1\n")
	write("9", "") // reaped between open and read: skipped
	write("self", "1 (x) S 0")
	if err := os.MkdirAll(filepath.Join(root, "sys"), 0o755); err != nil {
		t.Fatal(err)
	}
	ps, err := snapshot(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []Process{{PID: 7, ParentPID: 0, Comm: "init"}, {PID: 42, ParentPID: 7, Comm: "a) b (c)"}}
	if len(ps) != len(want) || ps[0] != want[0] || ps[1] != want[1] {
		t.Fatalf("snapshot = %+v, want %+v", ps, want)
	}
	write("43", "43 no parens S 1\n")
	if _, err := snapshot(root); err == nil {
		t.Error("a malformed stat file was accepted")
	}
}
