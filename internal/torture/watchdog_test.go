package torture

import (
	"fmt"
	"time"
)

// Watchdogs: when each side ended, and how long a session may take.

// watchDone records the side's end.
func (sd *sideRun) watchDone() {
	defer sd.run.wg.Done()
	select {
	case <-sd.s.Done():
	case <-sd.run.ctx.Done():
		return
	}
	sd.doneAt = time.Now()
	sd.endErr = sd.s.Err()
	close(sd.done)
	if sd.sess.doneLeft.Add(-1) == 0 {
		close(sd.sess.allDone)
	}
	// The baseline of "an ended session sends nothing more", taken once
	// the owner's turn that ended the session is surely over.
	sleepCtx(sd.run.ctx, 20*time.Millisecond)
	sd.statsAfterDone = sd.s.Stats()
}

// watch enforces the session's bound: from its first local action (a
// Close, an Abort, its endpoint's Close) both sides must end within
// sr.bound; before any action, the session must not go sr.bound without
// progress (a message sent or taken): a sender blocked for good waits for
// an action that never comes. A session past either is reported and
// aborted, so that the run goes on.
func (sr *sessRun) watch() {
	r := sr.run
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last, lastChange := int64(-1), time.Now()
	for {
		select {
		case <-sr.allDone:
			return
		case <-r.ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case <-sr.acted:
			if time.Since(sr.firstAct) > sr.bound {
				sr.hung("hang/session", fmt.Sprintf("%v after its first action (%s)", time.Since(sr.firstAct).Round(time.Millisecond), sr.firstWhat))
				return
			}
			continue
		default:
		}
		if p := sr.progress.Load(); p != last {
			last, lastChange = p, time.Now()
		} else if time.Since(lastChange) > sr.bound {
			sr.hung("hang/no-progress", fmt.Sprintf("%v without a message sent or taken and before any action", time.Since(lastChange).Round(time.Millisecond)))
			return
		}
	}
}

// hung reports a session that overstayed, and aborts both sides.
func (sr *sessRun) hung(tag, what string) {
	var open []string
	for _, sd := range sr.side {
		select {
		case <-sd.done:
		default:
			open = append(open, fmt.Sprintf("side %d (reader %v, sent %d, took %d, err %v; session %+v; endpoint %+v)",
				sd.i, sd.plan.reader.kind, sd.confirmed.Load(), sd.rx.taken.Load(), sd.s.Err(), sd.s.Stats(), sd.ep.ep.Stats()))
		}
	}
	sr.run.violate(4, tag, "session %d: %s, %v still open (bound %v); goroutines:\n%s", sr.plan.id, what, open, sr.bound.Round(time.Millisecond), stacks())
	for _, sd := range sr.side {
		sr.run.janitor(sd.s.Abort)
	}
}
