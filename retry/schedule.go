package retry

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Defaults for the zero fields of ScheduleConfig.
const (
	DefaultScheduleInitial    = time.Millisecond
	DefaultScheduleMax        = time.Second
	DefaultScheduleMultiplier = 2.0
)

// ScheduleConfig configures a Schedule. Every zero field means its
// documented default. Negative durations, a Multiplier below 1, a Jitter
// outside [0, 1], NaNs, and Max < Initial (after defaults) are rejected by
// Validate; NewSchedule panics on them.
type ScheduleConfig struct {
	// Initial is the nominal first wait (the second one if Immediate is
	// set). Zero means 1 ms.
	Initial time.Duration

	// Max caps the nominal wait as it grows. As in backoff, it caps the
	// nominal interval, not the jittered one: a wait can reach
	// Max*(1+Jitter). Zero means 1 s.
	Max time.Duration

	// Multiplier is the growth factor of the nominal wait from one Next to
	// the next. Zero means 2; otherwise it must be at least 1 (1 gives a
	// constant interval).
	Multiplier float64

	// Jitter spreads each wait uniformly over
	// [nominal*(1-Jitter), nominal*(1+Jitter)], the same range backoff's
	// RandomizationFactor gives, so that many senders that hit the same
	// condition at once do not retry in lockstep. Zero means no jitter:
	// the waits are exactly the nominal sequence. It must be in [0, 1].
	Jitter float64

	// GiveUpAfter is the retry budget of one episode (backoff's
	// MaxElapsedTime). An episode starts at the first Next after
	// NewSchedule or Reset; Next gives up (ok = false) instead of
	// scheduling a retry that would fall more than GiveUpAfter after that
	// start. Zero means never give up: the Schedule then relies on
	// backoff's documented "It never stops if MaxElapsedTime == 0", chosen
	// deliberately, never backoff's 15-minute default.
	GiveUpAfter time.Duration

	// Immediate makes the first Next of an episode return a zero wait
	// (retry at once); the nominal sequence from Initial follows.
	Immediate bool

	// Seed seeds the Schedule's own jitter source, so that a test or a
	// replay can reproduce a run. Zero means a seed drawn once, in
	// NewSchedule, from the runtime's random source (no clock is read).
	Seed uint64
}

// withDefaults returns c with every zero field replaced by its default,
// except Jitter, GiveUpAfter, Immediate and Seed, whose zero values are
// meaningful settings.
func (c ScheduleConfig) withDefaults() ScheduleConfig {
	if c.Initial == 0 {
		c.Initial = DefaultScheduleInitial
	}
	if c.Max == 0 {
		c.Max = DefaultScheduleMax
	}
	if c.Multiplier == 0 {
		c.Multiplier = DefaultScheduleMultiplier
	}
	return c
}

// Validate reports whether c, once its zero fields take their defaults,
// is a usable configuration. NewSchedule panics with the same error.
func (c ScheduleConfig) Validate() error {
	var errs []error
	if c.Initial < 0 {
		errs = append(errs, fmt.Errorf("field Initial = %v is negative", c.Initial))
	}
	if c.Max < 0 {
		errs = append(errs, fmt.Errorf("field Max = %v is negative", c.Max))
	}
	if c.GiveUpAfter < 0 {
		errs = append(errs, fmt.Errorf("field GiveUpAfter = %v is negative (zero means never give up)", c.GiveUpAfter))
	}
	// Written so that NaN fails too.
	if !(c.Multiplier == 0 || c.Multiplier >= 1) || math.IsInf(c.Multiplier, 0) {
		errs = append(errs, fmt.Errorf("field Multiplier = %v, want 0 (default) or finite and >= 1", c.Multiplier))
	}
	if !(c.Jitter >= 0 && c.Jitter <= 1) {
		errs = append(errs, fmt.Errorf("field Jitter = %v, want in [0, 1]", c.Jitter))
	}
	if len(errs) == 0 {
		if d := c.withDefaults(); d.Max < d.Initial {
			errs = append(errs, fmt.Errorf("field Max %v < Initial %v (after defaults)", d.Max, d.Initial))
		}
	}
	return configError("ScheduleConfig", errs)
}

