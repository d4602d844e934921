package reliable

// The owner loop. One goroutine per endpoint (run) owns every session's
// state; a reader goroutine hands it datagrams. Each turn of the loop:
//
//  1. takes what woke it: received datagrams (handleRx, each frame through
//     handleFrame, then finishRx once for the whole batch: one ACK per
//     session for everything drained), an operation from an application
//     goroutine (runOnOwner), or the timer;
//  2. serviceReady: moves what applications queued into frames;
//  3. fireTimers: runs the sessions whose deadline passed (their touched
//     sessions settle in finishRx too) and retries busy peers;
//  4. flushAll: sends every coalesced datagram;
//  5. endPumps: lets sessions that ended this turn close Done, now that
//     their last frames (the ACK of a FIN) have left;
//  6. re-arms the single timer at the earliest session deadline.
//
// Sessions touched by frames or timers are listed (touchSession) and
// settled at once in finishRx: deliveries handed to the pump, the ACK
// owed, sends the window now allows, the next deadline.

import (
	"errors"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/transport"
)

// run is the owner loop.
func (e *Endpoint) run() {
	defer func() {
		e.shutdown()
		e.m.unregister()
		close(e.ownerEnd)
		e.wg.Done()
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	armed := noDeadline
	for {
		select {
		case b := <-e.rx:
			if !e.handleRx(b) {
				return
			}
			for range rxBuffers - 1 { // drain what is already there
				select {
				case b := <-e.rx:
					if !e.handleRx(b) {
						return
					}
					continue
				default:
				}
				break
			}
			// One ack per session for everything drained: ack thinning
			// without a delay timer.
			e.finishRx(e.now())
		case <-e.wake:
		case f := <-e.ops:
			f()
		case <-timer.C:
			armed = noDeadline
		case <-e.closing:
			return
		}
		now := e.now()
		e.serviceReady(now)
		e.fireTimers(now)
		e.flushAll(now)
		e.endPumps()
		next := e.timers.earliest()
		for _, o := range e.busyOuts {
			next = min(next, o.retryAt)
		}
		// The timer only ever moves earlier: waking up before the
		// next deadline costs an idle turn, while moving the runtime
		// timer on every change (an ACK held, then sent; the RTO pushed
		// by each acknowledgement) costs two resets per round trip.
		if next < armed {
			armed = next
			timer.Reset(max(next-e.now(), 0))
		}
	}
}

// reader blocks in Receive and passes datagrams to the owner. Buffers
// circulate between rxFree and rx, so memory is bounded and steady state
// allocates nothing.
func (e *Endpoint) reader() {
	defer e.wg.Done()
	for {
		var b *rxBuf
		select {
		case b = <-e.rxFree:
		case <-e.closing:
			return
		}
		b.pkt, b.err = e.tr.Receive(b.buf)
		select {
		case e.rx <- b:
		case <-e.closing:
			return
		}
		if b.err != nil {
			return
		}
	}
}

// handleRx processes one datagram; false means the transport failed.
func (e *Endpoint) handleRx(b *rxBuf) bool {
	defer func() { e.rxFree <- b }()
	if b.err != nil {
		if !errors.Is(b.err, transport.ErrClosed) {
			err := b.err
			e.fatal.Store(&err)
		}
		return false
	}
	now := e.now()
	p := &b.pkt
	switch {
	case p.Overrun:
		e.onOverrun(now)
		return true
	case p.Truncated:
		e.reject(rejectTruncated)
		return true
	case p.Group != 0:
		e.reject(rejectMulticast)
		return true
	}
	if e.cfg.AllowCreds != nil && p.Creds.Valid && !e.cfg.AllowCreds(p.Creds) {
		e.reject(rejectCreds)
		return true
	}
	e.stats.datagramsRecv.Add(1)
	e.rxCreds = p.Creds
	r := &e.rd
	r.Reset(p.Data)
	for r.Next() {
		f, err := r.Frame()
		if err != nil {
			if errors.Is(err, wire.ErrChecksum) {
				e.reject(rejectChecksum)
			} else {
				e.reject(rejectMalformed)
			}
			continue
		}
		e.handleFrame(p.From, f, now)
	}
	if r.Err() != nil {
		e.reject(rejectMalformed)
	}
	return true
}

// serviceReady moves queued messages of ready sessions into frames.
func (e *Endpoint) serviceReady(now time.Duration) {
	e.rmu.Lock()
	e.readyLoc = append(e.readyLoc, e.ready...)
	clear(e.ready)
	e.ready = e.ready[:0]
	e.rmu.Unlock()
	for i := 0; i < len(e.readyLoc); i++ {
		s := e.readyLoc[i]
		if s.state != stateEstablished {
			continue
		}
		if s.pump.updateDue.Swap(false) {
			if !s.ackDue {
				s.ackDue = true
				s.ackSeq = uint32(s.rcv.Cum()) - 1
			}
		}
		e.pullSends(s, now)
		if s.ackDue {
			e.sendAck(s, now)
		}
		e.checkFlushers(s)
		e.reschedule(s, now)
	}
	clear(e.readyLoc)
	e.readyLoc = e.readyLoc[:0]
}

// fireTimers runs every session whose deadline has passed.
func (e *Endpoint) fireTimers(now time.Duration) {
	for len(e.timers) > 0 && e.timers[0].deadline <= now {
		s := e.timers[0]
		e.onTimer(s, now)
		if s.heapIdx == 0 && s.deadline <= now {
			// Nothing rescheduled it: avoid spinning.
			e.timers.schedule(s, noDeadline)
		}
	}
	e.finishRx(now)
	for i := 0; i < len(e.busyOuts); {
		o := e.busyOuts[i]
		if !o.busy {
			e.busyOuts[i] = e.busyOuts[len(e.busyOuts)-1]
			e.busyOuts = e.busyOuts[:len(e.busyOuts)-1]
			continue
		}
		if o.retryAt <= now {
			e.busyOuts[i] = e.busyOuts[len(e.busyOuts)-1]
			e.busyOuts = e.busyOuts[:len(e.busyOuts)-1]
			e.flushOut(o, now) // may re-add itself to busyOuts
			continue
		}
		i++
	}
	if len(e.readyLoc) > 0 {
		e.serviceReady(now)
	}
}

// flushAll sends every coalesced datagram of this turn.
// endPumps tells the pumps of the sessions that ended in this turn that
// nothing more comes, once the turn's datagrams were sent: their Done
// closes when they have delivered what they hold. A session that ended
// normally (time-wait) whose last datagram a busy peer (EAGAIN) holds
// back waits until it leaves, or until its time-wait ends: that datagram
// holds the ACK of the peer's FIN.
func (e *Endpoint) endPumps() {
	keep := e.ended[:0]
	for _, s := range e.ended {
		if s.state == stateTimeWait && s.out.busy && s.out.refused == nil && len(s.out.buf) > 0 {
			keep = append(keep, s)
			continue
		}
		s.endPump()
	}
	clear(e.ended[len(keep):])
	e.ended = keep
}

func (e *Endpoint) flushAll(now time.Duration) {
	for _, o := range e.pending {
		o.queued = false
		e.flushOut(o, now)
	}
	clear(e.pending)
	e.pending = e.pending[:0]
}

// markReady lists s for service in this turn (owner only).
func (e *Endpoint) markReady(s *Session) { e.readyLoc = append(e.readyLoc, s) }

// touchSession lists s for the end-of-datagram work (acks, deliveries,
// sending into a window that may have opened, timer).
func (e *Endpoint) touchSession(s *Session) {
	if !s.touched {
		s.touched = true
		e.touchedSess = append(e.touchedSess, s)
	}
}

// needAck records that s owes an ACK answering the frame with seq.
func (e *Endpoint) needAck(s *Session, seq uint32) {
	e.needAckLazy(s, seq)
	s.ackUrgent = true
}

// ackHoldMax is how long the ACK of an in-order REQUEST or REPLY may wait
// for a frame to ride with (docs/PROTOCOL.md §6.4). The application
// usually answers a request, or sends its next one after a reply, within
// a few microseconds: the ACK then leaves in the same datagram, which
// saves a datagram, a system call on each side and a wake-up of the
// peer's goroutines per round trip (request/reply p50 on one machine:
// 19 µs -> 13 µs, median of 6 runs). It is below the smallest RTO
// (200 µs), and the hold ends at once when anything else is owed.
const ackHoldMax = 100 * time.Microsecond

// needAckLazy is needAck for an in-order REQUEST or REPLY: the ACK may be
// held for ackHoldMax (finishRx) unless something urgent is owed too.
func (e *Endpoint) needAckLazy(s *Session, seq uint32) {
	s.ackDue = true
	s.ackSeq = seq
	e.touchSession(s)
}

// finishRx emits acks and deliveries for the sessions touched this turn.
func (e *Endpoint) finishRx(now time.Duration) {
	// Publish receive counts before anything is handed to the
	// application, so that a reader of the metrics never sees a message
	// delivered and not yet received.
	e.m.flushReceived()
	for i := 0; i < len(e.touchedSess); i++ {
		s := e.touchedSess[i]
		s.touched = false
		if s.state == stateEstablished {
			e.pullSends(s, now)
		}
		// Hand deliveries over first: the ack's credit counts them.
		s.handToPump()
		if s.ackDue && (s.state == stateEstablished || s.state == stateTimeWait) {
			if !s.ackUrgent && s.state == stateEstablished && s.ackHold == 0 {
				s.ackHold = now + ackHoldMax // wait for the answer to ride with
			}
			if s.ackUrgent || s.ackHold == 0 || now >= s.ackHold || s.state != stateEstablished {
				e.sendAck(s, now)
			}
		}
		if s.state != stateDead {
			e.reschedule(s, now)
		}
	}
	clear(e.touchedSess)
	e.touchedSess = e.touchedSess[:0]
}
