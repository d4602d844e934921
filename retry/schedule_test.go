package retry

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// drive calls Next n times, advancing now by each wait (the caller retries
// exactly when told and fails again), and returns the waits until the
// first ok = false (exclusive) and whether that happened.
func drive(s *Schedule, now time.Duration, n int) (waits []time.Duration, gaveUp bool) {
	for range n {
		w, ok := s.Next(now)
		if !ok {
			return waits, true
		}
		waits = append(waits, w)
		now += w
	}
	return waits, false
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestScheduleGrowth(t *testing.T) {
	tests := []struct {
		name string
		cfg  ScheduleConfig
		want []time.Duration
	}{
		{
			name: "doubling to the cap",
			cfg:  ScheduleConfig{Initial: 20 * us, Max: 2 * ms, Multiplier: 2},
			want: []time.Duration{20 * us, 40 * us, 80 * us, 160 * us, 320 * us, 640 * us, 1280 * us, 2 * ms, 2 * ms, 2 * ms},
		},
		{
			name: "multiplier 1.5",
			cfg:  ScheduleConfig{Initial: 100 * us, Max: ms, Multiplier: 1.5},
			want: []time.Duration{100000, 150000, 225000, 337500, 506250, 759375, ms, ms},
		},
		{
			name: "multiplier 1 is constant",
			cfg:  ScheduleConfig{Initial: 300 * us, Max: ms, Multiplier: 1},
			want: []time.Duration{300 * us, 300 * us, 300 * us, 300 * us},
		},
		{
			name: "Initial equal to Max",
			cfg:  ScheduleConfig{Initial: ms, Max: ms},
			want: []time.Duration{ms, ms, ms},
		},
		{
			name: "immediate first retry",
			cfg:  ScheduleConfig{Immediate: true, Initial: 100 * us, Max: 500 * us},
			want: []time.Duration{0, 100 * us, 200 * us, 400 * us, 500 * us, 500 * us},
		},
		{
			name: "defaults: 1ms x2 to 1s",
			cfg:  ScheduleConfig{},
			want: []time.Duration{ms, 2 * ms, 4 * ms, 8 * ms, 16 * ms, 32 * ms, 64 * ms, 128 * ms, 256 * ms, 512 * ms, time.Second, time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSchedule(tt.cfg)
			got, gaveUp := drive(s, 5*time.Hour, len(tt.want))
			if gaveUp || !equalDurations(got, tt.want) {
				t.Fatalf("waits = %v (gave up: %v), want %v", got, gaveUp, tt.want)
			}
			if s.Attempts() != len(tt.want) {
				t.Fatalf("Attempts = %d, want %d", s.Attempts(), len(tt.want))
			}
		})
	}
}

func TestScheduleGiveUp(t *testing.T) {
	type call struct {
		now  time.Duration
		wait time.Duration
		ok   bool
	}
	base := ScheduleConfig{Initial: 100 * ms, Max: time.Second, Multiplier: 2}
	withGiveUp := func(d time.Duration) ScheduleConfig { c := base; c.GiveUpAfter = d; return c }
	tests := []struct {
		name  string
		cfg   ScheduleConfig
		calls []call
	}{
		{
			name: "gives up when the nominal retry would pass the budget",
			cfg:  withGiveUp(2 * time.Second),
			calls: []call{
				{0, 100 * ms, true}, {100 * ms, 200 * ms, true}, {300 * ms, 400 * ms, true},
				{700 * ms, 800 * ms, true},
				{1500 * ms, 0, false}, // 1.5 s + 1 s > 2 s
				{1500 * ms, 0, false}, // sticky
				{0, 0, false},         // sticky whatever now says
			},
		},
		{
			name: "a retry landing exactly on the budget is allowed",
			cfg:  withGiveUp(700 * ms),
			calls: []call{
				{0, 100 * ms, true}, {100 * ms, 200 * ms, true}, {300 * ms, 400 * ms, true}, // 300+400 = 700
				{700 * ms, 0, false},
			},
		},
		{
			name: "elapsed time is measured from the episode's first Next",
			cfg:  withGiveUp(2 * time.Second),
			calls: []call{
				{10 * time.Hour, 100 * ms, true},
				{10*time.Hour + 1800*ms, 200 * ms, true}, // 1.8 s + 200 ms = 2 s: on the budget
				{10*time.Hour + 2000*ms, 0, false},       // 2 s + 400 ms > 2 s
			},
		},
		{
			name: "a late caller gives up at once",
			cfg:  withGiveUp(2 * time.Second),
			calls: []call{
				{0, 100 * ms, true},
				{3 * time.Second, 0, false},
			},
		},
		{
			name: "zero GiveUpAfter never gives up",
			cfg:  withGiveUp(0),
			calls: []call{
				{0, 100 * ms, true},
				{1000 * time.Hour, 200 * ms, true},
				{100000 * time.Hour, 400 * ms, true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSchedule(tt.cfg)
			oks := 0
			for i, c := range tt.calls {
				w, ok := s.Next(c.now)
				if w != c.wait || ok != c.ok {
					t.Fatalf("call %d: Next(%v) = %v, %v; want %v, %v", i, c.now, w, ok, c.wait, c.ok)
				}
				if ok {
					oks++
				}
				if s.Attempts() != oks {
					t.Fatalf("call %d: Attempts = %d, want %d", i, s.Attempts(), oks)
				}
			}
		})
	}
}

func TestScheduleReset(t *testing.T) {
	cfg := ScheduleConfig{Initial: 100 * ms, Max: time.Second, GiveUpAfter: 2 * time.Second}
	s := NewSchedule(cfg)
	drive(s, 0, 3) // 100, 200, 400 ms
	if s.Attempts() != 3 {
		t.Fatalf("Attempts = %d, want 3", s.Attempts())
	}

	s.Reset(700 * ms)
	if s.Attempts() != 0 {
		t.Fatalf("Attempts after Reset = %d, want 0", s.Attempts())
	}
	if w, ok := s.Next(800 * ms); w != 100*ms || !ok {
		t.Fatalf("first Next after Reset = %v, %v; want 100ms, true", w, ok)
	}

	// Give up, then Reset revives the schedule.
	if _, ok := s.Next(time.Hour); ok {
		t.Fatal("Next an hour into a 2s budget: ok, want give up")
	}
	s.Reset(time.Hour)
	if w, ok := s.Next(time.Hour); w != 100*ms || !ok {
		t.Fatalf("Next after Reset from give-up = %v, %v; want 100ms, true", w, ok)
	}

	// Reset's now does not start the budget: the next Next does. A success
	// followed by a long quiet spell leaves the next episode its full budget.
	s.Reset(0)
	if w, ok := s.Next(24 * time.Hour); w != 100*ms || !ok {
		t.Fatalf("Next a day after Reset = %v, %v; want 100ms, true", w, ok)
	}
	if w, ok := s.Next(24*time.Hour + 1800*ms); w != 200*ms || !ok {
		t.Fatalf("second Next = %v, %v; want 200ms, true", w, ok)
	}

	// Immediate comes back after Reset.
	im := NewSchedule(OverrunConfig())
	im.Next(0)
	im.Next(0)
	im.Reset(0)
	if w, ok := im.Next(5 * ms); w != 0 || !ok {
		t.Fatalf("Immediate after Reset: Next = %v, %v; want 0, true", w, ok)
	}
}

// jitterSeeds are the seeds of the randomized schedule tests; each subtest
// name carries its seed.
var jitterSeeds = []uint64{1, 42, 20240611, 0xdeadbeef, math.MaxUint64}

// TestScheduleJitterBounds checks that every jittered wait lies in
// [nominal*(1-j), nominal*(1+j)] of the jitter-free twin, and that the
// draws really spread over that range.
func TestScheduleJitterBounds(t *testing.T) {
	for _, seed := range jitterSeeds {
		for _, j := range []float64{0.1, 0.2, 0.5, 1} {
			t.Run(fmt.Sprintf("seed=%d/jitter=%v", seed, j), func(t *testing.T) {
				cfg := ScheduleConfig{Initial: 20 * us, Max: 2 * ms, Multiplier: 2, Jitter: j, Seed: seed}
				s := NewSchedule(cfg)
				cfg.Jitter = 0
				nominal := NewSchedule(cfg)

				const n = 20000
				var lowHalf, highHalf int
				var sumRatio, minRatio, maxRatio float64 = 0, 2, 0
				now := time.Duration(0)
				for i := range n {
					if i%12 == 0 { // restart the episode every 12 retries: cover the whole curve
						s.Reset(now)
						nominal.Reset(now)
					}
					w, ok := s.Next(now)
					nw, _ := nominal.Next(now)
					if !ok {
						t.Fatalf("draw %d: gave up without GiveUpAfter", i)
					}
					lo := time.Duration(float64(nw)*(1-j)) - 1
					hi := time.Duration(float64(nw)*(1+j)) + 1
					if w < lo || w > hi {
						t.Fatalf("draw %d: wait %v outside [%v, %v] around nominal %v", i, w, lo, hi, nw)
					}
					r := float64(w) / float64(nw)
					sumRatio += r
					minRatio, maxRatio = min(minRatio, r), max(maxRatio, r)
					if w < nw {
						lowHalf++
					} else {
						highHalf++
					}
					now += w
				}
				// Deterministic for the seed; loose enough for any sane
				// uniform source.
				if mean := sumRatio / n; math.Abs(mean-1) > 0.02*j+0.001 {
					t.Errorf("mean wait/nominal = %.4f, want 1 +- %.4f", mean, 0.02*j+0.001)
				}
				if minRatio > 1-0.95*j || maxRatio < 1+0.95*j {
					t.Errorf("draws span [%.4f, %.4f] of nominal, want close to [%.2f, %.2f]", minRatio, maxRatio, 1-j, 1+j)
				}
				if lowHalf < n*4/10 || highHalf < n*4/10 {
					t.Errorf("draws below/above nominal: %d/%d, want roughly even", lowHalf, highHalf)
				}
			})
		}
	}
}

// TestScheduleJitterWithGiveUp checks the give-up invariant under jitter:
// while ok, now+wait never passes start+GiveUpAfter, and the schedule does
// give up.
func TestScheduleJitterWithGiveUp(t *testing.T) {
	for _, seed := range jitterSeeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			cfg := ProbeConfig()
			cfg.Jitter = 0.5
			cfg.Seed = seed
			s := NewSchedule(cfg)
			for episode := range 200 {
				start := time.Duration(episode) * time.Hour
				s.Reset(start)
				now := start
				for i := 0; ; i++ {
					w, ok := s.Next(now)
					if !ok {
						break
					}
					if now+w > start+cfg.GiveUpAfter {
						t.Fatalf("episode %d retry %d: now %v + wait %v passes the budget end %v",
							episode, i, now-start, w, cfg.GiveUpAfter)
					}
					if i > 1000 {
						t.Fatalf("episode %d: no give-up after 1000 retries", episode)
					}
					now += w
				}
			}
		})
	}
}

