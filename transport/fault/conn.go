package fault

import (
	"bytes"
	"container/heap"
	"errors"
	"math/rand/v2"
	"sync"
	"syscall"
	"time"

	"github.com/cnlink/cnlink/transport"
)

// Stream constants for the two PCG generators: the same seed gives each
// direction its own sequence, so send-side draws do not shift receive-side
// ones.
const (
	sendStream = 0x73656e64 // "send"
	recvStream = 0x72656376 // "recv"
)

// pumpBufMin is the smallest buffer the receive pump reads into: large
// enough for any datagram a default socket can send (sndbuf - 32), so that
// a datagram is truncated only against the caller's buffer.
const pumpBufMin = 256 << 10

type direction int

const (
	sendDir direction = iota
	recvDir
)

// Conn wraps a Transport and injects the faults of its Config. It
// implements transport.Transport.
//
// Sends are decided on the caller's goroutine and passed on at once or by
// a timer. Receives go through one pump goroutine, started by the first
// Receive, which reads the wrapped transport only while a Receive is
// waiting with nothing ready, so that a receiver that stops reading lets
// the wrapped queue fill and overflow as it would without the wrapper.
// Delayed and reordered datagrams wait in one heap served by a single
// timer, which releases datagrams due at the same instant in the order
// they were scheduled: with a fixed seed and call sequence, and fake time
// (testing/synctest), runs are identical.
//
// mu guards everything below it; the wrapped transport is never called
// with mu held.
type Conn struct {
	inner transport.Transport
	seed  uint64

	done     chan struct{} // closed by Close
	readyCh  chan struct{} // capacity 1: something was made ready
	demand   chan struct{} // capacity 1: a Receive is waiting
	pumpDone chan struct{}
	fires    sync.WaitGroup // timer callbacks in progress

	mu       sync.Mutex
	cfg      Config
	rng      [2]*rand.Rand
	busyLeft int // sends left in the current EAGAIN burst
	dropLeft int // datagrams left in the current overrun burst
	stats    Stats
	seq      uint64 // orders every datagram copy, for reordering and ties
	pending  pendHeap
	held     [2][]*pend // reordered datagrams waiting to be overtaken, by seq
	timer    *time.Timer
	timerAt  time.Time // when timer fires; zero when not armed
	firing   bool
	closed   bool
	pumping  bool
	ready    []rxItem
	head     int // first unread item of ready
	waiters  int // Receive calls waiting with nothing ready
	maxBuf   int
	recvErr  error // terminal error of the wrapped Receive
	pool     bufPool
}

var _ transport.Transport = (*Conn)(nil)

// pend is a datagram waiting for its time.
type pend struct {
	at   time.Time
	seq  uint64
	dir  direction
	held bool // reordered: released early when a later datagram passes
	done bool // handed on already; skip when popped
	data []byte
	dst  transport.Addr   // send side
	pkt  transport.Packet // receive side, without Data
}

// rxItem is one Receive result waiting for a caller.
type rxItem struct {
	data []byte // owned, from pool
	pkt  transport.Packet
	err  error
}

// outItem is one datagram to pass to the wrapped Send, outside mu.
type outItem struct {
	dst    transport.Addr
	data   []byte
	direct bool // the caller's own datagram: its error is the caller's
}

// Wrap returns t with the faults of cfg. The Conn owns t: Close closes it.
// Wrap panics on an invalid Config (a probability outside [0, 1], a
// negative duration or length, a burst on the wrong side): a
// misconfigured fault test should not run.
func Wrap(t transport.Transport, cfg Config) *Conn {
	if err := cfg.validate(); err != nil {
		panic(err)
	}
	return &Conn{
		inner:    t,
		seed:     cfg.Seed,
		cfg:      cfg,
		rng:      [2]*rand.Rand{rand.New(rand.NewPCG(cfg.Seed, sendStream)), rand.New(rand.NewPCG(cfg.Seed, recvStream))},
		stats:    Stats{Seed: cfg.Seed},
		done:     make(chan struct{}),
		readyCh:  make(chan struct{}, 1),
		demand:   make(chan struct{}, 1),
		pumpDone: make(chan struct{}),
	}
}

// Seed returns the seed the Conn was created with.
func (c *Conn) Seed() uint64 { return c.seed }

// Unwrap returns the wrapped transport.
func (c *Conn) Unwrap() transport.Transport { return c.inner }

