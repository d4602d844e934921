package retry

import (
	"math"
	"strings"
	"testing"
	"time"
)

const (
	us = time.Microsecond
	ms = time.Millisecond
)

// rttState is what a test expects of an RTT after a sequence of calls.
type rttState struct {
	srtt, rttvar, latest, minRTT, rto time.Duration
	hasSample                         bool
	backoffs                          int
}

func snapshot(r *RTT) rttState {
	return rttState{
		srtt: r.SRTT(), rttvar: r.RTTVar(), latest: r.Latest(), minRTT: r.MinRTT(),
		rto: r.RTO(), hasSample: r.HasSample(), backoffs: r.Backoffs(),
	}
}

// step is one call on an RTT: a sample, or a Backoff when backoff is set.
type step struct {
	sample  time.Duration
	backoff bool
}

func samples(ds ...time.Duration) []step {
	s := make([]step, len(ds))
	for i, d := range ds {
		s[i] = step{sample: d}
	}
	return s
}

func backoffs(n int) []step {
	s := make([]step, n)
	for i := range s {
		s[i] = step{backoff: true}
	}
	return s
}

func seq(parts ...[]step) []step {
	var s []step
	for _, p := range parts {
		s = append(s, p...)
	}
	return s
}

func run(r *RTT, steps []step) {
	for _, st := range steps {
		if st.backoff {
			r.Backoff()
		} else {
			r.Update(st.sample)
		}
	}
}

