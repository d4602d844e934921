package reliable

// Frame-level tests of the end of sessions: the peer's FIN, our Close,
// time-wait, RST in each state, Abort and Endpoint.Close (PROTOCOL.md
// §9-10, semantics "Close, FIN, end of session"). See
// frames_harness_test.go for the harness.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
)

// The peer's FIN, even when it arrives first, ends the session only after
// every earlier message: Done then, ErrPeerClosed. The endpoint lingers in
// time-wait for 2 x KeepAlive answering retransmitted DATA, FIN and PING
// with ACK (delivering nothing twice), then forgets the session: RST 2.
func TestFramesClosePeerFin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const keepAlive = 100 * time.Millisecond
		tc := newTestConn(t, &Config{Window: 16, KeepAlive: keepAlive})
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		tc.write(tc.fin(Q + 2))
		tc.wantFrame("the FIN above a hole", wire.TypeAck, hasSeq(Q+2), hasAck(P+1), hasCum(Q), hasSack(wire.Range{Start: Q + 2, End: Q + 2}))
		if tc.isDone(s) {
			t.Fatalf("Done before the messages the FIN follows: %v", s.Err())
		}
		tc.write(tc.data(Q, "a"), tc.data(Q+1, "b"))
		finAt := tc.now()
		tc.wantFrame("everything up to the FIN", wire.TypeAck, hasSeq(Q+1), hasAck(P+1), hasCum(Q+3), hasSack())
		tc.wantRecv(s, "a", "b")
		if !tc.isDone(s) || !errors.Is(s.Err(), ErrPeerClosed) {
			t.Fatalf("Err = %v, want ErrPeerClosed", s.Err())
		}
		var se *SessionError
		if !errors.As(s.Err(), &se) || se.Port != tc.peer.LocalPort() {
			t.Errorf("Err %v is not a *SessionError naming the peer", s.Err())
		}

		tc.write(tc.data(Q+1, "b"))
		tc.wantFrame("time-wait: retransmitted DATA", wire.TypeAck, hasSeq(Q+1), hasAck(P+1), hasCum(Q+3))
		tc.write(tc.fin(Q + 2))
		tc.wantFrame("time-wait: retransmitted FIN", wire.TypeAck, hasSeq(Q+2), hasAck(P+1), hasCum(Q+3))
		tc.wantIdleFor("time-wait sends nothing of its own", 2*keepAlive-10*time.Millisecond-(tc.now()-finAt))
		tc.write(tc.ping(Q + 3))
		tc.wantFrame("time-wait: PING just before the end", wire.TypeAck, hasSeq(Q+3), hasAck(P+1), hasCum(Q+3))
		tc.advance(20 * time.Millisecond)
		tc.write(tc.ping(Q + 3))
		tc.wantFrame("after time-wait the session is unknown", wire.TypeRst, hasSeq(Q+3), hasAck(P+1), hasReason(wire.RstNoSession))
		tc.wantRecv(s)
	})
}

