//go:build linux

package hostile

import (
	"fmt"
	"os"
	"testing"

	"github.com/cnlink/cnlink/internal/leakcheck"
)

// roleEnv names the child-process role a re-executed test binary plays
// (see squatter_test.go); unset in the parent.
const roleEnv = "CNLINK_HOSTILE_ROLE"

// TestMain plays a child's role when the binary was re-executed as one,
// and otherwise runs the tests under the leak check (every endpoint,
// socket and goroutine a test opens must be gone at the end).
func TestMain(m *testing.M) {
	switch role := os.Getenv(roleEnv); role {
	case "":
		leakcheck.Main(m)
	case "peer":
		os.Exit(runPeerRole())
	case "squatter":
		os.Exit(runSquatterRole())
	default:
		fmt.Fprintf(os.Stderr, "hostile: unknown %s=%q\n", roleEnv, role)
		os.Exit(2)
	}
}
