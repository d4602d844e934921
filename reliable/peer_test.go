package reliable

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/fault"
	"github.com/cnlink/cnlink/transport/memnet"
)

// A peer that falls silent (its port still held, nothing answered) ends
// the session with ErrPeerGone within DeadPeerTimeout.
func TestDeadPeerTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fb *fault.Conn
		wrap := func(tr transport.Transport, i int) transport.Transport {
			c := fault.Wrap(tr, fault.Config{Seed: uint64(i)})
			if i == 1 {
				fb = c
			}
			return c
		}
		const dead = 3 * time.Second
		p := newPair(t, &Config{DeadPeerTimeout: dead, KeepAlive: 500 * time.Millisecond}, wrap)
		// b stops hearing and answering anything.
		fb.SetConfig(fault.Config{Seed: 1, Send: fault.Direction{Loss: 1}, Recv: fault.Direction{Loss: 1}})
		start := time.Now()
		_ = p.sa.Send(context.Background(), []byte("into the void"))
		<-p.sa.Done()
		took := time.Since(start)
		if !errors.Is(p.sa.Err(), ErrPeerGone) {
			t.Fatalf("Err = %v, want ErrPeerGone", p.sa.Err())
		}
		if took > dead+time.Second {
			t.Fatalf("dead peer detected after %v, configured %v", took, dead)
		}
		var se *SessionError
		if !errors.As(p.sa.Err(), &se) || se.Port != p.b.LocalPort() {
			t.Fatalf("Err %v does not name the peer", p.sa.Err())
		}
	})
}

// A peer whose socket is gone (ECONNREFUSED) ends the session at once.
func TestPeerSocketGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, nil, nil)
		p.tb.Close() // the process died: no RST, the port is free
		start := time.Now()
		for i := 0; p.sa.Err() == nil && i < 10; i++ {
			_ = p.sa.Send(context.Background(), []byte("hello?"))
			time.Sleep(100 * time.Millisecond)
		}
		<-p.sa.Done()
		if !errors.Is(p.sa.Err(), ErrPeerGone) || !errors.Is(p.sa.Err(), transport.ErrPeerGone) {
			t.Fatalf("Err = %v, want ErrPeerGone wrapping the transport's", p.sa.Err())
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("took %v", d)
		}
	})
}

// A restarted peer (a new process bound to the same port) cannot receive
// or inject into the old session: the old session ends with ErrPeerReset
// and the new process sees nothing of it.
func TestPeerRestartCannotInject(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, nil, nil)
		ctx := context.Background()
		if err := stream(ctx, p.sa, p.sb, 10, 64); err != nil {
			t.Fatal(err)
		}
		port := p.b.LocalPort()
		p.tb.Close() // b dies without a word
		synctest.Wait()
		tr2, err := p.net.Open(port) // a new process takes the port
		if err != nil {
			t.Fatal(err)
		}
		b2, err := NewEndpoint(tr2, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer b2.Close()
		_ = p.sa.Send(ctx, []byte("for the old b only"))
		<-p.sa.Done()
		if !errors.Is(p.sa.Err(), ErrPeerReset) {
			t.Fatalf("old session Err = %v, want ErrPeerReset", p.sa.Err())
		}
		actx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if s, err := b2.Accept(actx); err == nil {
			t.Fatalf("the new process got a session %v", s.Peer())
		}
		if n := b2.Stats().Rejected["no_session"]; n == 0 {
			t.Fatalf("b2 did not count the stray frame: %+v", b2.Stats())
		}
	})
}