// Schedule paces the retries of one operation that failed for a reason
// other than loss: a peer whose queue is full (EAGAIN), a receive overrun
// (ENOBUFS), an unanswered handshake, a kernel subscription that did not
// take. The engine calls Next when an attempt fails, arms its single timer
// for now+wait, and calls Reset when the operation succeeds.
//
// The interval arithmetic and the give-up budget are
// backoff.ExponentialBackOff's, used purely as a calculator (NextBackOff
// and Reset; never backoff.Retry) and driven by an injected clock that
// returns the caller's now. A Schedule does no I/O, reads no clock, starts
// no goroutine and never sleeps; Next does not allocate.
//
// A Schedule is not safe for concurrent use (it belongs to the goroutine
// that owns the operation) and must not be copied after NewSchedule (go
// vet's copylocks check reports copies): its calculator points at its own
// clock.
type Schedule struct {
	_ noCopy

	cfg   ScheduleConfig // resolved: defaults filled in, Seed fixed
	clock injectedClock  // the calculator's Clock
	calc  backoff.ExponentialBackOff
	rng   rand.PCG // jitter source, seeded from cfg.Seed

	start    time.Duration // now of the episode's first Next
	started  bool          // an episode is running
	gaveUp   bool          // Next returned ok = false in this episode
	attempts int           // Next calls that returned ok = true in this episode
}

// NewSchedule returns a Schedule at the start of an episode. It panics if
// cfg is invalid (see ScheduleConfig.Validate); zero fields take their
// defaults.
func NewSchedule(cfg ScheduleConfig) *Schedule {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64() | 1 // | 1: never 0, so Config().Seed reproduces it
	}
	s := &Schedule{cfg: cfg}
	s.rng.Seed(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)
	s.calc = backoff.ExponentialBackOff{
		InitialInterval: cfg.Initial,
		// Jitter is applied by the Schedule from its seeded source (see
		// jitter): backoff draws from the process-wide math/rand, which
		// cannot be seeded since Go 1.24, so its randomness could never be
		// reproduced. With 0 backoff returns the nominal interval exactly.
		RandomizationFactor: 0,
		Multiplier:          cfg.Multiplier,
		MaxInterval:         cfg.Max,
		// Deliberate: 0 is backoff's "never stop", not its 15-minute
		// default, which would silently end retries.
		MaxElapsedTime: cfg.GiveUpAfter,
		Stop:           backoff.Stop,
		Clock:          &s.clock,
	}
	s.calc.Reset()
	return s
}

// Config returns the configuration in use, with defaults filled in and the
// seed actually used (so NewSchedule(s.Config()) replays s from its
// start).
func (s *Schedule) Config() ScheduleConfig { return s.cfg }

// Next returns how long to wait before the next attempt, given that an
// attempt failed at now (an offset from the caller's arbitrary origin, the
// same origin for every call).
//
// The first Next after NewSchedule or Reset starts an episode at now and
// returns 0 if Immediate is set, Initial (jittered) otherwise; each later
// Next returns the nominal wait times Multiplier, capped at Max, jittered.
//
// ok is false when the Schedule gives up: GiveUpAfter is set and the
// nominal retry would fall more than GiveUpAfter after the episode's
// start (backoff's MaxElapsedTime rule, evaluated at the caller's now).
// Giving up is sticky until Reset. While ok is true, now+wait never passes
// start+GiveUpAfter: a jittered wait that would is shortened to the
// deadline.
func (s *Schedule) Next(now time.Duration) (wait time.Duration, ok bool) {
	if s.gaveUp {
		return 0, false
	}
	s.clock.now = now
	if !s.started {
		// Starts the calculator's elapsed-time budget at now (backoff's
		// Reset reads the injected clock) and rewinds its interval.
		s.started = true
		s.start = now
		s.calc.Reset()
		if s.cfg.Immediate {
			s.attempts++
			return 0, true
		}
	}
	nominal := s.calc.NextBackOff()
	if nominal == backoff.Stop {
		s.gaveUp = true
		return 0, false
	}
	wait = s.jitter(nominal)
	if s.cfg.GiveUpAfter > 0 {
		// backoff checked elapsed+nominal <= GiveUpAfter, so left >=
		// nominal >= the jitter's lower bound: shortening keeps the wait
		// within the documented spread.
		if left := s.cfg.GiveUpAfter - (now - s.start); wait > left {
			wait = left
		}
	}
	s.attempts++
	return wait, true
}

