package reliable

// Acknowledgements: building them, processing them, loss recovery and
// the overrun status exchange.

import (
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/retry"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/window"
)

// releaseMsg is called by the window for every acknowledged record.
func (s *Session) releaseMsg(_ window.Seq, m *msgBuf) {
	s.ep.m.acked(m.sentAt)
	s.recycle(m)
}

// onAck feeds an acknowledgement to the window: releases, RTT sample,
// loss detection, and the retransmissions and new sends it allows.
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
	if res.Ignored {
		e.reject(rejectState) // acknowledges DSNs we never sent
	}
	e.m.ackDone(now)
	s.rec.OnAck(res)
	// An ACK that answers our RTO probe tells exactly what was lost
	// before it (loss.Recovery.OnAnswer): those go out below.
	byProbe := s.rec.OnAnswer(window.Seq(f.Seq), a.Ranges, now) > 0
	if res.RTTValid {
		s.stats.srtt.Store(int64(s.rec.RTT().SRTT()))
		e.m.rtt(res.RTT)
	}
	if res.Spurious > 0 {
		e.stats.spurious.Add(uint64(res.Spurious))
	}
	if f.Header.Flags&wire.FlagStatusReq != 0 {
		e.onStatusReq(s, now)
	}
	if s.finAcked() {
		// Done: linger to answer the peer's last retransmissions (with an
		// ACK, not the RST an unknown session gets) while it finishes.
		e.endSession(s, s.errOf(ErrClosed, nil), true, now)
		return
	}
	e.retransmit(s, now, byProbe)
	if res.Acked > 0 {
		e.checkFlushers(s)
	}
}

// sendAck appends an acknowledgement answering the newest frame received.
func (e *Endpoint) sendAck(s *Session, now time.Duration) {
	// A smaller credit than the receiver's window counts as backlog.
	a := s.rcv.Ack(int(s.pump.backlog.Load()) + e.cfg.Window - e.rxCredit(s))
	e.ackBody.Limit = uint32(a.Limit)
	e.ackBody.Dup = uint32(a.Dup)
	e.ackBody.Ranges = e.ackBody.Ranges[:0]
	// The ACK must fit the peer's datagram limit, which may hold a small
	// message and little more: send the SACK ranges that fit (the first,
	// newest ones), or the peer would drop the whole datagram truncated.
	fit := (s.out.max - transport.FrameLen(wire.HeaderLen+wire.AckFixedLen)) / wire.RangeLen
	for _, r := range a.Ranges[:max(0, min(len(a.Ranges), fit))] {
		e.ackBody.Ranges = append(e.ackBody.Ranges, wire.Range{Start: uint32(r.Start), End: uint32(r.End)})
	}
	var flags uint16
	if a.DupValid {
		flags |= wire.FlagDupValid
	}
	if s.statusReq {
		flags |= wire.FlagStatusReq
	}
	body := wire.AppendAck(e.ctlScr[:0], &e.ackBody)
	e.ctlScr = body[:0]
	f := wire.Frame{ID: s.key.ch, Seq: s.ackSeq, Ack: s.peerEpoch + 1, Port: e.tr.LocalPort(), Type: wire.TypeAck, Flags: flags, Arg: uint32(a.Cum)}
	if e.appendFrame(s, &f, body, nil, now) {
		s.ackDue, s.ackUrgent, s.ackHold = false, false, 0
		s.statusReq = false
		if credit := a.Limit.Sub(a.Cum); credit < e.cfg.Window/4 {
			s.pump.wantUpdate.Store(true)
		}
	}
}

// retransmit sends the window's lost records again. Only frames that
// had left before count as retransmitted: one a full peer queue refused
// (sendMsg) goes out here for the first time.
func (e *Endpoint) retransmit(s *Session, now time.Duration, rto bool) {
	for s.state == stateEstablished && s.snd.HasLost() && !s.out.busy {
		seq, m, ok := s.snd.PopLost(now)
		if !ok {
			break
		}
		again := m.left
		if !e.sendMsg(s, seq, m, now) || !again {
			continue // refused (marked lost again), or its first transmission
		}
		s.stats.retrans.Add(1)
		if rto {
			s.stats.rtoRetrans.Add(1)
		}
		e.m.retransmit(rto)
	}
}

// onStatusReq: the peer overran and lost frames. The recovery policy
// decides what to resend (bounded, so that the request is no amplifier:
// see loss.Recovery.OnStatusRequest); the retransmissions go out at the
// end of the turn, and the ACK is always sent.
func (e *Endpoint) onStatusReq(s *Session, now time.Duration) {
	if repaired, _ := s.rec.OnStatusRequest(now); repaired {
		s.stats.statusRepair.Add(1)
	}
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
// receive buffer (docs/ARCHITECTURE.md §6: repair within 2 RTOs of the report).
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

// checkFlushers releases Flush callers once everything queued is acked.
func (e *Endpoint) checkFlushers(s *Session) {
	if s.snd == nil || s.snd.InFlight() > 0 {
		return
	}
	s.mu.Lock()
	flushed := len(s.sendQ) == s.sendHead && len(s.flushers) > 0
	if flushed {
		for _, ch := range s.flushers {
			close(ch)
		}
		s.flushers = nil
	}
	s.mu.Unlock()
	if flushed {
		s.shrink() // a Flush is over: the session may well go idle
	}
}

// shrink frees what traffic grew and an idle session does not need: the
// window rings (back to their initial size, when nothing is in flight or
// held), the owner's delivery batch and the pump's queue. It runs when a
// Flush is over and when a session heard nothing for KeepAlive; a session
// that sends again grows them again. Owner only.
func (s *Session) shrink() {
	if s.snd != nil {
		s.snd.Shrink()
	}
	if s.rcv != nil {
		s.rcv.Shrink()
	}
	if len(s.delivering) == 0 {
		s.delivering = nil
	}
	p := &s.pump
	p.mu.Lock()
	if p.head == len(p.items) {
		p.items, p.head = nil, 0 // grown to the largest backlog
	}
	p.mu.Unlock()
}
