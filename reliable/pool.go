package reliable

import (
	"time"

	"github.com/cnlink/cnlink/internal/wire"
)

// msgBuf is one queued or in-flight outgoing message. It owns a copy of
// the caller's bytes (Send never keeps the caller's slice). msgBufs are
// recycled through their session's free list, so the send path does not
// allocate in steady state.
type msgBuf struct {
	b       []byte
	typ     wire.Type     // TypeData or TypeReply
	flags   uint16        // wire flags (REQUEST, FIN)
	replyTo uint32        // Reply: the request's DSN (cn_msg.seq of the Reply)
	ackTo   uint32        // Reply: the request's cn_msg.ack + 1
	reply   chan replyMsg // Request: where the Reply goes
	sentAt  time.Duration // first transmission (endpoint clock), for cnlink.delivery.duration
	// left: the frame went into a datagram at least once. A send refused
	// by a full peer queue (EAGAIN) never left, so sending it later is
	// its first transmission, not a retransmission.
	left bool
}

type replyMsg struct {
	data []byte
	err  error
}

// Free lists are bounded in entries (what can be outstanding) and in
// bytes: poolBudget per session and direction. That is of the order of
// what the window itself may hold (Window x MaxMessage), so recycling
// never more than doubles a session's memory.
const (
	maxPooledCap = 64 << 10
	poolBudget   = 8 << 20
)

// newMsgLocked returns a msgBuf holding a copy of p. s.mu is held.
func (s *Session) newMsgLocked(p []byte, typ wire.Type) *msgBuf {
	var m *msgBuf
	if n := len(s.free); n > 0 {
		m = s.free[n-1]
		s.free[n-1] = nil
		s.free = s.free[:n-1]
		s.freeBytes -= cap(m.b)
	} else {
		m = new(msgBuf)
	}
	m.b = append(m.b[:0], p...)
	m.typ = typ
	return m
}

// recycle collects a msgBuf the owner no longer needs; freeBatch returns
// the collected ones to the free list under one lock.
func (s *Session) recycle(m *msgBuf) {
	*m = msgBuf{b: m.b[:0]}
	if cap(m.b) <= maxPooledCap {
		s.freeing = append(s.freeing, m)
	}
}

func (s *Session) freeBatch() {
	if len(s.freeing) == 0 {
		return
	}
	s.mu.Lock()
	room := s.sendCap + s.ep.cfg.Window - len(s.free)
	for _, m := range s.freeing {
		if room == 0 || s.freeBytes+cap(m.b) > poolBudget {
			break
		}
		s.free = append(s.free, m)
		s.freeBytes += cap(m.b)
		room--
	}
	s.mu.Unlock()
	clear(s.freeing)
	s.freeing = s.freeing[:0]
}
