package torture

import (
	"flag"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/cnlink/cnlink/internal/leakcheck"
	"github.com/cnlink/cnlink/internal/testenv"
)

var (
	flagTime = flag.Duration("torture.time", 0,
		"total time of the torture tests, split evenly between TestTortureNetlink and TestTortureMemnet (overrides $CNLINK_TORTURE_TIME; default 5s each)")
	flagSeed    = flag.Uint64("torture.seed", 0, "run only this seed (printed by a failing run)")
	flagVerbose = flag.Bool("torture.v", false, "log one line per run")
)

// TestMain fails the binary if a goroutine or a socket outlives the tests
// (each run also checks its own, to name the seed).
func TestMain(m *testing.M) { leakcheck.Main(m) }

// TestTortureNetlink tortures sessions over real NETLINK_CONNECTOR
// sockets. It needs CAP_NET_ADMIN: it runs as root, and CI runs as root.
func TestTortureNetlink(t *testing.T) {
	testenv.RequireNetAdmin(t)
	torture(t, true)
}

// TestTortureMemnet tortures sessions over the in-memory network, in real
// time, with real goroutine concurrency (no synctest).
func TestTortureMemnet(t *testing.T) { torture(t, false) }

// torture runs seeds until the budget is spent (or the one seed asked for).
func torture(t *testing.T, netlink bool) {
	tot := &totals{start: time.Now()}
	defer tot.report(t)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	lanes := lanes()
	var mu sync.Mutex
	var next func() (uint64, bool)
	if *flagSeed != 0 {
		lanes = 1
		left := true
		next = func() (uint64, bool) {
			mu.Lock()
			defer mu.Unlock()
			ok := left
			left = false
			return *flagSeed, ok
		}
	} else {
		deadline := tot.start.Add(budget(t))
		// Consecutive seeds from a random base: the summary's range names them all.
		seed := 1 + rand.Uint64N(1e9)
		next = func() (uint64, bool) {
			mu.Lock()
			defer mu.Unlock()
			if !time.Now().Before(deadline) {
				return 0, false
			}
			seed++
			return seed - 1, true
		}
	}
	for {
		w := playWindow(lanes, next, netlink)
		if len(w.results) == 0 {
			return
		}
		stuck := false
		for _, res := range w.results {
			if res.setupErr != nil {
				t.Fatalf("seed %d: setup: %v\n  replay: %s", res.seed, res.setupErr, replay(t, res.seed))
			}
			tot.add(t, res)
			if *flagVerbose {
				t.Logf("seed %d: %v (opened %v, played %v), %d sessions, %d messages, %d violations; %s",
					res.seed, res.dur.Round(time.Millisecond), res.phases[0].Round(time.Millisecond), res.phases[1].Round(time.Millisecond),
					res.opened, res.messages, len(res.violations), res.timeline)
			}
			if res.stuck {
				stuck = true
				t.Errorf("seed %d: goroutines would not stop even after every endpoint was closed; giving up\n  replay: %s", res.seed, replay(t, res.seed))
			}
		}
		if w.leak != "" {
			tot.addLeak(t, w)
		}
		if stuck {
			return
		}
	}
}

// budget is this test's share of the torture time.
func budget(t *testing.T) time.Duration {
	if *flagTime > 0 {
		return *flagTime / 2
	}
	if v := os.Getenv("CNLINK_TORTURE_TIME"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			t.Fatalf("CNLINK_TORTURE_TIME=%q: want a Go duration such as 60s", v)
		}
		return d / 2
	}
	return 5 * time.Second
}
