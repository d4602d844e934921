package reliable

// Frame-level tests of session opening (PROTOCOL.md §5, semantics
// "Opening"). See frames_harness_test.go for the harness.

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/retry"
	"github.com/cnlink/cnlink/transport"
)

// The dialer retransmits its SYN, byte for byte, on the handshake schedule
// (1 ms doubling to 200 ms, jitter ±10%) until HandshakeTimeout, then gives
// up and falls silent.
func TestFramesHandshakeSynBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, &Config{Window: 16, HandshakeTimeout: time.Second})
		d := tc.startDial(context.Background())
		first := tc.wantFrame("Dial sends a SYN", wire.TypeSyn, hasArg(0), hasFlags(0), hasSynParams(16, 16384, 65536))
		tc.learn(first)
		tc.expect("the SYN carries seq = ISN, ack = epoch", first, wire.TypeSyn, hasSeq(tc.epISN), hasAck(tc.epEpoch))
		if tc.epEpoch == 0 {
			t.Fatal("epoch 0 in the SYN")
		}
		tc.advance(time.Second + time.Millisecond)
		syns := tc.takeFrames()
		cfg := retry.HandshakeConfig()
		nominal, prev := cfg.Initial, first.at
		for i, f := range syns {
			tc.expect("a retransmitted SYN is identical", f, wire.TypeSyn, hasSeq(tc.epISN), hasAck(tc.epEpoch), hasBody(first.Body))
			lo := time.Duration(float64(nominal) * (1 - cfg.Jitter))
			hi := time.Duration(float64(nominal) * (1 + cfg.Jitter))
			if gap := f.at - prev; gap < lo || gap > hi {
				t.Errorf("SYN #%d came %v after the previous one, want %v..%v", i+2, gap, lo, hi)
			}
			prev = f.at
			nominal = min(2*nominal, cfg.Max)
		}
		// 1+2+...+128 ms, then every 200 ms until 1 s: about 11 SYNs.
		if len(syns) < 9 || len(syns) > 13 {
			t.Errorf("%d retransmissions in 1s, want about 11", len(syns))
		}
		_, err := d.result()
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("Dial = %v, want ErrTimeout", err)
		}
		tc.wantIdleFor("no SYN after Dial gave up", 2*time.Second)
	})
}

// Dial's timeout matches both ErrTimeout and context.DeadlineExceeded,
// names the peer, and comes when the governing deadline passes: the ctx's
// when it has one (HandshakeTimeout "bounds Dial when its context has no
// deadline"), HandshakeTimeout otherwise. SYNs go on until then.
func TestFramesHandshakeDialTimeout(t *testing.T) {
	for _, c := range []struct {
		name          string
		hsTimeout     time.Duration
		ctxTimeout    time.Duration // 0: no deadline
		wantReturnsAt time.Duration
	}{
		{"no ctx deadline", 300 * time.Millisecond, 0, 300 * time.Millisecond},
		{"ctx deadline first", 5 * time.Second, 300 * time.Millisecond, 300 * time.Millisecond},
		{"ctx deadline after HandshakeTimeout", 300 * time.Millisecond, 600 * time.Millisecond, 600 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tc := newTestConn(t, &Config{Window: 16, HandshakeTimeout: c.hsTimeout})
				ctx := context.Background()
				if c.ctxTimeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, c.ctxTimeout)
					defer cancel()
				}
				start := tc.now()
				d := tc.startDial(ctx)
				tc.advance(c.wantReturnsAt + time.Millisecond)
				s, err := d.result()
				if s != nil || !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Dial = %v, %v; want an error matching ErrTimeout and context.DeadlineExceeded", s, err)
				}
				var se *SessionError
				if !errors.As(err, &se) || se.Port != tc.peer.LocalPort() {
					t.Errorf("Dial error %v is not a *SessionError naming port %d", err, tc.peer.LocalPort())
				}
				if got := d.at - start; got != c.wantReturnsAt {
					t.Errorf("Dial returned after %v, want %v", got, c.wantReturnsAt)
				}
				// The schedule's nominal cap is 200ms, +10% jitter.
				fs := tc.takeFrames()
				if last := fs[len(fs)-1]; last.at < start+c.wantReturnsAt-220*time.Millisecond {
					t.Errorf("the last SYN went out at %v; want SYNs until about %v", last.at, start+c.wantReturnsAt)
				}
			})
		})
	}
}