func TestScheduleSeedReproducible(t *testing.T) {
	for _, seed := range jitterSeeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			cfg := PeerBusyConfig()
			cfg.Seed = seed
			a, _ := drive(NewSchedule(cfg), 0, 50)
			b, _ := drive(NewSchedule(cfg), 0, 50)
			if !equalDurations(a, b) {
				t.Fatalf("same seed, different waits:\n%v\n%v", a, b)
			}
			cfg.Seed = seed + 1
			c, _ := drive(NewSchedule(cfg), 0, 50)
			if equalDurations(a, c) {
				t.Fatalf("seeds %d and %d gave identical waits %v", seed, seed+1, a)
			}
		})
	}
	// A random seed is reported by Config, which replays the schedule.
	s := PeerBusySchedule()
	if s.Config().Seed == 0 {
		t.Fatal("Config().Seed = 0 for a randomly seeded schedule")
	}
	replay := NewSchedule(s.Config())
	a, _ := drive(s, 0, 50)
	b, _ := drive(replay, 0, 50)
	if !equalDurations(a, b) {
		t.Fatalf("NewSchedule(s.Config()) did not replay s:\n%v\n%v", a, b)
	}
}

// TestScheduleNeverReadsWallClock proves that give-up depends on the
// caller's now only: driving now by hand far past GiveUpAfter gives up at
// once although no real time passes, and real time passing while now
// stands still never gives up.
func TestScheduleNeverReadsWallClock(t *testing.T) {
	t.Run("now driven past GiveUpAfter in no real time", func(t *testing.T) {
		realStart := time.Now()
		s := NewSchedule(ScheduleConfig{Initial: 10 * ms, Max: time.Second, GiveUpAfter: 10 * time.Second})
		if _, ok := s.Next(0); !ok {
			t.Fatal("first Next gave up")
		}
		if _, ok := s.Next(9 * time.Second); !ok { // 9 s + 20 ms < 10 s
			t.Fatal("Next at 9s gave up within a 10s budget")
		}
		if _, ok := s.Next(1000 * time.Hour); ok {
			t.Fatal("Next 1000h into a 10s budget did not give up")
		}
		if real := time.Since(realStart); real > 5*time.Second {
			t.Fatalf("test took %v of real time; it must not depend on it", real)
		}
	})
	t.Run("real time passes while now stands still", func(t *testing.T) {
		s := NewSchedule(ScheduleConfig{Initial: 100 * us, Max: 200 * us, GiveUpAfter: ms})
		if _, ok := s.Next(0); !ok {
			t.Fatal("first Next gave up")
		}
		// A calculator reading the wall clock would see 20 ms elapsed
		// against a 1 ms budget and stop.
		time.Sleep(20 * time.Millisecond)
		for i := range 5 {
			if _, ok := s.Next(0); !ok {
				t.Fatalf("Next %d at now=0 gave up after real time passed: the wall clock was read", i)
			}
		}
	})
	t.Run("the calculator's clock is the injected one", func(t *testing.T) {
		for name, s := range map[string]*Schedule{
			"custom": NewSchedule(ScheduleConfig{}), "PeerBusy": PeerBusySchedule(), "Overrun": OverrunSchedule(),
			"Handshake": HandshakeSchedule(), "Probe": ProbeSchedule(),
		} {
			if s.calc.Clock != backoff.Clock(&s.clock) {
				t.Errorf("%s: backoff Clock = %T %p, want the schedule's injected clock", name, s.calc.Clock, s.calc.Clock)
			}
			if s.calc.RandomizationFactor != 0 {
				t.Errorf("%s: backoff RandomizationFactor = %v, want 0 (jitter is seeded here)", name, s.calc.RandomizationFactor)
			}
			if s.calc.MaxElapsedTime != s.cfg.GiveUpAfter {
				t.Errorf("%s: backoff MaxElapsedTime = %v, want GiveUpAfter %v (never backoff's 15-minute default)",
					name, s.calc.MaxElapsedTime, s.cfg.GiveUpAfter)
			}
		}
	})
	t.Run("injected clock returns the caller's now", func(t *testing.T) {
		var c injectedClock
		c.now = 3 * time.Hour
		a := c.Now()
		c.now = 3*time.Hour + 5*us
		if d := c.Now().Sub(a); d != 5*us {
			t.Fatalf("clock difference = %v, want 5µs", d)
		}
	})
}

