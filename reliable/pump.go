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

// pump hands delivered messages to the application's channels. It is the
// only goroutine besides the owner that a session has: the owner must
// never block on a slow reader, so it appends to items and the pump does
// the blocking channel sends. backlog (items accepted from the owner and
// not yet in a channel) is counted against the flow-control credit, so the
// pump's memory is bounded by the window.
//
// Every message the engine accepted (and so acknowledged to the peer) is
// delivered, whatever ended the session, unless the application abandons
// it (Close, Abort, Endpoint.Close): an acknowledgement is a promise that
// a peer's Flush relies on. The pump therefore keeps blocking after the
// session ended and closes Done only when it holds nothing more.
type pump struct {
	mu      sync.Mutex
	items   []delivery
	wake    chan struct{} // cap 1
	end     chan struct{} // closed when the session ended: no more items
	abandon chan struct{} // closed by Close/Abort: stop blocking on the app
	// stopped is set once anything was dropped (abandoned, or the endpoint
	// closed): from then on nothing more may reach the channels, or the
	// application would see a hole in the stream.
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
	var local []delivery
	ending := false
	for {
		if !ending {
			select {
			case <-p.wake:
			case <-p.end:
				ending = true
			}
		}
		p.mu.Lock()
		local, p.items = p.items, local[:0]
		p.mu.Unlock()
		for i := range local {
			if p.stopped.Load() || !s.deliver(&local[i]) {
				// Abandoned: drop this and everything after it, counted.
				p.stopped.Store(true)
				s.stats.undelivered.Add(1)
				s.ep.stats.undelivered.Add(1)
			}
			local[i] = delivery{}
			if p.backlog.Add(-1) <= int64(s.ep.cfg.Window/2) && p.wantUpdate.CompareAndSwap(true, false) {
				p.updateDue.Store(true)
				s.ep.markReadyFromApp(s)
			}
		}
		if ending {
			p.mu.Lock()
			empty := len(p.items) == 0
			p.mu.Unlock()
			if empty {
				close(s.doneCh)
				return
			}
		}
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

// handToPump passes the owner's batch of in-order items to the pump.
func (s *Session) handToPump() {
	if len(s.delivering) == 0 {
		return
	}
	p := &s.pump
	// Fast path: when the pump holds nothing, messages go straight into
	// the application's channel while it has room, saving a goroutine
	// hand-off. Order is kept: the pump only ever holds what came later.
	i, bytes := 0, 0
	// backlog is decremented after stopped is set: seeing 0 here means
	// seeing stopped too.
	if s.attached && p.backlog.Load() == 0 && !p.stopped.Load() {
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
		p.items = append(p.items, rest...)
		p.mu.Unlock()
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	clear(s.delivering)
	s.delivering = s.delivering[:0]
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
