package memnet

import (
	"syscall"

	"github.com/cnlink/cnlink/transport"
)

// Conn is one socket on a Network. It implements transport.Transport.
//
// Its queue and flags are guarded by the Network's mutex. Receive waits on
// notify (capacity 1, coalescing wake-ups) and done (closed by Close) in a
// select, so that a blocked Receive is durably blocked inside a
// testing/synctest bubble and fake time can advance past it. A Conn starts
// no goroutine.
type Conn struct {
	net   *Network
	port  uint32
	creds transport.Creds // stamped on what this Conn sends

	notify chan struct{}
	done   chan struct{}

	// Guarded by net.mu.
	q         ring
	rmem      int // sk_rmem_alloc: truesize of what is queued
	rcvbuf    int // sk_rcvbuf
	sndbuf    int // sk_sndbuf
	congested bool
	reportDue bool // an overrun awaits its report (sk_err = ENOBUFS)
	closed    bool
	connected bool
	peer      uint32
	groups    uint32 // bit g-1 set for each joined group g
	stats     Stats
	errCache  [2]*transport.OpError
}

var _ transport.Transport = (*Conn)(nil)

// Stats are a Conn's counters. The first eight mirror the netlink
// adapter's transport.ConnStats; the rest show the queue as the kernel
// would (SO_MEMINFO, sk_drops).
type Stats struct {
	// DatagramsSent and BytesSent count datagrams Send accepted.
	DatagramsSent, BytesSent uint64
	// DatagramsReceived and BytesReceived count datagrams Receive
	// returned (bytes as copied into the caller's buffer).
	DatagramsReceived, BytesReceived uint64
	// Overruns counts overrun reports Receive returned.
	Overruns uint64
	// PeerBusy and PeerGone count sends refused with ErrPeerBusy and
	// ErrPeerGone.
	PeerBusy, PeerGone uint64
	// Truncated counts datagrams larger than the buffer given to Receive.
	Truncated uint64

	// Drops counts datagrams the network dropped for this Conn because
	// its queue was full or congested (the kernel's sk_drops).
	Drops uint64
	// Queued and QueuedBytes are the datagrams waiting now and the
	// truesize charged for them (sk_rmem_alloc).
	Queued, QueuedBytes int
	// ReadBuffer is the current queue budget (sk_rcvbuf).
	ReadBuffer int
	// Congested reports that multicasts to this Conn are being dropped
	// until its queue has been drained empty (NETLINK_S_CONGESTED).
	Congested bool
}

// entry is one queued datagram. data comes from the Network's bufPool.
type entry struct {
	data     []byte
	truesize int
	from     uint32
	group    uint32
	creds    transport.Creds
}

// ring is a FIFO of entries that reuses its backing array.
type ring struct {
	buf        []entry
	head, size int
}

