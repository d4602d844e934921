package torture

import (
	"flag"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/goleak"

	"github.com/cnlink/cnlink/internal/leakcheck"
)

// Lanes. A run spends nearly all its time waiting (timers, stalled
// readers, close and dead-peer timeouts): one run at a time keeps a
// 2-core machine about 6% busy. So runs go in lanes: each lane plays seeds
// one after another, and all lanes share windows of a few seconds. When a
// window ends every lane finishes its run, and the window is checked for
// leaked goroutines and sockets as a whole (a leak names the window's
// seeds). Every run still sets GOMAXPROCS when it starts, for the whole
// process: the other lanes see the scheduler change under them.
//
// With one lane (-torture.lanes=1, and always when replaying a seed) a
// window is one run: GOMAXPROCS and the leak check are exactly the run's.

var flagLanes = flag.Int("torture.lanes", 0, "runs played at once (1: one at a time, leaks checked per run; 0: 8 per CPU, 2 under -race)")

// lanes is how many runs go at once: enough to keep the CPUs busy, not
// so many that -race starves the engines' timers.
func lanes() int {
	switch {
	case *flagLanes > 0:
		return *flagLanes
	case raceEnabled:
		return 2 * runtime.NumCPU()
	default:
		return 8 * runtime.NumCPU()
	}
}

// windowLen is how long lanes keep starting runs before a leak check.
const windowLen = 3 * time.Second

// window is what the runs of one window did.
type window struct {
	results []*result // by seed
	leak    string    // goroutines or sockets left once all of them ended
}

// playWindow plays seeds from next on lanes lanes until the window is
// over (or next has none left; with one lane, one run).
func playWindow(lanes int, next func() (uint64, bool), netlink bool) *window {
	goroutines := goleak.IgnoreCurrent()
	sockets := leakcheck.OpenSockets()
	end := time.Now().Add(windowLen)
	if lanes == 1 {
		end = time.Now()
	}
	w := &window{}
	var mu sync.Mutex
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range lanes {
		wg.Go(func() {
			for !stop.Load() {
				seed, ok := next()
				if !ok {
					return
				}
				res := runOne(seed, netlink)
				mu.Lock()
				w.results = append(w.results, res)
				mu.Unlock()
				if res.stuck || res.setupErr != nil {
					stop.Store(true) // the test cannot go on
				}
				if !time.Now().Before(end) {
					return
				}
			}
		})
	}
	wg.Wait()
	slices.SortFunc(w.results, func(a, b *result) int { return int(a.seed - b.seed) })
	for _, res := range w.results {
		if res.stuck {
			return w // goroutines are stuck: a leak check would only repeat it
		}
	}
	if err := goleak.Find(goroutines); err != nil {
		w.leak = fmt.Sprintf("goroutines left after the window's runs ended: %v", err)
	}
	if after := leakcheck.OpenSockets(); after > sockets {
		w.leak += fmt.Sprintf("%d sockets open before the window's runs, %d after", sockets, after)
	}
	return w
}
