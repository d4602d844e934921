package reliable

import (
	"errors"
	"time"

	"github.com/cnlink/cnlink/retry"
	"github.com/cnlink/cnlink/transport"
)

// outBuf coalesces the frames bound for one peer port into datagrams.
// Frames are appended during one turn of the owner loop and sent at its
// end (or earlier when the datagram is full): coalescing with a delay
// bounded by one loop turn. Owned by the endpoint goroutine.
type outBuf struct {
	port    uint32
	buf     []byte
	max     int  // datagram size limit for this peer
	queued  bool // listed in Endpoint.pending
	busy    bool // the peer's queue was full (EAGAIN): wait for retryAt
	retryAt time.Duration
	// refused holds the sessions to fail at retryAt because no socket
	// held the port (ECONNREFUSED), and the error; see refusedGrace.
	refused    []*Session
	refusedErr error
	sched      *retry.Schedule
	// sessions using this port, to resume them after a busy spell and to
	// fail them when the port is gone.
	sessions []*Session
}

// room makes space for n more bytes, flushing a full datagram first. It
// reports false while the destination is busy.
func (e *Endpoint) room(o *outBuf, n int, now time.Duration) bool {
	if o.busy {
		return false
	}
	if len(o.buf)+n <= o.max {
		return true
	}
	e.flushOut(o, now)
	return !o.busy
}

// touch lists o for the end-of-turn flush.
func (e *Endpoint) touch(o *outBuf) {
	if !o.queued && len(o.buf) > 0 {
		o.queued = true
		e.pending = append(e.pending, o)
	}
}

// flushOut sends o's datagram. EAGAIN keeps it and arms the busy schedule;
// a gone peer or missing privilege ends every session on that port.
func (e *Endpoint) flushOut(o *outBuf, now time.Duration) {
	if o.refused != nil && now >= o.retryAt {
		e.failRefused(o)
	}
	if len(o.buf) == 0 || o.busy && now < o.retryAt {
		return
	}
	err := e.tr.Send(transport.Addr{Port: o.port}, o.buf)
	switch {
	case err == nil:
		e.stats.datagramsSent.Add(1)
		e.stats.bytesSent.Add(uint64(len(o.buf)))
		e.m.datagram(o.buf)
		o.buf = o.buf[:0]
		if o.busy {
			o.busy = false
			o.sched.Reset(now)
			for _, s := range o.sessions {
				if s.rec != nil {
					// What waited for the peer's queue left only now.
					s.rec.Restart(now)
				}
				e.markReady(s)
			}
		}
	case errors.Is(err, transport.ErrPeerBusy):
		e.stats.eagain.Add(1)
		if !o.busy {
			o.sched.Reset(now)
		}
		o.busy = true
		wait, _ := o.sched.Next(now)
		o.retryAt = now + wait
		e.busyOuts = append(e.busyOuts, o)
	case errors.Is(err, transport.ErrTooLarge):
		// Our own limit is wrong for this peer; nothing can be salvaged
		// from this datagram, the window will retransmit its frames.
		o.buf = o.buf[:0]
		e.stats.sendErrors.Add(1)
	case errors.Is(err, transport.ErrPeerGone):
		// No socket holds the port: the peer is gone. But what it sent
		// before its socket closed is already in our queue (the ACK of
		// our FIN, say, if it exited as soon as its session ended), so
		// its sessions end only after a grace period in which the reader
		// hands that over; meanwhile nothing is sent there.
		o.buf = o.buf[:0]
		e.stats.sendErrors.Add(1)
		if o.refused == nil {
			o.refused = append([]*Session(nil), o.sessions...)
			o.refusedErr = err
			o.busy = true
			o.retryAt = now + refusedGrace
			e.busyOuts = append(e.busyOuts, o)
		}
	default:
		o.buf = o.buf[:0]
		e.stats.sendErrors.Add(1)
		var kind error
		switch {
		case errors.Is(err, transport.ErrPermission):
			kind = ErrPermission
		case errors.Is(err, transport.ErrClosed):
			kind = ErrClosed // the endpoint is closing
		default:
			kind = ErrTransport
		}
		for _, s := range append([]*Session(nil), o.sessions...) {
			e.fail(s, kind, err)
		}
	}
}

// refusedGrace is how long the sessions of a port that refused a send
// (ECONNREFUSED) live on, so that datagrams the peer sent before it went,
// already in our socket's queue, are processed first. It is a handful of
// turns of the owner loop even on a loaded machine, and negligible next
// to the dead-peer timeout that would otherwise decide.
const refusedGrace = 5 * time.Millisecond

// failRefused ends the sessions that were on o's port when a send to it
// was refused, and lets o send again (a new process may hold the port
// now, with new sessions).
func (e *Endpoint) failRefused(o *outBuf) {
	ss, err := o.refused, o.refusedErr
	o.refused, o.refusedErr = nil, nil
	o.busy = false
	o.sched.Reset(e.now())
	for _, s := range ss {
		e.fail(s, ErrPeerGone, err)
	}
	for _, s := range o.sessions {
		e.markReady(s)
	}
}

// outFor returns the coalescing buffer for port.
func (e *Endpoint) outFor(port uint32) *outBuf {
	o := e.outs[port]
	if o == nil {
		o = &outBuf{
			port: port,
			// Grows to max as traffic needs it: a port that only ever
			// gets a SYNACK (a SYN flood) costs a small buffer.
			buf:   make([]byte, 0, min(e.cfg.MaxDatagram, 1024)),
			max:   e.cfg.MaxDatagram,
			sched: retry.PeerBusySchedule(),
		}
		e.outs[port] = o
	}
	return o
}
