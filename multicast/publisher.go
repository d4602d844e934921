package multicast

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/repair"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/window"
	"golang.org/x/time/rate"
)

// Publisher publishes one stream of messages on a connector group. It owns
// its transport, which it closes when it ends. Its methods are safe for
// concurrent use.
type Publisher struct {
	tr    transport.Transport
	cfg   PublisherConfig
	epoch uint32
	start time.Time
	rd    *rxReader

	mu      sync.Mutex
	queue   [][]byte
	space   chan struct{} // closed when the queue gets room; replaced
	closing bool          // Close called: no more Publish
	aborted bool
	err     error // why the publisher ended (nil while running)

	kick chan struct{}
	done chan struct{}

	stats                             pubCounters
	histOldest, histNext, histSlowest atomic.Uint32

	// Owner goroutine only.
	st          *repair.Publisher
	out         []byte
	uout        []byte
	taken       [][]byte
	takenOldest []window.Seq
	sent        []window.Seq
	gone        []uint32 // scratch: members whose port vanished
	nakBuf      []wire.Range
	ranges      []window.Range
	evicted     [][]byte
	limiter     *rate.Limiter
	hbWait      time.Duration
	hbAt        time.Duration
	creds       map[uint32]transport.Creds
	rej         rejects

	allowCache   map[uint32]allowVerdict
	evictedPorts map[uint32]evictedPort // remembered for 2 × SubscriberTimeout
	finLeft      int
	opened       bool // WaitSubscribers reached: messages may go
	finning      bool // closing: sending FIN until registered subscribers left
}

type pubCounters struct {
	published, bytes, datagrams, heartbeats                  atomic.Uint64
	naks, nakUnsent, nakTooOld, nakLimited, nakNoRoom        atomic.Uint64
	repairsUnicast, repairsMulticast, repairBusy, registered atomic.Uint64
	evicted, statuses, blocked                               atomic.Uint64
	subscribers                                              atomic.Int64
	evictedBy                                                [5]atomic.Uint64 // by EvictReason (0: unknown)
}

// PublisherStats are a Publisher's cumulative counters.
type PublisherStats struct {
	Published, Bytes uint64 // messages and payload bytes published
	Datagrams        uint64 // datagrams multicast (data, repairs, heartbeats)
	Heartbeats       uint64
	Naks             uint64            // NAK frames handled
	NaksUnsent       uint64            // NAKs rejected: they asked for MSNs never sent
	NaksTooOld       uint64            // NAKs (partly) below the history: answered with a heartbeat
	NaksRateLimited  uint64            // NAKs dropped by the rate limit
	NaksNoRoom       uint64            // NAKs dropped: too many subscriber ports
	RepairsUnicast   uint64            // messages repaired to one subscriber
	RepairsMulticast uint64            // messages repaired to the group
	RepairBusy       uint64            // unicast repairs refused with EAGAIN (retried)
	Registered       uint64            // registrations
	Evicted          uint64            // subscribers dropped (timeout, laggard, refused)
	EvictedTimeout   uint64            // ... of which timed out
	EvictedLaggard   uint64            // ... of which laggards
	EvictedRefused   uint64            // ... of which refused registration
	Rejected         uint64            // datagrams and frames dropped, all reasons
	RejectedBy       map[string]uint64 // by reason (PROTOCOL.md §16.8.1's counter keys)
	Statuses         uint64            // STATUS frames handled
	Blocked          uint64            // times Publish had to wait for flow control
	Subscribers      int               // registered now
	Oldest, Next     uint32            // the history: [Oldest, Next)
	Slowest          uint32            // the lowest registered position (Next when none)
}

// NewPublisher starts a publisher on tr, which it owns from now on. It
// fails with ErrPermission without CAP_NET_ADMIN (it sends a first
// heartbeat to find out).
func NewPublisher(tr transport.Transport, cfg PublisherConfig) (*Publisher, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		_ = tr.Close() // it is ours whatever happens
		return nil, err
	}
	p := &Publisher{
		tr:    tr,
		cfg:   c,
		epoch: nonZeroRandom(),
		start: time.Now(),
		space: make(chan struct{}),
		kick:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		st: repair.NewPublisher(window.Seq(nonZeroRandom()), repair.PublisherConfig{
			History: c.History, HistoryBytes: c.HistoryBytes, MaxSubscribers: c.MaxSubscribers,
			SubscriberTimeout: c.SubscriberTimeout, LaggardTimeout: c.LaggardTimeout,
			RepairHoldoff: c.RepairHoldoff, MulticastMin: 2,
		}),
		limiter: rate.NewLimiter(rate.Limit(c.NakRate), c.NakBurst),
		hbWait:  c.HeartbeatMin,
		creds:   make(map[uint32]transport.Creds),

		allowCache:   make(map[uint32]allowVerdict),
		evictedPorts: make(map[uint32]evictedPort),
	}
	if c.UnicastRepairs {
		// MulticastMin above any possible count: nothing is multicast.
		p.st = repair.NewPublisher(p.st.History().Next(), withMulticastMin(p.st.Config(), c.MaxSubscribers+1))
	}
	p.out = make([]byte, 0, c.MaxDatagram)
	// The first heartbeat tells subscribers the stream exists and tells us
	// whether we may send to the group at all.
	if err := p.sendHeartbeat(0, 0); err != nil {
		_ = tr.Close()
		return nil, err
	}
	p.rd = newRxReader(tr, 4096, 64)
	_, _ = registerPublisherMetrics(c.MeterProvider, p) // unregisters itself when p ends
	go p.rd.run()
	go p.run()
	return p, nil
}