// A Dial cancelled in SYN-SENT returns ctx's error wrapped in a
// *SessionError and leaves no session: the SYNs stop, a SYNACK arriving
// late is dropped without an answer (it answers a SYN, so an RST to it
// could not prove the acceptor's epoch), the acceptor learns with RST 2 as
// soon as it sends a PING or DATA, and the port can be dialed again.
func TestFramesHandshakeDialCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		ctx, cancel := context.WithCancel(context.Background())
		d := tc.startDial(ctx)
		tc.learn(tc.wantFrame("Dial sends a SYN", wire.TypeSyn))
		tc.advance(5 * time.Millisecond)
		tc.takeFrames() // retransmissions
		cancel()
		_, err := d.result()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled Dial = %v, want context.Canceled", err)
		}
		var se *SessionError
		if !errors.As(err, &se) {
			t.Errorf("cancelled Dial = %v (%T), want it wrapped in a *SessionError", err, err)
		}
		tc.wantIdleFor("no SYN after the cancel", time.Second)

		noSession := tc.ep.Stats().Rejected["no_session"]
		tc.write(tc.synAck())
		tc.wantIdle("a late SYNACK for the cancelled Dial is not answered")
		if n := tc.ep.Stats().Rejected["no_session"]; n != noSession+1 {
			t.Errorf("late SYNACK: Rejected[no_session] = %d, want %d", n, noSession+1)
		}
		tc.write(tc.ping(Q))
		tc.wantFrame("the acceptor's PING is told the session does not exist", wire.TypeRst, hasSeq(Q), hasAck(P+1), hasReason(wire.RstNoSession))

		oldEpoch := tc.epEpoch
		d2 := tc.startDial(context.Background())
		tc.learn(tc.wantFrame("a new Dial sends a new SYN", wire.TypeSyn))
		if tc.epEpoch == oldEpoch {
			t.Errorf("the new Dial reuses epoch %#x", oldEpoch)
		}
		tc.write(tc.synAck())
		if _, err := d2.result(); err != nil {
			t.Fatalf("Dial after a cancelled one: %v", err)
		}
	})
}

// An acceptor whose SYNACK was lost gets a duplicate SYN (same epoch) and
// answers with the identical SYNACK, before and after the application
// accepted, without opening a second session.
func TestFramesHandshakeDuplicateSyn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		tc.write(tc.syn())
		first := tc.wantFrame("SYN answered", wire.TypeSynAck, hasSeq(Q), hasAck(P+1), hasArg(0), hasFlags(0), hasSynParams(16, 16384, 65536))
		tc.wantPreAcceptAck()
		tc.learn(first)
		tc.write(tc.syn())
		tc.wantFrame("the duplicate SYN gets the same SYNACK", wire.TypeSynAck, hasSeq(Q), hasAck(P+1), hasBody(first.Body))
		tc.wantIdle("one SYNACK per SYN")

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		s, err := tc.ep.Accept(ctx)
		if err != nil {
			t.Fatalf("Accept: %v", err)
		}
		tc.wantFrame("Accept opens the window", wire.TypeAck)
		if s2, err := tc.ep.Accept(ctx); err == nil {
			t.Fatalf("a duplicate SYN opened a second session (%p, %p)", s, s2)
		}
		tc.write(tc.data(Q, "a"))
		tc.wantFrame("ACK", wire.TypeAck, hasCum(Q+1))
		tc.write(tc.syn())
		tc.wantFrame("a SYN retransmitted after data still gets the same SYNACK", wire.TypeSynAck, hasSeq(Q), hasAck(P+1), hasBody(first.Body))
		if s.Err() != nil {
			t.Fatalf("the duplicate SYN ended the session: %v", s.Err())
		}
	})
}

