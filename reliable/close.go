package reliable

// Ending sessions: graceful close, abort, failure, and RST frames.

import (
	"errors"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/window"
)

// beginClose starts a graceful close: a FIN goes at the end of the
// stream, and the session ends when the peer's cumulative ack covers it
// (finAcked), or at Config.CloseTimeout.
func (e *Endpoint) beginClose(s *Session) {
	if s.state != stateEstablished || s.closeAt != 0 {
		return // already ended or closing: Close waits for that end
	}
	now := e.now()
	s.mu.Lock()
	m := s.newMsgLocked(nil, wire.TypeData)
	m.flags = wire.FlagFin
	s.sendQ = append(s.sendQ, m) // past sendCap on purpose: the FIN must fit
	s.mu.Unlock()
	s.closeAt = now + e.cfg.CloseTimeout
	e.pullSends(s, now)
	e.reschedule(s, now)
}

// finAcked reports whether the peer's engine holds our FIN and, since it
// is the last DSN, everything before it. Only the cumulative ack counts:
// a SACK above a hole says nothing about the hole.
func (s *Session) finAcked() bool {
	return s.finPushed && s.finSeq.Less(s.snd.Base())
}

// onFin: the peer's stream is over and everything before its FIN is on
// its way to the application. The FIN is a full close (the peer reads no
// more), so the session ends now, even if we are closing too: what we
// sent counts as delivered only if it was acknowledged already (see
// endSession).
func (e *Endpoint) onFin(s *Session, now time.Duration) {
	s.peerFin = true
	e.endSession(s, s.errOf(ErrPeerClosed, nil), true, now)
}

// onlyFinOutstanding reports whether every message we sent was
// acknowledged cumulatively, the FIN aside; queue is what was never taken
// into the window.
func (s *Session) onlyFinOutstanding(queue []*msgBuf) bool {
	for _, m := range queue {
		if m.flags&wire.FlagFin == 0 {
			return false
		}
	}
	if s.snd == nil {
		return true
	}
	n := s.snd.InFlight()
	return n == 0 || n == 1 && s.finPushed && s.snd.Base() == s.finSeq
}

// abort ends s at once and tells the peer.
func (e *Endpoint) abort(s *Session) {
	now := e.now()
	if s.state == stateEstablished {
		e.sendRst(s, wire.RstAbort, now)
	}
	s.abandonPump()
	e.endSession(s, s.errOf(ErrClosed, ErrAborted), false, now)
}

// fail ends s with a typed error.
func (e *Endpoint) fail(s *Session, kind, cause error) {
	e.endSession(s, s.errOf(kind, cause), false, e.now())
}

// errOf builds the session's error.
func (s *Session) errOf(kind, cause error) *SessionError {
	return &SessionError{Port: s.key.port, Channel: s.key.ch.String(), Kind: kind, Cause: cause}
}

