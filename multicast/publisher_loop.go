package multicast

import (
	"errors"
	"fmt"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/repair"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/window"
)

// The publisher's owner goroutine. A turn: handle what arrived (NAKs,
// STATUS), take queued messages as far as flow control allows and
// multicast them, drop silent subscribers and laggards, send repairs
// (multicast what several subscribers miss, unicast the rest), send a
// heartbeat when due, and finish a Close.

// maxRepairDatagrams bounds the unicast repair datagrams sent to one
// subscriber per turn, so that one subscriber's big repair does not starve
// the stream and the others.
const maxRepairDatagrams = 32

// finRepeats is how many HEARTBEATs with FIN a closing publisher sends at
// least (unregistered subscribers do not confirm the end).
const finRepeats = 3

// busyRetry is the pause after a unicast repair met EAGAIN. The kernel
// never tells a sender that a queue drained, and a subscriber with a small
// receive buffer holds one datagram: the pause paces its repairs.
const busyRetry = 100 * time.Microsecond

func (p *Publisher) now() time.Duration { return time.Since(p.start) }

func (p *Publisher) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	rx := p.rd.out
	for {
		now := p.now()
		end, err := p.turn(now)
		if end {
			p.finish(err)
			return
		}
		timer.Reset(max(p.deadline(now)-now, 0))
		select {
		case rb, ok := <-rx:
			if !ok {
				p.finish(fmt.Errorf("%w: %w", ErrTransport, p.rd.err))
				return
			}
			now = p.now()
			p.handle(rb, now)
			for range 63 {
				var more bool
				select {
				case rb, more = <-rx:
				default:
				}
				if !more {
					break
				}
				p.handle(rb, now)
			}
		case <-p.kick:
		case <-timer.C:
		}
	}
}

// deadline returns when the next turn is due without input.
func (p *Publisher) deadline(now time.Duration) time.Duration {
	d := p.hbAt
	if t := p.st.Deadline(); t >= 0 && t < d {
		d = t
	}
	for _, m := range p.st.Members() {
		if !m.Pending.Empty() && m.BusyUntil < d {
			d = max(m.BusyUntil, now)
		}
	}
	return d
}

func (p *Publisher) turn(now time.Duration) (end bool, err error) {
	p.mu.Lock()
	closing, aborted := p.closing, p.aborted
	p.mu.Unlock()
	if aborted {
		for _, m := range p.st.Members() {
			if m.Registered {
				p.sendEvict(m.Port, m.Pos, uint32(EvictAborted))
			}
		}
		return true, ErrClosed
	}
	blocked, err := p.publishQueued(now)
	if err != nil {
		return true, err
	}
	// Flow control holds messages back, or a Close waits for subscribers
	// to catch up: whoever holds the window is timed as a laggard.
	caughtUp := p.allCaughtUp()
	p.st.SetBlocked(now, blocked || (closing && !caughtUp))
	var ev []repair.Eviction
	for _, e := range p.st.Expire(now, ev) {
		p.evict(e.Port, e.Pos, e.Reason, now)
	}
	if err := p.sendRepairs(now); err != nil {
		return true, err
	}
	if closing && !p.finning && !blocked && caughtUp {
		// Every registered subscriber has everything: announce the end
		// until each has confirmed it (STATUS with LEAVE) or timed out.
		// The FIN goes at least finRepeats times, for the unregistered.
		p.finning, p.finLeft = true, finRepeats
		p.hbAt, p.hbWait = now, p.cfg.HeartbeatMin
	}
	if now >= p.hbAt {
		flags := uint16(0)
		if p.finning {
			flags |= wire.FlagFin
		} else if p.blocked() {
			flags |= wire.FlagStatusReq
		}
		if err := p.sendHeartbeat(0, flags); err != nil {
			return true, err
		}
		// Backing off also while blocked: a heartbeat waiting in a small
		// receive queue makes the kernel drop the next data datagram
		// (the queue takes it only empty, or with room for its whole
		// truesize), so asking for STATUS every HeartbeatMin would cause
		// the loss it is meant to get past.
		p.hbWait = min(2*p.hbWait, p.cfg.HeartbeatMax)
		p.hbAt = now + p.hbWait
		if p.finning {
			p.finLeft = max(p.finLeft-1, 0)
		}
	}
	if p.finning && p.finLeft == 0 && p.st.Registered() == 0 {
		return true, nil
	}
	p.histOldest.Store(uint32(p.st.History().Oldest()))
	p.histSlowest.Store(uint32(p.st.Floor()))
	p.histNext.Store(uint32(p.st.History().Next()))
	p.stats.subscribers.Store(int64(p.st.Registered()))
	return false, nil
}

