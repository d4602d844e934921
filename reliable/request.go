package reliable

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/cnlink/cnlink/internal/wire"
)

// ErrAlreadyReplied is returned by a second Request.Reply.
var ErrAlreadyReplied = errors.New("cnlink: request already answered")

// Request is a message the peer sent with Session.Request. It is
// delivered exactly once, so a handler never runs twice for one request,
// even when the request frame was retransmitted.
type Request struct {
	// Data is the request message; the application owns it.
	Data []byte

	s       *Session
	seq     uint32 // cn_msg.seq of the request (its DSN)
	ack     uint32 // cn_msg.ack of the request
	replied atomic.Bool
}

// Reply sends resp as the answer. Following the connector's rule the reply
// frame carries the request's seq and its ack + 1. Reply travels in the
// session's stream (reliable, in order with Sends) and may be called from
// any goroutine, once.
func (r *Request) Reply(ctx context.Context, resp []byte) error {
	if len(resp) > r.s.maxMsg {
		return &MessageSizeError{Size: len(resp), Max: r.s.maxMsg}
	}
	if !r.replied.CompareAndSwap(false, true) {
		return ErrAlreadyReplied
	}
	return r.s.enqueue(ctx, resp, wire.TypeReply, 0, func(m *msgBuf) {
		m.replyTo = r.seq
		m.ackTo = r.ack + 1
	}, nil)
}

// Request sends msg and waits for the peer's Reply. The reply is matched
// by the connector's rule (same seq, ack + 1). A retransmitted request is
// suppressed as a duplicate at the peer, so its handler runs once.
func (s *Session) Request(ctx context.Context, msg []byte) ([]byte, error) {
	if len(msg) > s.maxMsg {
		return nil, &MessageSizeError{Size: len(msg), Max: s.maxMsg}
	}
	ctx, span := s.ep.m.startRequest(ctx, s)
	defer span.End()
	ch := make(chan replyMsg, 1)
	if err := s.enqueue(ctx, msg, wire.TypeData, wire.FlagRequest, nil, ch); err != nil {
		s.ep.m.requestFailed(span, err)
		return nil, err
	}
	select {
	case r := <-ch:
		if r.err != nil {
			s.ep.m.requestFailed(span, r.err)
		}
		return r.data, r.err
	case <-ctx.Done():
		s.ep.runOnOwnerAsync(func() {
			for k, v := range s.replyWait {
				if v == ch {
					delete(s.replyWait, k)
				}
			}
		})
		s.ep.m.requestFailed(span, ctx.Err())
		return nil, ctx.Err()
	}
}
