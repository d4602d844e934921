package repair

import "github.com/cnlink/cnlink/window"

// History is a publisher's record of the messages it sent, oldest first,
// kept for repair: at most MaxMessages messages and MaxBytes bytes of
// payload (one message larger than MaxBytes is kept alone). Oldest is the
// oldest retained MSN, Next the MSN the next message gets; [Oldest, Next)
// is retained.
//
// Messages are evicted only from the bottom and only below a floor the
// caller gives (the slowest registered subscriber's position): a message
// someone still needs is never dropped, and Push refuses instead (flow
// control).
type History struct {
	maxMsgs  int
	maxBytes int

	ring  [][]byte // indexed by MSN & mask; grows by doubling up to maxMsgs
	mask  uint32
	first window.Seq // Oldest
	next  window.Seq
	isn   window.Seq // the first MSN ever
	bytes int
}

// NewHistory returns an empty History whose first message will be isn.
// maxMsgs and maxBytes must be at least 1.
func NewHistory(isn window.Seq, maxMsgs, maxBytes int) *History {
	if maxMsgs < 1 || maxBytes < 1 {
		panic("repair: NewHistory limits must be positive")
	}
	n := min(16, ceilPow2(maxMsgs))
	return &History{maxMsgs: maxMsgs, maxBytes: maxBytes, ring: make([][]byte, n), mask: uint32(n - 1), first: isn, next: isn, isn: isn}
}

func ceilPow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}

// Oldest returns the oldest retained MSN (equal to Next when empty).
func (h *History) Oldest() window.Seq { return h.first }

// Next returns the MSN the next pushed message gets.
func (h *History) Next() window.Seq { return h.next }

// Len returns the number of retained messages.
func (h *History) Len() int { return h.next.Sub(h.first) }

// Bytes returns the payload bytes retained.
func (h *History) Bytes() int { return h.bytes }

// Room reports whether a message of size bytes can be pushed once the
// messages before floor may be evicted. It evicts nothing.
func (h *History) Room(size int, floor window.Seq) bool {
	n, b := h.Len(), h.bytes
	s := h.first
	for (n+1 > h.maxMsgs || (b+size > h.maxBytes && n > 0)) && s.Less(floor) && s.Less(h.next) {
		b -= len(h.at(s))
		n--
		s++
	}
	return n+1 <= h.maxMsgs && (b+size <= h.maxBytes || n == 0)
}

// Push appends msg (kept, not copied) as MSN Next, first evicting from the
// bottom what the limits require, never at or above floor. It returns the
// MSN and the evicted payloads appended to evicted (so the caller can
// recycle them), or ok false, evicting nothing, when Room is false.
func (h *History) Push(msg []byte, floor window.Seq, evicted [][]byte) (msn window.Seq, _ [][]byte, ok bool) {
	if !h.Room(len(msg), floor) {
		return 0, evicted, false
	}
	for h.Len()+1 > h.maxMsgs || (h.bytes+len(msg) > h.maxBytes && h.Len() > 0) {
		evicted = append(evicted, h.evictOldest())
	}
	if h.Len() == len(h.ring) {
		h.grow()
	}
	msn = h.next
	h.ring[uint32(msn)&h.mask] = msg
	h.bytes += len(msg)
	h.next++
	return msn, evicted, true
}

func (h *History) evictOldest() []byte {
	i := uint32(h.first) & h.mask
	m := h.ring[i]
	h.ring[i] = nil
	h.bytes -= len(m)
	h.first++
	return m
}

func (h *History) at(s window.Seq) []byte { return h.ring[uint32(s)&h.mask] }

// Get returns the retained message msn.
func (h *History) Get(msn window.Seq) ([]byte, bool) {
	if msn.Less(h.first) || !msn.Less(h.next) {
		return nil, false
	}
	return h.at(msn), true
}

// Sent reports whether msn was ever pushed: it lies in [ISN, Next) while
// fewer than 2^31 messages were pushed, and before Next (serially) after.
func (h *History) Sent(msn window.Seq) bool {
	if !msn.Less(h.next) {
		return false
	}
	if h.next.Sub(h.isn) >= 0 && uint32(h.next-h.isn) < 1<<31 {
		return h.isn.LessEq(msn)
	}
	return true
}

func (h *History) grow() {
	n := min(2*len(h.ring), ceilPow2(h.maxMsgs))
	if n == len(h.ring) {
		n *= 2 // maxMsgs not a power of two: the ring is a power of two at least that big
	}
	nr := make([][]byte, n)
	m := uint32(n - 1)
	for s := h.first; s.Less(h.next); s++ {
		nr[uint32(s)&m] = h.at(s)
	}
	h.ring, h.mask = nr, m
}

// Drain calls release for every retained payload and empties the history.
func (h *History) Drain(release func([]byte)) {
	for h.first.Less(h.next) {
		release(h.evictOldest())
	}
}
