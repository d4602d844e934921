package reliable

import (
	"context"
	"errors"
	"sync"

	"github.com/cnlink/cnlink/internal/wire"
)

// Shutdown closes the endpoint gracefully, as net/http's Server.Shutdown
// does a server. It stops accepting sessions (new SYNs are refused with
// RST 3; sessions the application has not accepted yet are reset with RST
// 5; Accept and Dial return ErrClosed from then on), closes every open
// session as Session.Close does (what is queued is sent, then the FIN),
// waits until each is done or ctx ends, and then closes the endpoint as
// Close does (sessions still open are reset with RST 5).
//
// It returns nil when every session closed cleanly (the peers' engines
// hold every message sent on them). Otherwise it returns the sessions'
// errors, joined; when ctx ended first they match ctx's error too.
// Use it instead of Close when what was sent must arrive:
//
//	defer ep.Shutdown(ctx)
func (e *Endpoint) Shutdown(ctx context.Context) error {
	var open []*Session
	if err := e.runOnOwner(func() { open = e.beginShutdown() }); err != nil {
		return e.Close() // already closed, or its transport failed
	}
	errs := make([]error, len(open))
	var wg sync.WaitGroup
	for i, s := range open {
		wg.Go(func() { errs[i] = s.CloseContext(ctx) })
	}
	wg.Wait()
	err := e.Close()
	return errors.Join(append(errs, err)...)
}

// beginShutdown stops accepting and dialing and returns the sessions the
// application holds and that are open. Owner only.
func (e *Endpoint) beginShutdown() []*Session {
	if !e.draining {
		e.draining = true
		close(e.drainCh)
	}
	now := e.now()
	var open []*Session
	for _, s := range e.sessions {
		switch {
		case s.state == stateSynSent:
			e.fail(s, ErrClosed, errors.New("endpoint shutting down"))
		case s.state != stateEstablished:
		case !s.initiator && !s.taken.Load():
			// Accepted by the protocol, never by the application: nobody
			// will read it. Tell the peer, as Close would.
			e.sendRst(s, wire.RstEndpointGo, now)
			s.abandonPump()
			e.endSession(s, s.errOf(ErrClosed, ErrAborted), false, now)
		default:
			open = append(open, s)
		}
	}
	return open
}
