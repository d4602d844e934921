package memnet

import "math/bits"

// bufPool is a free list of datagram buffers by power-of-two size class,
// so that a steady stream of datagrams allocates nothing after warm-up. It
// is guarded by the Network's mutex; sync.Pool would box every slice.
type bufPool struct {
	classes [maxPoolClass + 1][][]byte
}

const (
	minPoolClass = 6  // 64 bytes
	maxPoolClass = 20 // 1 MiB; larger buffers are left to the GC
	// poolClassBytes bounds what each class keeps, so that a burst of
	// large datagrams does not pin memory for the rest of a test run.
	poolClassBytes = 1 << 20
)

func poolClass(n int) int {
	if n <= 1<<minPoolClass {
		return minPoolClass
	}
	return bits.Len(uint(n - 1))
}

// get returns a buffer of length n.
func (p *bufPool) get(n int) []byte {
	c := poolClass(n)
	if c > maxPoolClass {
		return make([]byte, n)
	}
	l := p.classes[c]
	if k := len(l); k > 0 {
		b := l[k-1]
		l[k-1] = nil
		p.classes[c] = l[:k-1]
		return b[:n]
	}
	return make([]byte, n, 1<<c)
}

// put returns b, which must have come from get, to its class.
func (p *bufPool) put(b []byte) {
	c := poolClass(cap(b))
	if c > maxPoolClass || cap(b) != 1<<c {
		return
	}
	if (len(p.classes[c])+1)<<c > poolClassBytes && len(p.classes[c]) >= 8 {
		return
	}
	p.classes[c] = append(p.classes[c], b[:0])
}