// SetConfig changes the faults from now on, e.g. turns loss off so that a
// session can finish. cfg.Seed is ignored: the random streams go on.
// Bursts in progress end. Datagrams already delayed keep their time. It
// panics on an invalid Config, as Wrap does.
func (c *Conn) SetConfig(cfg Config) {
	if err := cfg.validate(); err != nil {
		panic(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg.Seed = c.seed
	c.cfg = cfg
	c.busyLeft, c.dropLeft = 0, 0
}

// Stats returns a snapshot of the counters.
func (c *Conn) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

func (c *Conn) dirStats(d direction) *DirStats {
	if d == sendDir {
		return &c.stats.Send
	}
	return &c.stats.Recv
}

// LocalPort is the wrapped transport's port.
func (c *Conn) LocalPort() uint32 { return c.inner.LocalPort() }

// JoinGroup passes through to the wrapped transport.
func (c *Conn) JoinGroup(group uint32) error { return c.inner.JoinGroup(group) }

// LeaveGroup passes through to the wrapped transport.
func (c *Conn) LeaveGroup(group uint32) error { return c.inner.LeaveGroup(group) }

// timing draws a datagram's delay and whether it is held back for
// reordering.
func timing(d *Direction, r *rand.Rand) (delay time.Duration, hold bool) {
	delay = d.Delay
	if d.Jitter > 0 {
		delay += time.Duration(r.Int64N(int64(d.Jitter)))
	}
	return delay, d.Reorder > 0 && r.Float64() < d.Reorder
}

// corrupt flips one random bit of b and, with falling probability, garbles
// a few other bytes; it never undoes its own change. It reports whether b
// changed (an empty datagram cannot).
func corrupt(b []byte, r *rand.Rand) bool {
	if len(b) == 0 {
		return false
	}
	bit := r.IntN(len(b) * 8)
	b[bit/8] ^= 1 << (bit % 8)
	for r.IntN(4) == 0 {
		if i := r.IntN(len(b)); i != bit/8 {
			b[i] ^= byte(1 + r.IntN(255))
		}
	}
	return true
}

// Send applies the send-side faults to one datagram: an EAGAIN burst
// refuses it with ErrPeerBusy, a loss swallows it (nil, as on a real
// wire), corruption sends a damaged copy (b itself is never modified),
// duplication sends two copies, delay and reordering send it later from a
// timer. What the wrapped Send returns for a datagram sent at once is
// returned; for a later one it is only counted (Stats.Send.Failed).
func (c *Conn) Send(dst transport.Addr, b []byte) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return &transport.OpError{Op: "send", Addr: dst, Kind: transport.ErrClosed}
	}
	d, r, st := &c.cfg.Send, c.rng[sendDir], &c.stats.Send
	if c.busyLeft > 0 || (d.EAGAINBurst.P > 0 && r.Float64() < d.EAGAINBurst.P) {
		if c.busyLeft > 0 {
			c.busyLeft--
		} else {
			c.busyLeft = max(d.EAGAINBurst.Len, 1) - 1
		}
		st.EAGAIN++
		c.mu.Unlock()
		return &transport.OpError{Op: "send", Addr: dst, Kind: transport.ErrPeerBusy, Err: syscall.EAGAIN}
	}
	if d.Loss > 0 && r.Float64() < d.Loss {
		st.Lost++
		c.mu.Unlock()
		return nil
	}
	data, owned := b, false
	if d.Corrupt > 0 && r.Float64() < d.Corrupt {
		data, owned = bytes.Clone(b), true
		if corrupt(data, r) {
			st.Corrupted++
		}
	}
	copies := 1
	if d.Duplicate > 0 && r.Float64() < d.Duplicate {
		copies = 2
		st.Duplicated++
	}
	var buf [3]outItem
	out := buf[:0]
	for k := range copies {
		c.seq++
		delay, hold := timing(d, r)
		if delay == 0 && !hold {
			out = c.deliver(sendDir, c.seq, data, dst, transport.Packet{}, k == 0, out)
			continue
		}
		if !owned {
			// The caller may reuse b as soon as Send returns.
			data, owned = bytes.Clone(b), true
		}
		c.schedule(&pend{seq: c.seq, dir: sendDir, data: data, dst: dst}, delay, hold, d)
	}
	c.mu.Unlock()
	return c.sendAll(out)
}

// sendAll passes datagrams to the wrapped Send in order and returns the
// error of the caller's own datagram, if any. Called without mu.
func (c *Conn) sendAll(out []outItem) error {
	if len(out) == 0 {
		return nil
	}
	var err error
	var passed, failed uint64
	for _, o := range out {
		if e := c.inner.Send(o.dst, o.data); e != nil {
			failed++
			if o.direct {
				err = e
			}
		} else {
			passed++
		}
	}
	c.mu.Lock()
	c.stats.Send.Passed += passed
	c.stats.Send.Failed += failed
	c.mu.Unlock()
	return err
}

