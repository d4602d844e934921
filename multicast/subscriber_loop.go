package multicast

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/window"
)

var errEPERM error = syscall.EPERM

// goneGrace is how long a subscriber whose send met ECONNREFUSED keeps
// reading before it ends with ErrPublisherGone (as reliable does).
const goneGrace = 5 * time.Millisecond

type wireRange = wire.Range

// The subscriber's owner goroutine. A turn: hand ready messages to Recv as
// far as it takes them, send the NAK and STATUS that are due, end the
// subscription when it must; then wait for a datagram, room in Recv, a
// timer, or Close.

func (s *Subscriber) now() time.Duration { return time.Since(s.start) }

func (s *Subscriber) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	rx := s.rd.out
	for {
		now := s.now()
		if end, err := s.turn(now); end {
			s.finish(err)
			return
		}
		timer.Reset(max(s.deadline(now)-now, 0))
		var out chan Message
		if s.haveNext {
			out = s.recv
		}
		select {
		case rb, ok := <-rx:
			if !ok {
				s.collectReady()
				s.finish(fmt.Errorf("%w: %w", ErrTransport, s.rd.err))
				return
			}
			now = s.now()
			if err := s.handle(rb, now); err != nil {
				s.finish(err)
				return
			}
			for range 31 {
				var more bool
				select {
				case rb, more = <-rx:
				default:
				}
				if !more {
					break
				}
				if err := s.handle(rb, now); err != nil {
					s.finish(err)
					return
				}
			}
		case out <- s.next:
			s.delivered()
		case <-timer.C:
		case <-s.closeCh:
			s.leave()
			s.finish(ErrClosed)
			return
		}
	}
}

func (s *Subscriber) delivered() {
	s.stats.delivered.Add(1)
	s.stats.bytes.Add(uint64(len(s.next.Data)))
	s.stats.lost.Add(s.next.Lost)
	s.next, s.haveNext = Message{}, false
}

// deliver moves ready messages into Recv without blocking.
func (s *Subscriber) deliver() {
	if s.register && !s.confirmed && !s.deliveredAny && s.fail == nil {
		// Until the publisher confirms our registration (its unicast
		// heartbeat), our start is not ours: it may move to where the
		// publisher registered us. Deliver nothing before that.
		return
	}
	for {
		if !s.haveNext {
			d, ok := s.st.Pop()
			if !ok {
				return
			}
			s.next = Message{MSN: uint32(d.MSN), Data: d.Data, Lost: d.Lost}
			s.haveNext, s.deliveredAny = true, true
		}
		select {
		case s.recv <- s.next:
			s.delivered()
		default:
			return
		}
	}
}

func (s *Subscriber) deadline(now time.Duration) time.Duration {
	d := now + time.Hour
	if s.fail != nil {
		// Ending: only the application taking what is ready matters (a
		// past NAK deadline here would spin the loop).
		return d
	}
	if s.pinned {
		d = s.heard + s.cfg.PublisherTimeout
	}
	if s.goneAt != 0 {
		d = min(d, s.goneAt)
	}
	if t := s.st.NakDeadline(); t >= 0 && t < d {
		d = max(t, s.retryAt)
	}
	if s.pinned && s.register {
		if t := s.statusDue(now); t < d {
			d = t
		}
	}
	return d
}

// statusDue returns when the next STATUS is due.
func (s *Subscriber) statusDue(now time.Duration) time.Duration {
	if !s.st.Started() {
		return now + time.Hour
	}
	pos := uint32(s.st.Position())
	switch {
	case !s.sentOnce, s.statusReq, int(pos-s.statusPos) >= max(1, s.announced/4), s.windowMoved():
		return max(now, s.retryAt)
	case pos != s.statusPos, !s.confirmed:
		// Moving, or the registration not yet confirmed (its answer may
		// have been lost): report at the quick pace.
		return max(s.statusAt+s.cfg.StatusInterval, s.retryAt)
	}
	return max(s.statusAt+s.keepalive, s.retryAt)
}

