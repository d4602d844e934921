package loss

import (
	"time"

	"github.com/cnlink/cnlink/retry"
	"github.com/cnlink/cnlink/window"
)

// Recovery is the loss-recovery state of one sending direction. It is not
// safe for concurrent use.
type Recovery[T any] struct {
	snd *window.Sender[T]
	rtt *retry.RTT
	// probes counts RTO expiries since something was last acknowledged:
	// the first sends a probe, later ones retransmit.
	probes int
	// rtoFrom: after a probe the retransmission timer runs from the
	// probe, not from the (older) oldest transmission.
	rtoFrom time.Duration
	// nextRepair: the next overrun report that may repair.
	nextRepair time.Duration
}

// New returns the recovery policy of snd, with an RTT estimator configured
// by cfg (the zero RTTConfig is the recommended one for a local netlink
// peer). It panics on an invalid cfg, as retry.NewRTT does.
func New[T any](snd *window.Sender[T], cfg retry.RTTConfig) *Recovery[T] {
	return &Recovery[T]{snd: snd, rtt: retry.NewRTT(cfg)}
}

// RTT is the round-trip estimator, for statistics and for the caller's
// other timers (a zero-window probe, say). Its Backoff is the caller's to
// call for those.
func (r *Recovery[T]) RTT() *retry.RTT { return r.rtt }

// OnAck takes the result of Sender.OnAck.
func (r *Recovery[T]) OnAck(res window.AckResult) {
	if res.Acked > 0 {
		r.probes, r.rtoFrom = 0, 0
	}
	if res.RTTValid {
		r.rtt.Update(res.RTT)
		r.snd.SetSRTT(r.rtt.SRTT())
	}
}

// Deadline returns when OnTimer must run next, if anything is in flight.
// It changes with every call that changes the Sender or the Recovery: ask
// again after each.
func (r *Recovery[T]) Deadline() (time.Duration, bool) {
	d, ok := r.snd.LossDeadline()
	if t, ok2 := r.rtoDeadline(); ok2 && (!ok || t < d) {
		d, ok = t, true
	}
	return d, ok
}

func (r *Recovery[T]) rtoDeadline() (time.Duration, bool) {
	t, ok := r.snd.OldestSentAt()
	if !ok {
		return 0, false
	}
	return max(t, r.rtoFrom) + r.rtt.RTO(), true
}

// Action is what OnTimer asks of the caller.
type Action struct {
	// Lost is how many records were declared lost: send them again
	// (Sender.PopLost).
	Lost int
	// RTO says the retransmission timer expired (Lost then includes
	// its records, unless this expiry only probes).
	RTO bool
	// Probe asks for a probe that elicits an acknowledgement (a PING).
	Probe bool
}

// OnTimer runs the timers due at now: the time threshold, then the
// retransmission timer.
func (r *Recovery[T]) OnTimer(now time.Duration) Action {
	var a Action
	if d, ok := r.snd.LossDeadline(); ok && now >= d {
		a.Lost += r.snd.DetectLoss(now)
	}
	if t, ok := r.rtoDeadline(); ok && now >= t {
		a.RTO = true
		if r.probes == 0 {
			r.probes++
			r.rtoFrom = now
			a.Probe = true
		} else {
			a.Lost += r.snd.MarkAllLost()
		}
		r.rtt.Backoff()
	}
	return a
}

// OnStatusRequest answers the peer's report that it overran and may have
// lost frames. The report costs the peer one small frame, so the repair is
// bounded twice, or it would be an amplifier: it happens at most once per
// round trip (the smoothed RTT; RTTConfig.Initial before a sample), and it
// declares lost only the records sent at least a round trip before now:
// younger ones may still be in the peer's queue, and its next report
// repairs them if the overrun took them. It reports whether this request
// repaired (false: paced) and how many records it declared lost.
func (r *Recovery[T]) OnStatusRequest(now time.Duration) (repaired bool, lost int) {
	if now < r.nextRepair {
		return false, 0
	}
	rtt := r.rtt.SRTT() // before the first sample, the initial guess
	r.nextRepair = now + rtt
	return true, r.snd.MarkLostSentBefore(now - rtt)
}
