//go:build linux && !race

package multicast

const (
	raceEnabled = false
	millionN    = 1_000_000
)
