//go:build linux

package bench_test

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cnlink/cnlink/internal/leakcheck"
)

// TestMain fails the run if a benchmark leaves a goroutine or a socket
// behind: each one must close its endpoints, sockets and helpers.
func TestMain(m *testing.M) { leakcheck.Main(m) }

// needNetAdmin skips b unless the process may send between user ports
// (CAP_NET_ADMIN): CI runs as root, so there nothing is skipped.
func needNetAdmin(b testing.TB) {
	b.Helper()
	if !hasNetAdmin() {
		b.Skip("needs CAP_NET_ADMIN to send between netlink user ports")
	}
}

func hasNetAdmin() bool {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<unix.CAP_NET_ADMIN) != 0
		}
	}
	return false
}
