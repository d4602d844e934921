//go:build linux

package interop

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/cnlink/cnlink/internal/leakcheck"
)

// peerBin is the C peer built for this run; skipReason says why there is
// none (cc is missing).
var peerBin, skipReason string

// TestMain builds the C peer (warnings are errors: it must build clean
// with -std=c99 -Wall -Wextra), runs the tests and then checks for leaked
// goroutines and sockets as leakcheck.Main does (which cannot be used
// as is: it exits before the build directory could be removed).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cnlink-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		os.Exit(1)
	}
	code := build(dir)
	if code == 0 {
		before := leakcheck.OpenSockets()
		code = m.Run()
		if code == 0 {
			if err := goleak.Find(); err != nil {
				fmt.Fprintf(os.Stderr, "goroutine leak: %v\n", err)
				code = 1
			}
			if after := leakcheck.OpenSockets(); after > before {
				fmt.Fprintf(os.Stderr, "socket leak: %d sockets open before the tests, %d after\n", before, after)
				code = 1
			}
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func build(dir string) int {
	cc, err := exec.LookPath("cc")
	if err != nil {
		skipReason = "cc is not in PATH: cannot build the C peer (interop/cpeer/cpeer.c)"
		fmt.Fprintln(os.Stderr, "interop: skipping every test:", skipReason)
		return 0
	}
	bin := filepath.Join(dir, "cpeer")
	out, err := exec.Command(cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-o", bin, filepath.Join("cpeer", "cpeer.c")).CombinedOutput()
	if err != nil || len(out) > 0 {
		fmt.Fprintf(os.Stderr, "interop: building the C peer: %v (warnings count as errors)\n%s", err, out)
		return 1
	}
	peerBin = bin
	return 0
}
