package reliable

// The data path: queued messages into the window and onto the wire,
// received frames through the reorder buffer to the application.

import (
	"fmt"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/window"
)

// onData accepts a Data or Reply frame whose stream number is dsn.
func (e *Endpoint) onData(s *Session, dsn uint32, f *wire.Parsed, now time.Duration) {
	if len(f.Body) > e.cfg.MaxMessage {
		// The peer ignores the max_message we announced. Dropping the
		// message would stall the stream at its DSN for good (it can
		// never be acknowledged): end the session, and tell the peer why.
		e.reject(rejectTooLarge)
		e.sendRst(s, wire.RstProtocol, now)
		e.fail(s, ErrProtocol, fmt.Errorf("it sent a %d-byte message at DSN %d; the limit we announced is %d bytes", len(f.Body), dsn, e.cfg.MaxMessage))
		s.rstReason = wire.RstProtocol
		return
	}
	// Enforce the credit we advertise: whatever a peer sends, the reorder
	// buffer plus the messages waiting for the application stay within
	// the window. A well-behaved sender never gets here (its limit was
	// computed from a backlog that can only have shrunk since).
	if d := window.Seq(dsn).Sub(s.rcv.Cum()); d >= 0 && d >= e.rxCredit(s)-int(s.pump.backlog.Load())-len(s.delivering) {
		e.reject(rejectWindow)
		e.needAck(s, dsn)
		return
	}
	it := rxItem{seq: f.Seq, ack: f.Ack, typ: uint8(f.Header.Type), flags: f.Header.Flags}
	it.data = s.payloadCopy(f.Body)
	held := s.rcv.Buffered()
	// The ACK of a request or reply that arrived in order, with no gap
	// behind it, may wait a little for the answer to ride with it.
	lazy := held == 0 && window.Seq(dsn) == s.rcv.Cum() && it.flags&wire.FlagFin == 0 &&
		(f.Header.Type == wire.TypeReply || it.flags&wire.FlagRequest != 0)
	switch s.rcv.Push(window.Seq(dsn), it) {
	case window.Duplicate:
		s.stats.dups.Add(1)
		e.m.dup()
		recycleRecv(it.data)
		lazy = false
	case window.OutOfWindow:
		e.reject(rejectWindow)
		recycleRecv(it.data)
		lazy = false
	}
	if lazy {
		e.needAckLazy(s, dsn)
	} else {
		e.needAck(s, dsn)
	}
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

// deliverItem routes one in-order item: a reply to its waiting Request,
// a FIN to the end of the session, data and requests to the pump.
func (e *Endpoint) deliverItem(s *Session, it rxItem, now time.Duration) {
	if it.flags&wire.FlagFin != 0 && wire.Type(it.typ) == wire.TypeData {
		// The session ends here: onData pops nothing after it, so
		// whatever a peer sends beyond its FIN is never delivered.
		e.onFin(s, now)
		return
	}
	e.m.received(len(it.data))
	s.stats.received.Add(1)
	switch {
	case wire.Type(it.typ) == wire.TypeReply:
		if ch, ok := s.replyWait[it.seq]; ok {
			delete(s.replyWait, it.seq)
			ch <- replyMsg{data: it.data}
			s.countDelivered(1, len(it.data))
		} else {
			// Its Request gave up (context): nobody takes it.
			e.reject(rejectLateReply)
			s.stats.undelivered.Add(1)
			e.stats.undelivered.Add(1)
		}
	case it.flags&wire.FlagRequest != 0:
		s.delivering = append(s.delivering, delivery{req: &Request{Data: it.data, s: s, seq: it.seq, ack: it.ack}})
	default:
		s.delivering = append(s.delivering, delivery{data: it.data})
	}
}

// pullSends moves queued messages into the window and onto the wire.
func (e *Endpoint) pullSends(s *Session, now time.Duration) {
	// Repairs first: frames declared lost (or refused by a busy peer) go
	// before new ones.
	e.retransmit(s, now, false)
	sent, bytes := 0, 0
	defer func() {
		if sent > 0 {
			s.stats.sent.Add(uint64(sent))
			e.m.sent(sent, bytes)
		}
	}()
	for s.state == stateEstablished && !s.out.busy && s.snd.CanSend() {
		// Take no more than the window can carry now, so that every
		// message taken is pushed unless the session ends meanwhile.
		n := max(1, min(s.snd.Window()-s.snd.Next().Sub(s.snd.Base()), s.snd.Limit().Sub(s.snd.Next())))
		e.taken = s.takeSend(e.taken[:0], n)
		if len(e.taken) == 0 {
			break
		}
		for i, m := range e.taken {
			if s.state != stateEstablished {
				// A send error ended the session (and failed the rest
				// of its queue) while this batch was on its way.
				s.failTaken(e.taken[i:])
				break
			}
			seq := s.snd.Push(now, m)
			m.sentAt = now
			if m.reply != nil {
				s.replyWait[uint32(seq)] = m.reply
			}
			e.sendMsg(s, seq, m, now)
			s.probeAt = 0
			if m.flags&wire.FlagFin != 0 {
				s.finSeq, s.finPushed = seq, true
				continue // the end of the stream, not a message
			}
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

// sendMsg encodes one Data or Reply record and reports whether it went
// into a datagram.
func (e *Endpoint) sendMsg(s *Session, seq window.Seq, m *msgBuf, now time.Duration) bool {
	f := wire.Frame{ID: s.key.ch, Seq: uint32(seq), Ack: s.myEpoch, Port: e.tr.LocalPort(), Type: m.typ, Flags: m.flags}
	if m.typ == wire.TypeReply {
		f.Seq, f.Ack, f.Arg = m.replyTo, m.ackTo, uint32(seq)
	}
	if !e.appendFrame(s, &f, nil, m.b, now) {
		// The peer's queue is full (EAGAIN): the frame never left. Mark it
		// lost so that it goes out as soon as the peer drains, instead of
		// waiting for the retransmission timer.
		s.snd.MarkLost(window.Range{Start: seq, End: seq})
		return false
	}
	m.left = true
	return true
}

// appendFrame encodes a frame into the session's coalescing buffer.
func (e *Endpoint) appendFrame(s *Session, f *wire.Frame, body, payload []byte, now time.Duration) bool {
	o := s.out
	if !e.room(o, transport.FrameLen(wire.HeaderLen+len(body)+len(payload)), now) || s.state == stateDead || s.state == stateResetWait {
		// Busy, or flushing made room by failing: a send error ended
		// every session on this port, this one included.
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
