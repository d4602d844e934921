package multicast

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cnlink/cnlink/repair"
	"github.com/cnlink/cnlink/transport"
)

// Message is one message of the stream, delivered in MSN order, once.
type Message struct {
	// MSN is the message's sequence number in the publisher's stream.
	MSN uint32
	// Data is the message; it belongs to the receiver.
	Data []byte
	// Lost counts messages just before this one that will never be
	// delivered: non-zero only with OnLoss = Continue, or for an
	// unprivileged subscriber, which cannot ask for repairs.
	Lost uint64
}

// Subscriber receives one publisher's stream on a connector group. It owns
// its transport, which it closes when it ends. Its methods are safe for
// concurrent use.
type Subscriber struct {
	tr    transport.Transport
	cfg   SubscriberConfig
	start time.Time
	rd    *rxReader

	recv    chan Message
	done    chan struct{}
	closeCh chan struct{}
	once    sync.Once

	mu               sync.Mutex
	err              error
	pubPortA, epochA uint32 // copies of pubPort and epoch for Publisher()

	stats subCounters
	rej   rejects

	// Owner goroutine only.
	st        *repair.Subscriber
	pinned    bool
	pubPort   uint32
	pubCreds  transport.Creds
	epoch     uint32
	heard     time.Duration
	register  bool // send STATUS (registered flow control)
	statusAt  time.Duration
	statusPos uint32
	statusReq bool
	sentOnce  bool
	retryAt   time.Duration // a send met EAGAIN: not before
	keepalive time.Duration // STATUS at least this often: the publisher's (heartbeat), or ours
	fin       bool
	finAt     uint32
	fail      error // end after delivering what is ready
	next      Message
	haveNext  bool
	// deliveredAny: a message was taken for delivery; until then a lost
	// start is restarted, not reported.
	deliveredAny bool
	confirmed    bool          // the publisher answered our registration
	goneAt       time.Duration // a send met ECONNREFUSED: end then (0: not)
	out          []byte
	wr           []wireRange
	slab         []byte    // the current datagram's message storage
	tail         []Message // at the end: ready messages finish hands on
	slabNeed     int

	// What the socket's receive queue holds, to announce a window the
	// kernel will not overrun (as Aeron sizes a receiver window by
	// SO_RCVBUF): rcvbuf as getsockopt reports it (0: unknown), and
	// running averages of the publisher's datagrams.
	rcvbuf         int
	pubMaxDatagram int     // from the publisher's heartbeats
	avgFrame       float64 // bytes of an MDATA frame, running average
	announced      int
}

type subCounters struct {
	received, delivered, bytes, duplicates, repaired, outOfWindow atomic.Uint64
	naks, statuses, overruns, lost, sendBusy                      atomic.Uint64
	position, known                                               atomic.Uint32
	registered, unprivileged                                      atomic.Bool
}

// SubscriberStats are a Subscriber's cumulative counters.
type SubscriberStats struct {
	Received     uint64            // MDATA frames accepted into the reorder buffer
	Delivered    uint64            // messages handed to Recv
	Bytes        uint64            // payload bytes delivered
	Duplicates   uint64            // MDATA received twice (a repair that crossed the original)
	Repaired     uint64            // messages that arrived as repairs
	OutOfWindow  uint64            // MDATA beyond the reorder buffer (asked again later)
	Naks         uint64            // NAK frames sent
	Statuses     uint64            // STATUS frames sent
	Overruns     uint64            // ENOBUFS reports: the kernel dropped datagrams for us
	Lost         uint64            // messages lost for good (reported as Message.Lost or LostError)
	Rejected     uint64            // datagrams and frames dropped, all reasons
	RejectedBy   map[string]uint64 // by reason (PROTOCOL.md §16.8.2's counter keys)
	SendBusy     uint64            // NAK or STATUS refused with EAGAIN (retried)
	Position     uint32            // next MSN to deliver
	Known        uint32            // one past the newest MSN known to exist
	Registered   bool              // sending STATUS: the publisher waits for us
	Unprivileged bool              // the kernel refused our NAKs: loss is reported, not repaired
}

