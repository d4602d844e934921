package reliable

import (
	"context"
	"math/bits"
	"sync"
	"unsafe"
)

// RecvBatch waits for at least one message and then fills dst with every
// message already waiting, up to len(dst), without waiting more. It
// returns the number of messages stored. It returns an error only when
// nothing was received: ctx's error, or the session's end (messages that
// arrived before the end are returned first).
func (s *Session) RecvBatch(ctx context.Context, dst [][]byte) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	for {
		if n := s.takeWaiting(dst); n > 0 {
			return n, nil
		}
		var ch chan []byte // nil (never ready) until Recv made it
		if s.chanMode.Load() {
			ch = s.recvCh
		}
		select {
		case dst[0] = <-ch:
			return 1 + s.takeWaiting(dst[1:]), nil
		case <-s.pump.avail:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-s.doneCh:
			// Deliveries are over; take what is left.
			if n := s.takeWaiting(dst); n > 0 {
				return n, nil
			}
			return 0, s.Err()
		}
	}
}

// takeWaiting fills dst with what is waiting, without blocking: the Recv
// channel's messages (if Recv made one), then the pump's queue (steal).
func (s *Session) takeWaiting(dst [][]byte) int {
	n := 0
	for n < len(dst) {
		if s.chanMode.Load() {
			select {
			case dst[n] = <-s.recvCh:
				n++
				continue
			default:
			}
		}
		k, chanFirst := s.steal(dst[n:])
		n += k
		if !chanFirst {
			break
		}
	}
	return n
}

// Recycle hands a message received from this session back for reuse: its
// memory will hold a later message. With every message recycled the
// receive path allocates nothing. The caller must not touch msg (or
// anything aliasing it) afterwards. Recycling is optional.
func (s *Session) Recycle(msg []byte) { recycleRecv(msg) }

// Receive buffers are shared by every session of the process, like
// msgBufs (pool.go): recvPools[k] holds buffers of capacity
// minPooledCap<<k, each as a pointer to its first byte (a pointer goes
// into a sync.Pool without an allocation, a slice does not). A buffer is
// filed under the largest class its capacity holds.
var recvPools [maxPooledShift - minPooledShift + 1]sync.Pool

func recycleRecv(msg []byte) {
	c := cap(msg)
	if c < minPooledCap || c > maxPooledCap {
		return
	}
	k := bits.Len(uint(c)) - 1 - minPooledShift
	recvPools[k].Put(unsafe.SliceData(msg[:1]))
}

// payloadCopy returns an application-owned copy of p (owner side).
func (s *Session) payloadCopy(p []byte) []byte {
	c := minPooledCap
	if len(p) > minPooledCap {
		c = 1 << bits.Len(uint(len(p)-1))
	}
	if c > maxPooledCap {
		// The one allocation per message on the receive path when the
		// application does not recycle: the copy it will own.
		b := make([]byte, len(p))
		copy(b, p)
		return b
	}
	k := bits.Len(uint(c)) - 1 - minPooledShift
	if v, ok := recvPools[k].Get().(*byte); ok {
		return append(unsafe.Slice(v, c)[:0], p...)
	}
	b := make([]byte, len(p), c)
	copy(b, p)
	return b
}
