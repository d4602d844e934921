package reliable

// This file holds the dispatch of received frames to the per-concern
// logic in handshake.go, data.go, ack.go and close.go. The owner loop
// that calls it is in turn.go.

import (
	"errors"
	"fmt"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/window"
)

// handleFrame dispatches one valid cnlink frame from port from.
func (e *Endpoint) handleFrame(from uint32, f *wire.Parsed, now time.Duration) {
	k := key{port: from, ch: f.ID}
	// Consecutive frames almost always belong to the same session.
	s := e.lastSess
	if s == nil || s.key != k {
		s = e.sessions[k]
		e.lastSess = s
	}
	typ := f.Header.Type
	if typ == wire.TypeSyn {
		e.onSyn(k, s, f, now)
		return
	}
	if s == nil {
		e.reject(rejectNoSession)
		if typ == wire.TypeData || typ == wire.TypePing {
			// Tell a peer that still believes in a session here (we
			// restarted, or it talks to a new owner of this port) at once,
			// instead of letting it time out.
			e.sendRstTo(from, f.ID, f.Seq, f.Ack+1, wire.RstNoSession)
		}
		return
	}
	if s.peerCreds.Valid && e.rxCreds != s.peerCreds && s.state != stateSynSent {
		// Only one socket holds a port: a datagram from the session's
		// port with other kernel-stamped credentials than at the
		// handshake comes from another process, which took the port after
		// the peer died. It may have learnt the epochs from our frames;
		// it gets nothing in, and the session ends now rather than at the
		// dead-peer timeout.
		e.reject(rejectCredsChanged)
		if e.rxCreds.Valid && s.state == stateEstablished {
			e.fail(s, ErrPeerGone, e.portChangedHands(s))
		}
		return
	}
	switch s.state {
	case stateSynSent:
		switch {
		case typ == wire.TypeSynAck && f.Ack == s.myEpoch+1 && f.Seq == uint32(s.myISN):
			e.onSynAck(s, f, now)
		case typ == wire.TypeRst && f.Ack == s.myEpoch+1:
			e.fail(s, ErrPeerReset, rstReason(f.Header.Arg))
		default:
			e.reject(rejectState)
		}
		return
	case stateResetWait:
		// The session is over for us: its late frames learn it.
		e.reject(rejectState)
		if (typ == wire.TypeData || typ == wire.TypePing) && f.Ack == s.peerEpoch {
			e.sendRstTo(from, f.ID, f.Seq, f.Ack+1, s.rstReason)
		}
		return
	case stateDead:
		e.reject(rejectState)
		return
	}
	// Frames a peer originates carry its epoch; frames that answer ours
	// carry our epoch + 1 (the connector rule). A squatter on the peer's
	// old port, or a restarted peer, knows neither.
	switch typ {
	case wire.TypeData, wire.TypePing:
		if f.Ack != s.peerEpoch {
			// Another session at the peer's port and channel: to us it is
			// unknown, as if we had none, so it gets RST 2 (its epoch + 1,
			// the connector rule) instead of living on, e.g. one the peer
			// opened for a late retransmission of our SYN.
			e.reject(rejectEpoch)
			e.sendRstTo(from, f.ID, f.Seq, f.Ack+1, wire.RstNoSession)
			return
		}
	default:
		if f.Ack != s.myEpoch+1 {
			e.reject(rejectEpoch)
			return
		}
	}
	s.lastHeard = now
	e.touchSession(s)
	if s.state == stateTimeWait {
		// Only answer retransmissions so that the peer can finish; and
		// take the peer's FIN if it comes next in its stream (a
		// simultaneous close whose FIN arrived after the ACK that ended
		// us), so that the answer acknowledges it.
		if typ == wire.TypeData && f.Header.Flags&wire.FlagFin != 0 && !s.peerFin && window.Seq(f.Seq) == s.rcv.Cum() {
			s.rcv.Push(window.Seq(f.Seq), rxItem{})
			s.rcv.Pop()
			s.peerFin = true
		}
		switch {
		case typ == wire.TypeReply:
			e.needAck(s, f.Header.Arg) // a REPLY's DSN is its arg (PROTOCOL.md §6.4)
		case typ == wire.TypeData || typ == wire.TypePing || f.Header.Flags&wire.FlagStatusReq != 0:
			e.needAck(s, f.Seq)
		}
		return
	}
	switch typ {
	case wire.TypeData:
		e.onData(s, f.Seq, f, now)
	case wire.TypeReply:
		e.onData(s, f.Header.Arg, f, now)
	case wire.TypeAck:
		e.onAck(s, f, now)
	case wire.TypePing:
		e.needAck(s, f.Seq)
		if f.Header.Flags&wire.FlagStatusReq != 0 {
			e.onStatusReq(s, now)
		}
	case wire.TypeRst:
		e.fail(s, ErrPeerReset, rstReason(f.Header.Arg))
	case wire.TypeSynAck:
		e.onLateSynAck(s, f)
	default:
		e.reject(rejectMalformed)
	}
}

// portChangedHands is the cause of a session ended because its port sent
// with other credentials than at the handshake.
func (e *Endpoint) portChangedHands(s *Session) error {
	return fmt.Errorf("its port is now held by another process (pid %d uid %d, was pid %d uid %d)",
		e.rxCreds.PID, e.rxCreds.UID, s.peerCreds.PID, s.peerCreds.UID)
}

func rstReason(r uint32) error {
	switch r {
	case wire.RstAbort:
		return errors.New("peer aborted")
	case wire.RstNoSession:
		return errors.New("peer knows no such session (restarted or new process on its port)")
	case wire.RstRefused:
		return errors.New("peer refused the session")
	case wire.RstBadHandsh:
		return errors.New("peer rejected the handshake parameters")
	case wire.RstEndpointGo:
		return errors.New("peer endpoint closed")
	case wire.RstProtocol:
		return errors.New("peer saw a protocol violation from us")
	}
	return fmt.Errorf("peer reset (reason %d)", r)
}