// A SYNACK that does not answer the dialer's SYN (seq is not its ISN, ack
// is not its epoch + 1) or is malformed is ignored: no answer, Dial goes
// on, and the right SYNACK then completes it.
func TestFramesHandshakeSynAckMismatchIgnored(t *testing.T) {
	for _, c := range []struct {
		name string
		bad  func(tc *testConn) tcOut
	}{
		{"seq is not the ISN", func(tc *testConn) tcOut { return tc.synAck().withSeq(tc.epISN + 1) }},
		{"ack is the epoch", func(tc *testConn) tcOut { return tc.synAck().withAck(tc.epEpoch) }},
		{"ack is epoch+2", func(tc *testConn) tcOut { return tc.synAck().withAck(tc.epEpoch + 2) }},
		{"short body", func(tc *testConn) tcOut { o := tc.synAck(); return o.withBody(o.body[:wire.SynLen-1]) }},
		{"epoch 0", func(tc *testConn) tcOut {
			s := tc.peerSyn
			s.Epoch = 0
			return tc.synAck().withBody(wire.AppendSyn(nil, s))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tc := newTestConn(t, nil)
				d := tc.startDial(context.Background())
				tc.learn(tc.wantFrame("Dial sends a SYN", wire.TypeSyn))
				tc.write(c.bad(tc))
				tc.wantIdle("a mismatched SYNACK is not answered")
				if d.returned() {
					t.Fatalf("Dial returned on a mismatched SYNACK: %v", d.err)
				}
				tc.write(tc.synAck())
				if _, err := d.result(); err != nil {
					t.Fatalf("Dial after the right SYNACK: %v", err)
				}
			})
		})
	}
}

// A malformed SYN (epoch 0, ack not the body's epoch, short body) is
// dropped silently and counted; no session opens.
func TestFramesHandshakeBadSynDropped(t *testing.T) {
	for _, c := range []struct {
		name string
		syn  func(tc *testConn) tcOut
	}{
		{"epoch 0", func(tc *testConn) tcOut { tc.peerSyn.Epoch = 0; return tc.syn() }},
		{"ack is not the body's epoch", func(tc *testConn) tcOut { return tc.syn().withAck(tc.peerSyn.Epoch + 1) }},
		{"short body", func(tc *testConn) tcOut { o := tc.syn(); return o.withBody(o.body[:wire.SynLen-1]) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tc := newTestConn(t, nil)
				tc.write(c.syn(tc))
				tc.wantIdle("a malformed SYN is not answered")
				if n := tc.ep.Stats().Rejected["malformed"]; n != 1 {
					t.Errorf("Rejected[malformed] = %d, want 1", n)
				}
				wantNoAccept(t, tc)
			})
		})
	}
}

// A well-formed SYN with unusable limits (window 0, max_message 0, a
// max_datagram that holds no frame) is answered RST 4 and opens nothing.
func TestFramesHandshakeBadParamsRst4(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*wire.Syn)
	}{
		{"window 0", func(s *wire.Syn) { s.Window = 0 }},
		{"max_message 0", func(s *wire.Syn) { s.MaxMessage = 0 }},
		{"max_datagram too small", func(s *wire.Syn) { s.MaxDatagram = 16 }},
		// One byte short of a SYNACK frame (68): the answer could not
		// reach the dialer whole.
		{"max_datagram below a SYNACK", func(s *wire.Syn) { s.MaxDatagram = 67 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tc := newTestConn(t, nil)
				P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
				c.edit(&tc.peerSyn)
				tc.write(tc.syn())
				tc.wantFrame("SYN with bad limits", wire.TypeRst, hasSeq(Q), hasAck(P+1), hasReason(wire.RstBadHandsh), hasFlags(0))
				tc.wantIdle("one RST")
				wantNoAccept(t, tc)
			})
		})
	}
}