// endSession ends s with err. With timeWait the session lingers to answer
// retransmissions of frames it already acknowledged (the peer's FIN, or
// the peer's last frames after our FIN was acknowledged).
func (e *Endpoint) endSession(s *Session, err *SessionError, timeWait bool, now time.Duration) {
	if s.state == stateDead || s.state == stateTimeWait || s.state == stateResetWait {
		return
	}
	wasSyn := s.state == stateSynSent
	s.err.Store(new(error(err)))
	// Count the end before anyone can observe it (Done, Err, a failed
	// Send), so that metrics read after Done include it.
	e.m.sessionClosed(s, err)
	s.mu.Lock()
	s.endErr = err
	queue := s.sendQ[s.sendHead:]
	s.sendQ, s.sendHead, s.sendBytes = nil, 0, 0
	s.flushers = nil
	s.mu.Unlock()
	// Close returns nil only when the peer's engine holds every message
	// we sent: our FIN was acknowledged, or the peer closed (its FIN) when
	// nothing of ours but our own FIN was outstanding.
	graceful := err.Kind == ErrClosed && err.Cause == nil || err.Kind == ErrPeerClosed
	if graceful && s.onlyFinOutstanding(queue) {
		s.closeErr = nil
	} else {
		s.closeErr = err
	}
	close(s.ended)
	for _, m := range queue {
		if m.reply != nil {
			m.reply <- replyMsg{err: err}
		}
	}
	if s.snd != nil {
		s.snd.Drain(func(_ window.Seq, m *msgBuf) { e.m.inflight.Add(-1) })
	}
	for k, ch := range s.replyWait {
		ch <- replyMsg{err: err}
		delete(s.replyWait, k)
	}
	if wasSyn && s.dialDone != nil {
		s.dialDone <- err
		s.dialDone = nil
	}
	s.handToPump()
	// Done closes after this turn's datagrams left (endPumps): an
	// application that exits as soon as Done closes must not take with it
	// the ACK of the peer's FIN, or the peer's Close fails.
	e.ended = append(e.ended, s)
	switch {
	case timeWait:
		s.state = stateTimeWait
		s.closeAt = now + 2*e.cfg.KeepAlive
		e.touchSession(s)
	case !wasSyn:
		s.state = stateResetWait
		s.closeAt = now + 2*e.cfg.KeepAlive
		s.rstReason = wire.RstNoSession
		if errors.Is(err, ErrAborted) {
			s.rstReason = wire.RstAbort
		}
		e.reschedule(s, now)
	default:
		s.state = stateDead
		e.remove(s)
	}
}

// remove forgets s.
func (e *Endpoint) remove(s *Session) {
	if s.state != stateDead {
		s.state = stateDead
	}
	if e.sessions[s.key] == s {
		delete(e.sessions, s.key)
	}
	if e.lastSess == s {
		e.lastSess = nil
	}
	e.timers.schedule(s, noDeadline)
	o := s.out
	for i, x := range o.sessions {
		if x == s {
			o.sessions = append(o.sessions[:i], o.sessions[i+1:]...)
			break
		}
	}
	if len(o.sessions) == 0 && e.outs[o.port] == o {
		// Frames already coalesced still go out at the end of the turn
		// (the RST of an abort, say); the buffer is just no longer found.
		delete(e.outs, o.port)
	}
}

// sendRst tells the peer the session is over, proving it knows the
// peer's epoch (ack = peer epoch + 1).
func (e *Endpoint) sendRst(s *Session, reason uint32, now time.Duration) {
	seq := uint32(0)
	if s.rcv != nil {
		seq = uint32(s.rcv.Cum()) - 1
	}
	f := wire.Frame{ID: s.key.ch, Seq: seq, Ack: s.peerEpoch + 1, Port: e.tr.LocalPort(), Type: wire.TypeRst, Arg: reason}
	e.appendFrame(s, &f, nil, nil, now)
}

// Answers to frames of unknown or ended sessions are rate-limited per
// endpoint, as the kernel limits ICMP errors and answers to invalid TCP
// segments: a flood of stray frames costs the endpoint a bounded number
// of sends, and a peer that misses an RST learns the end from the next one
// it provokes.
const (
	rstRate  = 1000 // per second
	rstBurst = 100
)

// sendRstTo answers a frame of an unknown session. It bypasses the
// coalescing buffers so that hostile traffic cannot make the endpoint
// allocate per-port state.
func (e *Endpoint) sendRstTo(port uint32, ch transport.CbID, seq, ack, reason uint32) {
	if !e.rstLimit.AllowN(e.start.Add(e.now()), 1) {
		e.stats.rstSuppressed.Add(1)
		return
	}
	f := wire.Frame{ID: ch, Seq: seq, Ack: ack, Port: e.tr.LocalPort(), Type: wire.TypeRst, Arg: reason}
	b, err := wire.Append(e.rstScr[:0], &f, nil, nil)
	if err != nil {
		return
	}
	e.rstScr = b[:0]
	if e.tr.Send(transport.Addr{Port: port}, b) == nil { // best effort
		e.stats.rstSent.Add(1)
		e.stats.datagramsSent.Add(1)
		e.stats.bytesSent.Add(uint64(len(b)))
	}
}
