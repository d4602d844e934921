package reliable

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/loss"
	"github.com/cnlink/cnlink/retry"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/window"
)

// Session is a reliable, ordered, exactly-once message stream with one
// peer on one connector channel. Its methods are safe for concurrent use.
// The endpoint's owner goroutine runs its state machine; the methods below
// only queue work for it and wait.
type Session struct {
	ep        *Endpoint
	key       key
	initiator bool
	// taken: an accepted session was handed to the application, by Accept
	// or by a Dial to the same peer and channel (whichever came first).
	taken    atomic.Bool
	attached bool // owner only: channels and pump exist (see attach)

	// Fixed once the session is published to the application.
	myEpoch, peerEpoch uint32
	peerCreds          transport.Creds // kernel-stamped, from the handshake
	maxMsg             int             // largest message we may send (peer's limit)

	// Application side of the send queue.
	mu        sync.Mutex
	sendQ     []*msgBuf // FIFO; sendQ[sendHead:] are waiting
	sendHead  int
	sendCap   int
	sendBytes int   // bytes of sendQ[sendHead:]
	endErr    error // once set, Send fails with it
	closing   bool  // Close called: Send fails with ErrClosed
	readyFlag bool  // listed in the endpoint's ready list
	space     chan struct{}
	flushers  []chan struct{}

	recvCh   chan []byte // made by the first Recv; read it only after chanMode
	chanMode atomic.Bool // Recv was called: the pump feeds recvCh
	recvOnce sync.Once
	reqCh    chan *Request
	ended    chan struct{} // closed by the owner when the session ends
	doneCh   chan struct{} // closed by the pump once deliveries are finished
	err      atomic.Pointer[error]
	// closeErr is what Close returns; set by the owner before ended is
	// closed: nil when the peer's engine holds everything we sent.
	closeErr error

	pump pump

	// Owner-only state below.
	state      state
	snd        *window.Sender[*msgBuf]
	rcv        *window.Receiver[rxItem]
	rec        *loss.Recovery[*msgBuf] // loss detection and timers of snd
	hs         *retry.Schedule
	out        *outBuf
	hsDeadline time.Duration
	hsNext     time.Duration
	dialDone   chan error
	lastHeard  time.Duration
	lastPing   time.Duration
	probeAt    time.Duration // zero-window probe
	closeAt    time.Duration // graceful close deadline; timewait expiry
	ackDue     bool
	ackUrgent  bool            // the ACK owed may not wait (see needAckLazy)
	ackHold    time.Duration   // a held ACK leaves by then at the latest (0: none held)
	ackSeq     uint32          // cn_msg.seq of the newest frame to answer
	statusReq  bool            // ask the peer for its status (we overran)
	statusAt   time.Duration   // next status request after an overrun
	overrun    *retry.Schedule // paces status requests after an overrun
	replyWait  map[uint32]chan replyMsg
	deadline   time.Duration
	heapIdx    int
	delivering []delivery // owner-side batch for the pump
	finSeq     window.Seq // DSN of our FIN, once finPushed
	finPushed  bool
	peerFin    bool   // the peer's FIN was delivered: its stream is over
	rstReason  uint32 // in stateResetWait, what RST answers late frames with
	touched    bool
	myISN      window.Seq
	release    func(window.Seq, *msgBuf)
	stats      sessionStats
	span       trace.Span
}

type state uint8

const (
	stateSynSent state = iota + 1
	stateEstablished
	stateTimeWait // ended gracefully; kept briefly to answer retransmitted frames
	// stateResetWait: ended abnormally; kept briefly so that its late
	// frames (a retransmitted SYN, DATA, PING) get RST instead of opening
	// a new session that knows the peer's epoch and would keep a peer
	// that missed our RST alive.
	stateResetWait
	stateDead
)

type key struct {
	port uint32
	ch   transport.CbID
}

// rxItem is a received frame held in the reorder buffer.
type rxItem struct {
	data  []byte
	seq   uint32 // cn_msg.seq as received
	ack   uint32 // cn_msg.ack as received
	typ   uint8
	flags uint16
}