// An endpoint that does not accept (AcceptBacklog < 0), or whose backlog
// is full, refuses a SYN with RST 3; once the application accepted, the
// backlog has room again.
func TestFramesHandshakeRefused(t *testing.T) {
	t.Run("not accepting", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tc := newTestConn(t, &Config{Window: 16, AcceptBacklog: -1})
			P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
			tc.write(tc.syn())
			tc.wantFrame("SYN to a non-accepting endpoint", wire.TypeRst, hasSeq(Q), hasAck(P+1), hasReason(wire.RstRefused))
			if n := tc.ep.Stats().Rejected["refused"]; n != 1 {
				t.Errorf("Rejected[refused] = %d, want 1", n)
			}
		})
	})
	t.Run("backlog full", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tc := newTestConn(t, &Config{Window: 16, AcceptBacklog: 1})
			P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
			tc.write(tc.syn())
			tc.wantFrame("the first SYN fills the backlog", wire.TypeSynAck, hasSeq(Q), hasAck(P+1))
			tc.wantPreAcceptAck()
			tc.ch = transport.CbID{Idx: 0x434e4c4b, Val: 2} // another session from the same port
			tc.write(tc.syn())
			tc.wantFrame("a SYN past the backlog", wire.TypeRst, hasSeq(Q), hasAck(P+1), hasReason(wire.RstRefused))
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if _, err := tc.ep.Accept(ctx); err != nil {
				t.Fatalf("Accept: %v", err)
			}
			tc.ch = DefaultChannel
			tc.wantFrame("Accept opens the window", wire.TypeAck)
			tc.ch = transport.CbID{Idx: 0x434e4c4b, Val: 2}
			tc.write(tc.syn())
			tc.wantFrame("room again after Accept", wire.TypeSynAck, hasSeq(Q), hasAck(P+1))
			tc.wantPreAcceptAck()
		})
	})
}

// Simultaneous open: the endpoint dials the peer, whose own SYN crosses
// the endpoint's. The endpoint answers that SYN with a SYNACK carrying its
// own epoch and ISN (as TCP does), Dial succeeds, and the one session
// carries data both ways; a retransmission of the peer's SYN gets the same
// SYNACK. No Accept is involved.
func TestFramesHandshakeSimultaneousOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		d := tc.startDial(context.Background())
		tc.learn(tc.wantFrame("Dial sends a SYN", wire.TypeSyn))
		E, I := tc.epEpoch, tc.epISN
		tc.write(tc.syn())
		sa := tc.wantFrame("the crossing SYN is answered", wire.TypeSynAck, hasSeq(Q), hasAck(P+1), hasSynIdentity(E, I))
		tc.write(tc.synAck())
		s, err := d.result()
		if err != nil {
			t.Fatalf("Dial in a simultaneous open: %v", err)
		}
		tc.write(tc.data(Q, "from the peer"))
		tc.wantFrame("the peer's DATA is acknowledged", wire.TypeAck, hasSeq(Q), hasAck(P+1), hasCum(Q+1), hasSack())
		tc.wantRecv(s, "from the peer")
		if err := s.Send(context.Background(), []byte("from the endpoint")); err != nil {
			t.Fatal(err)
		}
		tc.wantFrame("the endpoint's DATA", wire.TypeData, hasSeq(I), hasAck(E), hasPayload("from the endpoint"))
		tc.write(tc.ackOf(I+1, I+64))
		tc.write(tc.syn())
		tc.wantFrame("the peer's SYN again (our SYNACK lost)", wire.TypeSynAck, hasSeq(Q), hasAck(P+1), hasBody(sa.Body))
		if s.Err() != nil {
			t.Fatalf("session ended: %v", s.Err())
		}
		wantNoAccept(t, tc)
	})
}

