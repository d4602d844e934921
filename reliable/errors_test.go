package reliable

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cnlink/cnlink/transport"
)

// refusingTransport fails every Send with err once armed.
type refusingTransport struct {
	transport.Transport
	err   error
	armed atomic.Bool
	sends atomic.Int64
}

func (r *refusingTransport) Send(dst transport.Addr, b []byte) error {
	if r.armed.Load() {
		r.sends.Add(1)
		return r.err
	}
	return r.Transport.Send(dst, b)
}

// Regression (issue 9, bug 5): every error matches a documented sentinel.
func TestErrorsMatchTheirSentinels(t *testing.T) {
	t.Run("dial-exists", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := newPair(t, nil, nil)
			_, err := p.a.Dial(context.Background(), p.b.LocalPort(), transport.CbID{})
			var se *SessionError
			if !errors.Is(err, ErrSessionExists) || !errors.As(err, &se) {
				t.Fatalf("second Dial: %v, want ErrSessionExists", err)
			}
		})
	})
	t.Run("accept-disabled", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := newEndpoints(t, &Config{AcceptBacklog: -1}, nil)
			if _, err := p.a.Accept(context.Background()); !errors.Is(err, ErrNotAccepting) {
				t.Fatalf("Accept: %v, want ErrNotAccepting", err)
			}
		})
	})
	t.Run("dial-cancel-and-timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := newEndpoints(t, nil, nil)
			// A socket that never answers: the handshake can only end by
			// the context.
			silent, err := p.net.Open(0)
			if err != nil {
				t.Fatal(err)
			}
			defer silent.Close()
			ctx, cancel := context.WithCancel(context.Background())
			go func() { time.Sleep(time.Millisecond); cancel() }()
			_, err = p.a.Dial(ctx, silent.LocalPort(), transport.CbID{})
			var se *SessionError
			if !errors.Is(err, context.Canceled) || !errors.As(err, &se) {
				t.Fatalf("cancelled Dial: %v (%T), want *SessionError matching context.Canceled", err, err)
			}
			ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
			defer cancel()
			_, err = p.a.Dial(ctx, silent.LocalPort(), transport.CbID{Idx: 9, Val: 9})
			if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &se) {
				t.Fatalf("timed-out Dial: %v, want *SessionError matching ErrTimeout and DeadlineExceeded", err)
			}
		})
	})
	t.Run("close-vs-abort", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := newPair(t, nil, nil)
			if err := p.sa.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := p.sa.Err(); !errors.Is(err, ErrClosed) || errors.Is(err, ErrAborted) {
				t.Fatalf("Err after a graceful Close: %v, want ErrClosed and not ErrAborted", err)
			}
			if err := p.sa.Close(); err != nil {
				t.Fatalf("second Close: %v, want nil again", err)
			}
			sa, sb := dialAccept(t, p.a, p.b)
			sa.Abort()
			if err := sa.Err(); !errors.Is(err, ErrClosed) || !errors.Is(err, ErrAborted) {
				t.Fatalf("Err after Abort: %v, want ErrAborted (and ErrClosed)", err)
			}
			if err := sa.Close(); !errors.Is(err, ErrAborted) {
				t.Fatalf("Close after Abort: %v, want ErrAborted", err)
			}
			<-sb.Done()
			if err := sb.Err(); !errors.Is(err, ErrPeerReset) {
				t.Fatalf("peer of an aborted session: %v, want ErrPeerReset", err)
			}
		})
	})
	t.Run("eperm", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var rt *refusingTransport
			p := newPair(t, nil, func(tr transport.Transport, i int) transport.Transport {
				if i == 0 {
					rt = &refusingTransport{Transport: tr, err: transport.ErrPermission}
					return rt
				}
				return tr
			})
			rt.armed.Store(true)
			err := p.sa.Send(context.Background(), []byte("x"))
			if err == nil {
				<-p.sa.Done()
				err = p.sa.Err()
			}
			if !errors.Is(err, ErrPermission) || errors.Is(err, ErrPeerGone) || !errors.Is(err, transport.ErrPermission) {
				t.Fatalf("EPERM: %v, want ErrPermission (not ErrPeerGone), wrapping transport.ErrPermission", err)
			}
		})
	})
	t.Run("other-send-error", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var rt *refusingTransport
			boom := errors.New("boom")
			p := newPair(t, nil, func(tr transport.Transport, i int) transport.Transport {
				if i == 0 {
					rt = &refusingTransport{Transport: tr, err: boom}
					return rt
				}
				return tr
			})
			rt.armed.Store(true)
			_ = p.sa.Send(context.Background(), []byte("x"))
			<-p.sa.Done()
			if err := p.sa.Err(); !errors.Is(err, ErrTransport) || !errors.Is(err, boom) || errors.Is(err, ErrClosed) {
				t.Fatalf("send error: %v, want ErrTransport wrapping the cause, not ErrClosed", err)
			}
		})
	})
}