func (s *Subscriber) turn(now time.Duration) (bool, error) {
	s.deliver()
	if s.st.Started() {
		s.stats.position.Store(uint32(s.st.Position()))
		s.stats.known.Store(uint32(s.st.Known()))
	}
	if s.goneAt != 0 && now >= s.goneAt && s.fail == nil {
		s.fail = fmt.Errorf("%w: port %d has no socket", ErrPublisherGone, s.pubPort)
	}
	if s.fail != nil {
		// End now (Done, Err); what is in order before the end still
		// reaches Recv (finish hands it on), so nothing the subscriber
		// holds in order is dropped, and a stalled application does not
		// hold up the end.
		s.collectReady()
		return true, s.endError()
	}
	if s.fin && s.st.Started() && uint32(s.st.Position()) == s.finAt && !s.haveNext {
		// Everything delivered: confirm the end (the publisher waits for
		// registered subscribers' LEAVE before it goes).
		s.leave()
		if n := s.st.PendingLost(); n > 0 {
			// Lost at the tail: no message is left to carry Message.Lost.
			s.stats.lost.Add(n)
			return true, &LostError{First: s.finAt - uint32(n), Resume: s.finAt, Count: n}
		}
		return true, nil
	}
	if s.pinned && now-s.heard >= s.cfg.PublisherTimeout {
		s.collectReady() // what is in order is still handed on
		return true, fmt.Errorf("%w: nothing from port %d for %v", ErrPublisherGone, s.pubPort, s.cfg.PublisherTimeout)
	}
	if now < s.retryAt {
		return false, nil
	}
	if n, ok := s.st.TakeNak(now, wire.MaxRanges); ok {
		if err := s.sendNak(n.Ranges, n.Tail, n.TailStart); err != nil {
			return true, err
		}
	}
	if s.pinned && s.register && s.statusDue(now) <= now {
		sent, err := s.sendStatus(0)
		if err != nil {
			return true, err
		}
		if sent {
			s.statusAt, s.statusReq, s.sentOnce = now, false, true
		}
	}
	return false, nil
}

func (s *Subscriber) sendNak(rs []window.Range, tail bool, tailStart window.Seq) error {
	s.wr = s.wr[:0]
	for _, r := range rs {
		s.wr = append(s.wr, wire.Range{Start: uint32(r.Start), End: uint32(r.End)})
	}
	f := wire.Frame{ID: s.cfg.Channel, Ack: s.epoch + 1, Port: s.tr.LocalPort(), Type: wire.TypeNak}
	if len(s.wr) > 0 {
		f.Seq = s.wr[0].Start
	} else {
		f.Seq = uint32(tailStart)
	}
	if tail {
		f.Flags, f.Arg = wire.FlagTail, uint32(tailStart)
	}
	b, err := wire.Append(s.out[:0], &f, wire.AppendNak(nil, s.wr), nil)
	if err != nil {
		panic(err)
	}
	s.out = b
	sent, err := s.send(b)
	if sent {
		s.stats.naks.Add(1)
	}
	return err
}

func (s *Subscriber) sendStatus(flags uint16) (sent bool, err error) {
	if !s.confirmed && flags&wire.FlagLeave == 0 {
		flags |= wire.FlagJoin // until the publisher answers it
	}
	f := wire.Frame{ID: s.cfg.Channel, Seq: uint32(s.st.Position()), Ack: s.epoch + 1, Port: s.tr.LocalPort(),
		Type: wire.TypeStatus, Flags: flags, Arg: uint32(s.window())}
	b, err := wire.Append(s.out[:0], &f, nil, nil)
	if err != nil {
		panic(err)
	}
	s.out = b
	if sent, err = s.send(b); !sent {
		return false, err
	}
	s.statusPos = f.Seq
	s.announced = int(f.Arg)
	s.stats.statuses.Add(1)
	s.stats.registered.Store(s.register)
	return true, nil
}

