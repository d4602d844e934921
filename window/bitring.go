package window

import "math/bits"

// bitRing is a circular bitmap indexed by sequence number modulo its size (a
// power of two, at least 64). Sender and Receiver use it to find runs of set
// or clear bits 64 at a time, which keeps SACK processing, SACK generation
// and the search for the lowest lost record cheap even when a window holds
// thousands of records. It starts at one word and grows (resize) as the ring
// of values beside it does.
//
// Because the size divides 2^32, seq & mask stays continuous when the
// sequence number wraps around 2^32.
type bitRing struct {
	w    []uint64
	mask uint32
}

func newBitRing(size int) bitRing {
	return bitRing{w: make([]uint64, size/64), mask: uint32(size - 1)}
}

func (b *bitRing) get(s Seq) bool {
	i := uint32(s) & b.mask
	return b.w[i>>6]&(1<<(i&63)) != 0
}

func (b *bitRing) set(s Seq) {
	i := uint32(s) & b.mask
	b.w[i>>6] |= 1 << (i & 63)
}

func (b *bitRing) clear(s Seq) {
	i := uint32(s) & b.mask
	b.w[i>>6] &^= 1 << (i & 63)
}

func (b *bitRing) reset() { clear(b.w) }

// size returns the number of bits in the ring.
func (b *bitRing) size() int { return len(b.w) * 64 }

// resize replaces b with a ring of size bits (a power of two, at least 64)
// that holds the bits of the n numbers from s up, which must all lie within
// one turn of the current ring (n <= b.size()). The other bits are clear.
// Bits are re-placed one by one, by sequence number: their index changes with
// the mask, and a run that wrapped around the end of the old ring does not
// wrap, or wraps elsewhere, in the new one.
func (b *bitRing) resize(size int, s Seq, n int) {
	nb := newBitRing(size)
	for k := 0; k < n; k++ {
		k += b.runUp(s.Add(k), n-k, false) // skip the clear bits
		if k >= n {
			break
		}
		nb.set(s.Add(k))
	}
	*b = nb
}

// runUp returns how many consecutive bits, starting at s and going up
// (s, s+1, ...), equal val; it looks at no more than n bits.
func (b *bitRing) runUp(s Seq, n int, val bool) int {
	k := 0
	for k < n {
		i := (uint32(s) + uint32(k)) & b.mask
		w := b.w[i>>6]
		if !val {
			w = ^w
		}
		sh := i & 63
		w >>= sh // the bits shifted in at the top are zero: the run stops there
		avail := 64 - int(sh)
		run := bits.TrailingZeros64(^w) // <= avail, thanks to those zeros
		k += run
		if run < avail {
			break
		}
	}
	return min(k, n)
}

// runDown returns how many consecutive bits, starting at s and going down
// (s, s-1, ...), equal val; it looks at no more than n bits.
func (b *bitRing) runDown(s Seq, n int, val bool) int {
	k := 0
	for k < n {
		i := (uint32(s) - uint32(k)) & b.mask
		w := b.w[i>>6]
		if !val {
			w = ^w
		}
		sh := i & 63
		w <<= 63 - sh // bit i at the top; the bits shifted in at the bottom are zero
		avail := int(sh) + 1
		run := bits.LeadingZeros64(^w) // <= avail, thanks to those zeros
		k += run
		if run < avail {
			break
		}
	}
	return min(k, n)
}

// ringSize returns the smallest power of two that is at least n and at
// least 64 (one bitmap word).
func ringSize(n int) int { return max(pow2(n), 64) }

// pow2 returns the smallest power of two that is at least n (1 for n <= 1).
func pow2(n int) int {
	size := 1
	for size < n {
		size <<= 1
	}
	return size
}

// minRing is the size a ring of values starts at (or the window rounded up to
// a power of two, if that is smaller). Rings double as they fill, up to what
// the window needs; an idle or unused window costs a few hundred bytes.
const minRing = 16