// TestRTTRules checks each RFC 6298 rule on exact values. Durations are
// chosen so that alpha 1/8 and beta 1/4 divide them exactly.
func TestRTTRules(t *testing.T) {
	// A configuration whose clamps stay out of the way of the formula.
	wide := RTTConfig{Initial: 3 * ms, Min: time.Nanosecond, Max: time.Hour, Granularity: 10 * us}

	tests := []struct {
		name  string
		rule  string
		cfg   RTTConfig
		steps []step
		want  rttState
	}{
		{
			name: "no sample: RTO is Initial, SRTT/RTTVAR hold the guess",
			rule: `2.1 "Until a round-trip time (RTT) measurement has been made ... the sender SHOULD set RTO <- 1 second"`,
			cfg:  wide,
			want: rttState{srtt: 3 * ms, rttvar: 1500 * us, rto: 3 * ms},
		},
		{
			name: "default config before a sample",
			rule: "2.1 with our 2 ms default",
			cfg:  RTTConfig{},
			want: rttState{srtt: 2 * ms, rttvar: 1 * ms, rto: 2 * ms},
		},
		{
			name:  "no sample: backoff still applies",
			rule:  `2.1 "though the "backing off" on repeated retransmission discussed in (5.5) still applies"`,
			cfg:   wide,
			steps: backoffs(2),
			want:  rttState{srtt: 3 * ms, rttvar: 1500 * us, rto: 12 * ms, backoffs: 2},
		},
		{
			name:  "first sample",
			rule:  `2.2 "SRTT <- R, RTTVAR <- R/2, RTO <- SRTT + max (G, K*RTTVAR) where K = 4"`,
			cfg:   wide,
			steps: samples(100 * us),
			want:  rttState{srtt: 100 * us, rttvar: 50 * us, latest: 100 * us, minRTT: 100 * us, rto: 300 * us, hasSample: true},
		},
		{
			name:  "second sample updates RTTVAR with the old SRTT",
			rule:  `2.3 "The value of SRTT used in the update to RTTVAR is its value before updating SRTT itself"`,
			cfg:   wide,
			steps: samples(100*us, 200*us),
			// RTTVAR = 3/4*50 + 1/4*|100-200| = 62.5 µs (with the new SRTT,
			// 112.5, it would be 59.375 µs); SRTT = 7/8*100 + 1/8*200 = 112.5 µs.
			want: rttState{srtt: 112500, rttvar: 62500, latest: 200 * us, minRTT: 100 * us, rto: 112500 + 4*62500, hasSample: true},
		},
		{
			name:  "sample below SRTT",
			rule:  `2.3 "RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|"`,
			cfg:   wide,
			steps: samples(800*us, 400*us),
			// RTTVAR = 3/4*400 + 1/4*400 = 400 µs; SRTT = 7/8*800 + 1/8*400 = 750 µs.
			want: rttState{srtt: 750 * us, rttvar: 400 * us, latest: 400 * us, minRTT: 400 * us, rto: 2350 * us, hasSample: true},
		},
		{
			name:  "third sample",
			rule:  "2.3 applied twice",
			cfg:   wide,
			steps: samples(800*us, 400*us, 1200*us),
			// RTTVAR = 3/4*400 + 1/4*|750-1200| = 412.5 µs; SRTT = 7/8*750 + 1/8*1200 = 806.25 µs.
			want: rttState{srtt: 806250, rttvar: 412500, latest: 1200 * us, minRTT: 400 * us, rto: 806250 + 4*412500, hasSample: true},
		},
		{
			name:  "granularity term: K*RTTVAR below G",
			rule:  `2.2/2.3 "RTO <- SRTT + max (G, K*RTTVAR)"`,
			cfg:   wide,
			steps: samples(2 * us), // K*RTTVAR = 4 µs < G = 10 µs
			want:  rttState{srtt: 2 * us, rttvar: 1 * us, latest: 2 * us, minRTT: 2 * us, rto: 12 * us, hasSample: true},
		},
		{
			name:  "granularity term: K*RTTVAR above G",
			rule:  `2.2/2.3 "RTO <- SRTT + max (G, K*RTTVAR)"`,
			cfg:   RTTConfig{Initial: 3 * ms, Min: time.Nanosecond, Max: time.Hour, Granularity: us},
			steps: samples(2 * us), // K*RTTVAR = 4 µs > G = 1 µs
			want:  rttState{srtt: 2 * us, rttvar: 1 * us, latest: 2 * us, minRTT: 2 * us, rto: 6 * us, hasSample: true},
		},
		{
			name:  "granularity term: a steady peer decays RTTVAR, G remains",
			rule:  `2.3 "RTO <- SRTT + max (G, K*RTTVAR)"`,
			cfg:   wide,
			steps: samples(repeat(ms, 100)...),
			want:  rttState{srtt: ms, rttvar: 0, latest: ms, minRTT: ms, rto: ms + 10*us, hasSample: true},
		},
		{
			name:  "non-positive sample is raised to G",
			rule:  "Update: a clock that did not advance",
			cfg:   wide,
			steps: samples(0),
			want:  rttState{srtt: 10 * us, rttvar: 5 * us, latest: 10 * us, minRTT: 10 * us, rto: 30 * us, hasSample: true},
		},
		{
			name:  "negative sample is raised to G",
			rule:  "Update: a clock that went backwards",
			cfg:   wide,
			steps: samples(80*us, -5*us),
			// R' = 10 µs: RTTVAR = 3/4*40 + 1/4*70 = 47.5 µs; SRTT = 7/8*80 + 1/8*10 = 71.25 µs.
			want: rttState{srtt: 71250, rttvar: 47500, latest: 10 * us, minRTT: 10 * us, rto: 71250 + 4*47500, hasSample: true},
		},
		{
			name:  "min clamp",
			rule:  `2.4 "if it is less than 1 second, then the RTO SHOULD be rounded up to 1 second" (200 µs here)`,
			cfg:   RTTConfig{},
			steps: samples(10 * us), // formula: 10 + max(10, 20) = 30 µs
			want:  rttState{srtt: 10 * us, rttvar: 5 * us, latest: 10 * us, minRTT: 10 * us, rto: 200 * us, hasSample: true},
		},
		{
			name:  "max clamp",
			rule:  `2.5 "A maximum value MAY be placed on RTO" (1 s here)`,
			cfg:   RTTConfig{},
			steps: samples(800 * ms), // formula: 800 ms + 1.6 s
			want:  rttState{srtt: 800 * ms, rttvar: 400 * ms, latest: 800 * ms, minRTT: 800 * ms, rto: time.Second, hasSample: true},
		},
		{
			name:  "backoff doubles",
			rule:  `5.5 "The host MUST set RTO <- RTO * 2 ("back off the timer")"`,
			cfg:   wide,
			steps: seq(samples(100*us), backoffs(3)),
			want:  rttState{srtt: 100 * us, rttvar: 50 * us, latest: 100 * us, minRTT: 100 * us, rto: 2400 * us, hasSample: true, backoffs: 3},
		},
		{
			name:  "backoff capped at Max",
			rule:  `5.5 "The maximum value discussed in (2.5) above may be used to provide an upper bound to this doubling operation"`,
			cfg:   RTTConfig{},
			steps: seq(samples(100*us), backoffs(12)), // 300 µs * 2^12 = 1.2288 s > 1 s
			want:  rttState{srtt: 100 * us, rttvar: 50 * us, latest: 100 * us, minRTT: 100 * us, rto: time.Second, hasSample: true, backoffs: 12},
		},
		{
			name:  "backoff counts on past the cap",
			rule:  "Backoffs: dead-peer decisions",
			cfg:   RTTConfig{},
			steps: seq(samples(100*us), backoffs(200)),
			want:  rttState{srtt: 100 * us, rttvar: 50 * us, latest: 100 * us, minRTT: 100 * us, rto: time.Second, hasSample: true, backoffs: 200},
		},
		{
			name:  "new sample collapses the backoff",
			rule:  `5 "may result in "collapsing" RTO back down after it has been subject to exponential back off (rule 5.5)"`,
			cfg:   wide,
			steps: seq(samples(100*us), backoffs(5), samples(100*us)),
			// RTTVAR = 3/4*50 + 0 = 37.5 µs; SRTT = 100 µs.
			want: rttState{srtt: 100 * us, rttvar: 37500, latest: 100 * us, minRTT: 100 * us, rto: 250 * us, hasSample: true},
		},
		{
			name:  "first sample after backoffs before any sample",
			rule:  "2.1 backoff, then 2.2 collapses it",
			cfg:   wide,
			steps: seq(backoffs(4), samples(100*us)),
			want:  rttState{srtt: 100 * us, rttvar: 50 * us, latest: 100 * us, minRTT: 100 * us, rto: 300 * us, hasSample: true},
		},
		{
			name:  "min RTT and latest",
			rule:  "MinRTT/Latest bookkeeping",
			cfg:   wide,
			steps: samples(400*us, 100*us, 800*us),
			// (400) -> RTTVAR 200, SRTT 400; (100) -> RTTVAR 225, SRTT 362.5;
			// (800) -> RTTVAR 3/4*225 + 1/4*437.5 = 278.125, SRTT 7/8*362.5 + 100 = 417.1875 µs.
			want: rttState{srtt: 417187, rttvar: 278125, latest: 800 * us, minRTT: 100 * us, rto: 417187 + 4*278125, hasSample: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRTT(tt.cfg)
			run(r, tt.steps)
			if got := snapshot(r); got != tt.want {
				t.Errorf("RFC 6298 %s\n got %+v\nwant %+v", tt.rule, got, tt.want)
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	s := make([]time.Duration, n)
	for i := range s {
		s[i] = d
	}
	return s
}

// TestRTTBackoffSequence checks every step of the doubling up to the cap,
// from the default configuration.
func TestRTTBackoffSequence(t *testing.T) {
	r := NewRTT(RTTConfig{})
	r.Update(100 * us) // RTO 300 µs
	want := []time.Duration{300 * us, 600 * us, 1200 * us, 2400 * us, 4800 * us, 9600 * us,
		19200 * us, 38400 * us, 76800 * us, 153600 * us, 307200 * us, 614400 * us, time.Second, time.Second}
	for i, w := range want {
		if got := r.RTO(); got != w {
			t.Fatalf("after %d backoffs: RTO = %v, want %v", i, got, w)
		}
		if got := r.Backoffs(); got != i {
			t.Fatalf("Backoffs = %d, want %d", got, i)
		}
		r.Backoff()
	}
}

// TestRTTSaturation feeds absurd values: nothing may overflow, the RTO
// stays within [Min, Max].
func TestRTTSaturation(t *testing.T) {
	for _, cfg := range []RTTConfig{
		{},
		{Max: math.MaxInt64, Initial: time.Second},
		{Max: math.MaxInt64, Initial: time.Second, Granularity: math.MaxInt64},
	} {
		r := NewRTT(cfg)
		c := r.Config()
		check := func(when string) {
			t.Helper()
			if rto := r.RTO(); rto < c.Min || rto > c.Max {
				t.Fatalf("cfg %+v, %s: RTO = %v outside [%v, %v]", cfg, when, rto, c.Min, c.Max)
			}
		}
		r.Update(math.MaxInt64)
		check("max sample")
		r.Update(math.MaxInt64)
		check("two max samples")
		r.Update(1)
		check("max then 1ns")
		for range 1000 {
			r.Backoff()
		}
		check("1000 backoffs")
		if r.RTO() != c.Max {
			t.Fatalf("cfg %+v: RTO after 1000 backoffs = %v, want Max %v", cfg, r.RTO(), c.Max)
		}
		r.Update(math.MinInt64)
		check("min sample")
	}
}

// TestRTTBoundsSeed20240611 runs random samples and backoffs (seeded) and checks the
// invariants: RTO in [Min, Max], monotone in backoffs, SRTT between the
// extreme samples.
func TestRTTBoundsSeed20240611(t *testing.T) {
	rng := newTestRand(20240611)
	r := NewRTT(RTTConfig{})
	c := r.Config()
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	for i := range 100000 {
		if rng.IntN(4) == 0 {
			before := r.RTO()
			r.Backoff()
			if after := r.RTO(); after < before || (after != c.Max && after != 2*before) {
				t.Fatalf("step %d: Backoff took RTO %v -> %v", i, before, after)
			}
		} else {
			s := time.Duration(rng.Int64N(int64(5 * ms)))
			r.Update(s)
			if s <= 0 {
				s = c.Granularity
			}
			lo, hi = min(lo, s), max(hi, s)
			if r.SRTT() < lo || r.SRTT() > hi {
				t.Fatalf("step %d: SRTT %v outside samples [%v, %v]", i, r.SRTT(), lo, hi)
			}
			if r.MinRTT() != lo {
				t.Fatalf("step %d: MinRTT %v, want %v", i, r.MinRTT(), lo)
			}
		}
		if rto := r.RTO(); rto < c.Min || rto > c.Max {
			t.Fatalf("step %d: RTO %v outside [%v, %v]", i, rto, c.Min, c.Max)
		}
	}
}

func TestRTTConfigDefaults(t *testing.T) {
	got := NewRTT(RTTConfig{}).Config()
	want := RTTConfig{Initial: 2 * ms, Min: 200 * us, Max: time.Second, Granularity: 10 * us}
	if got != want {
		t.Fatalf("defaults = %+v, want %+v", got, want)
	}
	// Explicit fields are kept.
	cfg := RTTConfig{Initial: 5 * ms, Min: 1 * ms, Max: 2 * time.Second, Granularity: us}
	if got := NewRTT(cfg).Config(); got != cfg {
		t.Fatalf("explicit config = %+v, want %+v", got, cfg)
	}
}

func TestRTTConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     RTTConfig
		wantErr string // substring; "" means valid
	}{
		{"zero", RTTConfig{}, ""},
		{"explicit", RTTConfig{Initial: ms, Min: ms, Max: ms, Granularity: us}, ""},
		{"negative Initial", RTTConfig{Initial: -1}, "Initial = -1ns is negative"},
		{"negative Min", RTTConfig{Min: -1}, "Min = -1ns is negative"},
		{"negative Max", RTTConfig{Max: -1}, "Max = -1ns is negative"},
		{"negative Granularity", RTTConfig{Granularity: -1}, "Granularity = -1ns is negative"},
		{"Min above default Max", RTTConfig{Min: 2 * time.Second}, "Min 2s > Max 1s"},
		{"Initial above Max", RTTConfig{Initial: 2 * time.Second}, "Initial 2s outside [Min 200µs, Max 1s]"},
		{"Initial below Min", RTTConfig{Min: 5 * ms}, "Initial 2ms outside [Min 5ms, Max 1s]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				NewRTT(tt.cfg) // must not panic
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "cnlink/retry: invalid RTTConfig") {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
			defer func() {
				if p := recover(); p == nil {
					t.Fatalf("NewRTT(%+v) did not panic", tt.cfg)
				}
			}()
			NewRTT(tt.cfg)
		})
	}
}

func TestRTTZeroAllocs(t *testing.T) {
	r := NewRTT(RTTConfig{})
	var d time.Duration
	if n := testing.AllocsPerRun(1000, func() {
		r.Update(50*us + d)
		d = (d + 7*us) % ms
		_ = r.RTO()
		r.Backoff()
		_ = r.RTO()
	}); n != 0 {
		t.Fatalf("RTT Update/RTO/Backoff: %v allocs per run, want 0", n)
	}
}

func BenchmarkRTTUpdate(b *testing.B) {
	r := NewRTT(RTTConfig{})
	b.ReportAllocs()
	var d time.Duration
	for b.Loop() {
		r.Update(10*us + d)
		d = (d + 1*us) & (64*us - 1)
	}
}

func BenchmarkRTTRTO(b *testing.B) {
	r := NewRTT(RTTConfig{})
	r.Update(10 * us)
	r.Update(30 * us)
	r.Backoff()
	b.ReportAllocs()
	var sink time.Duration
	for b.Loop() {
		sink += r.RTO()
	}
	_ = sink
}
