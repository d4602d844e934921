package reliable

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cnlink/cnlink/transport"
)

func TestStreamInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, nil, nil)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := stream(ctx, p.sa, p.sb, 5000, 256); err != nil {
			t.Fatal(err)
		}
		if err := stream(ctx, p.sb, p.sa, 5000, 1000); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRequestReply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, nil, nil)
		ctx := context.Background()
		handled := 0
		go func() {
			for {
				select {
				case r := <-p.sb.Requests():
					handled++
					r.Reply(ctx, append([]byte("re:"), r.Data...))
					if err := r.Reply(ctx, nil); !errors.Is(err, ErrAlreadyReplied) {
						t.Errorf("second Reply: %v", err)
					}
				case <-p.sb.Done():
					return
				}
			}
		}()
		for i := range 100 {
			got, err := p.sa.Request(ctx, msg(i, 32))
			if err != nil {
				t.Fatal(err)
			}
			if err := checkMsg(got[3:], i, 32); err != nil || string(got[:3]) != "re:" {
				t.Fatalf("reply %d: %q %v", i, got, err)
			}
		}
		p.close()
		synctest.Wait()
		if handled != 100 {
			t.Fatalf("handler ran %d times for 100 requests", handled)
		}
	})
}

func TestMessageTooLarge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, &Config{MaxMessage: 1000}, nil)
		err := p.sa.Send(context.Background(), make([]byte, 1001))
		var se *MessageSizeError
		if !errors.Is(err, ErrMessageTooLarge) || !errors.As(err, &se) || se.Max != 1000 {
			t.Fatalf("Send(1001 bytes) = %v", err)
		}
		if err := p.sa.Send(context.Background(), make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		if m := <-p.sb.Recv(); len(m) != 1000 {
			t.Fatalf("got %d bytes", len(m))
		}
	})
}

func TestGracefulClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, nil, nil)
		ctx := context.Background()
		for i := range 300 {
			if err := p.sa.Send(ctx, msg(i, 100)); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.sa.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := p.sa.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if err := p.sa.Send(ctx, []byte("x")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Send after Close: %v", err)
		}
		// The peer gets everything, then the end.
		for i := range 300 {
			m := <-p.sb.Recv()
			if err := checkMsg(m, i, 100); err != nil {
				t.Fatal(err)
			}
		}
		<-p.sb.Done()
		if !errors.Is(p.sb.Err(), ErrPeerClosed) {
			t.Fatalf("peer Err = %v", p.sb.Err())
		}
	})
}

func TestDialTimeoutAndRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newEndpoints(t, &Config{AcceptBacklog: -1, HandshakeTimeout: 2 * time.Second}, nil)
		// b does not accept: refused at once.
		_, err := p.a.Dial(context.Background(), p.b.LocalPort(), transport.CbID{Idx: 9, Val: 9})
		if !errors.Is(err, ErrPeerReset) {
			t.Fatalf("Dial to a non-accepting endpoint: %v", err)
		}
		// Nobody on the port: ErrPeerGone from the transport, or timeout.
		start := time.Now()
		_, err = p.a.Dial(context.Background(), 999999, transport.CbID{})
		if !errors.Is(err, ErrPeerGone) && !errors.Is(err, ErrTimeout) {
			t.Fatalf("Dial to an empty port: %v", err)
		}
		if time.Since(start) > 3*time.Second {
			t.Fatalf("Dial took %v", time.Since(start))
		}
	})
}
