package reliable

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cnlink/cnlink/transport"
)

// Shutdown delivers what was queued: 20,000 Sends returned nil, then the
// sender's endpoint shuts down at once, and the receiver gets them all.
func TestShutdownDeliversQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, nil, nil)
		ctx := context.Background()
		const n = 20000
		got := make(chan int)
		go func() {
			k := 0
			for m, err := range p.sb.RecvIter(ctx) {
				if err != nil {
					t.Errorf("receiver: %v", err)
					break
				}
				if err := checkMsg(m, k, 16); err != nil {
					t.Error(err)
					break
				}
				k++
			}
			got <- k
		}()
		for i := range n {
			if err := p.sa.Send(ctx, msg(i, 16)); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.a.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if k := <-got; k != n {
			t.Fatalf("the receiver got %d of %d", k, n)
		}
		if !errors.Is(p.sb.Err(), ErrPeerClosed) {
			t.Fatalf("receiver ended with %v", p.sb.Err())
		}
	})
}

// Shutdown resets a session the application never accepted (RST 5);
// afterwards Dial and Accept return ErrClosed.
func TestShutdownStopsSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newEndpoints(t, nil, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// A session b never accepts.
		pending, err := p.a.Dial(ctx, p.b.LocalPort(), transport.CbID{})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if err := p.b.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown with no open session: %v", err)
		}
		if _, err := p.b.Accept(ctx); !errors.Is(err, ErrClosed) {
			t.Fatalf("Accept after Shutdown: %v, want ErrClosed", err)
		}
		<-pending.Done()
		if !errors.Is(pending.Err(), ErrPeerReset) {
			t.Fatalf("the unaccepted session ended with %v, want ErrPeerReset (RST 5)", pending.Err())
		}
		if _, err := p.b.Dial(ctx, p.a.LocalPort(), transport.CbID{}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Dial after Shutdown: %v, want ErrClosed", err)
		}
	})
}

// A peer that stops reading keeps the window full, so the FIN cannot go;
// Shutdown returns when ctx ends, with an error matching ctx's and
// ErrAborted, and the peer sees the reset.
func TestShutdownContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, &Config{Window: 64, RecvBuffer: 8, CloseTimeout: time.Hour, KeepAlive: time.Hour, DeadPeerTimeout: 2 * time.Hour}, nil)
		sendCtx, stop := context.WithCancel(context.Background())
		go func() {
			for i := 0; sendCtx.Err() == nil; i++ {
				if p.sa.Send(sendCtx, msg(i, 16)) != nil {
					return
				}
			}
		}()
		time.Sleep(time.Second) // the window and the queue fill: nobody reads
		stop()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		err := p.a.Shutdown(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrAborted) {
			t.Fatalf("Shutdown: %v, want context.DeadlineExceeded and ErrAborted", err)
		}
		<-p.sb.ended // its Done waits for a reader that never comes
		if !errors.Is(p.sb.Err(), ErrPeerReset) {
			t.Fatalf("the peer ended with %v, want ErrPeerReset", p.sb.Err())
		}
	})
}

// While Shutdown waits for its sessions, a peer's SYN is refused (RST 3:
// its Dial fails with ErrPeerReset) and the shutting-down endpoint's own
// Dial fails with ErrClosed.
func TestShutdownRefusesWhileDraining(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, &Config{Window: 16, RecvBuffer: 4, KeepAlive: time.Hour, DeadPeerTimeout: 2 * time.Hour}, nil)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for i := range 40 { // more than the peer's window and buffer: the FIN waits
			go p.sa.Send(ctx, msg(i, 8)) // those still blocked fail when the close begins
		}
		synctest.Wait()
		shut := make(chan error, 1)
		go func() { shut <- p.a.Shutdown(ctx) }()
		synctest.Wait()
		tc, err := p.net.Open(0)
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewEndpoint(tc, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Dial(ctx, p.a.LocalPort(), transport.CbID{}); !errors.Is(err, ErrPeerReset) {
			t.Fatalf("Dial to a draining endpoint: %v, want ErrPeerReset (refused)", err)
		}
		if _, err := p.a.Dial(ctx, c.LocalPort(), transport.CbID{}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Dial from a draining endpoint: %v, want ErrClosed", err)
		}
		// The reader drains; the shutdown completes.
		for _, err := range p.sb.RecvIter(ctx) {
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := <-shut; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	})
}
