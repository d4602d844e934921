package torture

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cnlink/cnlink/reliable"
)

// Running one seed: open the endpoints and sessions, start every side's
// goroutines, wait for all of them under watchdogs, drain, check, close.
// (Leaks are looked for once the runs of a window are over: lanes_test.go.)

// runState is one run in progress.
type runState struct {
	plan     *runPlan
	start    time.Time
	ctx      context.Context // ends only when the run is torn down
	cancel   context.CancelFunc
	eps      []*endpointRun
	sessions []*sessRun
	wg       sync.WaitGroup // every goroutine that plays a side
	janitors sync.WaitGroup // forced aborts and closes after a hang

	mu         sync.Mutex
	violations []violation

	cancelled    atomic.Int64 // calls cut by their short deadline and retried
	dialFailures atomic.Int64
	stuck        bool // goroutines would not stop: the test cannot go on
}

// sessRun is one session in progress.
type sessRun struct {
	run      *runState
	plan     *sessPlan
	side     [2]*sideRun
	accepted chan *reliable.Session // from the acceptor's Accept loop
	// simAccepted[i]: a simultaneous open whose peer's SYN reached side i
	// before its own Dial, and which side i's Accept loop took first (a
	// valid outcome: side i's Dial then fails with ErrSessionExists).
	simAccepted [2]chan *reliable.Session
	opened      time.Time
	bound       time.Duration // the session must end within this of its first action

	actOnce   sync.Once
	acted     chan struct{} // closed at the first local action on either side
	firstAct  time.Time
	firstWhat string

	progress atomic.Int64 // messages sent and taken so far, on both sides
	tainted  atomic.Bool  // its opening went wrong (reported): later checks would only echo it
	sentLeft atomic.Int32
	bothSent chan struct{} // both senders finished their ops
	doneLeft atomic.Int32
	allDone  chan struct{} // both sides' Done closed
}

// sideRun is one side of a session in progress.
type sideRun struct {
	run  *runState
	sess *sessRun
	i    int
	plan *sidePlan
	peer *sideRun
	ep   *endpointRun
	s    *reliable.Session
	rand *rand.Rand // the reader's pauses

	// Sender (see sender_test.go).
	confirmed, floor, okReplies atomic.Int64
	lastOKReq                   atomic.Int64 // position of the last Request answered, -1
	maybe                       atomic.Bool

	// Local ends, under mu.
	mu               sync.Mutex
	closeResults     []error
	closeAtConfirmed int64 // confirmed when Close was first called, -1
	closed, aborted  bool
	epClosed         bool
	abandoned        bool // ended locally before Done: unread messages may be dropped

	// Reader (see reader_test.go).
	rx         rxState
	vanished   chan struct{}
	vanishOnce sync.Once
	readFired  []bool
	batchEnded bool // RecvBatch returned the end

	// End, set by watchDone before done is closed.
	done           chan struct{}
	doneAt         time.Time
	endErr         error
	statsAfterDone reliable.SessionStats
}

func (sd *sideRun) String() string {
	return fmt.Sprintf("session %d side %d (ep%d, port %d)", sd.sess.plan.id, sd.i, sd.ep.idx, sd.ep.ep.LocalPort())
}

// runOne plays seed and returns what happened. It never calls t.Fatal
// itself: setup errors come back in res.setupErr. It sets GOMAXPROCS to
// the run's draw; the caller restores it, and checks for leaks once the
// runs of its window are over (see lanes_test.go).
func runOne(seed uint64, netlink bool) *result {
	plan := draw(seed, netlink)
	runtime.GOMAXPROCS(plan.procs)
	r := &runState{plan: plan, start: time.Now()}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	defer r.cancel()
	res := &result{seed: seed, plan: plan}
	eps, err := openEndpoints(plan)
	if err != nil {
		res.setupErr = err
		return res
	}
	r.eps = eps
	for _, sp := range plan.sessions {
		r.sessions = append(r.sessions, &sessRun{run: r, plan: sp, accepted: make(chan *reliable.Session, 1),
			simAccepted: [2]chan *reliable.Session{make(chan *reliable.Session, 1), make(chan *reliable.Session, 1)},
			acted:       make(chan struct{}), bothSent: make(chan struct{}), allDone: make(chan struct{})})
	}
	r.open()
	res.phases = append(res.phases, time.Since(r.start))
	if !r.stuck {
		r.play()
	}
	res.phases = append(res.phases, time.Since(r.start))
	if !r.stuck {
		r.drainAll()
		r.lingerCheck()
		r.check()
	}
	r.closeEndpoints()
	r.cancel()
	if !waitTimeout(&r.janitors, 10*time.Second) {
		r.stuck = true
	}
	res.fill(r)
	return res
}

// play starts every side's goroutines and waits for them all, under the
// per-session and per-run watchdogs.
func (r *runState) play() {
	for _, sr := range r.sessions {
		if sr.side[0] == nil {
			continue
		}
		for _, sd := range sr.side {
			r.wg.Add(4)
			go sd.watchDone()
			go sd.runSender()
			go sd.runReader()
			go sd.runRequests()
			for _, a := range sd.plan.actions {
				if a.when == atTime {
					r.wg.Go(func() {
						sleepCtx(r.ctx, time.Until(sr.opened.Add(a.at)))
						sd.act(a)
					})
				}
			}
		}
		r.wg.Go(sr.watch)
	}
	if i := r.plan.epClose; i >= 0 {
		r.wg.Go(func() {
			sleepCtx(r.ctx, r.plan.epCloseAt)
			if r.plan.epCrash {
				r.crashEndpoint(r.eps[i])
			} else {
				r.closeEndpoint(r.eps[i])
			}
		})
	}
	limit := r.runLimit()
	if waitTimeout(&r.wg, limit) {
		return
	}
	r.violate(4, "hang/run", "the run did not finish within %v; goroutines:\n%s", limit, stacks())
	r.cancel()
	for _, e := range r.eps {
		r.janitor(func() { e.ep.Close() })
	}
	if !waitTimeout(&r.wg, 10*time.Second) {
		r.stuck = true
	}
}

// drainAll takes what is left in every side's channels.
func (r *runState) drainAll() {
	for _, sr := range r.sessions {
		for _, sd := range sr.side {
			if sd != nil {
				sd.drain()
			}
		}
	}
}

// closeEndpoints closes every endpoint at the end of the run: Close must
// return nil and not hang.
func (r *runState) closeEndpoints() {
	var wg sync.WaitGroup
	errs := make([]error, len(r.eps))
	for i, e := range r.eps {
		wg.Go(func() { errs[i] = e.ep.Close() })
	}
	if !waitTimeout(&wg, 10*time.Second) {
		r.violate(7, "endpoint/close-hang", "Endpoint.Close did not return within 10s; goroutines:\n%s", stacks())
		r.stuck = true
		return
	}
	for i, err := range errs {
		if err != nil {
			r.violate(7, "endpoint/close-error", "ep%d: Close: %v", i, err)
		}
	}
}

// janitor runs f (a forced Abort or Close) without waiting for it.
func (r *runState) janitor(f func()) { r.janitors.Go(f) }

func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// stacks is every goroutine's stack, cut to a readable length.
func stacks() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	const limit = 64 << 10
	if len(buf) > limit {
		return string(buf[:limit]) + "\n... (cut)"
	}
	return string(buf)
}