func (p *Publisher) blocked() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue) > 0
}

func (p *Publisher) allCaughtUp() bool {
	next := p.st.History().Next()
	for _, m := range p.st.Members() {
		if m.Registered && m.Pos != next {
			return false
		}
	}
	return true
}

// publishQueued takes queued messages while flow control allows and
// multicasts them, coalesced into datagrams.
func (p *Publisher) publishQueued(now time.Duration) (blocked bool, err error) {
	// Admit under the lock (cheap: the history only records the
	// payloads), send after it, so that Publish never waits on a syscall.
	p.mu.Lock()
	first := p.st.History().Next()
	n := 0
	if !p.opened && p.st.Registered() >= p.cfg.WaitSubscribers {
		p.opened = true
	}
	p.takenOldest = p.takenOldest[:0]
	for p.opened && n < len(p.queue) {
		_, ev, ok := p.st.Push(p.queue[n], p.evicted[:0])
		if !ok {
			break
		}
		clear(ev)
		p.evicted = ev[:0]
		// Each frame carries the oldest MSN retained when it was admitted:
		// a burst longer than the history evicts its own first messages,
		// and a frame must never claim an oldest after its own MSN.
		p.takenOldest = append(p.takenOldest, p.st.History().Oldest())
		n++
	}
	blocked = len(p.queue) > n
	if n == 0 {
		p.mu.Unlock()
		return blocked, nil
	}
	p.taken = append(p.taken[:0], p.queue[:n]...)
	m := copy(p.queue, p.queue[n:])
	clear(p.queue[m:])
	p.queue = p.queue[:m]
	close(p.space)
	p.space = make(chan struct{})
	p.mu.Unlock()
	for i, msg := range p.taken {
		p.taken[i] = nil
		if err := p.appendGroupAt(first.Add(i), msg, 0, p.takenOldest[i]); err != nil {
			return blocked, err
		}
		p.stats.published.Add(1)
		p.stats.bytes.Add(uint64(len(msg)))
	}
	if err := p.flushGroup(); err != nil {
		return blocked, err
	}
	p.hbWait = p.cfg.HeartbeatMin
	p.hbAt = now + p.hbWait
	return blocked, nil
}

// appendGroup adds MDATA msn to the group datagram, sending it first if
// the frame would not fit.
func (p *Publisher) appendGroup(msn window.Seq, msg []byte, flags uint16) error {
	return p.appendGroupAt(msn, msg, flags, p.st.History().Oldest())
}

// appendGroupAt is appendGroup with the frame's oldest MSN given.
func (p *Publisher) appendGroupAt(msn window.Seq, msg []byte, flags uint16, oldest window.Seq) error {
	if len(p.out)+frameOverhead+len(msg)+3 > p.cfg.MaxDatagram && len(p.out) > 0 {
		if err := p.flushGroup(); err != nil {
			return err
		}
	}
	p.out = p.appendMDataAt(p.out, msn, msg, flags, oldest)
	return nil
}