func TestSchedulePresets(t *testing.T) {
	tests := []struct {
		name        string
		cfg         ScheduleConfig
		schedule    func() *Schedule
		nominal     []time.Duration // jitter-free waits from the first Next
		jitter      float64
		giveUpAfter time.Duration
	}{
		{
			name: "PeerBusy", cfg: PeerBusyConfig(), schedule: PeerBusySchedule, jitter: 0.2,
			nominal: []time.Duration{20 * us, 40 * us, 80 * us, 160 * us, 320 * us, 640 * us, 1280 * us, 2 * ms, 2 * ms},
		},
		{
			name: "Overrun", cfg: OverrunConfig(), schedule: OverrunSchedule, jitter: 0.1,
			nominal: []time.Duration{0, 100 * us, 200 * us, 400 * us, 800 * us, 1600 * us, 3200 * us, 6400 * us, 10 * ms, 10 * ms},
		},
		{
			name: "Handshake", cfg: HandshakeConfig(), schedule: HandshakeSchedule, jitter: 0.1,
			nominal: []time.Duration{ms, 2 * ms, 4 * ms, 8 * ms, 16 * ms, 32 * ms, 64 * ms, 128 * ms, 200 * ms, 200 * ms},
		},
		{
			name: "Probe", cfg: ProbeConfig(), schedule: ProbeSchedule, jitter: 0.1, giveUpAfter: 10 * time.Second,
			nominal: []time.Duration{10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, time.Second, time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cfg.Jitter != tt.jitter || tt.cfg.GiveUpAfter != tt.giveUpAfter {
				t.Fatalf("config %+v: want jitter %v, GiveUpAfter %v", tt.cfg, tt.jitter, tt.giveUpAfter)
			}
			if got := tt.schedule().Config(); got.Seed == 0 || func() bool { got.Seed = 0; return got != tt.cfg }() {
				t.Fatalf("preset schedule config %+v, want %+v with a non-zero seed", got, tt.cfg)
			}
			cfg := tt.cfg
			cfg.Jitter = 0
			if got, _ := drive(NewSchedule(cfg), 0, len(tt.nominal)); !equalDurations(got, tt.nominal) {
				t.Fatalf("nominal waits %v, want %v", got, tt.nominal)
			}
			for _, seed := range jitterSeeds {
				cfg := tt.cfg
				cfg.Seed = seed
				got, _ := drive(NewSchedule(cfg), 0, len(tt.nominal))
				for i, w := range got {
					n := tt.nominal[i]
					if lo, hi := time.Duration(float64(n)*(1-tt.jitter))-1, time.Duration(float64(n)*(1+tt.jitter))+1; w < lo || w > hi {
						t.Fatalf("seed=%d wait %d = %v outside [%v, %v]", seed, i, w, lo, hi)
					}
				}
			}

			// Give-up behaviour, driving now by hand: 10,000 retries, then a
			// jump of 1000 hours.
			s := tt.schedule()
			now, last := time.Duration(0), time.Duration(0)
			gaveUp := false
			for i := 0; i < 10000 && !gaveUp; i++ {
				w, ok := s.Next(now)
				if !ok {
					gaveUp = true
					break
				}
				last = now + w
				now = last
			}
			if !gaveUp {
				now += 1000 * time.Hour
				_, ok := s.Next(now)
				gaveUp = !ok
			}
			switch {
			case tt.giveUpAfter == 0 && gaveUp:
				t.Fatalf("gave up at %v; the preset must never give up on its own", now)
			case tt.giveUpAfter != 0 && !gaveUp:
				t.Fatalf("never gave up; want after %v", tt.giveUpAfter)
			case tt.giveUpAfter != 0 && (last > tt.giveUpAfter || last < tt.giveUpAfter-2*time.Second):
				t.Fatalf("last retry at %v, want within [budget-2s, budget %v]", last, tt.giveUpAfter)
			}
		})
	}
}

func TestScheduleConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     ScheduleConfig
		wantErr string // substring; "" means valid
	}{
		{"zero", ScheduleConfig{}, ""},
		{"presets", PeerBusyConfig(), ""},
		{"full jitter", ScheduleConfig{Jitter: 1}, ""},
		{"negative Initial", ScheduleConfig{Initial: -1}, "Initial = -1ns is negative"},
		{"negative Max", ScheduleConfig{Max: -1}, "Max = -1ns is negative"},
		{"negative GiveUpAfter", ScheduleConfig{GiveUpAfter: -1}, "GiveUpAfter = -1ns is negative"},
		{"Multiplier below 1", ScheduleConfig{Multiplier: 0.5}, "Multiplier = 0.5"},
		{"negative Multiplier", ScheduleConfig{Multiplier: -2}, "Multiplier = -2"},
		{"NaN Multiplier", ScheduleConfig{Multiplier: math.NaN()}, "Multiplier = NaN"},
		{"infinite Multiplier", ScheduleConfig{Multiplier: math.Inf(1)}, "Multiplier = +Inf"},
		{"negative Jitter", ScheduleConfig{Jitter: -0.1}, "Jitter = -0.1"},
		{"Jitter above 1", ScheduleConfig{Jitter: 1.5}, "Jitter = 1.5"},
		{"NaN Jitter", ScheduleConfig{Jitter: math.NaN()}, "Jitter = NaN"},
		{"Max below Initial", ScheduleConfig{Initial: 2 * time.Second}, "Max 1s < Initial 2s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				NewSchedule(tt.cfg) // must not panic
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "cnlink/retry: invalid ScheduleConfig") {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
			defer func() {
				if p := recover(); p == nil {
					t.Fatalf("NewSchedule(%+v) did not panic", tt.cfg)
				}
			}()
			NewSchedule(tt.cfg)
		})
	}
}