// deliver hands a datagram on now (send side: appends it to out; receive
// side: makes it ready), then every held datagram of the same direction
// scheduled before it, which it has thereby overtaken. Called with mu held.
func (c *Conn) deliver(d direction, seq uint64, data []byte, dst transport.Addr, pkt transport.Packet, direct bool, out []outItem) []outItem {
	out = c.handOn(d, data, dst, pkt, direct, out)
	h := c.held[d]
	k := 0
	for _, p := range h {
		if p.seq < seq {
			p.done = true
			c.dirStats(d).Reordered++
			out = c.handOn(d, p.data, p.dst, p.pkt, false, out)
			continue
		}
		h[k] = p
		k++
	}
	clear(h[k:])
	c.held[d] = h[:k]
	return out
}

func (c *Conn) handOn(d direction, data []byte, dst transport.Addr, pkt transport.Packet, direct bool, out []outItem) []outItem {
	if d == sendDir {
		return append(out, outItem{dst: dst, data: data, direct: direct})
	}
	c.pushReady(rxItem{data: data, pkt: pkt})
	return out
}

// schedule queues p for later: after delay, or, when held for reordering,
// until a later datagram passes it (at most delay plus holdFor). Called
// with mu held.
func (c *Conn) schedule(p *pend, delay time.Duration, hold bool, d *Direction) {
	wait := delay
	if hold {
		wait += d.holdFor()
		p.held = true
		c.held[p.dir] = append(c.held[p.dir], p)
	}
	if delay > 0 {
		c.dirStats(p.dir).Delayed++
	}
	p.at = time.Now().Add(wait)
	heap.Push(&c.pending, p)
	c.arm()
}

// arm sets the timer for the earliest pending datagram. Called with mu
// held; a running callback re-arms when it is done.
func (c *Conn) arm() {
	if c.closed || c.firing || len(c.pending) == 0 {
		return
	}
	at := c.pending[0].at
	if !c.timerAt.IsZero() && !at.Before(c.timerAt) {
		return
	}
	c.timerAt = at
	if c.timer == nil {
		c.timer = time.AfterFunc(time.Until(at), c.fire)
	} else {
		c.timer.Reset(time.Until(at))
	}
}

// fire is the timer callback: it hands on every datagram that is due, in
// (time, seq) order.
func (c *Conn) fire() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.fires.Add(1)
	defer c.fires.Done()
	c.firing = true
	c.timerAt = time.Time{}
	now := time.Now()
	var out []outItem
	for len(c.pending) > 0 && !c.pending[0].at.After(now) {
		p := heap.Pop(&c.pending).(*pend)
		if p.done {
			continue
		}
		p.done = true
		if p.held {
			// Nothing overtook it in time: it was only delayed.
			c.unhold(p)
		}
		out = c.deliver(p.dir, p.seq, p.data, p.dst, p.pkt, false, out)
	}
	c.mu.Unlock()
	_ = c.sendAll(out)
	c.mu.Lock()
	c.firing = false
	c.arm()
	c.mu.Unlock()
}

func (c *Conn) unhold(p *pend) {
	h := c.held[p.dir]
	for i, q := range h {
		if q == p {
			copy(h[i:], h[i+1:])
			h[len(h)-1] = nil
			c.held[p.dir] = h[:len(h)-1]
			return
		}
	}
}

// pushReady makes an item available to Receive. Called with mu held.
func (c *Conn) pushReady(it rxItem) {
	if len(c.ready) == cap(c.ready) && c.head > 0 {
		n := copy(c.ready, c.ready[c.head:])
		clear(c.ready[n:])
		c.ready, c.head = c.ready[:n], 0
	}
	c.ready = append(c.ready, it)
	select {
	case c.readyCh <- struct{}{}:
	default:
	}
}

// Receive returns the next datagram after the receive-side faults, or an
// overrun report (the wrapped transport's own, or an injected one).
func (c *Conn) Receive(buf []byte) (transport.Packet, error) {
	c.mu.Lock()
	if !c.pumping && !c.closed {
		c.pumping = true
		go c.pump()
	}
	for {
		if c.closed {
			c.mu.Unlock()
			return transport.Packet{}, &transport.OpError{Op: "receive", Kind: transport.ErrClosed}
		}
		if c.head < len(c.ready) {
			it := c.ready[c.head]
			c.ready[c.head] = rxItem{}
			c.head++
			if c.head == len(c.ready) {
				c.ready, c.head = c.ready[:0], 0
			}
			more := c.head < len(c.ready)
			p, err := it.pkt, it.err
			if err == nil && !p.Overrun {
				k := copy(buf, it.data)
				p.Data = buf[:k:k]
				p.Truncated = p.Truncated || k < len(it.data)
				c.pool.put(it.data)
				c.stats.Recv.Passed++
			}
			c.mu.Unlock()
			if more {
				// Pass the turn on to another waiting Receive.
				select {
				case c.readyCh <- struct{}{}:
				default:
				}
			}
			return p, err
		}
		if c.recvErr != nil {
			err := c.recvErr
			c.mu.Unlock()
			return transport.Packet{}, err
		}
		c.waiters++
		c.maxBuf = max(c.maxBuf, len(buf))
		select {
		case c.demand <- struct{}{}:
		default:
		}
		c.mu.Unlock()
		select {
		case <-c.readyCh:
		case <-c.done:
		}
		c.mu.Lock()
		c.waiters--
	}
}