func (p *Publisher) appendMData(dst []byte, msn window.Seq, msg []byte, flags uint16) []byte {
	return p.appendMDataAt(dst, msn, msg, flags, p.st.History().Oldest())
}

func (p *Publisher) appendMDataAt(dst []byte, msn window.Seq, msg []byte, flags uint16, oldest window.Seq) []byte {
	if pad := len(dst) % 4; pad != 0 {
		dst = append(dst, make([]byte, 4-pad)...)
	}
	f := wire.Frame{ID: p.cfg.Channel, Seq: uint32(msn), Ack: p.epoch, Port: p.tr.LocalPort(),
		Type: wire.TypeMData, Flags: flags, Arg: uint32(oldest)}
	out, err := wire.Append(dst, &f, nil, msg)
	if err != nil {
		panic(err) // sizes are checked by Config and Publish
	}
	return out
}

func (p *Publisher) flushGroup() error {
	if len(p.out) == 0 {
		return nil
	}
	err := p.tr.Send(transport.Addr{Group: p.cfg.Group}, p.out)
	p.out = p.out[:0]
	return p.groupErr(err)
}

// groupErr classifies the result of a send to the group.
func (p *Publisher) groupErr(err error) error {
	switch {
	case err == nil, errors.Is(err, transport.ErrPeerGone):
		// ECONNREFUSED: in another network namespace the kernel reports
		// it for a multicast it delivered.
		p.stats.datagrams.Add(1)
		return nil
	case errors.Is(err, transport.ErrPermission):
		return fmt.Errorf("%w: publishing to group %d: %w", ErrPermission, p.cfg.Group, err)
	}
	return fmt.Errorf("%w: %w", ErrTransport, err)
}

// sendHeartbeat sends a heartbeat to port (0: the group).
func (p *Publisher) sendHeartbeat(port uint32, flags uint16) error {
	h := p.st.History()
	f := wire.Frame{ID: p.cfg.Channel, Seq: uint32(h.Next()), Ack: p.epoch, Port: p.tr.LocalPort(),
		Type: wire.TypeHeartbeat, Flags: flags, Arg: uint32(h.Oldest())}
	body := wire.AppendHeartbeat(nil, wire.Heartbeat{Window: uint32(p.cfg.History), MaxMessage: uint32(p.cfg.MaxMessage),
		MaxDatagram: uint32(p.cfg.MaxDatagram), Keepalive: uint32(max(1, p.cfg.SubscriberTimeout.Microseconds()/4))})
	b, err := wire.Append(nil, &f, body, nil)
	if err != nil {
		panic(err)
	}
	if port != 0 {
		_ = p.tr.Send(transport.Addr{Port: port}, b)
		return nil
	}
	p.stats.heartbeats.Add(1)
	return p.groupErr(p.tr.Send(transport.Addr{Group: p.cfg.Group}, b))
}

// evict tells a dropped subscriber and remembers it for 2 ×
// SubscriberTimeout, so that its late reports get the same EVICT instead
// of registering it again (an EVICT can be lost: a full queue refuses it).
func (p *Publisher) evict(port uint32, pos window.Seq, reason uint32, now time.Duration) {
	delete(p.creds, port)
	p.st.Remove(port)
	p.stats.evicted.Add(1)
	p.stats.evictedBy[min(reason, uint32(len(p.stats.evictedBy)-1))].Add(1)
	if len(p.evictedPorts) >= 4096 {
		for k, v := range p.evictedPorts {
			if now-v.at >= 2*p.cfg.SubscriberTimeout {
				delete(p.evictedPorts, k)
			}
		}
	}
	if len(p.evictedPorts) < 4096 {
		p.evictedPorts[port] = evictedPort{at: now, reason: reason}
	}
	p.sendEvict(port, pos, reason)
}

