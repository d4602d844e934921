package reliable

import (
	"sync"
	"sync/atomic"
)

// delivery is one in-order item on its way to the application.
type delivery struct {
	data []byte
	req  *Request
}

// pump hands delivered messages to the application. The owner must never
// block on a slow reader, so it appends in-order items to a queue (items)
// and the application takes them from there in one of two ways:
//
//   - RecvBatch and RecvIter take data straight from the queue (steal), a
//     batch under one lock, woken by avail. No channel operation per
//     message, and no Recv channel at all until someone asks for it.
//   - Recv's channel, made on the first call to Recv (chanMode from then
//     on), is fed by the pump goroutine, one item at a time. Requests
//     always go through the pump to the Requests channel.
//
// Order holds because the pump marks the item it took (sending) until it
// is in a channel, and steal takes nothing while an item is on its way or
// the Recv channel holds one: whatever is older has been received.
//
// backlog (items accepted from the owner and not yet handed over) is
// counted against the flow-control credit, so the queue is bounded by the
// window.
//
// Every message the engine accepted (and so acknowledged to the peer) is
// delivered, whatever ended the session, unless the application abandons
// it (Close, Abort, Endpoint.Close): an acknowledgement is a promise that
// a peer's Flush relies on. After the session ended, Done closes once the
// pump holds nothing the application could not take without it: no
// request, and no more data than a Recv channel would hold (RecvBuffer),
// which then counts as handed over, as a channel's content does.
type pump struct {
	mu      sync.Mutex
	items   []delivery // items[head:] wait, in order
	head    int
	sending bool // the pump goroutine holds the item before items[head]
	// handed: Done closed with data still queued, already counted
	// delivered; steal does not count it again.
	handed  bool
	wake    chan struct{} // cap 1: the pump has work (or Recv was called)
	avail   chan struct{} // cap 1: data was queued (for RecvBatch)
	end     chan struct{} // closed when the session ended: no more items
	abandon chan struct{} // closed by Close/Abort: stop blocking on the app
	// stopped is set once anything was dropped (abandoned, or the endpoint
	// closed): from then on nothing more may reach the application, or it
	// would see a hole in the stream.
	stopped    atomic.Bool
	backlog    atomic.Int64
	wantUpdate atomic.Bool // the owner advertised a small window
	updateDue  atomic.Bool // the owner should send a window update
	endOnce    sync.Once
	abandonOne sync.Once
}

