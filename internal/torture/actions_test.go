package torture

import (
	"fmt"
	"time"
)

// Actions: how a side ends its session (Close, Abort), and how an
// endpoint ends all of its sessions (Close, or a crash).

func (sr *sessRun) senderFinished() {
	if sr.sentLeft.Add(-1) == 0 {
		close(sr.bothSent)
	}
}

// act performs one of the side's actions.
func (sd *sideRun) act(a action) {
	switch a.what {
	case actClose:
		if a.flush {
			at := sd.confirmed.Load()
			err := sd.s.Flush(sd.run.ctx)
			sd.run.checkErr(sd, "Flush", err)
			if err == nil {
				sd.floor.Store(max(sd.floor.Load(), at))
			}
		}
		sd.localEnd("Close", func() {
			sd.closed = true
			if sd.closeAtConfirmed < 0 {
				sd.closeAtConfirmed = sd.confirmed.Load()
			}
		})
		err := sd.s.Close()
		sd.run.checkErr(sd, "Close", err)
		sd.mu.Lock()
		sd.closeResults = append(sd.closeResults, err)
		sd.mu.Unlock()
	case actAbort:
		sd.localEnd("Abort", func() { sd.aborted = true })
		sd.s.Abort()
	}
}

// localEnd records that the application is about to end its side: the
// session's first action starts its bound, and a side that ends before
// its Done closed has abandoned what it did not read.
func (sd *sideRun) localEnd(what string, mark func()) {
	sr := sd.sess
	sr.actOnce.Do(func() {
		sr.firstAct, sr.firstWhat = time.Now(), fmt.Sprintf("%s by side %d", what, sd.i)
		close(sr.acted)
	})
	sd.mu.Lock()
	defer sd.mu.Unlock()
	mark()
	select {
	case <-sd.s.Done():
	default:
		sd.abandoned = true
	}
}

// closeEndpoint closes an endpoint mid-run: every side on it ends.
func (r *runState) closeEndpoint(e *endpointRun) {
	for _, sr := range r.sessions {
		for _, sd := range sr.side {
			if sd != nil && sd.ep == e {
				sd.localEnd("Endpoint.Close", func() { sd.epClosed = true })
			}
		}
	}
	if err := e.ep.Close(); err != nil {
		r.violate(7, "endpoint/close-error", "ep%d: Close mid-run: %v", e.idx, err)
	}
}

// crashEndpoint closes an endpoint's socket under it, as when its
// process dies: no RST goes out, the peers' sends fail with ErrPeerGone.
// Its own sides count as abandoned: their application is gone too.
func (r *runState) crashEndpoint(e *endpointRun) {
	for _, sr := range r.sessions {
		for _, sd := range sr.side {
			if sd != nil && sd.ep == e {
				sd.localEnd("crash", func() { sd.epClosed = true })
			}
		}
	}
	e.raw.Close()
}
