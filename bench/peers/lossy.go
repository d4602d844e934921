package peers

import (
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
)

// LossyConn is a net.PacketConn that drops a seeded random share of the
// datagrams written to it, reporting success as a packet lost on the wire
// would. It is how BenchmarkKCP injects loss, the same way the cnlink
// suite's fault injector drops datagrams on the send side.
//
// It deliberately exposes only the net.PacketConn methods: kcp-go would
// otherwise find the *net.UDPConn underneath and write with sendmmsg,
// bypassing WriteTo and so the drops.
type LossyConn struct {
	net.PacketConn
	p float64

	mu  sync.Mutex
	rng *rand.Rand

	written, dropped atomic.Uint64
}

// NewLossyConn wraps c, dropping each written datagram with probability p
// (0 <= p <= 1), decided by a PCG stream seeded with seed.
func NewLossyConn(c net.PacketConn, p float64, seed uint64) *LossyConn {
	return &LossyConn{PacketConn: c, p: p, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// WriteTo sends b to addr unless the datagram is chosen to be lost.
func (c *LossyConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.written.Add(1)
	c.mu.Lock()
	drop := c.rng.Float64() < c.p
	c.mu.Unlock()
	if drop {
		c.dropped.Add(1)
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, addr)
}

// Written and Dropped count the datagrams offered to WriteTo and the ones
// it dropped.
func (c *LossyConn) Written() uint64 { return c.written.Load() }

// Dropped counts the datagrams WriteTo dropped.
func (c *LossyConn) Dropped() uint64 { return c.dropped.Load() }