func (s *Session) runPump() {
	defer s.ep.wg.Done()
	p := &s.pump
	ending := false
	// Each of these is closed once: seen, it is set to nil.
	end, abandon, closing := p.end, p.abandon, s.ep.closing
	for {
		p.mu.Lock()
		if p.stopped.Load() && p.head < len(p.items) {
			// Abandoned: drop everything queued, counted.
			n := len(p.items) - p.head
			clear(p.items[p.head:])
			p.items, p.head = p.items[:0], 0
			p.mu.Unlock()
			s.stats.undelivered.Add(uint64(n))
			s.ep.stats.undelivered.Add(uint64(n))
			s.consumed(n)
			continue
		}
		waiting := len(p.items) - p.head
		if waiting == 0 || !s.chanMode.Load() && p.items[p.head].req == nil {
			if ending && s.canEndLocked(waiting) {
				if waiting > 0 && !p.handed {
					// Queued data the application takes after Done,
					// as it would from a channel: handed over now.
					p.handed = true
					bytes := 0
					for _, d := range p.items[p.head:] {
						bytes += len(d.data)
					}
					s.countDelivered(waiting, bytes)
				}
				close(s.doneCh) // under p.mu: see Recv
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
			select {
			case <-p.wake:
			case <-end:
				end, ending = nil, true
			case <-abandon:
				abandon = nil
			case <-closing:
				closing = nil
				p.stopped.Store(true)
			}
			continue
		}
		d := p.items[p.head]
		p.items[p.head] = delivery{}
		p.head++
		p.sending = true
		p.mu.Unlock()
		if p.stopped.Load() || !s.deliver(&d) {
			// Abandoned: drop this and everything after it, counted.
			p.stopped.Store(true)
			s.stats.undelivered.Add(1)
			s.ep.stats.undelivered.Add(1)
		}
		p.mu.Lock()
		p.sending = false
		p.mu.Unlock()
		s.consumed(1)
	}
}

// canEndLocked reports whether Done may close with waiting items queued:
// none, or (queue mode) only data that fits what a Recv channel would
// hold. p.mu is held.
func (s *Session) canEndLocked(waiting int) bool {
	if waiting == 0 {
		return true
	}
	if s.chanMode.Load() || waiting > s.ep.cfg.RecvBuffer || s.pump.stopped.Load() {
		return false
	}
	for _, d := range s.pump.items[s.pump.head:] {
		if d.req != nil {
			return false
		}
	}
	return true
}

// consumed takes n handed-over (or dropped) items off the backlog, and
// asks the owner for a window update when that reopened a small window.
func (s *Session) consumed(n int) {
	p := &s.pump
	if p.backlog.Add(-int64(n)) <= int64(s.ep.cfg.Window/2) && p.wantUpdate.CompareAndSwap(true, false) {
		p.updateDue.Store(true)
		s.ep.markReadyFromApp(s)
	}
}

// steal moves the data items at the head of the queue into dst, in
// order, for RecvBatch. It stops at a request (that goes to Requests) and
// takes nothing while the pump has an item on its way or the Recv channel
// holds one (both are older). It returns how many it took, and whether
// the Recv channel holds something to receive first.
func (s *Session) steal(dst [][]byte) (n int, chanFirst bool) {
	p := &s.pump
	bytes := 0
	p.mu.Lock()
	if s.chanMode.Load() && len(s.recvCh) > 0 {
		p.mu.Unlock()
		return 0, true
	}
	// After an abandon nothing more is handed over, except what Done
	// already handed over (handed): that is the application's, as a
	// channel's content would be.
	if p.sending || p.stopped.Load() && !p.handed {
		p.mu.Unlock()
		return 0, false
	}
	for n < len(dst) && p.head < len(p.items) && p.items[p.head].req == nil {
		dst[n] = p.items[p.head].data
		bytes += len(dst[n])
		p.items[p.head] = delivery{}
		p.head++
		n++
	}
	more := p.head < len(p.items)
	handed := p.handed
	if !more {
		p.items, p.head = p.items[:0], 0
	}
	p.mu.Unlock()
	if n == 0 {
		return 0, false
	}
	if !handed {
		s.countDelivered(n, bytes)
	}
	s.consumed(n)
	if more {
		// A request at the head for the pump, or data for another reader.
		notify(p.wake)
		notify(p.avail)
	} else {
		notify(p.wake) // the pump may wait for the queue to drain (Done)
	}
	return n, false
}

// notify signals a capacity-1 channel without blocking.
func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// deliver sends one item to the application, waiting until the
// application takes it or abandons the session (or the endpoint closes).
func (s *Session) deliver(d *delivery) bool {
	if d.req != nil {
		select {
		case s.reqCh <- d.req:
			s.countDelivered(1, len(d.req.Data))
			return true
		default:
		}
		select {
		case s.reqCh <- d.req:
			s.countDelivered(1, len(d.req.Data))
			return true
		case <-s.pump.abandon:
		case <-s.ep.closing:
		}
		return false
	}
	select {
	case s.recvCh <- d.data:
		s.countDelivered(1, len(d.data))
		return true
	default:
	}
	select {
	case s.recvCh <- d.data:
		s.countDelivered(1, len(d.data))
		return true
	case <-s.pump.abandon:
	case <-s.ep.closing:
	}
	return false
}

// handToPump passes the owner's batch of in-order items to the
// application: straight into its channels while they have room and
// nothing older waits (saving a goroutine hand-off), the rest onto the
// queue.
func (s *Session) handToPump() {
	if len(s.delivering) == 0 {
		return
	}
	p := &s.pump
	i, bytes := 0, 0
	// backlog is decremented after stopped is set: seeing 0 here means
	// seeing stopped too.
	if s.attached && p.backlog.Load() == 0 && !p.stopped.Load() {
		chanMode := s.chanMode.Load()
	fast:
		for ; i < len(s.delivering); i++ {
			d := &s.delivering[i]
			if d.req != nil {
				select {
				case s.reqCh <- d.req:
					bytes += len(d.req.Data)
					continue
				default:
					break fast
				}
			}
			if !chanMode {
				break fast // RecvBatch takes data from the queue
			}
			select {
			case s.recvCh <- d.data:
				bytes += len(d.data)
			default:
				break fast
			}
		}
		if i > 0 {
			s.countDelivered(i, bytes)
		}
	}
	if rest := s.delivering[i:]; len(rest) > 0 {
		p.backlog.Add(int64(len(rest)))
		p.mu.Lock()
		if p.head > 0 && p.head == len(p.items) {
			p.items, p.head = p.items[:0], 0
		}
		p.items = append(p.items, rest...)
		p.mu.Unlock()
		notify(p.avail)
		if s.chanMode.Load() || p.stopped.Load() || hasRequest(rest) {
			notify(p.wake) // the pump feeds the channels, or drops
		}
	}
	clear(s.delivering)
	s.delivering = s.delivering[:0]
}

func hasRequest(ds []delivery) bool {
	for i := range ds {
		if ds[i].req != nil {
			return true
		}
	}
	return false
}

// countDelivered records n messages (bytes in all) handed to the
// application.
func (s *Session) countDelivered(n, bytes int) {
	s.stats.delivered.Add(uint64(n))
	s.ep.m.deliver(n, bytes)
}

func (s *Session) endPump() { s.pump.endOnce.Do(func() { close(s.pump.end) }) }
func (s *Session) abandonPump() {
	s.pump.abandonOne.Do(func() {
		s.pump.stopped.Store(true)
		close(s.pump.abandon)
	})
}
