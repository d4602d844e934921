package torture

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cnlink/cnlink/reliable"
)

// Opening a run's sessions: Dial on one side and Accept on the other, or
// Dial on both (a simultaneous open), under a watchdog; the opening
// contract is checked on the way.

// open dials every session (both sides dial for a simultaneous open) and
// matches accepted sessions to them.
func (r *runState) open() {
	actx, acancel := context.WithCancel(r.ctx)
	var accepts sync.WaitGroup
	accepting := make(map[int]bool)
	for _, sr := range r.sessions {
		if !sr.plan.simOpen {
			accepting[sr.plan.ep[1]] = true
		}
	}
	for i := range accepting {
		accepts.Go(func() { r.acceptLoop(actx, r.eps[i]) })
	}
	var dials sync.WaitGroup
	for _, sr := range r.sessions {
		dials.Go(func() { r.establish(sr) })
	}
	// Dial is bounded by HandshakeTimeout, the wait for Accept by twice
	// that: anything longer is a hang.
	if limit := 3*handshakeTimeout + 2*r.slack(); !waitTimeout(&dials, limit) {
		r.violate(4, "hang/open", "opening the sessions did not finish within %v; goroutines:\n%s", limit, stacks())
		r.cancel()
		if !waitTimeout(&dials, 10*time.Second) {
			r.stuck = true
		}
	}
	acancel()
	accepts.Wait()
	// A session accepted after its dialer gave up belongs to nobody.
	for _, sr := range r.sessions {
		select {
		case s := <-sr.accepted:
			r.janitor(s.Abort)
		default:
		}
		for i := range 2 {
			select {
			case s := <-sr.simAccepted[i]:
				if sr.side[0] != nil {
					// Both Dials returned a session, and Accept one more.
					r.violate(4, "open/simultaneous-extra", "session %d: simultaneous open succeeded, yet side %d's Accept returned a session too (%v)", sr.plan.id, i, s.Err())
				}
				r.janitor(s.Abort)
			default:
			}
		}
	}
}

func (r *runState) acceptLoop(ctx context.Context, e *endpointRun) {
	for {
		s, err := e.ep.Accept(ctx)
		if err != nil {
			if ctx.Err() == nil {
				r.checkErrAt(fmt.Sprintf("ep%d", e.idx), "Accept", err)
			}
			return
		}
		var sr *sessRun
		for _, x := range r.sessions {
			if !x.plan.simOpen && x.plan.ep[1] == e.idx && x.plan.ch == s.Channel() && r.eps[x.plan.ep[0]].ep.LocalPort() == s.Peer() {
				sr = x
			}
		}
		if sr == nil && r.simAccept(e, s) {
			continue
		}
		if sr == nil {
			r.violate(4, "open/unexpected-accept", "ep%d: Accept returned a session nobody dialed: peer %d channel %v", e.idx, s.Peer(), s.Channel())
			// Typically half of a simultaneous open: that session's
			// frames may have gone to this one, so its checks would
			// only echo this violation.
			for _, x := range r.sessions {
				if x.plan.ch == s.Channel() && (x.plan.ep[0] == e.idx || x.plan.ep[1] == e.idx) {
					x.tainted.Store(true)
				}
			}
			r.janitor(s.Abort)
			continue
		}
		select {
		case sr.accepted <- s:
		default:
			// A second session for one Dial. Keep the live one, so that
			// the run goes on with a session its dialer is connected to.
			first := <-sr.accepted
			sr.tainted.Store(true)
			r.violate(4, "open/accepted-twice", "ep%d: Accept returned session %d twice; the first, not yet taken by its dialer (still in Dial), has ended with %v",
				e.idx, sr.plan.id, first.Err())
			if first.Err() != nil {
				first, s = s, first
			}
			sr.accepted <- first
			r.janitor(s.Abort)
		}
	}
}

