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
	// probes counts RTO expiries since something was last acknowledged
	// or a probe was answered; see MaxProbes.
	probes int
	// heard: an ACK that did not name the outstanding probe arrived
	// after it was sent (the peer is alive but does not answer in kind).
	heard bool
	// rtoFrom: after a probe the retransmission timer runs from the
	// probe, not from the (older) oldest transmission.
	rtoFrom time.Duration
	// The outstanding probe: the cn_msg seq it carried (the next DSN)
	// and when it was sent (see ProbeSent, OnAnswer).
	probeOut bool
	probeSeq window.Seq
	probeAt  time.Duration
	// nextRepair: the next overrun report that may repair.
	nextRepair time.Duration
}

// MaxProbes is how many RTO expiries in a row send only a probe. After
// that, an expiry retransmits the oldest unacknowledged transmission
// (RFC 6298 §5.4's "earliest segment"; RACK then finds the rest from its
// acknowledgement), but only if an ACK that did not name the probe came
// in meanwhile: a peer that answers, but not in kind (docs/PROTOCOL.md
// lets a receiver put anything in an ACK's seq). A peer that answers
// nothing is either behind (its queue holds our frames: retransmitting
// adds to it), dead (the engine's dead-peer timeout decides), or on a
// path that lost the probes (the next probe gets through): probing on is
// right in all three, and retransmitting would be waste.
const MaxProbes = 3

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
	if r.snd.InFlight() == 0 {
		r.probeOut, r.heard = false, false
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
		if r.probes < MaxProbes || !r.heard {
			r.probes++
			r.rtoFrom = now
			a.Probe = true
		} else if t, ok := r.snd.OldestSentAt(); ok {
			r.probes, r.probeOut, r.heard = 0, false, false
			r.rtoFrom = now
			a.Lost += r.snd.MarkLostSentBefore(t)
		}
		r.rtt.Backoff()
	}
	return a
}

// ProbeSent records that the probe Action.Probe asked for left at now,
// carrying seq (a PING's cn_msg seq: the Sender's Next). A probe that
// could not be sent (the peer's queue was full) is not recorded; the next
// expiry asks again.
func (r *Recovery[T]) ProbeSent(seq window.Seq, now time.Duration) {
	if r.probeOut && seq == r.probeSeq {
		// An answer cannot tell this probe from the outstanding one:
		// judge by the older, which proves less.
		return
	}
	r.probeOut, r.probeSeq, r.probeAt = true, seq, now
}

// OnAnswer takes the cn_msg seq of an acknowledgement, after OnAck took
// its result, and reports how many records it declared lost.
//
// The seq names the frame the ACK answers: the PING's seq, or a DSN
// (docs/PROTOCOL.md §6.4). One that names the outstanding probe or
// anything sent after it proves that the peer has processed everything
// sent before the probe: a netlink socket delivers one sender's
// datagrams in order and never drops unicast between user ports (a full
// queue refuses the send instead). So whatever the ACK leaves
// unacknowledged from before the probe is lost, and nothing else is: a
// peer that was merely slow gets no retransmission at all (RFC 8985's
// tail loss probe, made exact by the in-order path). A path that
// reorders (the fault injector can) only makes a declaration spurious,
// which the receiver's duplicate suppression absorbs; a seq that names
// nothing we sent (a peer may put anything there) is ignored.
//
// ranges are the ACK's SACK ranges. A receiver that has more holes than
// it reports leaves the lowest ranges out (docs/PROTOCOL.md §6.4), and
// what it left out is not lost: with SureRanges ranges or more, only
// what lies above the lowest reported range is judged.
func (r *Recovery[T]) OnAnswer(seq window.Seq, ranges []window.Range, now time.Duration) int {
	if !r.probeOut {
		return 0
	}
	if seq.Less(r.probeSeq) || r.snd.Next().Less(seq) {
		r.heard = true
		return 0
	}
	r.probeOut, r.heard = false, false
	r.probes, r.rtoFrom = 0, 0
	from := r.snd.Base()
	if len(ranges) >= SureRanges {
		from = ranges[0].Start
		for _, rg := range ranges[1:] {
			if rg.Start.Less(from) {
				from = rg.Start
			}
		}
	}
	// Records sent in the probe's own turn (same time) may have followed
	// it into the datagram: only strictly older ones are judged.
	return r.snd.MarkLostSentBeforeFrom(r.probeAt-1, from)
}

// SureRanges is the number of SACK ranges from which an ACK may have left
// some out: the Go implementation reports at most 16.
const SureRanges = 16

// Restart makes the retransmission timer run from now: the records in
// flight only just left (they waited, encoded, for a busy peer's queue
// to take them), so their age says nothing about the path.
func (r *Recovery[T]) Restart(now time.Duration) {
	if r.snd.InFlight() > 0 {
		r.rtoFrom = max(r.rtoFrom, now)
	}
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