// send unicasts to the publisher. EAGAIN delays the next send; EPERM
// makes this an unprivileged subscriber (loss reported, not repaired);
// ECONNREFUSED means the publisher is gone.
func (s *Subscriber) send(b []byte) (sent bool, err error) {
	err = s.tr.Send(transport.Addr{Port: s.pubPort}, b)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, transport.ErrPeerBusy):
		s.stats.sendBusy.Add(1)
		s.retryAt = s.now() + time.Millisecond
		return false, nil
	case errors.Is(err, transport.ErrPermission), errors.Is(err, errEPERM):
		s.register = false
		s.st.SetNoRepair()
		s.stats.unprivileged.Store(true)
		s.stats.registered.Store(false)
		return false, nil
	case errors.Is(err, transport.ErrPeerGone):
		// No socket on the publisher's port. Its last datagrams (a FIN)
		// may still wait in our queue: read them for a moment first.
		if s.goneAt == 0 {
			s.goneAt = s.now() + goneGrace
		}
		s.retryAt = s.goneAt // nothing more to send there
		return false, nil
	}
	return false, fmt.Errorf("%w: %w", ErrTransport, err)
}

// window is what this subscriber announces: its reorder buffer, or less if
// its socket's receive queue holds less.
func (s *Subscriber) window() int {
	if s.rcvbuf <= 0 {
		return s.cfg.Window
	}
	// Full datagrams of frames of the average size: how many the queue
	// takes, times the frames in each.
	dg := s.pubMaxDatagram
	perDatagram := max(1, dg/int(s.avgFrame))
	// Not more: the queue is drained by a goroutine that 16 subscribers
	// on two cores do not schedule at once, and one datagram too many
	// (measured: +1 to +15) turns stop-and-wait into overruns and repair
	// at a tenth of the rate.
	return max(1, min(s.cfg.Window, max(1, s.rcvbuf/transport.Truesize(dg, true))*perDatagram))
}

