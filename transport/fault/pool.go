package fault

import "math/bits"

// bufPool recycles the copies of received datagrams by power-of-two size
// class. Guarded by Conn.mu.
type bufPool struct {
	classes [maxClass + 1][][]byte
}

const (
	minClass = 6  // 64 bytes
	maxClass = 20 // 1 MiB; larger copies are left to the GC
	// keepPerClass bounds each class so that one burst does not pin
	// memory for the life of the Conn.
	keepPerClass = 256
)

func class(n int) int {
	if n <= 1<<minClass {
		return minClass
	}
	return bits.Len(uint(n - 1))
}

func (p *bufPool) get(n int) []byte {
	c := class(n)
	if c > maxClass {
		return make([]byte, n)
	}
	if l := p.classes[c]; len(l) > 0 {
		b := l[len(l)-1]
		l[len(l)-1] = nil
		p.classes[c] = l[:len(l)-1]
		return b[:n]
	}
	return make([]byte, n, 1<<c)
}

func (p *bufPool) put(b []byte) {
	c := class(cap(b))
	if c > maxClass || cap(b) != 1<<c || len(p.classes[c]) >= keepPerClass {
		return
	}
	p.classes[c] = append(p.classes[c], b[:0])
}
