package retry

import "math/rand/v2"

// newTestRand returns a deterministic generator for randomized tests; the
// seed is part of the test's name so a failure names its reproduction.
func newTestRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
}