// A dialer in SYN-SENT drops DATA and PING for the session it is opening
// without answering (no RST: the peer may be a simultaneous opener), and
// the dropped DATA is not delivered later.
func TestFramesHandshakeSynSentDropsDataAndPing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		d := tc.startDial(context.Background())
		tc.learn(tc.wantFrame("Dial sends a SYN", wire.TypeSyn))
		tc.write(tc.data(Q, "too early"))
		tc.write(tc.ping(Q))
		tc.wantIdle("DATA and PING in SYN-SENT are not answered")
		tc.write(tc.synAck())
		s, err := d.result()
		if err != nil {
			t.Fatal(err)
		}
		tc.wantRecv(s)
		tc.write(tc.data(Q, "first"))
		tc.wantFrame("ACK", wire.TypeAck, hasSeq(Q), hasAck(P+1), hasCum(Q+1))
		tc.wantRecv(s, "first")
	})
}

// A SYN with a new epoch from the port of an open session means the old
// peer is gone: the old session ends with ErrPeerReset and a new one opens.
func TestFramesHandshakeNewEpochReplacesSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		old := tc.acceptSession()
		tc.peerSyn.Epoch, tc.peerSyn.ISN = tcPeerEpoch+1, 1000
		tc.write(tc.syn())
		tc.wantFrame("the new SYN is answered", wire.TypeSynAck, hasSeq(1000), hasAck(tcPeerEpoch+2))
		tc.wantPreAcceptAck()
		if !tc.isDone(old) || !errors.Is(old.Err(), ErrPeerReset) {
			t.Fatalf("old session: Err = %v, want ErrPeerReset", old.Err())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if s, err := tc.ep.Accept(ctx); err != nil || s == old {
			t.Fatalf("Accept = %v, %v; want the new session", s, err)
		}
	})
}

// Accept never returns a session that already failed: one the peer reset
// while it waited in the backlog is skipped.
func TestFramesHandshakeAcceptSkipsResetSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		tc.write(tc.syn())
		tc.learn(tc.wantFrame("SYN answered", wire.TypeSynAck))
		tc.wantPreAcceptAck()
		tc.write(tc.rst(tc.peerSyn.ISN-1, wire.RstAbort))
		tc.wantIdle("an RST is not answered")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if s, err := tc.ep.Accept(ctx); err == nil {
			t.Fatalf("Accept returned a session that was reset in the backlog (Err = %v)", s.Err())
		}
	})
}

// Accept does return a session the peer already closed gracefully: its
// data, then the end.
func TestFramesHandshakeAcceptReturnsPeerClosedSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		tc.write(tc.syn())
		tc.learn(tc.wantFrame("SYN answered", wire.TypeSynAck))
		tc.wantPreAcceptAck()
		tc.write(tc.data(Q, "hello"), tc.fin(Q+1))
		tc.wantFrame("DATA and FIN acknowledged", wire.TypeAck, hasSeq(Q+1), hasAck(P+1), hasCum(Q+2))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s, err := tc.ep.Accept(ctx)
		if err != nil {
			t.Fatalf("Accept of a session closed by the peer: %v", err)
		}
		tc.wantRecv(s, "hello")
		if !tc.isDone(s) || !errors.Is(s.Err(), ErrPeerClosed) {
			t.Fatalf("Err = %v, want ErrPeerClosed", s.Err())
		}
	})
}

// wantNoAccept asserts that no session waits for Accept.
func wantNoAccept(t *testing.T, tc *testConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if s, err := tc.ep.Accept(ctx); err == nil {
		t.Fatalf("Accept returned a session (peer %d, Err %v), want none", s.Peer(), s.Err())
	}
}

// Dial to a (port, channel) that already has a session fails with
// ErrSessionExists and sends nothing.
func TestFramesHandshakeDialExisting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.acceptSession()
		_, err := tc.ep.Dial(context.Background(), tc.peer.LocalPort(), tc.ch)
		if !errors.Is(err, ErrSessionExists) {
			t.Fatalf("Dial = %v, want ErrSessionExists", err)
		}
		var se *SessionError
		if !errors.As(err, &se) || se.Port != tc.peer.LocalPort() {
			t.Errorf("Dial error %v is not a *SessionError naming the port", err)
		}
		tc.wantIdle("no SYN")
		if s.Err() != nil {
			t.Fatalf("the session ended: %v", s.Err())
		}
	})
}

