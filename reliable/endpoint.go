package reliable

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/retry"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/window"
)

const typeData = wire.TypeData

// Endpoint multiplexes sessions over one transport (one netlink port).
//
// One goroutine, the owner (run), holds all protocol state: the session
// table, every window, the timers and the outgoing datagrams. A reader
// goroutine blocks in Transport.Receive and hands datagrams to the owner;
// each session has a pump goroutine that hands delivered messages to the
// application. Everything else talks to the owner through channels.
type Endpoint struct {
	tr    transport.Transport
	cfg   Config
	start time.Time
	m     *instruments
	stats endpointStats

	rx       chan *rxBuf
	rxFree   chan *rxBuf
	wake     chan struct{} // cap 1: the ready list is not empty
	ops      chan func()
	acceptQ  chan *Session
	closing  chan struct{}
	drainCh  chan struct{} // closed when Shutdown begins: no more sessions
	ownerEnd chan struct{}
	wg       sync.WaitGroup
	closeMu  sync.Mutex
	closed   bool
	fatal    atomic.Pointer[error]

	rmu   sync.Mutex
	ready []*Session // sessions with work queued by application goroutines

	// Owner-only state.
	sessions    map[key]*Session
	outs        map[uint32]*outBuf
	pending     []*outBuf  // outBufs with bytes to send at the end of the turn
	ended       []*Session // sessions that ended this turn: Done closes after the flush
	draining    bool       // Shutdown began: refuse SYNs and Dials
	busyOuts    []*outBuf  // outBufs waiting after EAGAIN
	timers      timerHeap
	touchedSess []*Session // sessions touched this turn, settled by finishRx
	readyLoc    []*Session
	taken       []*msgBuf
	ackBody     wire.Ack
	ctlScr      []byte // scratch for control-frame bodies (ACK, SYN, SYNACK)
	rstScr      []byte
	ackRanges   []window.Range
	parsedAck   wire.Ack
	rd          wire.Reader     // decodes the datagram being handled
	lastSess    *Session        // cache of the last session looked up by handleFrame
	rxCreds     transport.Creds // kernel-stamped credentials of the datagram being handled
	rstLimit    *rate.Limiter   // answers to frames of unknown or ended sessions
}

// rxBuf carries one received datagram from the reader to the owner.
type rxBuf struct {
	buf []byte
	pkt transport.Packet
	err error
}

const rxBuffers = 8

// NewEndpoint runs the cnlink protocol over tr. The endpoint owns tr from
// now on and closes it in Close. A nil cfg means defaults.
//
// NewEndpoint fails with an error matching ErrPermission when tr tells
// that its sends cannot work (a netlink socket in a process without
// CAP_NET_ADMIN: every session would fail at its first frame, and an
// accepting endpoint could never answer the sessions it accepted).
func NewEndpoint(tr transport.Transport, cfg *Config) (*Endpoint, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if p, ok := tr.(interface{ SendPermitted() error }); ok {
		if err := p.SendPermitted(); err != nil {
			return nil, &permissionError{cause: err}
		}
	}
	e := &Endpoint{
		tr:       tr,
		cfg:      c,
		start:    time.Now(),
		rx:       make(chan *rxBuf, rxBuffers),
		rxFree:   make(chan *rxBuf, rxBuffers),
		wake:     make(chan struct{}, 1),
		ops:      make(chan func()),
		closing:  make(chan struct{}),
		ownerEnd: make(chan struct{}),
		drainCh:  make(chan struct{}),
		sessions: make(map[key]*Session),
		outs:     make(map[uint32]*outBuf),
	}
	if c.AcceptBacklog > 0 {
		e.acceptQ = make(chan *Session, c.AcceptBacklog)
	}
	e.m = newInstruments(&c, e)
	e.rstLimit = rate.NewLimiter(rstRate, rstBurst)
	for range rxBuffers {
		e.rxFree <- &rxBuf{buf: make([]byte, c.MaxDatagram)}
	}
	e.wg.Add(2)
	go e.reader()
	go e.run()
	return e, nil
}

// LocalPort is the endpoint's netlink port.
func (e *Endpoint) LocalPort() uint32 { return e.tr.LocalPort() }

func (e *Endpoint) now() time.Duration { return time.Since(e.start) }

