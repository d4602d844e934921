package proc

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// nsTree builds root/self/ns with the given links ("" = no link).
func nsTree(t *testing.T, user, pid string) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "self", "ns")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"user": user, "pid": pid} {
		if target == "" {
			continue
		}
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestCheckNamespaces(t *testing.T) {
	const (
		initUser = "user:[4026531837]"
		initPID  = "pid:[4026531836]"
	)
	for _, tt := range []struct {
		name, user, pid string
		wantNS          string // "" = no error
	}{
		{"initial", initUser, initPID, ""},
		{"user namespace", "user:[4026532177]", initPID, "user"},
		{"pid namespace", initUser, "pid:[4026532178]", "pid"},
		{"both", "user:[4026532177]", "pid:[4026532178]", "user"},
		{"no links", "", "", ""},               // no /proc: let the kernel tell
		{"garbage", "user:[x]", "mnt:[1]", ""}, // unknown format: let the kernel tell
		{"pid only readable", "", "pid:[5]", "pid"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := checkNamespaces(nsTree(t, tt.user, tt.pid))
			if tt.wantNS == "" {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			var ne *NamespaceError
			if !errors.As(err, &ne) || ne.Namespace != tt.wantNS {
				t.Fatalf("err = %v, want *NamespaceError for %s", err, tt.wantNS)
			}
			if !errors.Is(err, ErrNotInitialNamespace) || !errors.Is(err, ErrNoAnswer) {
				t.Errorf("%v does not match ErrNotInitialNamespace and ErrNoAnswer", err)
			}
		})
	}
	if err := checkNamespaces(t.TempDir()); err != nil {
		t.Errorf("empty root: %v", err)
	}
}

// TestCheckNamespacesHere: the test machine runs tests in the initial
// namespaces (the proc connector tests need it).
func TestCheckNamespacesHere(t *testing.T) {
	if _, err := os.Readlink("/proc/self/ns/user"); err != nil {
		t.Skip("no /proc/self/ns:", err)
	}
	if err := checkNamespaces("/proc"); err != nil {
		t.Skipf("not in the initial namespaces: %v", err)
	}
}

func TestReadComm(t *testing.T) {
	root := t.TempDir()
	write := func(pid, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, pid, "comm"), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("10", "true\n")
	write("11", "fifteen-bytes-x\n")
	write("12", "")
	for _, tt := range []struct {
		pid  int
		want string
		ok   bool
	}{
		{10, "true", true},
		{11, "fifteen-bytes-x", true},
		{12, "", false},
		{13, "", false}, // gone
		{0, "", false},
	} {
		e := Event{Comm: [CommLen]byte{'a', 'b', 'c', 'd', 'e', 'f', 'g'}}
		ok := readComm(root, tt.pid, &e.Comm)
		if ok != tt.ok || ok && e.CommString() != tt.want {
			t.Errorf("pid %d: %q %v, want %q %v", tt.pid, e.CommString(), ok, tt.want, tt.ok)
		}
	}
	var c [CommLen]byte
	if !readComm("/proc", os.Getpid(), &c) {
		t.Skip("no /proc")
	}
	if c[0] == 0 {
		t.Error("own comm empty")
	}
}

// BenchmarkReadComm is the cost an exec event adds on the reader's path.
func BenchmarkReadComm(b *testing.B) {
	pid := os.Getpid()
	var c [CommLen]byte
	b.ReportAllocs()
	for b.Loop() {
		if !readComm("/proc", pid, &c) {
			b.Fatal("cannot read own comm")
		}
	}
}