// Nothing the peer sends after its FIN is delivered, whether it comes
// after the FIN or before it (held above a hole).
func TestFramesClosePeerDataAfterFin(t *testing.T) {
	t.Run("after", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tc := newTestConn(t, nil)
			s := tc.acceptSession()
			P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
			tc.write(tc.data(Q, "a"), tc.fin(Q+1))
			tc.wantFrame("ACK of the FIN", wire.TypeAck, hasSeq(Q+1), hasAck(P+1), hasCum(Q+2))
			tc.write(tc.data(Q+2, "after the FIN"))
			tc.wantFrame("answered in time-wait, not taken", wire.TypeAck, hasSeq(Q+2), hasAck(P+1), hasCum(Q+2))
			tc.wantRecv(s, "a")
			if !tc.isDone(s) || !errors.Is(s.Err(), ErrPeerClosed) {
				t.Fatalf("Err = %v, want ErrPeerClosed", s.Err())
			}
		})
	})
	t.Run("held before the FIN", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tc := newTestConn(t, nil)
			s := tc.acceptSession()
			P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
			tc.write(tc.data(Q+2, "after the FIN"))
			tc.wantFrame("held above a hole", wire.TypeAck, hasSeq(Q+2), hasCum(Q))
			tc.write(tc.data(Q, "a"), tc.fin(Q+1))
			tc.wantFrame("ACK of the FIN", wire.TypeAck, hasSeq(Q+1), hasAck(P+1))
			tc.wantRecv(s, "a")
			if !tc.isDone(s) || !errors.Is(s.Err(), ErrPeerClosed) {
				t.Fatalf("Err = %v, want ErrPeerClosed", s.Err())
			}
			if st := s.Stats(); st.Received != 1 || st.Delivered != 1 || st.Undelivered != 0 {
				t.Errorf("Stats Received %d Delivered %d Undelivered %d, want 1 1 0", st.Received, st.Delivered, st.Undelivered)
			}
		})
	})
}

// A FIN that arrives while the application is not reading (RecvBuffer
// small, messages waiting in the engine) loses nothing, even once
// time-wait is long over: every message is delivered when the application
// reads, Done closes only when the last one is in the Recv channel, and
// RecvBatch drains the channel before it reports the end.
func TestFramesClosePeerFinReaderStalled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, recvBuf = 10, 2
		tc := newTestConn(t, &Config{Window: 16, RecvBuffer: recvBuf, KeepAlive: 100 * time.Millisecond})
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		var frames []tcOut
		for i := range n {
			frames = append(frames, tc.data(Q+uint32(i), fmt.Sprint("m", i)))
		}
		tc.write(append(frames, tc.fin(Q+n))...)
		tc.wantFrame("everything acknowledged", wire.TypeAck, hasSeq(Q+n), hasAck(P+1), hasCum(Q+n+1))
		tc.advance(time.Second) // far past time-wait (2 x KeepAlive)
		for i := range n - recvBuf {
			if tc.isDone(s) {
				t.Fatalf("Done after %d of %d messages were handed to Recv (Err %v)", i, n, s.Err())
			}
			if m, ok := tc.recvNow(s); !ok || string(m) != fmt.Sprint("m", i) {
				t.Fatalf("message %d: got %q, %v", i, m, ok)
			}
		}
		if !tc.isDone(s) {
			t.Fatal("Done not closed with the last message in the Recv channel")
		}
		dst := make([][]byte, 4)
		k, err := s.RecvBatch(context.Background(), dst)
		if err != nil || k != recvBuf || string(dst[0]) != fmt.Sprint("m", n-2) || string(dst[1]) != fmt.Sprint("m", n-1) {
			t.Fatalf("RecvBatch after Done = %d %q, %v; want the last %d messages", k, dst[:k], err, recvBuf)
		}
		if k, err := s.RecvBatch(context.Background(), dst); k != 0 || !errors.Is(err, ErrPeerClosed) {
			t.Fatalf("RecvBatch at the end = %d, %v; want 0, ErrPeerClosed", k, err)
		}
		if st := s.Stats(); st.Received != n || st.Delivered != n || st.Undelivered != 0 {
			t.Errorf("Stats Received %d Delivered %d Undelivered %d, want %d %d 0", st.Received, st.Delivered, st.Undelivered, n, n)
		}
	})
}