// jitter spreads nominal uniformly over
// [nominal*(1-Jitter), nominal*(1+Jitter)), the range of backoff's
// RandomizationFactor, drawing from the Schedule's seeded source.
func (s *Schedule) jitter(nominal time.Duration) time.Duration {
	j := s.cfg.Jitter
	if j == 0 || nominal <= 0 {
		return nominal
	}
	u := float64(s.rng.Uint64()>>11) * 0x1p-53 // uniform in [0, 1)
	f := float64(nominal) * (1 - j + 2*j*u)
	if f >= math.MaxInt64 { // only with an absurd Max; saturate, do not wrap
		return math.MaxInt64
	}
	return time.Duration(f)
}

// Reset ends the current episode, typically because the operation
// succeeded: the next Next starts a new episode with the first wait and a
// fresh GiveUpAfter budget, and Attempts returns to 0.
//
// The new episode's budget starts at that next Next, not at Reset, so a
// Reset on success followed by a long quiet spell does not eat into the
// next failure's budget. now is handed to the calculator's Reset (through
// the injected clock) so that it, too, sees only caller time.
func (s *Schedule) Reset(now time.Duration) {
	s.clock.now = now
	s.calc.Reset()
	s.started = false
	s.gaveUp = false
	s.attempts = 0
	s.start = 0
}

// Attempts returns how many retries the current episode has scheduled:
// the number of Next calls since NewSchedule or Reset that returned
// ok = true.
func (s *Schedule) Attempts() int { return s.attempts }

// Preset configurations. Each returns a fresh value; adjust it (a Seed for
// a reproducible test, a GiveUpAfter) and pass it to NewSchedule. The
// Schedule presets below are NewSchedule of these.

// PeerBusyConfig is the schedule after EAGAIN from a full peer: 20 µs,
// doubling, nominal cap 2 ms, jitter 0.2. The kernel never signals a
// non-blocking netlink sender when the peer drains (docs/PLATFORM.md §2), so the
// only way forward is a timer. It never gives up on its own: the engine's
// dead-peer timeout decides.
func PeerBusyConfig() ScheduleConfig {
	return ScheduleConfig{
		Initial:     20 * time.Microsecond,
		Max:         2 * time.Millisecond,
		Multiplier:  2,
		Jitter:      0.2,
		GiveUpAfter: 0, // never: the dead-peer timeout decides
	}
}

// OverrunConfig is the schedule of status-exchange retries after ENOBUFS
// (a receive overrun, docs/PLATFORM.md §3): the first retry at once, then 100 µs,
// doubling, nominal cap 10 ms, jitter 0.1. It never gives up on its own:
// the engine's dead-peer timeout decides.
func OverrunConfig() ScheduleConfig {
	return ScheduleConfig{
		Immediate:   true,
		Initial:     100 * time.Microsecond,
		Max:         10 * time.Millisecond,
		Multiplier:  2,
		Jitter:      0.1,
		GiveUpAfter: 0, // never: the dead-peer timeout decides
	}
}

// HandshakeConfig is the SYN retransmission schedule: 1 ms, doubling,
// nominal cap 200 ms, jitter 0.1. It never gives up on its own: the
// caller's dial deadline (context) decides.
func HandshakeConfig() ScheduleConfig {
	return ScheduleConfig{
		Initial:     time.Millisecond,
		Max:         200 * time.Millisecond,
		Multiplier:  2,
		Jitter:      0.1,
		GiveUpAfter: 0, // never: the dial deadline decides
	}
}

// ProbeConfig is the schedule for probing a kernel facility, such as a
// proc connector PROC_CN_MCAST_LISTEN subscription that got no answer:
// 10 ms, doubling, nominal cap 1 s, jitter 0.1, giving up after 10 s.
func ProbeConfig() ScheduleConfig {
	return ScheduleConfig{
		Initial:     10 * time.Millisecond,
		Max:         time.Second,
		Multiplier:  2,
		Jitter:      0.1,
		GiveUpAfter: 10 * time.Second,
	}
}

// PeerBusySchedule returns NewSchedule(PeerBusyConfig()).
func PeerBusySchedule() *Schedule { return NewSchedule(PeerBusyConfig()) }

// OverrunSchedule returns NewSchedule(OverrunConfig()).
func OverrunSchedule() *Schedule { return NewSchedule(OverrunConfig()) }

// HandshakeSchedule returns NewSchedule(HandshakeConfig()).
func HandshakeSchedule() *Schedule { return NewSchedule(HandshakeConfig()) }

// ProbeSchedule returns NewSchedule(ProbeConfig()).
func ProbeSchedule() *Schedule { return NewSchedule(ProbeConfig()) }

// noCopy makes go vet's copylocks check report copies of the struct that
// embeds it (see sync.noCopy).
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}
