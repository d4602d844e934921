package reliable

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// RecvIter and RequestsIter end by themselves: without an error after a
// graceful close (ours or the peer's), with the session's error after an
// abnormal end, with ctx's error when ctx ends; every message delivered
// before the end is yielded first.
func TestRecvIterEnds(t *testing.T) {
	for _, c := range []struct {
		name    string
		end     func(p *pair)
		wantErr error // nil: the loop ends without an error
	}{
		{"peer closes", func(p *pair) { _ = p.sa.Close() }, nil},
		{"peer aborts", func(p *pair) { p.sa.Abort() }, ErrPeerReset},
		{"we close", func(p *pair) { go p.sb.Close() }, nil},
		{"we abort", func(p *pair) { go p.sb.Abort() }, ErrAborted},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newPair(t, nil, nil)
				ctx := context.Background()
				const n = 50
				for i := range n {
					if err := p.sa.Send(ctx, msg(i, 32)); err != nil {
						t.Fatal(err)
					}
				}
				if err := p.sa.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				got := 0
				var last error
				ended := false
				for m, err := range p.sb.RecvIter(ctx) {
					if err != nil {
						last = err
						continue
					}
					if last != nil {
						t.Fatalf("a message after the error %v", last)
					}
					if err := checkMsg(m, got, 32); err != nil {
						t.Fatal(err)
					}
					got++
					if got == n && !ended {
						ended = true
						c.end(p)
					}
				}
				if c.wantErr == nil && last != nil || c.wantErr != nil && !errors.Is(last, c.wantErr) {
					t.Fatalf("loop ended with %v, want %v", last, c.wantErr)
				}
				if got != n && !errors.Is(c.wantErr, ErrAborted) {
					t.Fatalf("yielded %d of %d", got, n)
				}
				if p.sb.Err() == nil {
					t.Fatal("the loop ended while the session is open")
				}
			})
		})
	}
}

func TestRecvIterContextAndBreak(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, nil, nil)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		for i := range 3 {
			_ = p.sa.Send(ctx, msg(i, 8))
		}
		for m, err := range p.sb.RecvIter(ctx) {
			if err != nil || checkMsg(m, 0, 8) != nil {
				t.Fatalf("%v %v", m, err)
			}
			break // the rest stays in Recv
		}
		if m := <-p.sb.Recv(); checkMsg(m, 1, 8) != nil {
			t.Fatal("the message after a break was lost")
		}
		var last error
		n := 0
		for _, err := range p.sb.RecvIter(ctx) {
			if err != nil {
				last = err
			} else {
				n++
			}
		}
		if n != 1 || !errors.Is(last, context.DeadlineExceeded) {
			t.Fatalf("got %d messages then %v, want 1 then the deadline", n, last)
		}
	})
}

func TestRequestsIter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, nil, nil)
		ctx := context.Background()
		served := make(chan int)
		go func() {
			n := 0
			for r, err := range p.sb.RequestsIter(ctx) {
				if err != nil {
					t.Errorf("RequestsIter: %v", err)
					break
				}
				_ = r.Reply(ctx, append([]byte("re:"), r.Data...))
				n++
			}
			served <- n
		}()
		for i := range 5 {
			rep, err := p.sa.Request(ctx, []byte{byte('a' + i)})
			if err != nil || string(rep) != "re:"+string(rune('a'+i)) {
				t.Fatalf("Request %d: %q %v", i, rep, err)
			}
		}
		if err := p.sa.Close(); err != nil {
			t.Fatal(err)
		}
		if n := <-served; n != 5 {
			t.Fatalf("served %d requests", n)
		}
	})
}