// Close sends the FIN after every queued message (here held back by the
// peer's window of 2), refuses new Sends, and returns nil once the FIN is
// cumulatively acknowledged.
func TestFramesCloseFinAfterQueuedData(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		tc.peerSyn.Window = 2
		s := tc.acceptSession()
		E, I := tc.epEpoch, tc.epISN
		ctx := context.Background()
		if _, err := s.SendBatch(ctx, [][]byte{[]byte("m0"), []byte("m1"), []byte("m2")}); err != nil {
			t.Fatal(err)
		}
		tc.wantFrame("window of 2", wire.TypeData, hasSeq(I), hasAck(E), hasPayload("m0"))
		tc.wantFrame("window of 2", wire.TypeData, hasSeq(I+1), hasAck(E), hasPayload("m1"))
		c := tc.startClose(s)
		tc.wantIdle("the FIN waits behind m2")
		if err := s.Send(ctx, []byte("late")); !errors.Is(err, ErrClosed) {
			t.Errorf("Send during Close = %v, want ErrClosed", err)
		}
		tc.write(tc.ackOf(I+2, I+2+64))
		tc.wantFrame("m2 first", wire.TypeData, hasSeq(I+2), hasAck(E), hasPayload("m2"), hasFlags(0))
		tc.wantFrame("then the FIN", wire.TypeData, hasSeq(I+3), hasAck(E), hasPayload(""), hasFlags(wire.FlagFin))
		if c.returned() {
			t.Fatalf("Close returned %v before the FIN was acknowledged", c.err)
		}
		tc.write(tc.ackOf(I+4, I+4+64))
		if !c.returned() || c.err != nil {
			t.Fatalf("Close after the FIN's ack: returned %v, err %v; want nil", c.returned(), c.err)
		}
		if !errors.Is(s.Err(), ErrClosed) || errors.Is(s.Err(), ErrAborted) {
			t.Errorf("Err after a graceful Close = %v, want ErrClosed and not ErrAborted", s.Err())
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close = %v, want the first's nil", err)
		}
	})
}

// A SACK covering the FIN above a hole does not complete Close: the hole is
// retransmitted (the FIN is not), and only the cumulative ack covering the
// FIN returns nil.
func TestFramesCloseFinSackedAboveHole(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.acceptSession()
		E, I := tc.epEpoch, tc.epISN
		if _, err := s.SendBatch(context.Background(), [][]byte{[]byte("m0"), []byte("m1")}); err != nil {
			t.Fatal(err)
		}
		tc.wantFrame("DATA", wire.TypeData, hasSeq(I), hasPayload("m0"))
		tc.wantFrame("DATA", wire.TypeData, hasSeq(I+1), hasPayload("m1"))
		c := tc.startClose(s)
		tc.wantFrame("FIN", wire.TypeData, hasSeq(I+2), hasAck(E), hasFlags(wire.FlagFin))
		tc.write(tc.ackOf(I, I+64, wire.Range{Start: I + 1, End: I + 2})) // m0 lost
		if c.returned() {
			t.Fatalf("Close returned %v on a SACK of the FIN above a hole", c.err)
		}
		tc.advance(20 * time.Millisecond)
		repaired := false
		for _, f := range tc.takeFrames() {
			switch {
			case f.Header.Type == wire.TypeData && f.Seq == I:
				tc.expect("the hole retransmitted", f, wire.TypeData, hasSeq(I), hasAck(E), hasPayload("m0"))
				repaired = true
			case f.Header.Type == wire.TypePing:
			default:
				t.Errorf("only m0 may be sent again (or a probe), got %s", tc.describe(f))
			}
		}
		if !repaired {
			t.Fatal("the hole below the SACKed FIN was not retransmitted")
		}
		if c.returned() {
			t.Fatalf("Close returned %v before the cumulative ack", c.err)
		}
		tc.write(tc.ackOf(I+3, I+64))
		if !c.returned() || c.err != nil {
			t.Fatalf("Close after the cumulative ack: returned %v, err %v; want nil", c.returned(), c.err)
		}
	})
}

