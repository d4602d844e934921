package reliable

// Session opening: SYN, SYNACK, and the parameters they fix.

import (
	"errors"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/loss"
	"github.com/cnlink/cnlink/retry"
	"github.com/cnlink/cnlink/window"
)

// onSyn handles a SYN: a new session (if accepting), a retransmitted
// SYN (answer again), or a new epoch from an open session's port (the old
// peer is gone: end that session, open a new one).
func (e *Endpoint) onSyn(k key, s *Session, f *wire.Parsed, now time.Duration) {
	syn, err := wire.ParseSyn(f.Body)
	if err != nil || f.Ack != syn.Epoch || syn.Epoch == 0 {
		e.reject(rejectMalformed)
		return
	}
	if s != nil && s.peerCreds.Valid && e.rxCreds != s.peerCreds {
		// The session's port now sends with other credentials: another
		// process holds it. Its SYN must not keep the old session alive
		// (a replay of the old epoch gets no answer); a SYN of its own
		// may open a new session once the old one is gone.
		e.reject(rejectCredsChanged)
		if e.rxCreds.Valid && s.state == stateEstablished {
			e.fail(s, ErrPeerGone, e.portChangedHands(s))
		}
		if !e.rxCreds.Valid || syn.Epoch == s.peerEpoch {
			return
		}
		e.remove(s)
		s = nil
	}
	if s != nil {
		switch {
		case s.peerEpoch == syn.Epoch && s.state == stateEstablished:
			// Our SYNACK was lost (or, after a simultaneous open, the
			// peer's SYN crossed ours): answer again, identically. The
			// peer is alive: a dialer whose SYNACKs keep getting lost must
			// not see this session die of silence and a new one answer.
			s.lastHeard = now
			e.sendSynAck(s, f.Seq, f.Ack+1, now)
			return
		case s.state == stateSynSent:
			// Simultaneous open: both sides dialed this channel at once.
			// As in TCP, each side takes the other's SYN as its peer's
			// parameters and answers it with a SYNACK carrying its own
			// epoch and ISN, the same values as its SYN: whichever of
			// SYN and SYNACK arrives first, both sides agree.
			e.openSimultaneous(s, f, syn, now)
			return
		case s.peerEpoch == syn.Epoch && s.state == stateResetWait:
			// A late SYN of a session that ended abnormally: the dialer
			// may still believe in it (our RST may have been lost). The
			// RST carries its epoch + 1, so it ends it.
			e.reject(rejectState)
			e.sendRstTo(k.port, k.ch, f.Seq, f.Ack+1, s.rstReason)
			return
		case s.peerEpoch == syn.Epoch:
			e.reject(rejectState) // a stale duplicate of a finished session
			return
		case s.state == stateEstablished:
			// Only one socket can hold a port, so a new epoch from the
			// peer's port means the old peer is gone: end the old session
			// (nothing of the new one reaches it) and accept the new one.
			e.fail(s, ErrPeerReset, errors.New("peer restarted: new session from its port"))
			e.remove(s)
		default:
			e.remove(s)
		}
	}
	if e.acceptQ == nil || e.draining || len(e.acceptQ) == cap(e.acceptQ) ||
		e.cfg.AllowPeer != nil && !e.cfg.AllowPeer(k.port, k.ch, e.rxCreds) {
		e.reject(rejectRefused)
		e.sendRstTo(k.port, k.ch, f.Seq, f.Ack+1, wire.RstRefused)
		return
	}
	if !synParamsValid(syn) {
		e.reject(rejectMalformed)
		e.sendRstTo(k.port, k.ch, f.Seq, f.Ack+1, wire.RstBadHandsh)
		return
	}
	s = e.newSession(k, false)
	s.myISN = window.RandomSeq()
	e.establish(s, syn, now)
	e.sendSynAck(s, f.Seq, f.Ack+1, now)
	// In the same datagram: the small window of a session Accept has not
	// taken yet (rxCredit); Accept opens the rest.
	e.needAck(s, f.Seq)
	e.m.handshake(s, "accepted")
	e.acceptQ <- s
	e.reschedule(s, now)
}

// openSimultaneous completes a dialed session from the peer's own SYN.
func (e *Endpoint) openSimultaneous(s *Session, f *wire.Parsed, syn wire.Syn, now time.Duration) {
	if !synParamsValid(syn) {
		// As on the accepting path: RST 4, and this Dial cannot succeed.
		e.reject(rejectMalformed)
		e.sendRstTo(s.key.port, s.key.ch, f.Seq, f.Ack+1, wire.RstBadHandsh)
		e.fail(s, ErrPeerReset, errors.New("the peer's SYN has invalid parameters"))
		return
	}
	e.establish(s, syn, now)
	e.sendSynAck(s, f.Seq, f.Ack+1, now)
	e.m.handshake(s, "simultaneous")
	if s.dialDone != nil {
		s.dialDone <- nil
		s.dialDone = nil
	}
	e.touchSession(s)
}

