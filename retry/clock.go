package retry

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// injectedClock is the backoff.Clock a Schedule hands to its
// backoff.ExponentialBackOff. ExponentialBackOff reads its Clock in Reset
// (to start the elapsed-time budget) and in NextBackOff (to compare the
// elapsed time with MaxElapsedTime); its default, backoff.SystemClock,
// would read the wall clock. This clock instead returns the now that the
// caller last passed to the Schedule, so the package never reads real time
// and behaves identically under testing/synctest, in a replayed trace, or
// with now driven by hand in a test.
//
// The Schedule sets now immediately before every call into the backoff
// calculator; nothing else writes it.
type injectedClock struct {
	now time.Duration // caller's now: an offset from an arbitrary origin
}

// clockOrigin is the instant that caller offsets are added to. Its value is
// irrelevant: ExponentialBackOff only ever subtracts two readings of the
// same clock, so only differences between nows matter. time.Time{} is
// fixed, needs no initialisation, and its Sub saturates instead of
// wrapping, far beyond any offset a monotonic now can reach.
var clockOrigin = time.Time{}

var _ backoff.Clock = (*injectedClock)(nil)

// Now returns the origin plus the caller's now. It never reads the wall
// clock.
func (c *injectedClock) Now() time.Time { return clockOrigin.Add(c.now) }