// Peer returns the peer's port.
func (s *Session) Peer() uint32 { return s.key.port }

// PeerCreds returns the peer's credentials as the kernel stamped them on
// its handshake (Valid is false when the transport passes none). Every
// later datagram of the session must carry the same: one that does not
// comes from another process holding the peer's port, and ends the
// session with ErrPeerGone.
func (s *Session) PeerCreds() transport.Creds { return s.peerCreds }

// Channel returns the connector channel (cb_id) of the session.
func (s *Session) Channel() transport.CbID { return s.key.ch }

// MaxMessage is the largest message Send accepts on this session.
func (s *Session) MaxMessage() int { return s.maxMsg }

// Recv returns the channel on which messages arrive, in order, exactly
// once. It is never closed: watch Done. Messages that arrived before the
// session ended stay readable after Done is closed.
//
// The channel (Config.RecvBuffer messages) is made by the first call: a
// session read only with RecvBatch or RecvIter never has one, and takes
// its messages in batches instead of one channel operation each.
func (s *Session) Recv() <-chan []byte {
	s.recvOnce.Do(func() {
		ch := make(chan []byte, s.ep.cfg.RecvBuffer)
		p := &s.pump
		p.mu.Lock()
		select {
		case <-s.doneCh:
			// The pump is gone; what it left queued (no more than the
			// channel holds, see canEndLocked) moves in now.
			for ; p.head < len(p.items); p.head++ {
				ch <- p.items[p.head].data
				p.items[p.head] = delivery{}
			}
		default:
		}
		s.recvCh = ch
		s.chanMode.Store(true)
		p.mu.Unlock()
		notify(p.wake)
	})
	return s.recvCh
}

// Requests returns the channel of incoming requests (see Request). It is
// never closed. Requests share the stream with messages: a peer's requests
// and messages are delivered in the order it sent them, so an application
// that receives requests must read both channels.
func (s *Session) Requests() <-chan *Request { return s.reqCh }

// Done is closed when the session has ended; Err then says why.
func (s *Session) Done() <-chan struct{} { return s.doneCh }

