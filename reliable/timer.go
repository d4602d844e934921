package reliable

// Per-session deadlines: retransmission, loss detection, keepalive,
// dead-peer and close timers, all served by the endpoint's single timer.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/window"
)

// onTimer runs a session's due timers.
func (e *Endpoint) onTimer(s *Session, now time.Duration) {
	switch s.state {
	case stateSynSent:
		if now >= s.hsDeadline {
			// Dial's context ends now too: the error matches both.
			e.fail(s, ErrTimeout, fmt.Errorf("no answer to the handshake: %w", context.DeadlineExceeded))
			return
		}
		if now >= s.hsNext {
			e.sendSyn(s, now)
		}
		return
	case stateTimeWait, stateResetWait:
		if now >= s.closeAt {
			e.remove(s)
			return
		}
		e.reschedule(s, now)
		return
	case stateDead:
		e.timers.schedule(s, noDeadline)
		return
	}
	if now-s.lastHeard >= e.cfg.DeadPeerTimeout {
		e.fail(s, ErrPeerGone, fmt.Errorf("nothing heard for %v", now-s.lastHeard))
		return
	}
	if s.closeAt != 0 && now >= s.closeAt {
		e.sendRst(s, wire.RstAbort, now)
		e.fail(s, ErrTimeout, errors.New("graceful close did not finish in time"))
		return
	}
	// While the peer's queue refuses our datagrams (EAGAIN) no loss
	// timer runs: the peer is alive and behind, the frames waiting for
	// its queue have not left, and what is in flight sits in that queue.
	if d, ok := s.rec.Deadline(); ok && now >= d && !s.out.busy {
		// The policy is loss.Recovery's: time-threshold losses, then
		// the RTO's probe first and retransmissions after.
		a := s.rec.OnTimer(now)
		if a.Probe {
			if seq, ok := e.sendPing(s, now); ok {
				s.rec.ProbeSent(seq, now)
			}
		}
		if a.Lost > 0 {
			e.retransmit(s, now, a.RTO && !a.Probe)
		}
	}
	if s.statusAt != 0 && now >= s.statusAt {
		if s.rcv.Buffered() > 0 {
			e.requestStatus(s, now) // still missing frames: ask again
		} else {
			s.statusAt = 0
		}
	}
	if s.probeAt != 0 && now >= s.probeAt {
		// The peer's window is closed and nothing is in flight: probe so
		// that a lost window update cannot stall us forever.
		s.probeAt = 0
		e.sendPing(s, now)
		s.rec.RTT().Backoff()
	}
	if now >= max(s.lastHeard, s.lastPing)+e.cfg.KeepAlive {
		e.sendPing(s, now)
		s.shrink() // nothing heard for a while: idle
	}
	e.touchSession(s)
}

// reschedule computes the session's next deadline.
func (e *Endpoint) reschedule(s *Session, now time.Duration) {
	d := noDeadline
	switch s.state {
	case stateSynSent:
		d = min(s.hsNext, s.hsDeadline)
	case stateTimeWait, stateResetWait:
		d = s.closeAt
	case stateEstablished:
		d = min(s.lastHeard+e.cfg.DeadPeerTimeout, max(s.lastHeard, s.lastPing)+e.cfg.KeepAlive)
		if s.closeAt != 0 {
			d = min(d, s.closeAt)
		}
		if t, ok := s.rec.Deadline(); ok {
			if s.out.busy {
				t = max(t, s.out.retryAt) // see onTimer
			}
			d = min(d, t)
		} else if !s.snd.CanSend() && s.queued() > 0 {
			// Nothing in flight and the peer's window closed.
			if s.probeAt == 0 {
				s.probeAt = now + s.rec.RTT().RTO()
			}
			d = min(d, s.probeAt)
		}
		if s.statusAt != 0 {
			d = min(d, s.statusAt)
		}
		if s.ackHold != 0 {
			t := s.ackHold
			if s.out.busy {
				t = max(t, s.out.retryAt) // it cannot leave before
			}
			d = min(d, t)
		}
	}
	e.timers.schedule(s, d)
}

// sendPing probes the peer (keepalive, zero window, RTO probe); the
// answer is an ACK. It reports the PING's seq and whether it went into a
// datagram (not when the peer's queue is full).
func (e *Endpoint) sendPing(s *Session, now time.Duration) (window.Seq, bool) {
	f := wire.Frame{ID: s.key.ch, Seq: uint32(s.snd.Next()), Ack: s.myEpoch, Port: e.tr.LocalPort(), Type: wire.TypePing}
	ok := e.appendFrame(s, &f, nil, nil, now)
	s.lastPing = now
	return window.Seq(f.Seq), ok
}