// After its FIN is acknowledged the closer lingers in time-wait for
// 2 x KeepAlive: the peer's retransmitted DATA and PING get an ACK, not
// RST 2; then the session is forgotten.
func TestFramesCloseCloserTimeWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const keepAlive = 100 * time.Millisecond
		tc := newTestConn(t, &Config{Window: 16, KeepAlive: keepAlive})
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		E, I := tc.epEpoch, tc.epISN
		tc.write(tc.data(Q, "a"))
		tc.wantFrame("ACK", wire.TypeAck, hasCum(Q+1))
		c := tc.startClose(s)
		tc.wantFrame("FIN", wire.TypeData, hasSeq(I), hasAck(E), hasFlags(wire.FlagFin))
		tc.write(tc.ackOf(I+1, I+64))
		if !c.returned() || c.err != nil {
			t.Fatalf("Close: returned %v, err %v; want nil", c.returned(), c.err)
		}
		acked := tc.now()
		tc.write(tc.data(Q, "a"))
		tc.wantFrame("time-wait: the peer's retransmitted DATA", wire.TypeAck, hasSeq(Q), hasAck(P+1), hasCum(Q+1))
		tc.write(tc.ping(Q + 1))
		tc.wantFrame("time-wait: the peer's PING", wire.TypeAck, hasSeq(Q+1), hasAck(P+1), hasCum(Q+1))
		tc.advance(2*keepAlive + time.Millisecond - (tc.now() - acked))
		tc.write(tc.ping(Q + 1))
		tc.wantFrame("after time-wait", wire.TypeRst, hasSeq(Q+1), hasAck(P+1), hasReason(wire.RstNoSession))
	})
}

// A Close the peer never acknowledges ends after CloseTimeout with RST 1
// (seq = the last DSN received, ack = P + 1) and ErrTimeout; the FIN is
// retransmitted meanwhile.
func TestFramesCloseTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const closeTimeout = 50 * time.Millisecond
		tc := newTestConn(t, &Config{Window: 16, CloseTimeout: closeTimeout})
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		E, I := tc.epEpoch, tc.epISN
		c := tc.startClose(s)
		fin := tc.wantFrame("FIN", wire.TypeData, hasSeq(I), hasAck(E), hasFlags(wire.FlagFin))
		tc.advance(closeTimeout + 10*time.Millisecond)
		fs := tc.takeFrames()
		if len(fs) == 0 {
			t.Fatal("nothing sent after the FIN")
		}
		for _, f := range fs[:len(fs)-1] {
			if f.Header.Type != wire.TypePing && !(f.Header.Type == wire.TypeData && f.Seq == I && f.Header.Flags == wire.FlagFin) {
				t.Errorf("want only probes and FIN retransmissions before the RST, got %s", tc.describe(f))
			}
		}
		rst := fs[len(fs)-1]
		tc.expect("the close timed out", rst, wire.TypeRst, hasSeq(Q-1), hasAck(P+1), hasReason(wire.RstAbort))
		if d := rst.at - fin.at; d != closeTimeout {
			t.Errorf("RST %v after the FIN, want CloseTimeout %v", d, closeTimeout)
		}
		if !c.returned() || !errors.Is(c.err, ErrTimeout) {
			t.Fatalf("Close = %v (returned %v), want ErrTimeout", c.err, c.returned())
		}
		var se *SessionError
		if !errors.As(c.err, &se) {
			t.Errorf("Close error %v is not a *SessionError", c.err)
		}
		if err := s.Close(); !errors.Is(err, ErrTimeout) {
			t.Errorf("second Close = %v, want the first's ErrTimeout", err)
		}
		tc.write(tc.ping(Q))
		tc.wantFrame("the session is gone", wire.TypeRst, hasSeq(Q), hasAck(P+1), hasReason(wire.RstNoSession))
	})
}

// RST with the right ack (E + 1) fails a Dial in SYN-SENT with
// ErrPeerReset; with a wrong ack it is ignored.
func TestFramesCloseRstSynSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		d := tc.startDial(context.Background())
		tc.learn(tc.wantFrame("SYN", wire.TypeSyn))
		E, I := tc.epEpoch, tc.epISN
		for _, ack := range []uint32{E, E + 2, tcPeerEpoch + 1} {
			tc.write(tc.rst(I, wire.RstRefused).withAck(ack))
		}
		tc.wantIdle("an RST is never answered")
		if d.returned() {
			t.Fatalf("Dial returned on an RST with a wrong ack: %v", d.err)
		}
		tc.write(tc.rst(I, wire.RstRefused))
		s, err := d.result()
		if s != nil || !errors.Is(err, ErrPeerReset) {
			t.Fatalf("Dial = %v, %v; want ErrPeerReset", s, err)
		}
		tc.wantIdleFor("no SYN after the reset", 500*time.Millisecond)
	})
}

