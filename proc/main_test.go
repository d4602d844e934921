package proc

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine or a socket
// behind: Close and context cancellation must release everything
// (DESIGN §4.3).
func TestMain(m *testing.M) {
	before := openSockets()
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goroutine leak: %v\n", err)
			code = 1
		}
		// The runtime never opens sockets by itself: every socket still
		// open is a leaked Monitor or test socket.
		if after := openSockets(); after > before {
			fmt.Fprintf(os.Stderr, "socket leak: %d sockets open before the tests, %d after\n", before, after)
			code = 1
		}
	}
	os.Exit(code)
}

// openSockets counts this process's socket descriptors; 0 where /proc is
// missing, which disables the check there.
func openSockets() int {
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