// Subscribe joins cfg.Group on tr (which it owns from now on) and starts
// receiving. Joining an even group needs CAP_NET_ADMIN (ErrPermission).
func Subscribe(tr transport.Transport, cfg SubscriberConfig) (*Subscriber, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		_ = tr.Close() // it is ours whatever happens
		return nil, err
	}
	if err := tr.JoinGroup(c.Group); err != nil {
		_ = tr.Close()
		if errors.Is(err, transport.ErrPermission) || errors.Is(err, errEPERM) {
			return nil, fmt.Errorf("%w: joining group %d (even groups need CAP_NET_ADMIN; odd groups are open to all): %w", ErrPermission, c.Group, err)
		}
		return nil, fmt.Errorf("%w: joining group %d: %w", ErrTransport, c.Group, err)
	}
	s := &Subscriber{
		tr:        tr,
		cfg:       c,
		start:     time.Now(),
		recv:      make(chan Message, c.RecvBuffer),
		done:      make(chan struct{}),
		closeCh:   make(chan struct{}),
		register:  !c.NoRegister,
		keepalive: c.KeepaliveInterval,
		st: repair.NewSubscriber(repair.SubscriberConfig{
			Window: c.Window, NakDelay: c.NakDelay, NakMax: c.NakMax, Seed: c.Seed,
		}),
	}
	if rb, ok := tr.(interface{ ReadBuffer() (int, error) }); ok {
		if n, err := rb.ReadBuffer(); err == nil {
			s.rcvbuf = n
		}
	}
	s.pubMaxDatagram, s.avgFrame = DefaultMaxDatagram, frameOverhead+256
	s.rd = newRxReader(tr, MaxDatagramLimit, 16)
	_, _ = registerSubscriberMetrics(c.MeterProvider, s) // unregisters itself when s ends
	go s.rd.run()
	go s.run()
	return s, nil
}

// Recv returns the channel of messages. It is closed when the subscription
// ends; Err then says why (nil: the publisher closed the stream and every
// message was delivered).
func (s *Subscriber) Recv() <-chan Message { return s.recv }

// RecvIter yields each message, then, if the subscription ended with an
// error (or ctx ended), that error once.
func (s *Subscriber) RecvIter(ctx context.Context) iter.Seq2[Message, error] {
	return func(yield func(Message, error) bool) {
		for {
			select {
			case m, ok := <-s.recv:
				if !ok {
					if err := s.Err(); err != nil {
						yield(Message{}, err)
					}
					return
				}
				if !yield(m, nil) {
					return
				}
			case <-ctx.Done():
				yield(Message{}, ctx.Err())
				return
			}
		}
	}
}

// Done is closed when the subscription has ended, whether or not the
// application has taken every message: Err is set by then, and Recv still
// yields every message that was in order before the end, then closes.
func (s *Subscriber) Done() <-chan struct{} { return s.done }

// Err says why the subscription ended: nil while running and after the
// publisher's clean end, ErrClosed after Close, or the typed cause
// (*LostError, *EvictedError, ErrPublisherGone, ErrPublisherRestarted).
func (s *Subscriber) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close leaves the stream (telling the publisher, if registered) and
// releases the transport. Messages not yet taken from Recv are dropped,
// also those still being handed on after the subscription ended.
func (s *Subscriber) Close() error {
	s.once.Do(func() { close(s.closeCh) })
	<-s.done
	return nil
}

// Publisher returns the pinned publisher's port and epoch (0, 0 before the
// first frame).
func (s *Subscriber) Publisher() (port, epoch uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pubPortA, s.epochA
}

// Stats returns the counters.
func (s *Subscriber) Stats() SubscriberStats {
	c := &s.stats
	st := SubscriberStats{
		Received: c.received.Load(), Delivered: c.delivered.Load(), Bytes: c.bytes.Load(),
		Duplicates: c.duplicates.Load(), Repaired: c.repaired.Load(), OutOfWindow: c.outOfWindow.Load(),
		Naks: c.naks.Load(), Statuses: c.statuses.Load(), Overruns: c.overruns.Load(), Lost: c.lost.Load(),
		SendBusy: c.sendBusy.Load(), Position: c.position.Load(), Known: c.known.Load(),
		Registered: c.registered.Load(), Unprivileged: c.unprivileged.Load(),
	}
	st.RejectedBy, st.Rejected = s.rej.snapshot()
	return st
}