// Regression (issue 9, bug 4): a session that fails in the middle of a
// batch stops sending at once: one send error, nothing left in flight.
func TestFailMidBatchStopsSending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rt *refusingTransport
		cfg := &Config{MaxDatagram: 4096, MaxMessage: 1024}
		p := newPair(t, cfg, func(tr transport.Transport, i int) transport.Transport {
			if i == 0 {
				rt = &refusingTransport{Transport: tr, err: transport.ErrPeerGone}
				return rt
			}
			return tr
		})
		batch := make([][]byte, 512)
		for i := range batch {
			batch[i] = msg(i, 1000)
		}
		rt.armed.Store(true)
		// The whole batch is queued at once, so the owner meets the first
		// failing datagram in the middle of moving it into the window.
		_, _ = p.sa.SendBatch(context.Background(), batch)
		<-p.sa.Done()
		synctest.Wait()
		if !errors.Is(p.sa.Err(), ErrPeerGone) {
			t.Fatalf("session error %v, want ErrPeerGone", p.sa.Err())
		}
		if n := rt.sends.Load(); n != 1 {
			t.Errorf("%d sends after the session failed, want the 1 that failed it", n)
		}
		if fl := p.a.m.inflight.Load(); fl != 0 {
			t.Errorf("in-flight gauge %d after the session ended, want 0", fl)
		}
		if se := p.a.Stats().SendErrors; se != 1 {
			t.Errorf("SendErrors %d, want 1", se)
		}
	})
}

// Regression (issue 9, bug 6): Accept does not hand over a session that
// already failed; it does hand over one the peer closed gracefully, with
// its messages.
func TestAcceptSkipsDeadSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newEndpoints(t, nil, nil)
		ctx := context.Background()
		dead, err := p.a.Dial(ctx, p.b.LocalPort(), transport.CbID{Idx: 7, Val: 1})
		if err != nil {
			t.Fatal(err)
		}
		dead.Abort()
		closed, err := p.a.Dial(ctx, p.b.LocalPort(), transport.CbID{Idx: 7, Val: 2})
		if err != nil {
			t.Fatal(err)
		}
		if err := closed.Send(ctx, []byte("last words")); err != nil {
			t.Fatal(err)
		}
		if err := closed.Close(); err != nil {
			t.Fatalf("Close before the peer accepted: %v", err)
		}
		synctest.Wait()
		s, err := p.b.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.Channel().Val != 2 {
			t.Fatalf("Accept returned the aborted session (%v): %v", s.Channel(), s.Err())
		}
		if m := <-s.Recv(); string(m) != "last words" {
			t.Fatalf("got %q", m)
		}
		<-s.Done()
		if !errors.Is(s.Err(), ErrPeerClosed) {
			t.Fatalf("accepted session ended with %v, want ErrPeerClosed", s.Err())
		}
		actx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if s, err := p.b.Accept(actx); err == nil {
			t.Fatalf("Accept returned a second session %v (%v)", s.Channel(), s.Err())
		}
	})
}