// RST in an established session: with the right ack the session ends
// with ErrPeerReset, silently, and is forgotten; with a wrong ack it is
// ignored.
func TestFramesCloseRstEstablished(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		E := tc.epEpoch
		for _, ack := range []uint32{E, E + 2, P + 1} {
			tc.write(tc.rst(Q-1, wire.RstAbort).withAck(ack))
		}
		tc.wantIdle("an RST is never answered")
		if s.Err() != nil {
			t.Fatalf("an RST with a wrong ack ended the session: %v", s.Err())
		}
		tc.write(tc.rst(Q-1, wire.RstAbort))
		tc.wantIdle("an RST is never answered")
		if !tc.isDone(s) || !errors.Is(s.Err(), ErrPeerReset) {
			t.Fatalf("Err = %v, want ErrPeerReset", s.Err())
		}
		tc.write(tc.ping(Q))
		tc.wantFrame("the session is gone", wire.TypeRst, hasSeq(Q), hasAck(P+1), hasReason(wire.RstNoSession))
	})
}

// RST in time-wait (after the peer's FIN) is ignored: the session keeps
// its ErrPeerClosed and goes on answering retransmissions.
func TestFramesCloseRstTimeWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		tc.write(tc.fin(Q))
		tc.wantFrame("ACK of the FIN", wire.TypeAck, hasCum(Q+1))
		tc.write(tc.rst(Q, wire.RstAbort))
		tc.wantIdle("an RST is never answered")
		if !errors.Is(s.Err(), ErrPeerClosed) {
			t.Fatalf("Err = %v, want ErrPeerClosed still", s.Err())
		}
		tc.write(tc.ping(Q + 1))
		tc.wantFrame("still in time-wait", wire.TypeAck, hasSeq(Q+1), hasAck(P+1), hasCum(Q+1))
	})
}

// Abort sends RST 1 (seq = the last DSN received, ack = P + 1), ends the
// session with ErrAborted (which matches ErrClosed) and abandons what the
// application has not taken (counted Undelivered). For 2 x KeepAlive the
// session's late frames, a late SYN included, get RST 1 again (the first
// may have been lost); then it is forgotten, and they get RST 2.
func TestFramesCloseAbort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, &Config{Window: 16, RecvBuffer: 1})
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		tc.write(tc.data(Q, "a"))
		tc.wantFrame("ACK", wire.TypeAck, hasCum(Q+1))
		tc.write(tc.data(Q+1, "b"), tc.data(Q+2, "c"))
		tc.wantFrame("ACK", wire.TypeAck, hasCum(Q+3))
		s.Abort()
		tc.wantFrame("Abort", wire.TypeRst, hasSeq(Q+2), hasAck(P+1), hasReason(wire.RstAbort), hasFlags(0))
		if !errors.Is(s.Err(), ErrAborted) || !errors.Is(s.Err(), ErrClosed) {
			t.Errorf("Err after Abort = %v, want ErrAborted and ErrClosed", s.Err())
		}
		// The application never read (and never made a Recv channel):
		// all three are abandoned.
		if st := s.Stats(); st.Received != 3 || st.Delivered != 0 || st.Undelivered != 3 {
			t.Errorf("Stats Received %d Delivered %d Undelivered %d, want 3 0 3", st.Received, st.Delivered, st.Undelivered)
		}
		tc.write(tc.ping(Q + 3))
		tc.wantFrame("a late PING learns of the abort again", wire.TypeRst, hasSeq(Q+3), hasAck(P+1), hasReason(wire.RstAbort))
		tc.write(tc.syn())
		tc.wantFrame("a late SYN opens nothing, and learns of the abort", wire.TypeRst, hasSeq(Q), hasAck(P+1), hasReason(wire.RstAbort))
		tc.advance(2 * time.Second) // past 2 x KeepAlive
		tc.write(tc.ping(Q + 3))
		tc.wantFrame("the session is gone", wire.TypeRst, hasSeq(Q+3), hasAck(P+1), hasReason(wire.RstNoSession))
	})
}

