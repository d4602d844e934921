package torture

import (
	"context"
	"errors"

	"github.com/cnlink/cnlink/reliable"
)

// The sender: one goroutine per side plays the side's ops in order, so
// that stream position i is message i. It stops at the first call that
// fails for a reason other than its own short deadline, and records how
// far it got:
//
//   - confirmed: positions whose Send, SendBatch or Request returned nil
//     (the contract says they will be delivered unless the session ends);
//   - maybe: the next position may have gone too (a Request that failed
//     after queueing its message);
//   - floor: positions the peer's engine is known to hold (a Flush or a
//     Request returned nil), which must reach the peer's application
//     whatever the end, unless that application abandons its side.

func (sd *sideRun) runSender() {
	defer sd.run.wg.Done()
	ctx := sd.run.ctx
	p := sd.plan
	pos := 0
	fired := make([]bool, len(p.actions))
	fireOps := func(k int) {
		for i, a := range p.actions {
			if a.when == afterOps && !fired[i] && a.n <= k {
				fired[i] = true
				sd.act(a)
			}
		}
	}
	scratch := make([][]byte, 0, 64)
	var buf []byte
	oversizeAt := p.oversizeAt
	for k, o := range p.ops {
		fireOps(k)
		if oversizeAt >= 0 && pos >= oversizeAt {
			sd.sendOversize(ctx)
			oversizeAt = -1 // once
		}
		ok := true
		switch o.kind {
		case opSend:
			buf = p.out.appendMsg(buf[:0], pos)
			err := sd.retrying(ctx, func(c context.Context) error { return sd.s.Send(c, buf) })
			if ok = sd.sent("Send", err, pos); ok {
				pos++
			}
		case opBatch:
			scratch = scratch[:0]
			for j := range o.n {
				scratch = append(scratch, p.out.appendMsg(nil, pos+j))
			}
			done := 0
			var err error
			for done < o.n {
				c, cancel := sd.callCtx(ctx)
				var n int
				n, err = sd.s.SendBatch(c, scratch[done:])
				cancel()
				if n < 0 || n > o.n-done {
					sd.run.violate(4, "api/sendbatch-count", "%v: SendBatch of %d returned n=%d", sd, o.n-done, n)
					n = 0
				}
				done += n
				sd.confirmed.Store(int64(pos + done))
				sd.sess.progress.Add(int64(n))
				if err == nil && done < o.n {
					sd.run.violate(4, "api/sendbatch-count", "%v: SendBatch returned nil having queued %d of %d", sd, done, o.n)
					break
				}
				if err != nil && !sd.retryable(ctx, err) {
					break
				}
			}
			sd.run.checkErr(sd, "SendBatch", err)
			if ok = err == nil && done == o.n; ok {
				pos += o.n
			}
		case opRequest:
			buf = p.out.appendMsg(buf[:0], pos)
			reply, err := sd.s.Request(ctx, buf)
			if err != nil {
				// The request may have been queued before the failure:
				// the peer may have it (and even have answered).
				sd.maybe.Store(true)
			}
			if ok = sd.sent("Request", err, pos); ok {
				if want := p.out.replies(); !want.matches(reply, pos) {
					sd.run.violate(6, "request/reply-mismatch", "%v: the reply to request %d (%d bytes) is not its reply (%d bytes)",
						sd, pos, len(reply), want.size(pos))
				}
				pos++
				sd.floor.Store(int64(pos))
				sd.lastOKReq.Store(int64(pos - 1))
				sd.okReplies.Add(1)
			}
		case opFlush:
			err := sd.s.Flush(ctx)
			sd.run.checkErr(sd, "Flush", err)
			if ok = err == nil; ok {
				sd.floor.Store(max(sd.floor.Load(), int64(pos)))
			}
		}
		if !ok {
			break
		}
	}
	// Actions left: those after the ops, then those after the sends,
	// then, once the peer's sender is done too, the simultaneous ones.
	fireOps(len(p.ops) + 1)
	for _, a := range p.actions {
		if a.when == afterSends {
			sd.act(a)
		}
	}
	sd.sess.senderFinished()
	for _, a := range p.actions {
		if a.when == afterBothSent {
			select {
			case <-sd.sess.bothSent:
			case <-ctx.Done():
			}
			sd.act(a)
		}
	}
}

// sent records the outcome of a call that sent position pos. It reports
// whether the sender goes on.
func (sd *sideRun) sent(call string, err error, pos int) bool {
	sd.run.checkErr(sd, call, err)
	if err != nil {
		return false
	}
	sd.confirmed.Store(int64(pos + 1))
	sd.sess.progress.Add(1)
	return true
}

// callCtx is the context of one call: the run's, or a very short one
// when the side tests cancellation.
func (sd *sideRun) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if sd.plan.shortCtx > 0 {
		return context.WithTimeout(ctx, sd.plan.shortCtx)
	}
	return ctx, func() {}
}

// retryable: the call's own short deadline ended it, not the run. The
// contract says a cancelled Send has not queued its message, so sending
// the same position again must not duplicate it.
func (sd *sideRun) retryable(ctx context.Context, err error) bool {
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil && sd.plan.shortCtx > 0 {
		sd.run.cancelled.Add(1)
		return true
	}
	return false
}

func (sd *sideRun) retrying(ctx context.Context, f func(context.Context) error) error {
	for {
		c, cancel := sd.callCtx(ctx)
		err := f(c)
		cancel()
		if err == nil || !sd.retryable(ctx, err) {
			return err
		}
	}
}

// sendOversize sends one message above the session's limit: it must be
// refused with ErrMessageTooLarge and take no stream position.
func (sd *sideRun) sendOversize(ctx context.Context) {
	big := make([]byte, sd.s.MaxMessage()+1)
	err := sd.s.Send(ctx, big)
	var mse *reliable.MessageSizeError
	switch {
	case err == nil:
		sd.run.violate(4, "api/oversize-accepted", "%v: Send of %d bytes (MaxMessage %d) returned nil", sd, len(big), sd.s.MaxMessage())
	case errors.Is(err, reliable.ErrMessageTooLarge):
		if !errors.As(err, &mse) {
			sd.run.violate(4, "api/oversize-type", "%v: oversize Send: %v is not a *MessageSizeError", sd, err)
		}
	default:
		// The session may have ended first; the error must still be documented.
		sd.run.checkErr(sd, "Send(oversize)", err)
	}
}
