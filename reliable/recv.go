package reliable

import (
	"context"
	"sync"
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
func (s *Session) Recycle(msg []byte) {
	if cap(msg) == 0 || cap(msg) > maxPooledCap {
		return
	}
	r := &s.rpool
	r.mu.Lock()
	// Bounded by what can be outstanding: the window plus the channel.
	if len(r.free) < s.ep.cfg.Window+s.ep.cfg.RecvBuffer && r.freeBytes+cap(msg) <= poolBudget {
		r.free = append(r.free, msg[:0])
		r.freeBytes += cap(msg)
	}
	r.mu.Unlock()
}

// recvPool holds recycled receive buffers. The owner takes them in
// batches so that it locks once per datagram at most.
type recvPool struct {
	mu        sync.Mutex
	free      [][]byte
	freeBytes int
	cache     [][]byte // owner-only
}

// payloadCopy returns an application-owned copy of p (owner side).
func (s *Session) payloadCopy(p []byte) []byte {
	r := &s.rpool
	if len(r.cache) == 0 {
		r.mu.Lock()
		r.cache, r.free = r.free, r.cache[:0]
		r.freeBytes = 0
		r.mu.Unlock()
	}
	for len(r.cache) > 0 {
		b := r.cache[len(r.cache)-1]
		r.cache[len(r.cache)-1] = nil
		r.cache = r.cache[:len(r.cache)-1]
		if cap(b) >= len(p) {
			return append(b, p...)
		}
	}
	// The one allocation per message on the receive path when the
	// application does not recycle: the copy it will own.
	b := make([]byte, len(p))
	copy(b, p)
	return b
}
