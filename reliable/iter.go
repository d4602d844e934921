package reliable

import (
	"context"
	"errors"
	"iter"
)

// RecvIter returns an iterator over the session's messages, in order, for
// a receive loop in one for statement:
//
//	for msg, err := range s.RecvIter(ctx) {
//		if err != nil {
//			return err // the session failed, or ctx ended
//		}
//		use(msg)
//	}
//	// The peer closed (or we did): every message it sent was seen.
//
// The loop yields every message delivered before the session ended, then
// stops. It ends without an error when the session ended normally: the
// peer closed it (ErrPeerClosed) or this side closed it with Close. On any
// other end (reset, peer gone, abort, protocol violation) the last pair
// carries the session's error, as Err returns it, and no message; when ctx
// ends first, ctx's error. Either way Err gives the reason afterwards.
//
// A peer that sends requests too needs a reader of Requests (RequestsIter
// in another goroutine, say): messages and requests share one stream, so
// an unread request holds back the messages behind it.
//
// Breaking out of the loop leaves the session as it is; the messages not
// yet read stay in Recv.
func (s *Session) RecvIter(ctx context.Context) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		// One message per RecvBatch: what the loop does not take stays
		// with the session when it breaks out.
		var one [1][]byte
		for {
			if _, err := s.RecvBatch(ctx, one[:]); err != nil {
				if ctx.Err() != nil && err == ctx.Err() {
					yield(nil, err)
				} else if err := s.endOfStream(); err != nil {
					yield(nil, err)
				}
				return
			}
			m := one[0]
			one[0] = nil
			if !yield(m, nil) {
				return
			}
		}
	}
}

// RequestsIter is RecvIter for requests: it yields each request in
// order until the session ends, then stops, with the session's error as
// the last pair unless the session ended normally. Answer each with
// Reply; the loop may hand them to other goroutines.
func (s *Session) RequestsIter(ctx context.Context) iter.Seq2[*Request, error] {
	return receiveIter(ctx, s, s.reqCh)
}

// receiveIter yields what ch delivers until s ends (then what is left in
// ch, then the end of the stream) or ctx does.
func receiveIter[T any](ctx context.Context, s *Session, ch <-chan T) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		for {
			select {
			case v := <-ch:
				if !yield(v, nil) {
					return
				}
				continue
			case <-ctx.Done():
				yield(zero, ctx.Err())
				return
			case <-s.doneCh:
			}
			// Done closes only when every item is in the channel: what
			// is there now is the rest.
			for {
				select {
				case v := <-ch:
					if !yield(v, nil) {
						return
					}
					continue
				default:
				}
				break
			}
			if err := s.endOfStream(); err != nil {
				yield(zero, err)
			}
			return
		}
	}
}

// endOfStream is what a receive loop reports when the session has ended:
// nothing for a normal end (the peer's FIN, or our own Close), else the
// session's error.
func (s *Session) endOfStream() error {
	err := s.Err()
	var se *SessionError
	switch {
	case err == nil, errors.Is(err, ErrPeerClosed):
		return nil
	case errors.As(err, &se) && se.Kind == ErrClosed && !errors.Is(err, ErrAborted):
		return nil // Close, not Abort or Endpoint.Close
	}
	return err
}