// A squatter on the dead peer's port, or any other port, cannot get a
// frame into an existing session: wrong epochs are dropped and counted,
// and a new handshake from the port opens a *new* session (ending the
// old one) rather than feeding the old one.
func TestSquatterCannotInject(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, nil, nil)
		ctx := context.Background()
		if err := stream(ctx, p.sb, p.sa, 10, 64); err != nil {
			t.Fatal(err)
		}
		bport := p.b.LocalPort()

		// 1. Another port forges a Data frame for the session's channel.
		other, _ := p.net.Open(0)
		defer other.Close()
		forged := forgeData(t, DefaultChannel, 12345, 0xdeadbeef, []byte("forged"))
		if err := other.Send(transport.Addr{Port: p.a.LocalPort()}, forged); err != nil {
			t.Fatal(err)
		}
		// 2. The peer dies; a squatter binds its port at once (a is idle
		// and has not noticed) and guesses.
		synctest.Wait()
		p.tb.Close()
		sq, err := p.net.Open(bport)
		if err != nil {
			t.Fatal(err)
		}
		defer sq.Close()
		for i := range 1000 {
			f := forgeData(t, DefaultChannel, uint32(i), uint32(i)*2654435761, []byte("squat"))
			_ = sq.Send(transport.Addr{Port: p.a.LocalPort()}, f)
			if i%50 == 0 {
				synctest.Wait() // let a drain its queue: no EAGAIN
			}
		}
		synctest.Wait()
		select {
		case m := <-p.sa.Recv():
			t.Fatalf("forged message delivered: %q", m)
		default:
		}
		st := p.a.Stats()
		if st.Rejected["no_session"] == 0 || st.Rejected["epoch"] < 1000 {
			t.Fatalf("forgeries not counted: %+v", st.Rejected)
		}
		// 3. A handshake from the squatter replaces, never joins, the
		// old session.
		syn := forgeFrame(t, &wire.Frame{ID: DefaultChannel, Seq: 7, Ack: 99, Type: wire.TypeSyn},
			wire.AppendSyn(nil, wire.Syn{Epoch: 99, ISN: 7, Window: 64, MaxMessage: 100, MaxDatagram: 4096}))
		_ = sq.Send(transport.Addr{Port: p.a.LocalPort()}, syn)
		synctest.Wait()
		if !errors.Is(p.sa.Err(), ErrPeerReset) {
			t.Fatalf("old session Err = %v, want ErrPeerReset", p.sa.Err())
		}
		s2, err := p.a.Accept(ctx)
		if err != nil || s2 == p.sa {
			t.Fatalf("Accept = %v, %v", s2, err)
		}
		select {
		case m := <-p.sa.Recv():
			t.Fatalf("old session got %q", m)
		default:
		}
	})
}

func forgeData(t *testing.T, ch transport.CbID, seq, epoch uint32, payload []byte) []byte {
	return forgeFrameP(t, &wire.Frame{ID: ch, Seq: seq, Ack: epoch, Type: wire.TypeData}, nil, payload)
}

func forgeFrame(t *testing.T, f *wire.Frame, body []byte) []byte { return forgeFrameP(t, f, body, nil) }

func forgeFrameP(t *testing.T, f *wire.Frame, body, payload []byte) []byte {
	b, err := wire.Append(nil, f, body, payload)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Endpoint.Close unblocks every waiting caller: a Send blocked on a full
// window, a Request, an Accept, and a reader waiting on Done.
func TestCloseUnblocksEveryone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, &Config{Window: 8, SendBuffer: 8, RecvBuffer: 8}, nil)
		ctx := context.Background()
		errs := make(chan error, 4)
		go func() { // b never reads: a's Send blocks eventually
			for {
				if err := p.sa.Send(ctx, make([]byte, 100)); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() { _, err := p.sb.Request(ctx, []byte("q")); errs <- err }()
		go func() { _, err := p.a.Accept(ctx); errs <- err }()
		go func() { <-p.sa.Done(); errs <- p.sa.Err() }()
		synctest.Wait() // everyone is blocked now
		if err := p.a.Close(); err != nil {
			t.Fatal(err)
		}
		if err := p.a.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		timeout := time.After(time.Second)
		for range 4 {
			select {
			case err := <-errs:
				if err == nil {
					t.Fatal("a blocked call returned nil after Close")
				}
			case <-timeout:
				t.Fatal("a caller is still blocked after Close")
			}
		}
	})
}

// A flooding peer cannot grow the receiver's memory past the window: the
// application does not read, so flow control stops the sender, and
// frames beyond the window are dropped.
func TestMemoryBoundedUnderFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const window, recvBuf = 64, 16
		p := newPair(t, &Config{Window: window, RecvBuffer: recvBuf}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		sent := 0
		go func() {
			for p.sa.Send(ctx, make([]byte, 512)) == nil {
				sent++
			}
		}()
		synctest.Wait() // the sender is blocked by flow control
		// Accepted = held by the receiver (window + channel) + queued.
		if sent > window+recvBuf+window {
			t.Fatalf("sender got %d messages accepted past a stalled receiver (backlog %d chan %d queued %d inflight %d)", sent, p.sb.pump.backlog.Load(), len(p.sb.recvCh), p.sa.queued(), p.sa.snd.InFlight())
		}
		// A hostile peer that knows the epoch (worst case: the peer itself
		// misbehaving) floods, in and beyond the window.
		net := p.net
		for i := range 10000 {
			f := forgeData(t, DefaultChannel, uint32(p.sb.rcvCumForTest())+uint32(i), p.sa.myEpoch, make([]byte, 512))
			_ = net.Inject(p.a.LocalPort(), transport.Addr{Port: p.b.LocalPort()}, f)
			if i%100 == 0 {
				synctest.Wait()
			}
		}
		synctest.Wait()
		held := int(p.sb.pump.backlog.Load()) + len(p.sb.recvCh)
		if held > window+recvBuf {
			t.Fatalf("receiver holds %d messages, bound is %d", held, window+recvBuf)
		}
		if p.b.Stats().Rejected["window"] == 0 {
			t.Fatalf("out-of-window flood not counted: %+v", p.b.Stats())
		}
		cancel()
	})
}

var _ = memnet.New
