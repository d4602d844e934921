//go:build linux && race

package multicast

// Under the race detector the real-netlink tests publish fewer messages:
// every message is checked by eight readers, and the detector slows each
// goroutine several times.
const (
	raceEnabled = true
	millionN    = 100_000
)