// Err returns nil while the session is open, then the reason it ended:
// an error matching one of the sentinels of the package doc's table
// (ErrClosed, ErrPeerClosed, ErrPeerGone, ErrPeerReset, ErrProtocol,
// ErrTimeout, ...).
func (s *Session) Err() error {
	if p := s.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Send queues a copy of msg for delivery. It blocks only while the send
// window and queue are full, and returns early with ctx's error. Send never
// keeps msg after it returns. A nil error means the message is queued and
// will be delivered unless the session ends first; use Flush or Request
// when the caller must know it arrived.
func (s *Session) Send(ctx context.Context, msg []byte) error {
	if len(msg) > s.maxMsg {
		return &MessageSizeError{Size: len(msg), Max: s.maxMsg}
	}
	return s.enqueue(ctx, msg, typeData, 0, nil, nil)
}

// SendBatch queues copies of msgs in order, as if by Send for each, with
// one synchronisation per batch where the window allows. It returns how
// many were queued.
func (s *Session) SendBatch(ctx context.Context, msgs [][]byte) (int, error) {
	for _, msg := range msgs {
		if len(msg) > s.maxMsg {
			return 0, &MessageSizeError{Size: len(msg), Max: s.maxMsg}
		}
	}
	n := 0
	for n < len(msgs) {
		s.mu.Lock()
		if err := s.sendErrLocked(); err != nil {
			s.mu.Unlock()
			return n, err
		}
		k := 0
		for n+k < len(msgs) && s.roomLocked(len(msgs[n+k])) {
			s.sendQ = append(s.sendQ, s.newMsgLocked(msgs[n+k], typeData))
			s.sendBytes += len(msgs[n+k])
			k++
		}
		if k == 0 {
			s.mu.Unlock()
			if err := s.waitSpace(ctx); err != nil {
				return n, err
			}
			continue
		}
		n += k
		s.kickLocked()
		s.mu.Unlock()
	}
	return n, nil
}

func (s *Session) sendErrLocked() error {
	if s.endErr != nil {
		return s.endErr
	}
	if s.closing {
		return &SessionError{Port: s.key.port, Channel: s.key.ch.String(), Kind: ErrClosed}
	}
	return nil
}

// enqueue copies p into the send queue as a message of type typ, waiting
// for space. fill, if set, completes the message under the lock.
func (s *Session) enqueue(ctx context.Context, p []byte, typ wire.Type, flags uint16, fill func(*msgBuf), reply chan replyMsg) error {
	for {
		s.mu.Lock()
		if err := s.sendErrLocked(); err != nil {
			s.mu.Unlock()
			return err
		}
		if s.roomLocked(len(p)) {
			m := s.newMsgLocked(p, typ)
			s.sendBytes += len(p)
			m.flags = flags
			m.reply = reply
			if fill != nil {
				fill(m)
			}
			s.sendQ = append(s.sendQ, m)
			s.kickLocked()
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		if err := s.waitSpace(ctx); err != nil {
			return err
		}
	}
}

// roomLocked reports whether the send queue takes one more message of n
// bytes (Config.SendBuffer, Config.SendBufferBytes). s.mu is held.
func (s *Session) roomLocked(n int) bool {
	q := len(s.sendQ) - s.sendHead
	return q == 0 || q < s.sendCap && s.sendBytes+n <= s.ep.cfg.SendBufferBytes
}

func (s *Session) waitSpace(ctx context.Context) error {
	select {
	case <-s.space:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.ended:
		return s.Err()
	}
}

// kickLocked tells the owner that the session has work. s.mu is held.
func (s *Session) kickLocked() {
	if !s.readyFlag {
		s.readyFlag = true
		s.ep.markReadyFromApp(s)
	}
}

// takeSend moves up to n queued messages to dst (owner side).
func (s *Session) takeSend(dst []*msgBuf, n int) []*msgBuf {
	s.mu.Lock()
	q := s.sendQ[s.sendHead:]
	k := min(n, len(q))
	dst = append(dst, q[:k]...)
	for _, m := range q[:k] {
		s.sendBytes -= len(m.b)
	}
	clear(q[:k])
	s.sendHead += k
	if s.sendHead == len(s.sendQ) {
		s.sendQ = s.sendQ[:0]
		s.sendHead = 0
	} else if s.sendHead > cap(s.sendQ)/2 {
		n := copy(s.sendQ, s.sendQ[s.sendHead:])
		clear(s.sendQ[n:])
		s.sendQ = s.sendQ[:n]
		s.sendHead = 0
	}
	if len(s.sendQ) == 0 {
		s.readyFlag = false
	}
	s.mu.Unlock()
	if k > 0 {
		select {
		case s.space <- struct{}{}:
		default:
		}
	}
	return dst
}

// failTaken ends messages taken from the queue that the session, ended
// meanwhile, will never send (owner side).
func (s *Session) failTaken(ms []*msgBuf) {
	err := s.Err()
	for _, m := range ms {
		if m.reply != nil {
			m.reply <- replyMsg{err: err}
		}
		s.recycle(m)
	}
}

func (s *Session) queued() int {
	s.mu.Lock()
	n := len(s.sendQ) - s.sendHead
	s.mu.Unlock()
	return n
}

// Flush waits until every message queued so far has been acknowledged by
// the peer (which means it is in the peer's receive buffer or delivered).
func (s *Session) Flush(ctx context.Context) error {
	ch := make(chan struct{})
	s.mu.Lock()
	if err := s.sendErrLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	s.flushers = append(s.flushers, ch)
	s.kickLocked()
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.ended:
		return s.Err()
	}
}

// Close ends the session gracefully: it stops accepting Sends, sends
// everything queued and then a FIN, and returns nil once the peer's
// engine has acknowledged the FIN cumulatively, which means it holds every
// message sent on the session (the peer's application gets them all,
// however slowly it reads, unless it abandons the session itself).
// Otherwise Close returns the session's error: ErrTimeout after
// Config.CloseTimeout (the session is then aborted), ErrPeerReset,
// ErrPeerGone, or ErrPeerClosed when the peer closed first while messages
// of ours were still unacknowledged. When the peer closed first and had
// everything, Close returns nil. It is safe to call more than once and returns
// the same result each time.
//
// Close is a full close: the application stops reading too. Messages not
// yet taken from Recv and Requests, and any that arrive while Close waits,
// are abandoned (SessionStats.Undelivered counts them). Were they kept,
// two sides closing at once without reading could each fill the other's
// window and leave no room for the other's FIN.
func (s *Session) Close() error { return s.CloseContext(context.Background()) }

// CloseContext is Close with a context: if ctx ends before the close
// finishes, the session is aborted (the peer gets RST 1) and the error
// matches ErrAborted and ctx's error. Config.CloseTimeout applies too,
// whichever comes first.
func (s *Session) CloseContext(ctx context.Context) error {
	s.mu.Lock()
	already := s.closing || s.endErr != nil
	s.closing = true
	s.mu.Unlock()
	s.abandonPump()
	if !already {
		// If the endpoint is gone its shutdown has ended the session.
		_ = s.ep.runOnOwner(func() { s.ep.beginClose(s) })
	}
	select {
	case <-s.ended:
	case <-ctx.Done():
		s.Abort()
		<-s.ended
		if errors.Is(s.closeErr, ErrAborted) {
			// Our abort ended it (not the close finishing meanwhile).
			<-s.doneCh
			return s.errOf(ErrClosed, errors.Join(ErrAborted, fmt.Errorf("close abandoned: %w", ctx.Err())))
		}
	}
	<-s.doneCh
	return s.closeErr
}

// Abort ends the session at once and tells the peer (RST), abandoning
// whatever is queued, in flight or not yet received. Blocked and later
// calls fail with an error matching ErrAborted (and ErrClosed). Abort on
// an ended session only abandons the messages not yet received.
func (s *Session) Abort() {
	if s.ep.runOnOwner(func() { s.ep.abort(s) }) != nil {
		s.abandonPump()
	}
	<-s.doneCh
}

// SessionStats are counters of one session.
type SessionStats struct {
	Sent uint64 // messages taken into the window (first transmissions)
	// Received counts messages the engine accepted in order (and so
	// acknowledged); each is then Delivered to the application or, when
	// the application abandoned the session (Close, Abort, Endpoint.Close)
	// or a Request gave up before its reply, Undelivered. Once Done is
	// closed, Received == Delivered + Undelivered.
	Received, Delivered, Undelivered uint64
	Retransmits                      uint64 // frames sent again (any cause)
	TimeoutRetransmits               uint64 // of which after an RTO
	DuplicatesSuppressed             uint64 // frames received more than once
	StatusRequests, StatusRepair     uint64 // overrun status exchanges asked / answered
	SRTT                             time.Duration
}

type sessionStats struct {
	sent, received, delivered, undelivered             atomic.Uint64
	retrans, rtoRetrans, dups, statusReq, statusRepair atomic.Uint64
	srtt                                               atomic.Int64
}

// Stats returns a snapshot of the session's counters.
func (s *Session) Stats() SessionStats {
	return SessionStats{
		Sent:                 s.stats.sent.Load(),
		Received:             s.stats.received.Load(),
		Delivered:            s.stats.delivered.Load(),
		Undelivered:          s.stats.undelivered.Load(),
		Retransmits:          s.stats.retrans.Load(),
		TimeoutRetransmits:   s.stats.rtoRetrans.Load(),
		DuplicatesSuppressed: s.stats.dups.Load(),
		StatusRequests:       s.stats.statusReq.Load(),
		StatusRepair:         s.stats.statusRepair.Load(),
		SRTT:                 time.Duration(s.stats.srtt.Load()),
	}
}