// synParamsValid reports whether a peer's SYN or SYNACK announces limits
// a session can work with (PROTOCOL.md §5.2: otherwise RST 4).
func synParamsValid(syn wire.Syn) bool {
	return syn.Window != 0 && syn.MaxMessage != 0 && int(syn.MaxDatagram) >= MinDatagram
}

// synBody is what this side tells the peer in SYN and SYNACK.
func (e *Endpoint) synBody(s *Session) wire.Syn {
	return wire.Syn{
		Epoch:       s.myEpoch,
		ISN:         uint32(s.myISN),
		Window:      uint32(e.cfg.Window),
		MaxMessage:  uint32(e.cfg.MaxMessage),
		MaxDatagram: uint32(e.cfg.MaxDatagram),
	}
}

// sendSynAck answers a SYN with the connector rule: its seq, its ack+1.
func (e *Endpoint) sendSynAck(s *Session, seq, ack uint32, now time.Duration) {
	body := wire.AppendSyn(e.ctlScr[:0], e.synBody(s))
	f := wire.Frame{ID: s.key.ch, Seq: seq, Ack: ack, Port: e.tr.LocalPort(), Type: wire.TypeSynAck}
	e.appendFrame(s, &f, body, nil, now)
}

// sendSyn sends (or resends) the opening frame of a dialed session (Dial
// set its ISN, schedule and deadline).
func (e *Endpoint) sendSyn(s *Session, now time.Duration) {
	body := wire.AppendSyn(e.ctlScr[:0], e.synBody(s))
	f := wire.Frame{ID: s.key.ch, Seq: uint32(s.myISN), Ack: s.myEpoch, Port: e.tr.LocalPort(), Type: wire.TypeSyn}
	e.appendFrame(s, &f, body, nil, now)
	wait, ok := s.hs.Next(now)
	if !ok {
		wait = s.hsDeadline - now
	}
	s.hsNext = now + wait
	e.reschedule(s, now)
}

// onSynAck completes a dialed session (the caller checked seq and ack).
func (e *Endpoint) onSynAck(s *Session, f *wire.Parsed, now time.Duration) {
	syn, err := wire.ParseSyn(f.Body)
	if err != nil || syn.Epoch == 0 {
		e.reject(rejectMalformed)
		return
	}
	if !synParamsValid(syn) {
		// An acceptor whose limits we cannot work with: tell it (its
		// session is open) and fail the Dial now rather than at its
		// deadline.
		e.reject(rejectMalformed)
		e.sendRstTo(s.key.port, s.key.ch, f.Seq, syn.Epoch+1, wire.RstBadHandsh)
		e.fail(s, ErrPeerReset, errors.New("the peer's SYNACK has invalid parameters"))
		return
	}
	s.lastHeard = now
	e.establish(s, syn, now)
	e.m.handshake(s, "established")
	if s.dialDone != nil {
		s.dialDone <- nil
		s.dialDone = nil
	}
	e.touchSession(s)
}

// establish fixes the session parameters from the peer's SYN/SYNACK,
// and pins the session to the credentials the kernel stamped on it.
func (e *Endpoint) establish(s *Session, peer wire.Syn, now time.Duration) {
	s.peerEpoch = peer.Epoch
	s.peerCreds = e.rxCreds
	s.maxMsg = min(e.cfg.MaxMessage, int(peer.MaxMessage))
	s.out.max = min(s.out.max, int(peer.MaxDatagram))
	s.snd = window.NewSender[*msgBuf](s.myISN, window.SenderConfig{
		Window: min(e.cfg.Window, int(peer.Window)),
		// A local round trip is ~10µs: RFC 9002's 1ms floor for the
		// reordering window would delay time-based loss detection 100
		// fold. DSACK feedback widens it when reordering is real.
		ReorderWindowMin: 100 * time.Microsecond,
	})
	s.rec = loss.New(s.snd, retry.RTTConfig{})
	s.rcv = window.NewReceiver[rxItem](window.Seq(peer.ISN), window.ReceiverConfig{Window: e.cfg.Window, MaxRanges: 16})
	s.release = s.releaseMsg
	s.state = stateEstablished
	s.lastHeard = now
}

// onLateSynAck handles a SYNACK for an open session. The same epoch is a
// duplicate answer to our SYN: harmless. Another epoch means the peer
// answered one of our SYNs (a late retransmission) with a new session:
// the session we are in is gone at the peer (it ended, and its RST was
// lost), and the new one would keep ours alive with ACKs, since it knows
// our epoch. Both end: RST 2 to the new one, whose epoch the SYNACK told
// us, and ErrPeerReset here.
func (e *Endpoint) onLateSynAck(s *Session, f *wire.Parsed) {
	syn, err := wire.ParseSyn(f.Body)
	if err != nil {
		e.reject(rejectMalformed)
		return
	}
	if syn.Epoch == s.peerEpoch {
		return
	}
	e.sendRstTo(s.key.port, s.key.ch, f.Seq, syn.Epoch+1, wire.RstNoSession)
	e.fail(s, ErrPeerReset, errors.New("the peer no longer has this session (it answered a late SYN with a new one)"))
}