// Dial opens a session with the endpoint at peer port on channel ch (the
// zero CbID means DefaultChannel). It returns when the peer's endpoint has
// answered the handshake, which may be before the peer's application
// calls Accept (the peer's AcceptBacklog holds the session meanwhile).
// If the peer dials us on the same channel at the same moment, both Dials
// return the one session they opened together; if the peer's SYN arrived
// first, Dial returns the session it opened unless Accept took it first
// (then Dial fails with ErrSessionExists and Accept has it).
//
// Errors are *SessionError: ErrTimeout (also matching
// context.DeadlineExceeded) when ctx's deadline, or Config.HandshakeTimeout
// when ctx has none, passes first; ctx's error when it is cancelled;
// ErrPeerReset when the peer refuses; ErrSessionExists when this endpoint
// already has a session with that port and channel; ErrClosed when the
// endpoint is closed.
func (e *Endpoint) Dial(ctx context.Context, port uint32, ch transport.CbID) (*Session, error) {
	if ch == (transport.CbID{}) {
		ch = DefaultChannel
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.cfg.HandshakeTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	k := key{port: port, ch: ch}
	done := make(chan error, 1)
	var s *Session
	err := e.runOnOwner(func() {
		if e.draining {
			done <- &SessionError{Port: port, Channel: ch.String(), Kind: ErrClosed, Cause: errors.New("endpoint shutting down")}
			return
		}
		if old, ok := e.sessions[k]; ok && old.state != stateTimeWait && old.state != stateResetWait {
			if !old.initiator && old.taken.CompareAndSwap(false, true) {
				// The peer dialed us first and Accept has not taken that
				// session: it is the one both sides asked for (a
				// simultaneous open whose SYNs did not cross).
				s = old
				e.attach(s)
				done <- nil
				return
			}
			done <- &SessionError{Port: port, Channel: ch.String(), Kind: ErrSessionExists}
			return
		}
		s = e.newSession(k, true)
		s.dialDone = done
		now := e.now()
		s.myISN = window.RandomSeq()
		s.hs = retry.HandshakeSchedule()
		s.hs.Reset(now)
		s.hsDeadline = now + time.Until(deadline)
		e.sendSyn(s, now)
	})
	if err != nil {
		kind, cause := e.endReason()
		return nil, &SessionError{Port: port, Channel: ch.String(), Kind: kind, Cause: cause}
	}
	select {
	case err := <-done:
		if err != nil {
			return nil, err
		}
		return s, nil
	case <-ctx.Done():
		if s != nil {
			e.runOnOwnerAsync(func() {
				switch s.state {
				case stateSynSent:
					e.fail(s, ErrTimeout, ctx.Err())
				case stateEstablished:
					// The handshake finished as Dial gave up: nobody
					// holds this session, so it must not linger.
					e.abort(s)
				}
			})
		}
		kind := ctx.Err()
		if errors.Is(kind, context.DeadlineExceeded) {
			kind = ErrTimeout
		}
		return nil, &SessionError{Port: port, Channel: ch.String(), Kind: kind, Cause: ctx.Err()}
	case <-e.ownerEnd:
		kind, cause := e.endReason()
		return nil, &SessionError{Port: port, Channel: ch.String(), Kind: kind, Cause: cause}
	}
}

// Accept returns the next session opened by a peer. Sessions that failed
// before Accept took them (reset, gone) are dropped, not returned; one
// the peer already closed gracefully is returned, with its messages still
// to be read. Errors: ctx's error, ErrClosed when the endpoint is closed,
// ErrNotAccepting when Config.AcceptBacklog < 0.
func (e *Endpoint) Accept(ctx context.Context) (*Session, error) {
	if e.acceptQ == nil {
		return nil, fmt.Errorf("%w (Config.AcceptBacklog < 0)", ErrNotAccepting)
	}
	for {
		select {
		case s := <-e.acceptQ:
			if !s.taken.CompareAndSwap(false, true) {
				continue // a Dial to the same peer and channel took it
			}
			if err := e.runOnOwner(func() { e.attach(s) }); err != nil {
				return nil, e.closedErr()
			}
			if err := s.Err(); err != nil && !errors.Is(err, ErrPeerClosed) {
				s.abandonPump() // what it received is counted undelivered
				continue
			}
			return s, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-e.drainCh:
			return nil, fmt.Errorf("%w: endpoint shutting down", ErrClosed)
		case <-e.ownerEnd:
			return nil, e.closedErr()
		}
	}
}

// endReason says why the endpoint stopped: closed locally (ErrClosed,
// ErrAborted for its sessions), or its transport failed (ErrTransport and
// the failure).
func (e *Endpoint) endReason() (kind, cause error) {
	if p := e.fatal.Load(); p != nil {
		return ErrTransport, *p
	}
	return ErrClosed, ErrAborted
}

func (e *Endpoint) closedErr() error {
	if p := e.fatal.Load(); p != nil {
		return &kindError{kind: ErrTransport, cause: *p}
	}
	return ErrClosed
}

// Close aborts every session (telling peers), closes the transport and
// waits for the endpoint's goroutines. It is safe to call more than once.
func (e *Endpoint) Close() error {
	e.closeMu.Lock()
	if e.closed {
		e.closeMu.Unlock()
		<-e.ownerEnd
		return nil
	}
	e.closed = true
	e.closeMu.Unlock()
	close(e.closing)
	<-e.ownerEnd
	err := e.tr.Close()
	e.wg.Wait()
	if errors.Is(err, transport.ErrClosed) {
		err = nil
	}
	return err
}

// runOnOwner runs f on the owner goroutine and waits for it.
func (e *Endpoint) runOnOwner(f func()) error {
	done := make(chan struct{})
	select {
	case e.ops <- func() { f(); close(done) }:
		<-done
		return nil
	case <-e.ownerEnd:
		return e.closedErr()
	}
}

// runOnOwnerAsync queues f for the owner without waiting.
func (e *Endpoint) runOnOwnerAsync(f func()) {
	go func() {
		select {
		case e.ops <- f:
		case <-e.ownerEnd:
		}
	}()
}

// markReadyFromApp lists s for the owner's next turn. Any goroutine.
func (e *Endpoint) markReadyFromApp(s *Session) {
	e.rmu.Lock()
	e.ready = append(e.ready, s)
	e.rmu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Endpoint) newSession(k key, initiator bool) *Session {
	s := &Session{
		ep:        e,
		key:       k,
		initiator: initiator,
		myEpoch:   nonZeroRandom(),
		maxMsg:    e.cfg.MaxMessage,
		sendCap:   e.cfg.SendBuffer,
		space:     make(chan struct{}, 1),
		doneCh:    make(chan struct{}),
		ended:     make(chan struct{}),
		state:     stateSynSent,
		heapIdx:   -1,
		replyWait: make(map[uint32]chan replyMsg),
	}
	s.pump.wake = make(chan struct{}, 1)
	s.pump.avail = make(chan struct{}, 1)
	s.pump.end = make(chan struct{})
	s.pump.abandon = make(chan struct{})
	s.out = e.outFor(k.port)
	s.out.sessions = append(s.out.sessions, s)
	s.lastHeard = e.now()
	e.sessions[k] = s
	if e.lastSess != nil && e.lastSess.key == k {
		e.lastSess = nil // it may hold the time-wait session this one replaces
	}
	if initiator {
		e.attach(s)
	}
	e.m.sessionOpened(s)
	return s
}

// attach gives s to the application: its channels and its pump, which a
// session a peer opened gets only when Accept (or a Dial to the same peer)
// takes it, so that sessions waiting in the backlog, or opened by a SYN
// flood, cost little. It opens the full receive window (see rxCredit).
// Owner only; idempotent.
func (e *Endpoint) attach(s *Session) {
	if s.attached {
		return
	}
	s.attached = true
	s.reqCh = make(chan *Request, min(e.cfg.RecvBuffer, reqBuffer))
	e.wg.Add(1)
	go s.runPump()
	if s.state == stateEstablished {
		// The peer saw a small window so far: tell it the real one.
		s.pump.updateDue.Store(true)
		e.markReady(s)
	}
}

// reqBuffer caps the Requests channel: requests are answered one by one,
// so a deep channel only costs memory in every session (the pump's queue
// holds the rest).
const reqBuffer = 64

// preAcceptCredit is the receive window of a session not yet taken by
// Accept: a few messages, so that a peer may send at once (and close)
// before the application accepts, while the backlog holds little.
const preAcceptCredit = 4

// rxCredit is how many messages s may hold beyond its cumulative ack.
func (e *Endpoint) rxCredit(s *Session) int {
	if !s.attached {
		return min(e.cfg.Window, preAcceptCredit)
	}
	return e.cfg.Window
}

func nonZeroRandom() uint32 {
	for {
		if v := uint32(window.RandomSeq()); v != 0 {
			return v
		}
	}
}

// shutdown runs when the owner exits: every session ends.
func (e *Endpoint) shutdown() {
	now := e.now()
	e.m.flushReceived() // a burst cut short by Close was still received
	for _, s := range e.sessions {
		if s.state == stateEstablished {
			e.sendRst(s, wire.RstEndpointGo, now)
		}
	}
	e.flushAll(now)
	kind, cause := e.endReason()
	for _, s := range e.sessions {
		s.abandonPump()
		e.fail(s, kind, cause)
	}
	for _, s := range e.sessions {
		e.remove(s)
	}
	e.flushAll(now)
	for _, s := range e.ended {
		s.endPump()
	}
	e.ended = nil
	if e.acceptQ != nil {
		for {
			select {
			case s := <-e.acceptQ:
				if s.taken.CompareAndSwap(false, true) {
					e.attach(s) // its pump counts what nobody will read
					s.abandonPump()
				}
				continue
			default:
			}
			break
		}
	}
}
