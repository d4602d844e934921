// Package testenv tells tests what the machine allows. Tests that need a
// privilege skip only when it is truly missing: CI runs as root, so there
// they always run.
package testenv

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// NetAdmin reports whether the process has CAP_NET_ADMIN in its effective
// set, which sending between netlink user ports (or to a group) needs.
func NetAdmin() bool {
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

// RequireNetAdmin skips tb unless the process has CAP_NET_ADMIN.
func RequireNetAdmin(tb testing.TB) {
	tb.Helper()
	if !NetAdmin() {
		tb.Skip("needs CAP_NET_ADMIN (root): user-to-user netlink connector sends need it")
	}
}
