package reliable

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cnlink/cnlink/transport"
)

// One endpoint carries 1,000 sessions (one per channel) to another; each
// streams its own numbered messages, all delivered in order, and the
// single timer heap keeps every session's keepalive going.
func TestThousandSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const sessions, msgs = 1000, 20
		p := newEndpoints(t, &Config{AcceptBacklog: sessions, Window: 32, RecvBuffer: 32}, nil)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		accepted := make(chan *Session, sessions)
		go func() {
			for range sessions {
				s, err := p.b.Accept(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				accepted <- s
			}
		}()
		var dialed []*Session
		for i := range sessions {
			s, err := p.a.Dial(ctx, p.b.LocalPort(), transport.CbID{Idx: 77, Val: uint32(i)})
			if err != nil {
				t.Fatalf("dial %d: %v", i, err)
			}
			dialed = append(dialed, s)
		}
		var wg sync.WaitGroup
		errs := make(chan error, sessions)
		for range sessions {
			r := <-accepted
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range msgs {
					m := <-r.Recv()
					want := fmt.Sprintf("%d/%d", r.Channel().Val, i)
					if string(m) != want {
						errs <- fmt.Errorf("got %q, want %q", m, want)
						return
					}
				}
			}()
		}
		for _, s := range dialed {
			go func() {
				for i := range msgs {
					_ = s.Send(ctx, []byte(fmt.Sprintf("%d/%d", s.Channel().Val, i)))
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		// Idle sessions stay alive through keepalives (no per-session
		// ticker: one timer for all).
		time.Sleep(10 * time.Second)
		for _, s := range dialed {
			if s.Err() != nil {
				t.Fatalf("session ended while idle: %v", s.Err())
			}
		}
	})
}
