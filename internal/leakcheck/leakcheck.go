// Package leakcheck is the TestMain of cnlink's packages: it fails a test
// binary that leaves a goroutine or a socket behind (Close releases
// everything: docs/ARCHITECTURE.md §4, invariant 7).
package leakcheck

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// Main runs the tests, then checks for leaked goroutines and sockets, and
// exits. Use it as `func TestMain(m *testing.M) { leakcheck.Main(m) }`.
func Main(m *testing.M) {
	before := OpenSockets()
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goroutine leak: %v\n", err)
			code = 1
		}
		// The Go runtime opens epoll and eventfd descriptors lazily, but
		// never sockets, so every socket still open is a test's leak.
		if after := OpenSockets(); after > before {
			fmt.Fprintf(os.Stderr, "socket leak: %d sockets open before the tests, %d after\n", before, after)
			code = 1
		}
	}
	os.Exit(code)
}

// OpenSockets counts this process's socket descriptors; 0 where /proc is
// missing (non-Linux), which disables the check there.
func OpenSockets() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}
