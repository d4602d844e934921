package reliable

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// Two sides that stopped reading, each with more queued for the other than
// the other's window holds, close at the same moment. Neither may hang
// until CloseTimeout or be reset: each Close returns nil, or ErrPeerClosed
// when the other side closed before acknowledging all it was sent (a FIN
// is a full close). Every message received is delivered or counted
// undelivered.
func TestSimultaneousCloseWithoutReading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := &Config{Window: 64, RecvBuffer: 16}
		p := newPair(t, cfg, nil)
		ctx := context.Background()
		fill := func(s *Session) {
			for i := 0; ; i++ {
				if err := s.Send(ctx, msg(i, 64)); err != nil {
					if !errors.Is(err, ErrClosed) && !errors.Is(err, ErrPeerClosed) {
						t.Errorf("Send: %v, want ErrClosed (we closed) or ErrPeerClosed (the peer's FIN came first)", err)
					}
					return
				}
			}
		}
		go fill(p.sa)
		go fill(p.sb)
		synctest.Wait() // both windows and queues are full, nobody reads
		errc := make(chan error, 2)
		go func() { errc <- p.sa.Close() }()
		go func() { errc <- p.sb.Close() }()
		start := time.Now()
		for range 2 {
			if err := <-errc; err != nil && !errors.Is(err, ErrPeerClosed) {
				t.Fatalf("Close: %v", err)
			}
		}
		if el := time.Since(start); el > time.Second {
			t.Errorf("closing took %v", el)
		}
		for _, s := range []*Session{p.sa, p.sb} {
			st := s.Stats()
			if st.Received != st.Delivered+st.Undelivered || st.Received == 0 {
				t.Errorf("received %d != delivered %d + undelivered %d", st.Received, st.Delivered, st.Undelivered)
			}
		}
	})
}