// pump reads the wrapped transport while some Receive is waiting with
// nothing ready, and applies the receive-side faults.
func (c *Conn) pump() {
	defer close(c.pumpDone)
	var buf []byte
	for {
		c.mu.Lock()
		for !c.closed && c.waiters <= len(c.ready)-c.head {
			c.mu.Unlock()
			select {
			case <-c.demand:
			case <-c.done:
			}
			c.mu.Lock()
		}
		if c.closed {
			c.mu.Unlock()
			return
		}
		if n := max(c.maxBuf, pumpBufMin); len(buf) < n {
			buf = make([]byte, n)
		}
		c.mu.Unlock()

		p, err := c.inner.Receive(buf)

		c.mu.Lock()
		switch {
		case c.closed:
			c.mu.Unlock()
			return
		case errors.Is(err, transport.ErrClosed):
			// Closed underneath us: every Receive gets this from now on.
			c.recvErr = err
			c.pushReady(rxItem{err: err})
			c.mu.Unlock()
			return
		case err != nil:
			c.pushReady(rxItem{err: err})
		default:
			c.onRecv(p)
		}
		c.mu.Unlock()
	}
}

// onRecv applies the receive-side faults to one datagram from the wrapped
// transport. Called with mu held.
func (c *Conn) onRecv(p transport.Packet) {
	if p.Overrun {
		c.pushReady(rxItem{pkt: transport.Packet{Overrun: true}})
		return
	}
	d, r, st := &c.cfg.Recv, c.rng[recvDir], &c.stats.Recv
	if c.dropLeft > 0 {
		c.dropLeft--
		st.DroppedInOverrun++
		return
	}
	if d.OverrunBurst.P > 0 && r.Float64() < d.OverrunBurst.P {
		st.Overruns++
		c.pushReady(rxItem{pkt: transport.Packet{Overrun: true}})
		if d.OverrunBurst.Len > 0 {
			c.dropLeft = d.OverrunBurst.Len - 1
			st.DroppedInOverrun++
			return
		}
	}
	if d.Loss > 0 && r.Float64() < d.Loss {
		st.Lost++
		return
	}
	meta := p
	meta.Data = nil
	data := c.pool.get(len(p.Data))
	copy(data, p.Data)
	if d.Corrupt > 0 && r.Float64() < d.Corrupt && corrupt(data, r) {
		st.Corrupted++
	}
	copies := 1
	if d.Duplicate > 0 && r.Float64() < d.Duplicate {
		copies = 2
		st.Duplicated++
	}
	for k := range copies {
		if k == 1 {
			// Each copy has its own bytes: the first may be handed back
			// to the pool before the second is read.
			dup := c.pool.get(len(data))
			copy(dup, data)
			data = dup
		}
		c.seq++
		delay, hold := timing(d, r)
		if delay == 0 && !hold {
			c.deliver(recvDir, c.seq, data, transport.Addr{}, meta, false, nil)
			continue
		}
		c.schedule(&pend{seq: c.seq, dir: recvDir, data: data, pkt: meta}, delay, hold, d)
	}
}

// Close stops the timer, discards what is delayed, closes the wrapped
// transport (which ends the pump) and waits for the pump and any running
// timer callback, so that nothing of the Conn outlives it. A pending
// Receive returns ErrClosed. Later calls return nil.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.pending, c.held = nil, [2][]*pend{}
	c.ready, c.head = nil, 0
	pumping := c.pumping
	c.mu.Unlock()
	close(c.done)
	err := c.inner.Close()
	c.fires.Wait()
	if pumping {
		<-c.pumpDone
	}
	return err
}

// pendHeap orders pending datagrams by time, then by scheduling order.
type pendHeap []*pend

func (h pendHeap) Len() int { return len(h) }
func (h pendHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h pendHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pendHeap) Push(x any)   { *h = append(*h, x.(*pend)) }
func (h *pendHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return p
}
