package retry

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// RFC 6298 constants. Section 2: "The above SHOULD be computed using
// alpha=1/8 and beta=1/4 (as suggested in [JK88])"; rule 2.2: "where K = 4".
// Alpha and beta are applied as integer divisions (truncating toward zero).
const (
	rttAlphaDen = 8 // alpha = 1/rttAlphaDen
	rttBetaDen  = 4 // beta = 1/rttBetaDen
	rttK        = 4 // K

	// maxSample caps samples (about 36 years) so that the rule 2.3
	// products cannot overflow.
	maxSample = math.MaxInt64 / rttAlphaDen
)

// Defaults for the zero fields of RTTConfig.
const (
	// DefaultRTTInitial replaces RFC 6298's 1 s initial RTO (rule 2.1): a
	// local netlink round trip takes about 10 µs (p99 about 90 µs,
	// docs/PLATFORM.md §10), so 2 ms is already some 20 worst-case round trips.
	DefaultRTTInitial = 2 * time.Millisecond
	// DefaultRTTMin replaces RFC 6298's 1 s minimum (rule 2.4); see
	// RTTConfig.Min for why.
	DefaultRTTMin = 200 * time.Microsecond
	// DefaultRTTMax is the upper clamp. RFC 6298 rule 2.5 only allows a
	// maximum of at least 60 s; see RTTConfig.Max for why ours is lower.
	DefaultRTTMax = time.Second
	// DefaultRTTGranularity is G, the clock granularity of RFC 6298 rules
	// 2.2 and 2.3.
	DefaultRTTGranularity = 10 * time.Microsecond
)

// RTTConfig configures an RTT estimator. Every zero field means its
// documented default, so the zero RTTConfig is the recommended setting for
// a local netlink peer. Negative fields, and defaults that contradict the
// explicit fields (Min > Max, Initial outside [Min, Max]), are rejected by
// Validate; NewRTT panics on them.
type RTTConfig struct {
	// Initial is the RTO before the first sample. RFC 6298 rule 2.1:
	// "Until a round-trip time (RTT) measurement has been made ... the
	// sender SHOULD set RTO <- 1 second". Zero means 2 ms (DefaultRTTInitial)
	// because a local netlink round trip is about 10 µs, not an Internet
	// path. It must lie in [Min, Max].
	Initial time.Duration

	// Min is the lower clamp of the RTO. RFC 6298 rule 2.4: "Whenever RTO is
	// computed, if it is less than 1 second, then the RTO SHOULD be rounded
	// up to 1 second." Zero means 200 µs (DefaultRTTMin). We deviate on
	// purpose: the RFC's floor guards Internet paths and delayed ACKs
	// against spurious retransmission; over a local netlink socket it would
	// make every lost message cost some 100,000 round trips. 200 µs is about
	// twice the measured p99 round trip and covers a goroutine that is
	// briefly descheduled on a loaded 2-core machine. A spurious
	// retransmission is cheap and harmless here: the receiver suppresses
	// duplicates.
	Min time.Duration

	// Max is the upper clamp of the RTO, also bounding the doubling of
	// Backoff. RFC 6298 rule 2.5: "A maximum value MAY be placed on RTO
	// provided it is at least 60 seconds." Zero means 1 s (DefaultRTTMax).
	// We deviate on purpose: the peer is on the same machine, so a silence
	// of a second is already some 100,000 round trips; the dead-peer
	// decision belongs to the engine (see RTT.Backoffs), not to an ever
	// longer timer.
	Max time.Duration

	// Granularity is G in RFC 6298 rules 2.2 and 2.3,
	// "RTO <- SRTT + max (G, K*RTTVAR)": the variance term never drops
	// below it, so a perfectly steady peer still gets some slack. Zero
	// means 10 µs (DefaultRTTGranularity).
	Granularity time.Duration
}

// withDefaults returns c with every zero field replaced by its default.
func (c RTTConfig) withDefaults() RTTConfig {
	if c.Initial == 0 {
		c.Initial = DefaultRTTInitial
	}
	if c.Min == 0 {
		c.Min = DefaultRTTMin
	}
	if c.Max == 0 {
		c.Max = DefaultRTTMax
	}
	if c.Granularity == 0 {
		c.Granularity = DefaultRTTGranularity
	}
	return c
}