// TestScheduleHugeMax checks that an absurd Max with full jitter saturates
// instead of wrapping negative.
func TestScheduleHugeMax(t *testing.T) {
	s := NewSchedule(ScheduleConfig{Initial: time.Hour, Max: math.MaxInt64, Multiplier: 1000, Jitter: 1, Seed: 7})
	now := time.Duration(0)
	for i := range 100 {
		w, ok := s.Next(now)
		if !ok || w < 0 {
			t.Fatalf("Next %d = %v, %v; want a non-negative wait", i, w, ok)
		}
	}
}

func TestScheduleZeroAllocs(t *testing.T) {
	for name, s := range map[string]*Schedule{"PeerBusy": PeerBusySchedule(), "Probe": ProbeSchedule()} {
		now := time.Duration(0)
		i := 0
		if n := testing.AllocsPerRun(1000, func() {
			w, ok := s.Next(now)
			now += w
			if i++; !ok || i%16 == 0 {
				s.Reset(now)
			}
			_ = s.Attempts()
		}); n != 0 {
			t.Errorf("%s: Next/Reset: %v allocs per run, want 0", name, n)
		}
	}
}

func BenchmarkScheduleNext(b *testing.B) {
	for _, bc := range []struct {
		name string
		s    *Schedule
	}{
		{"PeerBusy", PeerBusySchedule()},
		{"Probe", ProbeSchedule()},
		{"NoJitter", NewSchedule(ScheduleConfig{Initial: 20 * us, Max: 2 * ms})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := bc.s
			now := time.Duration(0)
			b.ReportAllocs()
			for b.Loop() {
				w, ok := s.Next(now)
				if !ok {
					s.Reset(now)
				}
				now += w
			}
		})
	}
}