// simAccept routes a session Accept returned on e to the simultaneous
// open it belongs to, if any: its peer's SYN arrived before e's own Dial.
func (r *runState) simAccept(e *endpointRun, s *reliable.Session) bool {
	for _, x := range r.sessions {
		if !x.plan.simOpen || x.plan.ch != s.Channel() {
			continue
		}
		for i := range 2 {
			if x.plan.ep[i] == e.idx && r.eps[x.plan.ep[1-i]].ep.LocalPort() == s.Peer() {
				select {
				case x.simAccepted[i] <- s:
				default:
					x.tainted.Store(true)
					r.violate(4, "open/accepted-twice", "ep%d: Accept returned simultaneous-open session %d twice", e.idx, x.plan.id)
					r.janitor(s.Abort)
				}
				return true
			}
		}
	}
	return false
}

// establish opens one session. A Dial may fail under heavy loss
// (ErrTimeout): the session is then left out, and counted.
func (r *runState) establish(sr *sessRun) {
	p := sr.plan
	a, b := r.eps[p.ep[0]], r.eps[p.ep[1]]
	var ss [2]*reliable.Session
	if p.simOpen {
		var errs [2]error
		var wg sync.WaitGroup
		for i, pair := range [2][2]*endpointRun{{a, b}, {b, a}} {
			wg.Go(func() { ss[i], errs[i] = pair[0].ep.Dial(r.ctx, pair[1].ep.LocalPort(), p.ch) })
		}
		wg.Wait()
		for i, err := range errs {
			if !errors.Is(err, reliable.ErrSessionExists) {
				continue
			}
			// The peer's SYN came first and this side's Accept loop took
			// the session before its Dial could: the session is that one.
			select {
			case ss[i] = <-sr.simAccepted[i]:
				errs[i] = nil
			case <-time.After(r.slack()):
			}
		}
		for i, err := range errs {
			if err != nil {
				r.dialErr(sr, i, err)
			}
		}
		if errs[0] != nil || errs[1] != nil {
			for _, s := range ss {
				if s != nil {
					r.janitor(s.Abort)
				}
			}
			return
		}
	} else {
		s, err := a.ep.Dial(r.ctx, b.ep.LocalPort(), p.ch)
		if err != nil {
			r.dialErr(sr, 0, err)
			return
		}
		ss[0] = s
		wait := 2*b.plan.cfg.HandshakeTimeout + r.slack()
		select {
		case ss[1] = <-sr.accepted:
		case <-time.After(wait):
			r.violate(4, "open/accept-missing", "session %d: Dial succeeded but Accept did not return the session within %v", p.id, wait)
			r.janitor(s.Abort)
			return
		}
	}
	sr.opened = time.Now()
	sr.sentLeft.Store(2)
	sr.doneLeft.Store(2)
	for i := range 2 {
		sr.side[i] = &sideRun{run: r, sess: sr, i: i, plan: p.side[i], ep: r.eps[p.ep[i]], s: ss[i],
			rand:     rand.New(rand.NewPCG(r.plan.seed, uint64(p.id)<<1|uint64(i))),
			vanished: make(chan struct{}), readFired: make([]bool, len(p.side[i].actions)),
			done: make(chan struct{}), closeAtConfirmed: -1}
		sr.side[i].lastOKReq.Store(-1)
		sr.side[i].rx.expect(p.side[1-i])
	}
	sr.side[0].peer, sr.side[1].peer = sr.side[1], sr.side[0]
	sr.bound = r.bound(sr)
}

func (r *runState) dialErr(sr *sessRun, i int, err error) {
	r.dialFailures.Add(1)
	at := fmt.Sprintf("session %d side %d", sr.plan.id, i)
	r.checkErrAt(at, "Dial", err)
	switch {
	case sr.plan.simOpen && !isTimeout(err):
		r.violate(4, "open/simultaneous", "%s: simultaneous open: Dial failed: %v", at, err)
	case isTimeout(err) && !isDeadline(err):
		r.violate(4, "error/dial-timeout", "%s: Dial timed out with %v, which does not match context.DeadlineExceeded", at, err)
	}
}