// Validate reports whether c, once its zero fields take their defaults,
// is a usable configuration. NewRTT panics with the same error.
func (c RTTConfig) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"Initial", c.Initial}, {"Min", c.Min}, {"Max", c.Max}, {"Granularity", c.Granularity}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s = %v is negative", f.name, f.v))
		}
	}
	if len(errs) > 0 {
		return configError("RTTConfig", errs)
	}
	d := c.withDefaults()
	if d.Min > d.Max {
		errs = append(errs, fmt.Errorf("field Min %v > Max %v (after defaults)", d.Min, d.Max))
	} else if d.Initial < d.Min || d.Initial > d.Max {
		errs = append(errs, fmt.Errorf("field Initial %v outside [Min %v, Max %v] (after defaults)", d.Initial, d.Min, d.Max))
	}
	return configError("RTTConfig", errs)
}

// configError joins errs under the name of the configuration type.
func configError(typ string, errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("cnlink/retry: invalid %s: %w", typ, errors.Join(errs...))
}

// RTT estimates the round-trip time and the retransmission timeout (RTO)
// of one peer per RFC 6298, with the RFC's constants (alpha 1/8, beta 1/4,
// K 4) and local-machine clamps (see RTTConfig).
//
// It does no I/O and reads no clock: samples are durations the caller
// measured. The caller owns Karn's algorithm (RFC 6298 section 3: "RTT
// samples MUST NOT be made using segments that were retransmitted"): feed
// Update only with samples from records that were never retransmitted, or
// whose acknowledgement unambiguously names the transmission it answers.
//
// Arithmetic is in integer nanoseconds, truncated, in the RFC's own form;
// samples are capped at about 36 years and the RTO terms saturate, so no
// sample can overflow the estimator.
//
// An RTT is not safe for concurrent use; it belongs to the goroutine that
// owns the session (in cnlink, the endpoint's owner goroutine).
type RTT struct {
	cfg RTTConfig // resolved: no zero fields

	srtt      time.Duration // SRTT; cfg.Initial before the first sample
	rttvar    time.Duration // RTTVAR; cfg.Initial/2 before the first sample
	latest    time.Duration // most recent sample; 0 before the first
	minRTT    time.Duration // smallest sample; 0 before the first
	hasSample bool
	backoffs  int // Backoff calls since the last sample
}

// NewRTT returns an estimator with no sample yet. It panics if cfg is
// invalid (see RTTConfig.Validate); zero fields take their defaults.
func NewRTT(cfg RTTConfig) *RTT {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	return &RTT{
		cfg: cfg,
		// Before any sample SRTT and RTTVAR hold the initial guess, as
		// RFC 9002 section 5.3 does ("smoothed_rtt = kInitialRtt; rttvar =
		// kInitialRtt / 2"), so a reader of SRTT (a RACK-style reordering
		// window, a pacing decision) gets a usable value. RTO does not
		// derive from them until a sample arrives: rule 2.1 sets it to
		// Initial.
		srtt:   cfg.Initial,
		rttvar: cfg.Initial / 2,
	}
}

// Config returns the configuration in use, with defaults filled in.
func (r *RTT) Config() RTTConfig { return r.cfg }

// Update feeds one RTT measurement.
//
// Karn's algorithm is the caller's duty (see RTT). A non-positive sample
// (a clock that did not advance between send and acknowledgement) is
// raised to Granularity: it is a real round trip faster than the clock can
// tell. Update also ends any backoff, as RFC 6298 section 5 notes: "once a
// new RTT measurement is obtained ... the computations outlined in Section
// 2 are performed, including the computation of RTO, which may result in
// "collapsing" RTO back down after it has been subject to exponential back
// off (rule 5.5)."
func (r *RTT) Update(sample time.Duration) {
	if sample <= 0 {
		sample = r.cfg.Granularity
	}
	// SRTT and RTTVAR never exceed the largest sample, so capping samples
	// keeps 7*SRTT + R' and 3*RTTVAR + |SRTT - R'| below MaxInt64.
	sample = min(sample, maxSample)
	r.latest = sample
	r.backoffs = 0

	if !r.hasSample {
		// Rule 2.2: "When the first RTT measurement R is made, the host
		// MUST set SRTT <- R, RTTVAR <- R/2".
		r.hasSample = true
		r.minRTT = sample
		r.srtt = sample
		r.rttvar = sample / 2
		return
	}
	r.minRTT = min(r.minRTT, sample)

	// Rule 2.3: "When a subsequent RTT measurement R' is made, a host MUST
	// set RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|,
	// SRTT <- (1 - alpha) * SRTT + alpha * R'". "The value of SRTT used in
	// the update to RTTVAR is its value before updating SRTT itself ...
	// updating RTTVAR and SRTT MUST be computed in the above order."
	r.rttvar = ((rttBetaDen-1)*r.rttvar + absDuration(r.srtt-sample)) / rttBetaDen
	r.srtt = ((rttAlphaDen-1)*r.srtt + sample) / rttAlphaDen
}