// Endpoint.Close sends RST 5 to every open session's peer and ends the
// sessions with ErrClosed.
func TestFramesCloseEndpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		if err := tc.ep.Close(); err != nil {
			t.Fatal(err)
		}
		tc.wantFrame("Endpoint.Close", wire.TypeRst, hasSeq(Q-1), hasAck(P+1), hasReason(wire.RstEndpointGo))
		if !tc.isDone(s) || !errors.Is(s.Err(), ErrClosed) {
			t.Errorf("Err = %v, want ErrClosed", s.Err())
		}
	})
}

// Simultaneous close: both sides sent a FIN. The endpoint acknowledges the
// peer's FIN and its Close returns nil once its own FIN is acknowledged,
// whatever the order the peer's FIN and ACK arrive in, even when the ACK
// comes first and the endpoint is already lingering in time-wait: the
// peer's FIN must still be acknowledged cumulatively, or the peer's Close
// could never return nil.
func TestFramesCloseSimultaneous(t *testing.T) {
	for _, c := range []struct {
		name string
		// send delivers the peer's FIN (at Q) and the ACK of ours (I+1).
		send func(tc *testConn, fin, ack tcOut)
	}{
		{"FIN then ACK", func(tc *testConn, fin, ack tcOut) { tc.write(fin); tc.write(ack) }},
		{"ACK then FIN", func(tc *testConn, fin, ack tcOut) { tc.write(ack); tc.write(fin) }},
		{"one datagram, FIN first", func(tc *testConn, fin, ack tcOut) { tc.write(fin, ack) }},
		{"one datagram, ACK first", func(tc *testConn, fin, ack tcOut) { tc.write(ack, fin) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tc := newTestConn(t, nil)
				s := tc.acceptSession()
				P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
				E, I := tc.epEpoch, tc.epISN
				cl := tc.startClose(s)
				tc.wantFrame("our FIN", wire.TypeData, hasSeq(I), hasAck(E), hasFlags(wire.FlagFin))
				c.send(tc, tc.fin(Q), tc.ackOf(I+1, I+64))
				acked := false
				for _, f := range tc.takeFrames() {
					if f.Header.Type == wire.TypeAck && f.Header.Arg == Q+1 {
						tc.expect("the peer's FIN acknowledged", f, wire.TypeAck, hasAck(P+1), hasCum(Q+1))
						acked = true
						continue
					}
					t.Errorf("unexpected %s", tc.describe(f))
				}
				if !acked {
					t.Errorf("the peer's FIN was not acknowledged cumulatively (cum=Q+1)")
				}
				if !cl.returned() || cl.err != nil {
					t.Fatalf("Close: returned %v, err %v; want nil", cl.returned(), cl.err)
				}
				tc.write(tc.fin(Q))
				tc.wantFrame("the peer's FIN retransmitted, in time-wait", wire.TypeAck, hasSeq(Q), hasAck(P+1), hasCum(Q+1))
			})
		})
	}
}

