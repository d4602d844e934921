package reliable

import (
	"errors"
	"fmt"
	"time"

	"github.com/cnlink/cnlink/retry"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/window"
	"github.com/cnlink/cnlink/wire"
)

// This file holds the owner goroutine's per-frame protocol logic.

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
			e.reject(rejectEpoch)
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
		// Only answer retransmissions so that the peer can finish.
		if typ == wire.TypeData || typ == wire.TypeReply || typ == wire.TypePing {
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
		// A duplicate answer to our SYN: harmless.
	default:
		e.reject(rejectMalformed)
	}
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
	}
	return fmt.Errorf("peer reset (reason %d)", r)
}

// touchSession lists s for the end-of-datagram work (acks, deliveries,
// sending into a window that may have opened, timer).
func (e *Endpoint) touchSession(s *Session) {
	if !s.touched {
		s.touched = true
		e.acks = append(e.acks, s)
	}
}

func (e *Endpoint) needAck(s *Session, seq uint32) {
	s.ackDue = true
	s.ackSeq = seq
	e.touchSession(s)
}

// finishRx emits acks and deliveries for the sessions touched this turn.
func (e *Endpoint) finishRx(now time.Duration) {
	for i := 0; i < len(e.acks); i++ {
		s := e.acks[i]
		s.touched = false
		if s.state == stateEstablished {
			e.pullSends(s, now)
		}
		// Hand deliveries over first: the ack's credit counts them.
		s.handToPump()
		if s.ackDue && (s.state == stateEstablished || s.state == stateTimeWait) {
			e.sendAck(s, now)
		}
		if s.state != stateDead {
			e.reschedule(s, now)
		}
	}
	clear(e.acks)
	e.acks = e.acks[:0]
	e.m.flushReceived()
}