// SRTT returns the smoothed round-trip time. Before the first sample it
// returns Initial, the configured guess (RFC 9002 section 5.3 does the
// same); use HasSample to tell the two apart.
func (r *RTT) SRTT() time.Duration { return r.srtt }

// RTTVar returns the round-trip time variation (RTTVAR). Before the first
// sample it returns Initial/2.
func (r *RTT) RTTVar() time.Duration { return r.rttvar }

// Latest returns the most recent sample as stored (non-positive samples
// raised to Granularity, absurd ones capped), or 0 before the first sample.
func (r *RTT) Latest() time.Duration { return r.latest }

// MinRTT returns the smallest sample seen, or 0 before the first sample.
func (r *RTT) MinRTT() time.Duration { return r.minRTT }

// HasSample reports whether Update has been called at least once.
func (r *RTT) HasSample() bool { return r.hasSample }

// Backoffs returns the number of Backoff calls since the last sample (or
// since NewRTT): how many retransmission timeouts in a row went
// unanswered. It keeps counting after the RTO reached Max, so the engine
// can declare the peer dead after N consecutive timeouts or once the
// summed RTOs exceed its deadline.
func (r *RTT) Backoffs() int { return r.backoffs }

// Backoff doubles the RTO after a retransmission timeout, up to Max. RFC
// 6298 rule 5.5: "The host MUST set RTO <- RTO * 2 ("back off the
// timer"). The maximum value discussed in (2.5) above may be used to
// provide an upper bound to this doubling operation." Rule 2.1 applies it
// before the first sample too: "though the "backing off" on repeated
// retransmission discussed in (5.5) still applies". The next Update
// collapses it.
func (r *RTT) Backoff() { r.backoffs++ }

// RTO returns the retransmission timeout to arm now: the base RTO doubled
// once per Backoff since the last sample, clamped to Max.
//
// The base RTO is Initial before the first sample (rule 2.1) and
// SRTT + max(G, K*RTTVAR) after it (rules 2.2 and 2.3), clamped to
// [Min, Max] (rules 2.4 and 2.5, with our values).
func (r *RTT) RTO() time.Duration {
	base := r.baseRTO()
	// Rule 5.5 applied Backoffs times: base * 2^n, capped at Max. base >
	// Max>>n exactly when base<<n would exceed Max, so the shift below
	// never overflows.
	n := r.backoffs
	if n >= 63 || base > r.cfg.Max>>n {
		return r.cfg.Max
	}
	return base << n
}

// baseRTO is the RTO before backoff, clamped to [Min, Max].
func (r *RTT) baseRTO() time.Duration {
	if !r.hasSample {
		// Rule 2.1: "Until a round-trip time (RTT) measurement has been
		// made ... the sender SHOULD set RTO <- 1 second" (Initial here).
		return r.cfg.Initial
	}
	// Rules 2.2 and 2.3: "RTO <- SRTT + max (G, K*RTTVAR) where K = 4".
	// Both terms are cut to Max and the sum saturates at Max, so nothing
	// overflows whatever the samples were.
	limit := r.cfg.Max
	variance := limit
	if r.rttvar < limit/rttK {
		variance = min(max(r.cfg.Granularity, rttK*r.rttvar), limit)
	}
	rto := limit
	if srtt := min(r.srtt, limit); srtt <= limit-variance {
		rto = srtt + variance
	}
	// Rule 2.4: "Whenever RTO is computed, if it is less than 1 second,
	// then the RTO SHOULD be rounded up to 1 second" (Min here).
	// Rule 2.5: "A maximum value MAY be placed on RTO provided it is at
	// least 60 seconds" (Max here).
	return min(max(rto, r.cfg.Min), r.cfg.Max)
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
