package multicast

import (
	"sync"

	"github.com/cnlink/cnlink/transport"
)

// rxBuf is one received datagram on its way from the rxReader goroutine to
// the owner, which hands the buffer back through the pool once it has
// copied what it keeps.
type rxBuf struct {
	b []byte
	p transport.Packet
}

// rxReader moves datagrams from the transport to the owner goroutine: the
// only place a Publisher or Subscriber blocks in Receive. It ends when the
// transport is closed (or fails), closing out after reporting the error on
// errc.
type rxReader struct {
	tr   transport.Transport
	out  chan *rxBuf
	pool sync.Pool
	size int
	err  error // set before out is closed
}

func newRxReader(tr transport.Transport, size, depth int) *rxReader {
	r := &rxReader{tr: tr, out: make(chan *rxBuf, depth), size: size}
	r.pool.New = func() any { return &rxBuf{b: make([]byte, size)} }
	return r
}

func (r *rxReader) run() {
	defer close(r.out)
	for {
		rb := r.pool.Get().(*rxBuf)
		p, err := r.tr.Receive(rb.b)
		if err != nil {
			r.pool.Put(rb)
			// Closed under us (by whoever else holds the transport), or
			// failed: either ends the owner, which says which.
			r.err = err
			return
		}
		rb.p = p
		r.out <- rb
	}
}

func (r *rxReader) put(rb *rxBuf) {
	rb.p = transport.Packet{}
	r.pool.Put(rb)
}