func (r *ring) push(e entry) {
	if r.size == len(r.buf) {
		nb := make([]entry, max(16, 2*len(r.buf)))
		for i := range r.size {
			nb[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.size)%len(r.buf)] = e
	r.size++
}

func (r *ring) pop() entry {
	e := r.buf[r.head]
	r.buf[r.head] = entry{}
	r.head = (r.head + 1) % len(r.buf)
	r.size--
	return e
}

// LocalPort returns the port the Conn is bound to.
func (c *Conn) LocalPort() uint32 { return c.port }

// Send delivers b to dst without ever blocking: to every member of
// dst.Group except c itself and dst.Port, then to dst.Port (0 being the
// kernel). A member whose queue cannot take the datagram loses it and is
// marked congested; a unicast that does not fit fails with ErrPeerBusy
// and queues nothing. A port nobody holds, or held by a Conn connected to
// another peer, is ErrPeerGone; the multicast part has been delivered by
// then, as on the kernel. Send does not keep b.
func (c *Conn) Send(dst transport.Addr, b []byte) error {
	n := c.net
	n.mu.Lock()
	if c.closed {
		n.mu.Unlock()
		return &transport.OpError{Op: "send", Addr: dst, Kind: transport.ErrClosed}
	}
	err := n.send(c, c.port, c.creds, c.sndbuf, dst, b)
	if err == nil {
		c.stats.DatagramsSent++
		c.stats.BytesSent += uint64(len(b))
	}
	n.mu.Unlock()
	if err == nil && dst.Port == 0 && n.cfg.Kernel != nil {
		n.cfg.Kernel(c.port, b)
	}
	return err
}

// cachedErr returns an immutable send error, reusing the last one of the
// same kind for the same destination, so that polling a busy peer does not
// allocate. Called with net.mu held.
func (c *Conn) cachedErr(i int, dst transport.Addr, kind error, errno syscall.Errno) error {
	if e := c.errCache[i]; e != nil && e.Addr == dst {
		return e
	}
	e := &transport.OpError{Op: "send", Addr: dst, Kind: kind, Err: errno}
	c.errCache[i] = e
	return e
}

// admits reports whether a datagram of truesize ts may be queued: the
// kernel accepts it when the queue is empty or the charge stays within
// sk_rcvbuf, and never while the socket is congested. Called with net.mu
// held.
func (c *Conn) admits(ts int) bool {
	return !c.congested && (c.q.size == 0 || c.rmem+ts <= c.rcvbuf)
}

// enqueue queues a copy of b. Called with net.mu held.
func (c *Conn) enqueue(b []byte, ts int, from, group uint32, creds transport.Creds) {
	d := c.net.pool.get(len(b))
	copy(d, b)
	c.q.push(entry{data: d, truesize: ts, from: from, group: group, creds: creds})
	c.rmem += ts
	c.wake()
}

// overrun drops a datagram for c the way netlink_overrun does: the first
// drop marks the socket congested and arms one report; drops while
// congested are only counted. Called with net.mu held.
func (c *Conn) overrun() {
	c.stats.Drops++
	if !c.congested {
		c.congested = true
		c.reportDue = true
		c.wake()
	}
}

func (c *Conn) wake() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// Receive returns the next datagram, copied into buf, or an overrun
// report. A pending overrun is reported before any queued datagram, once,
// as the kernel's sock_error does. Congestion clears when a Receive leaves
// the queue empty; until then every multicast to c is dropped. Receive
// blocks until something arrives or Close is called (ErrClosed).
func (c *Conn) Receive(buf []byte) (transport.Packet, error) {
	n := c.net
	for {
		n.mu.Lock()
		if c.closed {
			n.mu.Unlock()
			return transport.Packet{}, &transport.OpError{Op: "receive", Kind: transport.ErrClosed}
		}
		if c.reportDue || c.q.size > 0 {
			p := c.dequeue(buf)
			// netlink_rcv_wake, run by every recvmsg.
			if c.q.size == 0 {
				c.congested = false
			}
			more := c.q.size > 0 || c.reportDue
			n.mu.Unlock()
			if more {
				// Pass the turn on to another waiting Receive.
				c.wake()
			}
			return p, nil
		}
		n.mu.Unlock()
		select {
		case <-c.notify:
		case <-c.done:
		}
	}
}

// dequeue takes the overrun report or the first datagram. Called with
// net.mu held.
func (c *Conn) dequeue(buf []byte) transport.Packet {
	if c.reportDue {
		c.reportDue = false
		c.stats.Overruns++
		return transport.Packet{Overrun: true}
	}
	e := c.q.pop()
	c.rmem -= e.truesize
	k := copy(buf, e.data)
	p := transport.Packet{
		From:      e.from,
		Group:     e.group,
		Creds:     e.creds,
		Data:      buf[:k:k],
		Truncated: k < len(e.data),
	}
	if p.Truncated {
		c.stats.Truncated++
	}
	c.stats.DatagramsReceived++
	c.stats.BytesReceived += uint64(k)
	c.net.pool.put(e.data)
	return p
}

// JoinGroup joins multicast group (1..32). Joining twice is a no-op.
func (c *Conn) JoinGroup(group uint32) error { return c.membership("join", group) }

// LeaveGroup leaves multicast group (1..32). Leaving a group not joined is
// a no-op.
func (c *Conn) LeaveGroup(group uint32) error { return c.membership("leave", group) }

func (c *Conn) membership(op string, g uint32) error {
	addr := transport.Addr{Group: g}
	if g < 1 || g > maxGroup {
		return &transport.OpError{Op: op, Addr: addr, Err: syscall.EINVAL}
	}
	n := c.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if c.closed {
		return &transport.OpError{Op: op, Addr: addr, Kind: transport.ErrClosed}
	}
	if op == "join" {
		n.join(c, g)
	} else {
		n.leave(c, g)
	}
	return nil
}

// SetReadBuffer sets the queue budget as SO_RCVBUFFORCE does: to twice
// bytes (the kernel doubles the value to cover its bookkeeping), at least
// MinReadBuffer. Datagrams already queued stay queued.
func (c *Conn) SetReadBuffer(bytes int) error {
	return c.setBuf("setsockopt SO_RCVBUF", &c.rcvbuf, bytes, MinReadBuffer)
}

// SetWriteBuffer sets sk_sndbuf likewise (at least MinWriteBuffer); it
// bounds the largest datagram Send accepts to the result minus 32.
func (c *Conn) SetWriteBuffer(bytes int) error {
	return c.setBuf("setsockopt SO_SNDBUF", &c.sndbuf, bytes, MinWriteBuffer)
}

func (c *Conn) setBuf(op string, p *int, bytes, floor int) error {
	n := c.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if c.closed {
		return &transport.OpError{Op: op, Kind: transport.ErrClosed}
	}
	*p = max(2*max(bytes, 0), floor)
	return nil
}

// ReadBuffer reports the queue budget as getsockopt(SO_RCVBUF) would.
func (c *Conn) ReadBuffer() (int, error) { return c.getBuf(&c.rcvbuf), nil }

// WriteBuffer reports sk_sndbuf as getsockopt(SO_SNDBUF) would.
func (c *Conn) WriteBuffer() (int, error) { return c.getBuf(&c.sndbuf), nil }

func (c *Conn) getBuf(p *int) int {
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	return *p
}

// Connect pins c to peer as connect() does: unicasts from any other port
// are refused (their sender gets ErrPeerGone). Multicasts are not
// filtered. Peer 0 pins c to the kernel.
func (c *Conn) Connect(peer uint32) error {
	n := c.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if c.closed {
		return &transport.OpError{Op: "connect", Addr: transport.Addr{Port: peer}, Kind: transport.ErrClosed}
	}
	c.connected, c.peer = true, peer
	return nil
}

// Stats returns a snapshot of c's counters and queue.
func (c *Conn) Stats() Stats {
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	s := c.stats
	s.Queued, s.QueuedBytes = c.q.size, c.rmem
	s.ReadBuffer = c.rcvbuf
	s.Congested = c.congested
	return s
}

// Close frees the port (it may be bound again at once), leaves every
// group, discards the queue and unblocks a pending Receive, which returns
// ErrClosed. Later calls return nil.
func (c *Conn) Close() error {
	n := c.net
	n.mu.Lock()
	if c.closed {
		n.mu.Unlock()
		return nil
	}
	c.closed = true
	if n.ports[c.port] == c {
		delete(n.ports, c.port)
	}
	for g := uint32(1); g <= maxGroup; g++ {
		n.leave(c, g)
	}
	for c.q.size > 0 {
		n.pool.put(c.q.pop().data)
	}
	c.rmem = 0
	c.reportDue = false
	n.mu.Unlock()
	close(c.done)
	return nil
}