// When the peer closes first, the endpoint's Close returns nil if the peer
// had acknowledged everything, and ErrPeerClosed if messages of ours were
// still unacknowledged (the peer will never take them).
func TestFramesCloseAfterPeerFin(t *testing.T) {
	for _, c := range []struct {
		name    string
		unacked bool
		want    error
	}{
		{"everything acknowledged", false, nil},
		{"a message unacknowledged", true, ErrPeerClosed},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tc := newTestConn(t, nil)
				s := tc.acceptSession()
				Q := tc.peerSyn.ISN
				I := tc.epISN
				if err := s.Send(context.Background(), []byte("m0")); err != nil {
					t.Fatal(err)
				}
				tc.wantFrame("DATA", wire.TypeData, hasSeq(I), hasPayload("m0"))
				if !c.unacked {
					tc.write(tc.ackOf(I+1, I+64))
				}
				tc.write(tc.fin(Q))
				tc.wantFrame("ACK of the FIN", wire.TypeAck, hasCum(Q+1))
				if !tc.isDone(s) || !errors.Is(s.Err(), ErrPeerClosed) {
					t.Fatalf("Err = %v, want ErrPeerClosed", s.Err())
				}
				err := s.Close()
				if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
					t.Fatalf("Close = %v, want %v", err, c.want)
				}
				tc.wantIdle("Close of an ended session sends nothing")
			})
		})
	}
}

// Endpoint.Close during a Dial fails the Dial with ErrClosed; with no
// epoch of the peer's to prove, no RST is sent.
func TestFramesCloseEndpointDuringDial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		d := tc.startDial(context.Background())
		tc.learn(tc.wantFrame("SYN", wire.TypeSyn))
		if err := tc.ep.Close(); err != nil {
			t.Fatal(err)
		}
		s, err := d.result()
		if s != nil || !errors.Is(err, ErrClosed) {
			t.Fatalf("Dial = %v, %v; want ErrClosed", s, err)
		}
		tc.wantIdle("no RST for a session in SYN-SENT")
	})
}

// Every message the engine acknowledged is delivered, however the session
// ends, unless the application abandons it: after an RST the application
// still reads everything, and Done closes only after the last message was
// handed to Recv.
func TestFramesCloseRstDeliversAccepted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, &Config{Window: 16, RecvBuffer: 1})
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		tc.write(tc.data(Q, "m0"), tc.data(Q+1, "m1"), tc.data(Q+2, "m2"))
		tc.wantFrame("all acknowledged", wire.TypeAck, hasSeq(Q+2), hasAck(P+1), hasCum(Q+3))
		tc.write(tc.rst(Q+2, wire.RstAbort))
		tc.advance(time.Second)
		if !errors.Is(s.Err(), ErrPeerReset) {
			t.Fatalf("Err = %v, want ErrPeerReset", s.Err())
		}
		for i := range 2 {
			if tc.isDone(s) {
				t.Fatalf("Done with %d acknowledged messages not yet handed to Recv", 3-i-1)
			}
			if m, ok := tc.recvNow(s); !ok || string(m) != fmt.Sprint("m", i) {
				t.Fatalf("message %d: %q, %v", i, m, ok)
			}
		}
		if !tc.isDone(s) {
			t.Fatal("Done not closed with the last message in Recv")
		}
		tc.wantRecv(s, "m2")
		if st := s.Stats(); st.Received != 3 || st.Delivered != 3 || st.Undelivered != 0 {
			t.Errorf("Stats Received %d Delivered %d Undelivered %d, want 3 3 0", st.Received, st.Delivered, st.Undelivered)
		}
	})
}

// Abort after the peer's FIN (time-wait) sends no RST (the peer's session
// is over), abandons the messages not yet handed to the application, and
// leaves time-wait answering the peer's retransmissions.
func TestFramesCloseAbortAfterPeerFin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, &Config{Window: 16, RecvBuffer: 1})
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		tc.write(tc.data(Q, "m0"), tc.data(Q+1, "m1"), tc.data(Q+2, "m2"), tc.fin(Q+3))
		tc.wantFrame("all acknowledged", wire.TypeAck, hasSeq(Q+3), hasAck(P+1), hasCum(Q+4))
		s.Abort()
		tc.wantIdle("no RST after the peer's FIN")
		if !tc.isDone(s) {
			t.Fatal("Abort did not close Done")
		}
		st := s.Stats()
		if st.Received != 3 || st.Delivered+st.Undelivered != 3 || st.Undelivered == 0 {
			t.Errorf("Stats Received %d Delivered %d Undelivered %d, want 3 = Delivered + Undelivered, some undelivered", st.Received, st.Delivered, st.Undelivered)
		}
		tc.write(tc.fin(Q + 3))
		tc.wantFrame("time-wait still answers", wire.TypeAck, hasSeq(Q+3), hasAck(P+1), hasCum(Q+4))
	})
}