func (e *Endpoint) onSyn(k key, s *Session, f *wire.Parsed, now time.Duration) {
	syn, err := wire.ParseSyn(f.Body)
	if err != nil || f.Ack != syn.Epoch || syn.Epoch == 0 {
		e.reject(rejectMalformed)
		return
	}
	if s != nil {
		switch {
		case s.peerEpoch == syn.Epoch && s.state == stateEstablished && !s.initiator:
			e.sendSynAck(s, f.Seq, f.Ack+1, now) // our SYNACK was lost
			return
		case s.peerEpoch == syn.Epoch || s.state == stateSynSent:
			// A stale duplicate, or both sides dialing each other on
			// the same channel at once: the dialer keeps its attempt.
			e.reject(rejectState)
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
	if e.acceptQ == nil || len(e.acceptQ) == cap(e.acceptQ) {
		e.reject(rejectRefused)
		e.sendRstTo(k.port, k.ch, f.Seq, f.Ack+1, wire.RstRefused)
		return
	}
	if syn.Window == 0 || syn.MaxMessage == 0 || int(syn.MaxDatagram) < transport.FrameLen(wire.HeaderLen+1) {
		e.reject(rejectMalformed)
		e.sendRstTo(k.port, k.ch, f.Seq, f.Ack+1, wire.RstBadHandsh)
		return
	}
	s = e.newSession(k, false)
	s.myISN = window.RandomSeq()
	e.establish(s, syn, now)
	e.sendSynAck(s, f.Seq, f.Ack+1, now)
	e.m.handshake(s, "accepted")
	e.acceptQ <- s
	e.reschedule(s, now)
}

func (e *Endpoint) synBody(s *Session) wire.Syn {
	return wire.Syn{
		Epoch:       s.myEpoch,
		ISN:         uint32(s.myISN),
		Window:      uint32(e.cfg.Window),
		MaxMessage:  uint32(e.cfg.MaxMessage),
		MaxDatagram: uint32(e.cfg.MaxDatagram),
	}
}

func (e *Endpoint) sendSynAck(s *Session, seq, ack uint32, now time.Duration) {
	body := wire.AppendSyn(e.ackScr[:0], e.synBody(s))
	f := wire.Frame{ID: s.key.ch, Seq: seq, Ack: ack, Port: e.tr.LocalPort(), Type: wire.TypeSynAck}
	e.appendFrame(s, &f, body, nil, now)
}

// sendSyn sends (or resends) the opening frame of a dialed session.
func (e *Endpoint) sendSyn(s *Session, now time.Duration) {
	if s.hs == nil {
		s.myISN = window.RandomSeq()
		s.hs = retry.HandshakeSchedule()
		s.hs.Reset(now)
		s.hsDeadline = now + e.cfg.HandshakeTimeout
	}
	body := wire.AppendSyn(e.ackScr[:0], e.synBody(s))
	f := wire.Frame{ID: s.key.ch, Seq: uint32(s.myISN), Ack: s.myEpoch, Port: e.tr.LocalPort(), Type: wire.TypeSyn}
	e.appendFrame(s, &f, body, nil, now)
	wait, ok := s.hs.Next(now)
	if !ok {
		wait = s.hsDeadline - now
	}
	s.hsNext = now + wait
	e.reschedule(s, now)
}

func (e *Endpoint) onSynAck(s *Session, f *wire.Parsed, now time.Duration) {
	syn, err := wire.ParseSyn(f.Body)
	if err != nil || syn.Epoch == 0 || syn.Window == 0 || syn.MaxMessage == 0 ||
		int(syn.MaxDatagram) < transport.FrameLen(wire.HeaderLen+1) {
		e.reject(rejectMalformed)
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

// establish fixes the session parameters from the peer's SYN/SYNACK.
func (e *Endpoint) establish(s *Session, peer wire.Syn, now time.Duration) {
	s.peerEpoch = peer.Epoch
	s.maxMsg = min(e.cfg.MaxMessage, int(peer.MaxMessage))
	s.out.max = min(s.out.max, int(peer.MaxDatagram))
	s.snd = window.NewSender[*msgBuf](s.myISN, window.SenderConfig{
		Window: min(e.cfg.Window, int(peer.Window)),
		// A local round trip is ~10µs: RFC 9002's 1ms floor for the
		// reordering window would delay time-based loss detection 100
		// fold. DSACK feedback widens it when reordering is real.
		ReorderWindowMin: 100 * time.Microsecond,
	})
	s.rcv = window.NewReceiver[rxItem](window.Seq(peer.ISN), window.ReceiverConfig{Window: e.cfg.Window, MaxRanges: 16})
	s.release = s.releaseMsg
	s.state = stateEstablished
	s.lastHeard = now
}

// onData accepts a Data or Reply frame whose stream number is dsn.
func (e *Endpoint) onData(s *Session, dsn uint32, f *wire.Parsed, now time.Duration) {
	if len(f.Body) > e.cfg.MaxMessage {
		e.reject(rejectTooLarge)
		return
	}
	// Enforce the credit we advertise: whatever a peer sends, the reorder
	// buffer plus the messages waiting for the application stay within
	// the window. A well-behaved sender never gets here (its limit was
	// computed from a backlog that can only have shrunk since).
	if d := window.Seq(dsn).Sub(s.rcv.Cum()); d >= 0 && d >= e.cfg.Window-int(s.pump.backlog.Load())-len(s.delivering) {
		e.reject(rejectWindow)
		e.needAck(s, dsn)
		return
	}
	it := rxItem{seq: f.Seq, ack: f.Ack, typ: uint8(f.Header.Type), flags: f.Header.Flags}
	it.data = s.payloadCopy(f.Body)
	held := s.rcv.Buffered()
	switch s.rcv.Push(window.Seq(dsn), it) {
	case window.Duplicate:
		s.stats.dups.Add(1)
		e.m.dup()
		s.rpool.cache = append(s.rpool.cache, it.data[:0])
	case window.OutOfWindow:
		e.reject(rejectWindow)
		s.rpool.cache = append(s.rpool.cache, it.data[:0])
	}
	e.needAck(s, dsn)
	for {
		it, ok := s.rcv.Pop()
		if !ok {
			break
		}
		e.deliverItem(s, it, now)
		if s.state != stateEstablished {
			e.m.reorder(s.rcv.Buffered() - held)
			return
		}
	}
	e.m.reorder(s.rcv.Buffered() - held)
}

func (e *Endpoint) deliverItem(s *Session, it rxItem, now time.Duration) {
	e.m.received(len(it.data))
	switch {
	case wire.Type(it.typ) == wire.TypeReply:
		if ch, ok := s.replyWait[it.seq]; ok {
			delete(s.replyWait, it.seq)
			ch <- replyMsg{data: it.data}
			e.m.deliver(1, len(it.data))
		} else {
			e.reject(rejectLateReply)
		}
		s.stats.delivered.Add(1)
	case it.flags&wire.FlagFin != 0:
		s.peerFin = true
		s.pump.graceful.Store(true)
		e.endSession(s, &SessionError{Port: s.key.port, Channel: s.key.ch.String(), Kind: ErrPeerClosed}, true, now)
	case it.flags&wire.FlagRequest != 0:
		s.delivering = append(s.delivering, delivery{req: &Request{Data: it.data, s: s, seq: it.seq, ack: it.ack}})
	default:
		s.delivering = append(s.delivering, delivery{data: it.data})
	}
}

// releaseMsg is called by the window for every acknowledged record.
func (s *Session) releaseMsg(_ window.Seq, m *msgBuf) {
	s.ep.m.acked(m.sentAt)
	if m.flags&wire.FlagFin != 0 {
		s.finAcked = true
	}
	s.recycle(m)
}

func (e *Endpoint) onAck(s *Session, f *wire.Parsed, now time.Duration) {
	if err := wire.ParseAck(f.Body, &e.parsedAck); err != nil {
		e.reject(rejectMalformed)
		return
	}
	a := window.Ack{
		Cum:      window.Seq(f.Header.Arg),
		Limit:    window.Seq(e.parsedAck.Limit),
		DupValid: f.Header.Flags&wire.FlagDupValid != 0,
		Dup:      window.Seq(e.parsedAck.Dup),
		Ranges:   e.ackRanges[:0],
	}
	for _, r := range e.parsedAck.Ranges {
		a.Ranges = append(a.Ranges, window.Range{Start: window.Seq(r.Start), End: window.Seq(r.End)})
	}
	e.ackRanges = a.Ranges
	res := s.snd.OnAck(now, a, s.release)
	e.m.ackDone(now)
	s.freeBatch()
	if res.Acked > 0 {
		s.probes, s.rtoFrom = 0, 0
	}
	if res.RTTValid {
		s.rtt.Update(res.RTT)
		s.snd.SetSRTT(s.rtt.SRTT())
		s.stats.srtt.Store(int64(s.rtt.SRTT()))
		e.m.rtt(res.RTT)
	}
	if res.Spurious > 0 {
		e.stats.spurious.Add(uint64(res.Spurious))
	}
	if f.Header.Flags&wire.FlagStatusReq != 0 {
		e.onStatusReq(s, now)
	}
	e.retransmit(s, now, false)
	if s.finAcked {
		e.endSession(s, &SessionError{Port: s.key.port, Channel: s.key.ch.String(), Kind: ErrClosed}, false, now)
		return
	}
	if res.Acked > 0 {
		e.checkFlushers(s)
	}
}

// onStatusReq: the peer overran and lost frames; everything it has not
// acknowledged is retransmitted now, and it gets our status back.
func (e *Endpoint) onStatusReq(s *Session, now time.Duration) {
	s.stats.statusRepair.Add(1)
	s.snd.MarkAllLost()
	if !s.ackDue {
		e.needAck(s, uint32(s.rcv.Cum())-1)
	}
}

// onOverrun: the transport reported that the kernel dropped datagrams for
// us. Ask every peer for an immediate status exchange instead of waiting
// for its retransmission timer.
func (e *Endpoint) onOverrun(now time.Duration) {
	e.stats.overruns.Add(1)
	for _, s := range e.sessions {
		if s.state != stateEstablished {
			continue
		}
		if s.overrun == nil {
			s.overrun = retry.OverrunSchedule()
		}
		s.overrun.Reset(now)
		s.statusAt = now
		e.requestStatus(s, now)
	}
	e.finishRx(now)
}

// requestStatus sends an ACK with STATUS_REQ and schedules the next one
// on the overrun schedule. Repeats stop once no gap is left in the
// receive buffer (DESIGN §5: repair within 2 RTOs of the report).
func (e *Endpoint) requestStatus(s *Session, now time.Duration) {
	s.statusReq = true
	s.stats.statusReq.Add(1)
	if !s.ackDue {
		e.needAck(s, uint32(s.rcv.Cum())-1)
	}
	wait, ok := s.overrun.Next(now)
	if !ok {
		s.statusAt = 0
		return
	}
	s.statusAt = now + wait
}

// retransmit sends the window's lost records again.
func (e *Endpoint) retransmit(s *Session, now time.Duration, rto bool) {
	for s.snd.HasLost() && !s.out.busy {
		seq, m, ok := s.snd.PopLost(now)
		if !ok {
			break
		}
		e.sendMsg(s, seq, m, now)
		s.stats.retrans.Add(1)
		if rto {
			s.stats.rtoRetrans.Add(1)
		}
		e.m.retransmit(rto)
	}
}

// sendMsg encodes one Data or Reply record. If the destination turns busy
// the frame stays in flight unsent and the window recovers it.
func (e *Endpoint) sendMsg(s *Session, seq window.Seq, m *msgBuf, now time.Duration) {
	f := wire.Frame{ID: s.key.ch, Seq: uint32(seq), Ack: s.myEpoch, Port: e.tr.LocalPort(), Type: m.typ, Flags: m.flags}
	if m.typ == wire.TypeReply {
		f.Seq, f.Ack, f.Arg = m.replyTo, m.ackTo, uint32(seq)
	}
	e.appendFrame(s, &f, nil, m.b, now)
}

// pullSends moves queued messages into the window and onto the wire.
func (e *Endpoint) pullSends(s *Session, now time.Duration) {
	sent, bytes := 0, 0
	defer func() {
		if sent > 0 {
			s.stats.sent.Add(uint64(sent))
			e.m.sent(sent, bytes)
		}
	}()
	for !s.out.busy && s.snd.CanSend() {
		n := max(1, min(s.snd.Window()-s.snd.Next().Sub(s.snd.Base()), s.snd.Limit().Sub(s.snd.Next())))
		e.taken = s.takeSend(e.taken[:0], n)
		if len(e.taken) == 0 {
			break
		}
		for i, m := range e.taken {
			if !s.snd.CanSend() {
				s.requeueFront(e.taken[i:])
				break
			}
			seq := s.snd.Push(now, m)
			m.sentAt = now
			if m.reply != nil {
				s.replyWait[uint32(seq)] = m.reply
			}
			if m.flags&wire.FlagFin != 0 {
				s.finSent = true
			}
			e.sendMsg(s, seq, m, now)
			s.probeAt = 0
			sent++
			bytes += len(m.b)
		}
		clear(e.taken)
	}
	s.mu.Lock()
	if len(s.sendQ) == s.sendHead {
		s.readyFlag = false
	}
	s.mu.Unlock()
}

// sendAck appends an acknowledgement answering the newest frame received.
func (e *Endpoint) sendAck(s *Session, now time.Duration) {
	a := s.rcv.Ack(int(s.pump.backlog.Load()))
	e.ackBody.Limit = uint32(a.Limit)
	e.ackBody.Dup = uint32(a.Dup)
	e.ackBody.Ranges = e.ackBody.Ranges[:0]
	for _, r := range a.Ranges {
		e.ackBody.Ranges = append(e.ackBody.Ranges, wire.Range{Start: uint32(r.Start), End: uint32(r.End)})
	}
	var flags uint16
	if a.DupValid {
		flags |= wire.FlagDupValid
	}
	if s.statusReq {
		flags |= wire.FlagStatusReq
	}
	body := wire.AppendAck(e.ackScr[:0], &e.ackBody)
	e.ackScr = body[:0]
	f := wire.Frame{ID: s.key.ch, Seq: s.ackSeq, Ack: s.peerEpoch + 1, Port: e.tr.LocalPort(), Type: wire.TypeAck, Flags: flags, Arg: uint32(a.Cum)}
	if e.appendFrame(s, &f, body, nil, now) {
		s.ackDue = false
		s.statusReq = false
		if credit := a.Limit.Sub(a.Cum); credit < e.cfg.Window/4 {
			s.pump.wantUpdate.Store(true)
		}
	}
}

func (e *Endpoint) sendPing(s *Session, flags uint16, now time.Duration) {
	f := wire.Frame{ID: s.key.ch, Seq: uint32(s.snd.Next()), Ack: s.myEpoch, Port: e.tr.LocalPort(), Type: wire.TypePing, Flags: flags}
	e.appendFrame(s, &f, nil, nil, now)
	s.lastPing = now
}

func (e *Endpoint) sendRst(s *Session, reason uint32, now time.Duration) {
	seq := uint32(0)
	if s.rcv != nil {
		seq = uint32(s.rcv.Cum()) - 1
	}
	f := wire.Frame{ID: s.key.ch, Seq: seq, Ack: s.peerEpoch + 1, Port: e.tr.LocalPort(), Type: wire.TypeRst, Arg: reason}
	e.appendFrame(s, &f, nil, nil, now)
}

// sendRstTo answers a frame of an unknown session. It bypasses the
// coalescing buffers so that hostile traffic cannot make the endpoint
// allocate per-port state.
func (e *Endpoint) sendRstTo(port uint32, ch transport.CbID, seq, ack, reason uint32) {
	f := wire.Frame{ID: ch, Seq: seq, Ack: ack, Port: e.tr.LocalPort(), Type: wire.TypeRst, Arg: reason}
	b, err := wire.Append(e.rstScr[:0], &f, nil, nil)
	if err == nil {
		_ = e.tr.Send(transport.Addr{Port: port}, b) // best effort
		e.rstScr = b[:0]
	}
}

// appendFrame encodes a frame into the session's coalescing buffer.
func (e *Endpoint) appendFrame(s *Session, f *wire.Frame, body, payload []byte, now time.Duration) bool {
	o := s.out
	if !e.room(o, transport.FrameLen(wire.HeaderLen+len(body)+len(payload)), now) {
		return false
	}
	var err error
	o.buf, err = wire.Append(o.buf, f, body, payload)
	if err != nil {
		e.stats.sendErrors.Add(1)
		return false
	}
	e.touch(o)
	return true
}

// onTimer runs a session's due timers.
func (e *Endpoint) onTimer(s *Session, now time.Duration) {
	switch s.state {
	case stateSynSent:
		if now >= s.hsDeadline {
			e.fail(s, ErrTimeout, errors.New("no answer to the handshake"))
			return
		}
		if now >= s.hsNext {
			e.sendSyn(s, now)
		}
		return
	case stateTimeWait:
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
	if d, ok := s.snd.LossDeadline(); ok && now >= d {
		s.snd.DetectLoss(now)
		e.retransmit(s, now, false)
	}
	if t, ok := s.snd.OldestSentAt(); ok && now >= max(t, s.rtoFrom)+s.rtt.RTO() {
		if s.probes == 0 {
			// First expiry: probe instead of resending the whole window
			// (RFC 9002 6.2's probe timeout in spirit). A receiver that was
			// merely slow answers with an ack covering everything; a lost
			// tail shows up in the answer's SACK or in the next expiry.
			s.probes++
			e.sendPing(s, 0, now)
			s.rtoFrom = now
		} else {
			s.snd.OnTimeout(now)
			e.retransmit(s, now, true)
		}
		s.rtt.Backoff()
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
		e.sendPing(s, 0, now)
		s.rtt.Backoff()
	}
	if now >= max(s.lastHeard, s.lastPing)+e.cfg.KeepAlive {
		e.sendPing(s, 0, now)
	}
	e.touchSession(s)
}

// reschedule computes the session's next deadline.
func (e *Endpoint) reschedule(s *Session, now time.Duration) {
	d := noDeadline
	switch s.state {
	case stateSynSent:
		d = min(s.hsNext, s.hsDeadline)
	case stateTimeWait:
		d = s.closeAt
	case stateEstablished:
		d = min(s.lastHeard+e.cfg.DeadPeerTimeout, max(s.lastHeard, s.lastPing)+e.cfg.KeepAlive)
		if s.closeAt != 0 {
			d = min(d, s.closeAt)
		}
		if t, ok := s.snd.OldestSentAt(); ok {
			d = min(d, max(t, s.rtoFrom)+s.rtt.RTO())
		} else if !s.snd.CanSend() && s.queued() > 0 {
			if s.probeAt == 0 {
				s.probeAt = now + s.rtt.RTO()
			}
			d = min(d, s.probeAt)
		}
		if t, ok := s.snd.LossDeadline(); ok {
			d = min(d, t)
		}
		if s.statusAt != 0 {
			d = min(d, s.statusAt)
		}
	}
	e.timers.schedule(s, d)
}

// checkFlushers releases Flush callers once everything queued is acked.
func (e *Endpoint) checkFlushers(s *Session) {
	if s.snd == nil || s.snd.InFlight() > 0 {
		return
	}
	s.mu.Lock()
	if len(s.sendQ) == s.sendHead && len(s.flushers) > 0 {
		for _, ch := range s.flushers {
			close(ch)
		}
		s.flushers = nil
	}
	s.mu.Unlock()
}

// beginClose starts a graceful close: a FIN goes at the end of the
// stream, and the session ends when it is acknowledged.
func (e *Endpoint) beginClose(s *Session) {
	now := e.now()
	if s.state != stateEstablished {
		e.endSession(s, &SessionError{Port: s.key.port, Channel: s.key.ch.String(), Kind: ErrClosed}, false, now)
		return
	}
	s.mu.Lock()
	m := s.newMsgLocked(nil, wire.TypeData)
	m.flags = wire.FlagFin
	s.sendQ = append(s.sendQ, m) // past sendCap on purpose: the FIN must fit
	s.mu.Unlock()
	s.closeAt = now + e.cfg.CloseTimeout
	e.pullSends(s, now)
	e.reschedule(s, now)
}

// abort ends s at once and tells the peer.
func (e *Endpoint) abort(s *Session) {
	now := e.now()
	if s.state == stateEstablished {
		e.sendRst(s, wire.RstAbort, now)
	}
	s.abandonPump()
	e.endSession(s, &SessionError{Port: s.key.port, Channel: s.key.ch.String(), Kind: ErrClosed}, false, now)
}

// fail ends s with a typed error.
func (e *Endpoint) fail(s *Session, kind, cause error) {
	e.endSession(s, &SessionError{Port: s.key.port, Channel: s.key.ch.String(), Kind: kind, Cause: cause}, false, e.now())
}

// endSession ends s with err. With timeWait the session lingers to answer
// retransmissions of frames it already acknowledged (the peer's FIN).
func (e *Endpoint) endSession(s *Session, err error, timeWait bool, now time.Duration) {
	if s.state == stateDead || s.state == stateTimeWait {
		return
	}
	wasSyn := s.state == stateSynSent
	s.err.Store(&err)
	s.mu.Lock()
	s.endErr = err
	queue := s.sendQ[s.sendHead:]
	s.sendQ, s.sendHead = nil, 0
	s.flushers = nil
	s.mu.Unlock()
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
	s.endPump()
	e.m.sessionClosed(s, err)
	if timeWait {
		s.state = stateTimeWait
		s.closeAt = now + 2*e.cfg.KeepAlive
		e.touchSession(s)
		return
	}
	s.state = stateDead
	e.remove(s)
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