func (p *Publisher) sendEvict(port uint32, pos window.Seq, reason uint32) {
	f := wire.Frame{ID: p.cfg.Channel, Seq: uint32(pos), Ack: p.epoch, Port: p.tr.LocalPort(), Type: wire.TypeEvict, Arg: reason}
	b, err := wire.Append(nil, &f, nil, nil)
	if err == nil {
		_ = p.tr.Send(transport.Addr{Port: port}, b) // best effort: its own timeout tells it too
	}
}

// sendRepairs multicasts what several subscribers miss and unicasts the
// rest, as far as each subscriber's queue takes it.
func (p *Publisher) sendRepairs(now time.Duration) error {
	h := p.st.History()
	p.ranges = p.st.PlanMulticast(now, p.ranges[:0])
	for _, r := range p.ranges {
		for s := r.Start; s.LessEq(r.End); s++ {
			msg, ok := h.Get(s)
			if !ok {
				continue
			}
			if err := p.appendGroup(s, msg, wire.FlagRepair); err != nil {
				return err
			}
			p.stats.repairsMulticast.Add(1)
		}
	}
	if err := p.flushGroup(); err != nil {
		return err
	}
	for _, m := range p.st.Members() {
		if m.Pending.Empty() || now < m.BusyUntil {
			continue
		}
		p.unicastRepairs(m, now)
	}
	// Remove the members whose port vanished (collected first: Remove
	// changes the slice Members returns).
	p.gone = p.gone[:0]
	for _, m := range p.st.Members() {
		if m.BusyUntil == gonePort {
			p.gone = append(p.gone, m.Port)
		}
	}
	for _, port := range p.gone {
		delete(p.creds, port)
		p.st.Remove(port)
	}
	return nil
}

// gonePort marks a member whose unicast met ECONNREFUSED.
const gonePort = time.Duration(-1 << 62)

func (p *Publisher) unicastRepairs(m *repair.Member, now time.Duration) {
	h := p.st.History()
	m.Pending.RemoveBelow(h.Oldest())
	buf := p.uout[:0]
	for sent := 0; sent < maxRepairDatagrams && !m.Pending.Empty(); {
		buf = buf[:0]
		p.sent = p.sent[:0]
		for !m.Pending.Empty() {
			s, _ := m.Pending.Min()
			msg, ok := h.Get(s)
			if !ok {
				m.Pending.RemoveBelow(s + 1)
				continue
			}
			if len(buf) > 0 && len(buf)+frameOverhead+len(msg)+3 > p.cfg.MaxDatagram {
				break
			}
			buf = p.appendMData(buf, s, msg, wire.FlagRepair)
			m.Pending.RemoveBelow(s + 1)
			p.sent = append(p.sent, s)
		}
		if len(buf) == 0 {
			break
		}
		err := p.tr.Send(transport.Addr{Port: m.Port}, buf)
		if err == nil {
			sent++
			p.stats.repairsUnicast.Add(uint64(len(p.sent)))
			continue
		}
		// Put back what did not leave.
		for _, s := range p.sent {
			m.Pending.Add(window.Range{Start: s, End: s})
		}
		switch {
		case errors.Is(err, transport.ErrPeerBusy):
			// Retry after a pause: the kernel never tells a sender that
			// a queue drained.
			p.stats.repairBusy.Add(1)
			m.BusyUntil = now + busyRetry
		case errors.Is(err, transport.ErrPeerGone):
			m.BusyUntil = gonePort
		default:
			m.BusyUntil = now + 10*time.Millisecond
		}
		break
	}
	p.uout = buf
}

// finish ends the publisher: err nil is a clean Close.
func (p *Publisher) finish(err error) {
	_ = p.tr.Close()
	for range p.rd.out {
		// Drain so that the reader can exit.
	}
	p.st.History().Drain(func([]byte) {})
	p.mu.Lock()
	if err == nil {
		p.err = nil
	} else {
		p.err = err
	}
	p.closing = true
	close(p.space)
	p.space = make(chan struct{})
	p.mu.Unlock()
	close(p.done)
}