// Once Dial has returned, the SYN is no longer retransmitted, and a
// duplicate SYNACK (an answer to a retransmitted SYN) is ignored.
func TestFramesHandshakeDuplicateSynAck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.dialSession()
		tc.wantIdleFor("no SYN after the handshake (keepalive is 1s)", 500*time.Millisecond)
		tc.write(tc.synAck())
		tc.wantIdle("a duplicate SYNACK is not answered")
		if s.Err() != nil {
			t.Fatalf("session ended: %v", s.Err())
		}
	})
}

// A session in time-wait does not block a new Dial to the same port and
// channel: the new handshake completes and the new session carries data,
// while the old one's epoch no longer gets in.
func TestFramesHandshakeDialDuringTimeWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, &Config{Window: 16, KeepAlive: time.Second})
		old := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		tc.write(tc.fin(Q))
		tc.wantFrame("ACK of the FIN", wire.TypeAck, hasSeq(Q), hasAck(P+1), hasCum(Q+1))
		if !tc.isDone(old) {
			t.Fatal("the old session did not end")
		}
		d := tc.startDial(context.Background())
		tc.learn(tc.wantFrame("a new Dial during time-wait", wire.TypeSyn))
		tc.peerSyn.Epoch, tc.peerSyn.ISN = P+100, 5000
		tc.write(tc.synAck())
		s, err := d.result()
		if err != nil {
			t.Fatalf("Dial during time-wait: %v", err)
		}
		tc.write(tc.data(5000, "new"))
		tc.wantFrame("the new session's DATA", wire.TypeAck, hasSeq(5000), hasAck(P+101), hasCum(5001))
		tc.wantRecv(s, "new")
		tc.write(tc.data(Q+1, "old epoch").withAck(P))
		tc.wantFrame("the old epoch is rejected as an unknown session", wire.TypeRst, hasSeq(Q+1), hasAck(P+1), hasReason(wire.RstNoSession))
		tc.wantIdle("nothing else")
		tc.wantRecv(s)
	})
}

// A SYNACK with unusable limits fails the Dial at once with ErrPeerReset
// and tells the acceptor (whose session is open) with RST 4; a SYNACK
// whose max_datagram is exactly one SYNACK frame is fine.
func TestFramesHandshakeSynAckBadParams(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*wire.Syn)
		ok   bool
	}{
		{"window 0", func(s *wire.Syn) { s.Window = 0 }, false},
		{"max_message 0", func(s *wire.Syn) { s.MaxMessage = 0 }, false},
		{"max_datagram below a SYNACK", func(s *wire.Syn) { s.MaxDatagram = 67 }, false},
		{"max_datagram of one SYNACK", func(s *wire.Syn) { s.MaxDatagram = 68 }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tc := newTestConn(t, nil)
				d := tc.startDial(context.Background())
				tc.learn(tc.wantFrame("Dial sends a SYN", wire.TypeSyn))
				c.edit(&tc.peerSyn)
				tc.write(tc.synAck())
				s, err := d.result()
				if c.ok {
					if err != nil {
						t.Fatalf("Dial: %v", err)
					}
					tc.wantIdle("nothing to say yet")
					_ = s
					return
				}
				if !errors.Is(err, ErrPeerReset) {
					t.Fatalf("Dial: %v, want ErrPeerReset", err)
				}
				tc.wantFrame("RST 4 to the acceptor", wire.TypeRst, hasSeq(tc.epISN), hasAck(tc.peerSyn.Epoch+1), hasReason(wire.RstBadHandsh))
				tc.wantIdle("one RST")
			})
		})
	}
}