// windowMoved reports whether the announced window is off by a quarter.
func (s *Subscriber) windowMoved() bool {
	w := s.window()
	return 4*abs(w-s.announced) > s.announced
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// leave tells the publisher we go, if it waits for us.
func (s *Subscriber) leave() {
	if s.pinned && s.register && s.sentOnce {
		_, _ = s.sendStatus(wire.FlagLeave)
	}
}

// collectReady takes every message ready in order for finish to hand on.
func (s *Subscriber) collectReady() {
	if s.haveNext {
		s.tail = append(s.tail, s.next)
		s.next, s.haveNext = Message{}, false
	}
	for {
		d, ok := s.st.Pop()
		if !ok {
			return
		}
		s.tail = append(s.tail, Message{MSN: uint32(d.MSN), Data: d.Data, Lost: d.Lost})
	}
}

// finish ends the subscription: Err and Done at once; Recv is closed after
// the messages collectReady kept, which a goroutine hands on as the
// application takes them (Close abandons them).
func (s *Subscriber) finish(err error) {
	_ = s.tr.Close()
	for rb := range s.rd.out {
		s.rd.put(rb)
	}
	s.st.Drain(func([]byte) {})
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
	if len(s.tail) == 0 || errors.Is(err, ErrClosed) {
		close(s.recv)
	} else {
		go s.handOn(s.tail)
	}
	s.tail = nil
	close(s.done)
}

func (s *Subscriber) handOn(ms []Message) {
	defer close(s.recv)
	for _, m := range ms {
		select {
		case s.recv <- m:
			s.stats.delivered.Add(1)
			s.stats.bytes.Add(uint64(len(m.Data)))
			s.stats.lost.Add(m.Lost)
		case <-s.closeCh:
			return
		}
	}
}

// handle processes one datagram with the checks of PROTOCOL.md §16.8.2
// in their order. A non-nil error ends the subscription.
func (s *Subscriber) handle(rb *rxBuf, now time.Duration) error {
	defer s.rd.put(rb)
	pk := &rb.p
	switch {
	case pk.Overrun:
		s.stats.overruns.Add(1)
		s.st.OnOverrun(now)
		return nil
	case pk.Truncated:
		s.rej.add(rejTruncated)
		return nil
	case pk.Group != 0 && pk.Group != s.cfg.Group:
		s.rej.add(rejMulticast)
		return nil
	case pk.From == 0 || (s.cfg.Publisher != 0 && pk.From != s.cfg.Publisher):
		s.rej.add(rejPublisher)
		return nil
	case s.cfg.AcceptPublisher != nil && !s.cfg.AcceptPublisher(pk.From, pk.Creds):
		s.rej.add(rejCredentials)
		return nil
	}
	var r wire.Reader
	r.Reset(pk.Data)
	// A slab for the datagram's messages, allocated when the first one
	// needs it (at most the datagram's size).
	s.slab, s.slabNeed = nil, len(pk.Data)
	for r.Next() {
		f, err := r.Frame()
		switch {
		case errors.Is(err, wire.ErrChecksum):
			s.rej.add(rejChecksum)
		case err != nil:
			s.rej.add(rejMalformed)
		case f.ID != s.cfg.Channel:
			s.rej.add(rejNoStream)
		default:
			if err := s.frame(pk, f, now); err != nil {
				// The end (EVICT, a restart, another process on the
				// publisher's port): what is in order is still handed
				// over by turn before it ends.
				if s.fail == nil {
					s.fail = err
				}
				return nil
			}
			if f.Header.Type == wire.TypeMData {
				const a = 1.0 / 64
				s.avgFrame += a * (float64(frameOverhead+(len(f.Body)+3)&^3) - s.avgFrame)
			}
		}
	}
	if r.Err() != nil {
		s.rej.add(rejMalformed)
	}
	s.checkLoss()
	return nil
}

// frame applies checks 8 to 19 of §16.8.2.
func (s *Subscriber) frame(pk *transport.Packet, f *wire.Parsed, now time.Duration) error {
	t := f.Header.Type
	switch {
	case t != wire.TypeMData && t != wire.TypeHeartbeat && t != wire.TypeEvict:
		s.rej.add(rejMalformed)
		return nil
	case t == wire.TypeEvict && pk.Group != 0:
		s.rej.add(rejMulticast)
		return nil
	case s.pinned && pk.From != s.pubPort:
		s.rej.add(rejPublisher)
		return nil
	}
	if t != wire.TypeEvict {
		if t == wire.TypeHeartbeat {
			if h, err := wire.ParseHeartbeat(f.Body); err != nil || h.Window == 0 || h.Keepalive == 0 {
				s.rej.add(rejMalformed)
				return nil
			}
		}
		if window.Seq(f.Seq).Less(window.Seq(f.Header.Arg)) {
			// The oldest retained MSN after the MSN itself (or after N).
			s.rej.add(rejMalformed)
			return nil
		}
	}
	if !s.pinned {
		// The first frame of a stream pins its publisher: not an EVICT,
		// not a repair meant for others.
		if t == wire.TypeEvict || f.Header.Flags&wire.FlagRepair != 0 {
			s.rej.add(rejState)
			return nil
		}
		s.pinned, s.pubPort, s.pubCreds, s.epoch = true, pk.From, pk.Creds, f.Ack
		s.mu.Lock()
		s.pubPortA, s.epochA = s.pubPort, s.epoch
		s.mu.Unlock()
	}
	if pk.Creds != s.pubCreds {
		// Another process holds the publisher's port: the publisher is gone.
		s.rej.add(rejCredentialsChanged)
		return fmt.Errorf("%w: port %d changed hands (credentials pid %d uid %d, were pid %d uid %d)",
			ErrPublisherGone, s.pubPort, pk.Creds.PID, pk.Creds.UID, s.pubCreds.PID, s.pubCreds.UID)
	}
	if f.Ack != s.epoch {
		s.rej.add(rejEpoch)
		if t == wire.TypeEvict || s.fin {
			// After the FIN the old stream is whole: a new one on the
			// same port does not take it away.
			return nil
		}
		return fmt.Errorf("%w: port %d changed epoch %d -> %d", ErrPublisherRestarted, s.pubPort, s.epoch, f.Ack)
	}
	s.heard = now
	oldest := window.Seq(f.Header.Arg)
	if !s.st.Started() && t != wire.TypeEvict {
		first := window.Seq(f.Seq)
		if s.cfg.FromOldest {
			first = oldest
		}
		s.st.Start(first)
	}
	switch t {
	case wire.TypeEvict:
		return &EvictedError{Reason: EvictReason(f.Header.Arg), Position: uint32(s.st.Position()), Newest: uint32(s.st.Known())}
	case wire.TypeHeartbeat:
		s.st.OnHeartbeat(window.Seq(f.Seq), oldest, now)
		h, _ := wire.ParseHeartbeat(f.Body) // checked above
		if h.MaxDatagram >= minDatagram && h.MaxDatagram <= MaxDatagramLimit {
			s.pubMaxDatagram = int(h.MaxDatagram)
		}
		s.keepalive = min(s.cfg.KeepaliveInterval, time.Duration(h.Keepalive)*time.Microsecond)
		if f.Header.Flags&wire.FlagFin != 0 {
			s.fin, s.finAt = true, f.Seq
		}
		if f.Header.Flags&wire.FlagStatusReq != 0 {
			s.statusReq = true
		}
		if pk.Group == 0 && !s.confirmed && s.sentOnce {
			// A unicast heartbeat answers our registration. The publisher
			// registered us no lower than its oldest message: if our start
			// is gone, we start there (nothing was delivered yet).
			if !s.deliveredAny && !s.haveNext && s.st.Position().Less(oldest) {
				s.st.Restart(oldest)
			}
			s.confirmed = true
		}
		return nil
	}
	// MDATA.
	if s.fail != nil || (s.fin && !window.Seq(f.Seq).Less(window.Seq(s.finAt))) {
		s.rej.add(rejState)
		return nil
	}
	// One allocation per datagram: the messages are slices of it, each
	// capped so that an append by the application cannot reach the next.
	if len(s.slab) < len(f.Body) {
		s.slab = make([]byte, max(len(f.Body), s.slabNeed))
	}
	data := s.slab[:len(f.Body):len(f.Body)]
	s.slab = s.slab[len(f.Body):]
	copy(data, f.Body)
	switch s.st.OnData(window.Seq(f.Seq), oldest, data, now) {
	case window.Accepted:
		s.stats.received.Add(1)
		if f.Header.Flags&wire.FlagRepair != 0 {
			s.stats.repaired.Add(1)
		}
	case window.Duplicate:
		s.stats.duplicates.Add(1)
	case window.OutOfWindow:
		s.stats.outOfWindow.Add(1)
		s.rej.add(rejWindow)
	}
	return nil
}

// endError is s.fail, with an *EvictedError's position set to where
// delivery stops: after the messages in order that finish hands on.
func (s *Subscriber) endError() error {
	if e, ok := s.fail.(*EvictedError); ok {
		e.Position = uint32(s.st.Position())
	}
	return s.fail
}

// checkLoss handles messages gone for good: fail, or skip and report.
func (s *Subscriber) checkLoss() {
	first, n := s.st.Unrepairable()
	if n == 0 || s.fail != nil {
		return
	}
	resume := s.st.Oldest()
	if !s.deliveredAny && !s.haveNext && s.register && !s.confirmed {
		// Nothing delivered yet, and the publisher has not answered our
		// registration: our start went before it knew about us (a late
		// join, or FromOldest). Start again from what it still holds,
		// where it registers us; nothing was promised before that.
		s.st.Restart(resume)
		return
	}
	if s.cfg.OnLoss == Continue || s.stats.unprivileged.Load() {
		s.st.SkipTo(resume) // counted as delivered with Message.Lost
		return
	}
	s.stats.lost.Add(uint64(n))
	s.fail = &LostError{First: uint32(first), Resume: uint32(resume), Count: uint64(n)}
}