func withMulticastMin(c repair.PublisherConfig, n int) repair.PublisherConfig {
	c.MulticastMin = n
	return c
}

func nonZeroRandom() uint32 {
	var b [4]byte
	for {
		_, _ = rand.Read(b[:])
		if v := binary.NativeEndian.Uint32(b[:]); v != 0 {
			return v
		}
	}
}

// Port returns the publisher's netlink port: subscribers pin it.
func (p *Publisher) Port() uint32 { return p.tr.LocalPort() }

// Epoch returns the stream's epoch (new at every start).
func (p *Publisher) Epoch() uint32 { return p.epoch }

// MaxMessage returns the largest message Publish accepts.
func (p *Publisher) MaxMessage() int { return p.cfg.MaxMessage }

// Publish queues msg (copied) for the stream. It blocks while the queue is
// full, which flow control causes when a registered subscriber falls a
// History behind; it returns when ctx ends (the message is then not
// published), or with ErrClosed once Close or Abort was called.
func (p *Publisher) Publish(ctx context.Context, msg []byte) error {
	if len(msg) > p.cfg.MaxMessage {
		return fmt.Errorf("%w: %d bytes, MaxMessage %d", ErrMessageTooLarge, len(msg), p.cfg.MaxMessage)
	}
	m := make([]byte, len(msg))
	copy(m, msg)
	waited := false
	for {
		p.mu.Lock()
		if p.closing || p.err != nil {
			err := p.endErr()
			p.mu.Unlock()
			return err
		}
		if len(p.queue) < p.cfg.QueueLen {
			p.queue = append(p.queue, m)
			p.mu.Unlock()
			select {
			case p.kick <- struct{}{}:
			default:
			}
			return nil
		}
		sp := p.space
		p.mu.Unlock()
		if !waited {
			waited = true
			p.stats.blocked.Add(1)
		}
		select {
		case <-sp:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
		}
	}
}

// endErr is what Publish returns after the end. Called with mu held.
func (p *Publisher) endErr() error {
	if p.err != nil && !errors.Is(p.err, ErrClosed) {
		return p.err
	}
	return ErrClosed
}

// Close publishes what is queued, waits until every registered subscriber
// has every message (or has been dropped: a laggard, or silent), then
// tells the group the stream ended (a HEARTBEAT with FIN, until the
// registered subscribers confirm) and releases the transport. It returns
// nil when the stream ended so: every subscriber still registered then had
// every message. It returns ctx's error when ctx ended first (the
// publisher is then aborted), and an error matching ErrClosed after Abort.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	already := p.closing
	p.closing = true
	p.mu.Unlock()
	if !already {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		p.Abort()
		<-p.done
		return ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err // nil only when the stream ended cleanly (FIN)
}

// Abort ends the publisher at once: registered subscribers get EVICT
// (publisher aborted); queued messages are not published.
func (p *Publisher) Abort() {
	p.mu.Lock()
	p.closing, p.aborted = true, true
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
	<-p.done
}

// Done is closed when the publisher has ended.
func (p *Publisher) Done() <-chan struct{} { return p.done }

// Err returns why the publisher ended: nil after a clean Close, an error
// matching ErrClosed after Abort (or a Close whose context ended), or the
// failure. Nil while running.
func (p *Publisher) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Stats returns the counters.
func (p *Publisher) Stats() PublisherStats {
	s := &p.stats
	st := PublisherStats{
		Published: s.published.Load(), Bytes: s.bytes.Load(), Datagrams: s.datagrams.Load(),
		Heartbeats: s.heartbeats.Load(), Naks: s.naks.Load(), NaksUnsent: s.nakUnsent.Load(),
		NaksTooOld: s.nakTooOld.Load(), NaksRateLimited: s.nakLimited.Load(), NaksNoRoom: s.nakNoRoom.Load(),
		RepairsUnicast: s.repairsUnicast.Load(), RepairsMulticast: s.repairsMulticast.Load(),
		RepairBusy: s.repairBusy.Load(), Registered: s.registered.Load(), Evicted: s.evicted.Load(),
		Statuses: s.statuses.Load(), Blocked: s.blocked.Load(),
		Subscribers: int(s.subscribers.Load()),
	}
	st.Oldest, st.Next, st.Slowest = p.histOldest.Load(), p.histNext.Load(), p.histSlowest.Load()
	st.EvictedTimeout = s.evictedBy[EvictTimeout].Load()
	st.EvictedLaggard = s.evictedBy[EvictLaggard].Load()
	st.EvictedRefused = s.evictedBy[EvictRefused].Load()
	st.RejectedBy, st.Rejected = p.rej.snapshot()
	return st
}