// Simultaneous close with a message of ours still unacknowledged: the
// peer's FIN is a full close (it will read no more), so the session ends at
// once, Close returns an error matching ErrPeerClosed, and nothing is
// retransmitted any more; the peer's FIN is acknowledged.
func TestFramesCloseSimultaneousDataUnacked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		E, I := tc.epEpoch, tc.epISN
		if err := s.Send(context.Background(), []byte("m0")); err != nil {
			t.Fatal(err)
		}
		tc.wantFrame("DATA", wire.TypeData, hasSeq(I), hasAck(E), hasPayload("m0"))
		cl := tc.startClose(s)
		tc.wantFrame("our FIN", wire.TypeData, hasSeq(I+1), hasAck(E), hasFlags(wire.FlagFin))
		tc.write(tc.fin(Q))
		tc.wantFrame("the peer's FIN acknowledged", wire.TypeAck, hasSeq(Q), hasAck(P+1), hasCum(Q+1))
		if !cl.returned() || !errors.Is(cl.err, ErrPeerClosed) {
			t.Fatalf("Close: returned %v, err %v; want ErrPeerClosed", cl.returned(), cl.err)
		}
		tc.wantIdleFor("nothing retransmitted after the session ended", 100*time.Millisecond)
	})
}

// Close abandons the receive side at once: messages not yet taken from
// Recv, and any arriving while Close waits for its FIN's ACK, are
// acknowledged but dropped and counted Undelivered.
func TestFramesCloseAbandonsReceiveSide(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, &Config{Window: 16, RecvBuffer: 1})
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		E, I := tc.epEpoch, tc.epISN
		tc.write(tc.data(Q, "m0"), tc.data(Q+1, "m1"), tc.data(Q+2, "m2"))
		tc.wantFrame("ACK", wire.TypeAck, hasCum(Q+3))
		cl := tc.startClose(s)
		tc.wantFrame("FIN", wire.TypeData, hasSeq(I), hasAck(E), hasFlags(wire.FlagFin))
		tc.write(tc.data(Q+3, "m3"))
		tc.wantFrame("DATA during Close is still acknowledged", wire.TypeAck, hasSeq(Q+3), hasAck(P+1), hasCum(Q+4))
		tc.write(tc.ackOf(I+1, I+64))
		if !cl.returned() || cl.err != nil {
			t.Fatalf("Close: returned %v, err %v; want nil", cl.returned(), cl.err)
		}
		st := s.Stats()
		if st.Received != 4 || st.Delivered+st.Undelivered != 4 || st.Undelivered < 3 {
			t.Errorf("Stats Received %d Delivered %d Undelivered %d, want 4 received, at least m1..m3 undelivered", st.Received, st.Delivered, st.Undelivered)
		}
	})
}

// In time-wait an ACK with STATUS_REQ (the peer overran and may have lost
// our last ACK) is answered with an ACK, as PROTOCOL.md §7.2 and §9.5 require of
// any STATUS_REQ.
func TestFramesCloseTimeWaitStatusReq(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		I := tc.epISN
		tc.write(tc.fin(Q))
		tc.wantFrame("ACK of the FIN", wire.TypeAck, hasCum(Q+1))
		tc.write(tc.ackOf(I, I+64).withFlags(wire.FlagStatusReq))
		tc.wantFrame("STATUS_REQ in time-wait", wire.TypeAck, hasAck(P+1), hasCum(Q+1))
	})
}
