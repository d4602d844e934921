//go:build linux

package bench_test

import (
	"testing"

	"github.com/cnlink/cnlink/internal/leakcheck"
)

// TestMain fails the run if a benchmark leaves a goroutine or a socket
// behind: each one must close its endpoints, sockets and helpers.
func TestMain(m *testing.M) { leakcheck.Main(m) }
