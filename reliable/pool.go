package reliable

import (
	"math/bits"
	"sync"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
)

// msgBuf is one queued or in-flight outgoing message. It owns a copy of
// the caller's bytes (Send never keeps the caller's slice). msgBufs are
// recycled through process-wide pools by size class (msgPools), so the
// send path does not allocate in steady state.
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

// msgBufs are recycled through msgPools, shared by every session of the
// process and sized by class (powers of two from minPooledCap to
// maxPooledCap): a message needs a buffer only while it is queued or in
// flight, so what the pools hold follows the traffic of the whole process
// and not the sum of every session's busiest moment, a session that goes
// idle keeps no buffers, and what nobody reuses is left to the garbage
// collector (sync.Pool empties over two collections). Per-session free
// lists kept what each session once had outstanding: with 1,000 sessions
// each pool warmed up with ~1,700 buffers, so nearly every message of a
// run allocated (and the GC scanned ~0.5 GB of idle buffers afterwards).
const (
	minPooledShift = 6
	maxPooledShift = 16
	minPooledCap   = 1 << minPooledShift
	maxPooledCap   = 1 << maxPooledShift
)

var msgPools [maxPooledShift - minPooledShift + 1]sync.Pool

// msgClass returns the pool of buffers of capacity c, or -1.
func msgClass(c int) int {
	if c < minPooledCap || c > maxPooledCap || c&(c-1) != 0 {
		return -1
	}
	return bits.Len(uint(c)) - 1 - minPooledShift
}

// newMsgLocked returns a msgBuf holding a copy of p. s.mu is held.
func (s *Session) newMsgLocked(p []byte, typ wire.Type) *msgBuf {
	c := minPooledCap
	if len(p) > minPooledCap {
		c = 1 << bits.Len(uint(len(p)-1))
	}
	var m *msgBuf
	if k := msgClass(c); k >= 0 {
		if v, ok := msgPools[k].Get().(*msgBuf); ok {
			m = v
		} else {
			m = &msgBuf{b: make([]byte, 0, c)}
		}
	} else {
		m = new(msgBuf)
	}
	m.b = append(m.b[:0], p...)
	m.typ = typ
	return m
}

// recycle returns a msgBuf the owner no longer needs to its pool.
func (s *Session) recycle(m *msgBuf) {
	*m = msgBuf{b: m.b[:0]}
	if k := msgClass(cap(m.b)); k >= 0 {
		msgPools[k].Put(m)
	}
}
