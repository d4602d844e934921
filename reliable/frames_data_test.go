package reliable

// Frame-level tests of the data path: acknowledgements, SACK, DSACK, flow
// control, epochs, probes and retransmission (PROTOCOL.md §3, §6-8).
// See frames_harness_test.go for the harness.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/loss"
	"github.com/cnlink/cnlink/retry"
	"github.com/cnlink/cnlink/transport"
)

// In-order DATA is delivered and acknowledged: one ACK per datagram,
// answering its newest DATA (seq = that DSN, ack = P + 1), cum = the next
// DSN expected, limit = cum + Window minus the messages the application
// has not taken yet (here: all of them, nobody reads until the end).
func TestFramesDataInOrderAck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		tc.write(tc.data(Q, "a"))
		tc.wantFrame("ACK of one DATA", wire.TypeAck, hasSeq(Q), hasAck(P+1), hasCum(Q+1), hasLimit(Q+1+16-1), hasSack(), hasFlags(0))
		tc.wantIdle("one ACK per DATA")
		tc.write(tc.data(Q+1, "b"), tc.data(Q+2, "c"))
		tc.wantFrame("one ACK for a datagram of two DATA", wire.TypeAck, hasSeq(Q+2), hasAck(P+1), hasCum(Q+3), hasLimit(Q+3+16-3), hasSack(), hasFlags(0))
		tc.wantIdle("one ACK per datagram")
		tc.wantRecv(s, "a", "b", "c")
		if st := s.Stats(); st.Received != 3 || st.Delivered != 3 {
			t.Errorf("Stats Received %d Delivered %d, want 3 and 3", st.Received, st.Delivered)
		}
	})
}

// Out-of-order DATA is held and reported in SACK ranges, the block of the
// newest arrival first, then the others from the highest down; the gap
// filling delivers everything in order.
func TestFramesDataOutOfOrderSack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		r := func(a, b uint32) wire.Range { return wire.Range{Start: a, End: b} }
		tc.write(tc.data(Q+2, "c"))
		tc.wantFrame("Q+2 above a hole", wire.TypeAck, hasSeq(Q+2), hasAck(P+1), hasCum(Q), hasLimit(Q+16), hasSack(r(Q+2, Q+2)))
		tc.write(tc.data(Q+4, "e"))
		tc.wantFrame("Q+4 above two holes", wire.TypeAck, hasSeq(Q+4), hasCum(Q), hasSack(r(Q+4, Q+4), r(Q+2, Q+2)))
		tc.wantRecv(s)
		tc.write(tc.data(Q, "a"))
		tc.wantFrame("the first hole filled", wire.TypeAck, hasSeq(Q), hasCum(Q+1), hasLimit(Q+1+16), hasSack(r(Q+4, Q+4), r(Q+2, Q+2)))
		tc.write(tc.data(Q+1, "b"))
		tc.wantFrame("the second hole filled", wire.TypeAck, hasSeq(Q+1), hasCum(Q+3), hasSack(r(Q+4, Q+4)))
		tc.write(tc.data(Q+3, "d"))
		tc.wantFrame("no hole left", wire.TypeAck, hasSeq(Q+3), hasCum(Q+5), hasLimit(Q+5+16), hasSack(), hasFlags(0))
		tc.wantRecv(s, "a", "b", "c", "d", "e")
	})
}

// A duplicate DATA, delivered or still held above a hole, is dropped and
// reported once: the next ACK has DUP_VALID and dup = its DSN.
func TestFramesDataDuplicate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		held := wire.Range{Start: Q + 2, End: Q + 2}
		tc.write(tc.data(Q, "a"))
		tc.wantFrame("ACK", wire.TypeAck, hasCum(Q+1), hasFlags(0))
		tc.write(tc.data(Q, "a"))
		tc.wantFrame("a delivered DATA again", wire.TypeAck, hasSeq(Q), hasAck(P+1), hasCum(Q+1), hasDup(Q), hasFlags(wire.FlagDupValid), hasSack())
		tc.write(tc.data(Q+2, "c"))
		tc.wantFrame("the duplicate is reported once", wire.TypeAck, hasSeq(Q+2), hasCum(Q+1), hasFlags(0), hasSack(held))
		tc.write(tc.data(Q+2, "c"))
		tc.wantFrame("a held DATA again", wire.TypeAck, hasSeq(Q+2), hasCum(Q+1), hasDup(Q+2), hasSack(held))
		tc.write(tc.data(Q+1, "b"))
		tc.wantFrame("hole filled", wire.TypeAck, hasCum(Q+3), hasFlags(0), hasSack())
		tc.wantRecv(s, "a", "b", "c")
		if n := s.Stats().DuplicatesSuppressed; n != 2 {
			t.Errorf("DuplicatesSuppressed = %d, want 2", n)
		}
	})
}

// DATA at or beyond the advertised limit is dropped (counted) but
// acknowledged, so the sender learns the limit again; it is not delivered
// when the window later covers its DSN.
func TestFramesDataBeyondLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, &Config{Window: 4})
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		tc.write(tc.data(Q+4, "beyond"))
		tc.wantFrame("DATA at the limit", wire.TypeAck, hasSeq(Q+4), hasAck(P+1), hasCum(Q), hasLimit(Q+4), hasSack(), hasFlags(0))
		if n := tc.ep.Stats().Rejected["window"]; n != 1 {
			t.Errorf("Rejected[window] = %d, want 1", n)
		}
		tc.write(tc.data(Q, "a"), tc.data(Q+1, "b"), tc.data(Q+2, "c"), tc.data(Q+3, "d"))
		// Four messages nobody has taken yet: the window is shut.
		tc.wantFrame("the window filled", wire.TypeAck, hasSeq(Q+3), hasCum(Q+4), hasLimit(Q+4), hasSack())
		tc.wantRecv(s, "a", "b", "c", "d")
	})
}

// Frames with the wrong epoch (originated: not P; answers: not E + 1) are
// dropped and counted; they change nothing. An originated one (DATA, PING)
// comes from another session at the peer's port as far as the endpoint can
// tell, so it is answered like an unknown session's: RST 2 with its seq and
// ack + 1 (which only that other session accepts).
func TestFramesDataWrongEpoch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		E, I := tc.epEpoch, tc.epISN
		for _, f := range []tcOut{
			tc.data(Q, "forged").withAck(P + 1),
			tc.ping(Q).withAck(P - 1),
			tc.ackOf(I, I+64).withAck(E), // answers carry E+1
			tc.rst(Q-1, wire.RstAbort).withAck(E + 2),
		} {
			tc.write(f)
		}
		tc.wantFrame("forged DATA answered as unknown", wire.TypeRst, hasSeq(Q), hasAck(P+2), hasReason(wire.RstNoSession))
		tc.wantFrame("forged PING answered as unknown", wire.TypeRst, hasSeq(Q), hasAck(P), hasReason(wire.RstNoSession))
		tc.wantIdle("answers with a wrong epoch are not answered")
		if n := tc.ep.Stats().Rejected["epoch"]; n != 4 {
			t.Errorf("Rejected[epoch] = %d, want 4", n)
		}
		if s.Err() != nil {
			t.Fatalf("session ended: %v", s.Err())
		}
		tc.write(tc.data(Q, "real"))
		tc.wantFrame("the real DATA is the first", wire.TypeAck, hasSeq(Q), hasAck(P+1), hasCum(Q+1))
		tc.wantRecv(s, "real")
	})
}

// With no session for (port, channel), DATA and PING are answered RST 2
// (seq and ack + 1 of the frame) so that a peer that survived our restart
// learns at once; ACK, SYNACK and RST are dropped (an RST is never
// answered).
func TestFramesDataUnknownSession(t *testing.T) {
	for _, c := range []struct {
		name string
		f    func(tc *testConn) tcOut
		rst  bool
	}{
		{"DATA", func(tc *testConn) tcOut { return tc.data(7, "x").withAck(0xabc) }, true},
		{"PING", func(tc *testConn) tcOut { return tc.ping(7).withAck(0xabc) }, true},
		{"ACK", func(tc *testConn) tcOut { return tc.ackOf(7, 9).withAck(0xabc) }, false},
		{"SYNACK", func(tc *testConn) tcOut { tc.epISN, tc.epEpoch = 7, 0xabb; return tc.synAck() }, false},
		{"RST", func(tc *testConn) tcOut { return tc.rst(7, wire.RstAbort).withAck(0xabc) }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tc := newTestConn(t, nil)
				tc.write(c.f(tc))
				if c.rst {
					tc.wantFrame("a frame of no session", wire.TypeRst, hasSeq(7), hasAck(0xabd), hasReason(wire.RstNoSession))
				}
				tc.wantIdle("nothing else")
				if n := tc.ep.Stats().Rejected["no_session"]; n != 1 {
					t.Errorf("Rejected[no_session] = %d, want 1", n)
				}
			})
		})
	}
}

// PING is answered by an ACK of the current state: seq = the PING's seq,
// ack = P + 1.
func TestFramesDataPingAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		tc.write(tc.ping(Q))
		tc.wantFrame("PING before any data", wire.TypeAck, hasSeq(Q), hasAck(P+1), hasCum(Q), hasLimit(Q+16), hasSack(), hasFlags(0))
		tc.write(tc.data(Q, "a"))
		tc.wantFrame("ACK", wire.TypeAck, hasCum(Q+1))
		tc.write(tc.ping(Q + 1))
		tc.wantFrame("PING after data", wire.TypeAck, hasSeq(Q+1), hasAck(P+1), hasCum(Q+1), hasFlags(0))
		tc.wantIdle("one ACK per PING")
	})
}

// sampleRTT sends one message and acknowledges it rtt later, so that the
// session has a measured round trip of rtt. It returns the next DSN.
func (tc *testConn) sampleRTT(s *Session, rtt time.Duration) uint32 {
	tc.t.Helper()
	if _, err := s.SendBatch(context.Background(), [][]byte{[]byte("rtt")}); err != nil {
		tc.t.Fatal(err)
	}
	tc.wantFrame("the message that measures the round trip", wire.TypeData, hasSeq(tc.epISN))
	tc.advance(rtt)
	tc.write(tc.ackOf(tc.epISN+1, tc.epISN+64))
	tc.wantIdle("an ACK is not answered")
	if got := s.Stats().SRTT; got != rtt {
		tc.t.Fatalf("SRTT %v after one sample of %v", got, rtt)
	}
	return tc.epISN + 1
}

// STATUS_REQ (on an ACK or a PING) makes the endpoint retransmit at once
// every unacknowledged frame sent at least a round trip before, and
// answer with an ACK.
func TestFramesDataStatusReq(t *testing.T) {
	for _, c := range []struct {
		name   string
		req    func(tc *testConn) tcOut
		ackSeq []frameCheck // the ACK answers the PING; an ACK is not answered by seq
	}{
		{"ACK", func(tc *testConn) tcOut {
			return tc.ackOf(tc.epISN+1, tc.epISN+64).withSeq(tc.epISN + 2).withFlags(wire.FlagStatusReq)
		}, nil},
		{"PING", func(tc *testConn) tcOut { return tc.ping(tc.peerSyn.ISN).withFlags(wire.FlagStatusReq) },
			[]frameCheck{hasSeq(tcPeerISN)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tc := newTestConn(t, nil)
				s := tc.acceptSession()
				P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
				E := tc.epEpoch
				I := tc.sampleRTT(s, 100*time.Microsecond)
				if _, err := s.SendBatch(context.Background(), [][]byte{[]byte("m0"), []byte("m1"), []byte("m2")}); err != nil {
					t.Fatal(err)
				}
				for i, p := range []string{"m0", "m1", "m2"} {
					tc.wantFrame("first transmission", wire.TypeData, hasSeq(I+uint32(i)), hasAck(E), hasPayload(p), hasFlags(0))
				}
				tc.advance(100 * time.Microsecond)
				tc.write(c.req(tc))
				tc.wantFrames("STATUS_REQ: everything unacknowledged again, and an ACK",
					frameWantOf(wire.TypeData, hasSeq(I), hasAck(E), hasPayload("m0")),
					frameWantOf(wire.TypeData, hasSeq(I+1), hasAck(E), hasPayload("m1")),
					frameWantOf(wire.TypeData, hasSeq(I+2), hasAck(E), hasPayload("m2")),
					frameWantOf(wire.TypeAck, append(c.ackSeq, hasAck(P+1), hasCum(Q), hasFlags(0))...),
				)
				tc.wantIdle("nothing more")
				if st := s.Stats(); st.StatusRepair != 1 || st.Retransmits != 3 || st.Sent != 4 {
					t.Errorf("Stats StatusRepair %d Retransmits %d Sent %d, want 1 3 4", st.StatusRepair, st.Retransmits, st.Sent)
				}
			})
		})
	}
}

// Zero window: with the peer's limit at its cumulative ack, a queued
// message waits; after an RTO the endpoint probes with PING (seq = its next
// DSN, ack = E), again with backoff while the window stays shut, and sends
// as soon as an ACK opens it.
func TestFramesDataZeroWindowProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.acceptSession()
		E, I := tc.epEpoch, tc.epISN
		ctx := context.Background()
		if err := s.Send(ctx, []byte("m0")); err != nil {
			t.Fatal(err)
		}
		tc.wantFrame("DATA", wire.TypeData, hasSeq(I), hasAck(E), hasPayload("m0"))
		tc.write(tc.ackOf(I+1, I+1)) // all received, window shut
		if err := s.Send(ctx, []byte("m1")); err != nil {
			t.Fatal(err)
		}
		tc.wantIdle("nothing at the peer's limit")
		w1 := tc.advanceUntilFrame(time.Second)
		tc.wantFrame("zero-window probe", wire.TypePing, hasSeq(I+1), hasAck(E), hasArg(0), hasFlags(0))
		tc.write(tc.ackOf(I+1, I+1).withSeq(I + 1)) // the PING's answer: still shut
		tc.wantIdle("the window is still shut")
		w2 := tc.advanceUntilFrame(time.Second)
		tc.wantFrame("second probe", wire.TypePing, hasSeq(I+1), hasAck(E))
		if w1 > 100*time.Millisecond || w2 < w1 {
			t.Errorf("probes after %v then %v: want an RTO, then a longer one", w1, w2)
		}
		tc.write(tc.ackOf(I+1, I+9))
		tc.wantFrame("the window opened", wire.TypeData, hasSeq(I+1), hasAck(E), hasPayload("m1"))
	})
}

// The retransmission timer sends PING probes (seq = next DSN), each after a
// doubled RTO, and nothing else while nobody answers. A peer that answers
// but does not name the probe in its ACK's seq gets, after loss.MaxProbes
// probes, the oldest frame again (the last resort); an ACK stops it.
func TestFramesDataRtoUnansweredProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.acceptSession()
		E, I := tc.epEpoch, tc.epISN
		if err := s.Send(context.Background(), []byte("m0")); err != nil {
			t.Fatal(err)
		}
		tc.wantFrame("DATA", wire.TypeData, hasSeq(I), hasAck(E), hasPayload("m0"))
		// No RTT sample yet: the initial RTO, doubled at each expiry.
		rto := retry.DefaultRTTInitial
		for i := range loss.MaxProbes + 2 {
			w := tc.advanceUntilFrame(time.Second)
			tc.wantFrame(fmt.Sprintf("expiry %d: a probe, not a retransmission", i+1), wire.TypePing, hasSeq(I+1), hasAck(E), hasFlags(0))
			if w != rto {
				t.Errorf("probe %d after %v, want %v", i+1, w, rto)
			}
			rto *= 2
		}
		// An answer that does not name the probe (seq is informative).
		tc.write(tc.ackOf(I, I+64).withSeq(I - 7))
		w := tc.advanceUntilFrame(time.Second)
		tc.wantFrame("the last resort: the retransmission", wire.TypeData, hasSeq(I), hasAck(E), hasPayload("m0"), hasFlags(0))
		if w != rto {
			t.Errorf("retransmission %v after the last probe, want %v", w, rto)
		}
		if st := s.Stats(); st.TimeoutRetransmits != 1 || st.Retransmits != 1 {
			t.Errorf("Stats TimeoutRetransmits %d Retransmits %d, want 1 1", st.TimeoutRetransmits, st.Retransmits)
		}
		tc.write(tc.ackOf(I+1, I+64))
		tc.wantIdleFor("acknowledged: no more probes or retransmissions", 500*time.Millisecond)
	})
}

// The ACK that answers the RTO probe (its seq names the PING) says exactly
// what was lost before the probe: that is retransmitted at once, and a
// peer that was merely slow gets no retransmission at all.
func TestFramesDataRtoProbeAnswered(t *testing.T) {
	for _, tt := range []struct {
		name string
		cum  uint32 // offset from I the answer acknowledges up to
		want []string
	}{
		{"m1 lost", 1, []string{"m1"}},
		{"both lost", 0, []string{"m0", "m1"}},
		{"slow peer", 2, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tc := newTestConn(t, nil)
				s := tc.acceptSession()
				E, I := tc.epEpoch, tc.epISN
				if _, err := s.SendBatch(context.Background(), [][]byte{[]byte("m0"), []byte("m1")}); err != nil {
					t.Fatal(err)
				}
				tc.wantFrame("m0", wire.TypeData, hasSeq(I), hasPayload("m0"))
				tc.wantFrame("m1", wire.TypeData, hasSeq(I+1), hasPayload("m1"))
				tc.advanceUntilFrame(time.Second)
				tc.wantFrame("the probe", wire.TypePing, hasSeq(I+2), hasAck(E))
				// An ACK that does not name the probe proves nothing.
				tc.write(tc.ackOf(I+tt.cum, I+64).withSeq(I + 1))
				tc.wantIdleFor("an ACK that is not the probe's answer", 100*time.Microsecond)
				tc.write(tc.ackOf(I+tt.cum, I+64).withSeq(I + 2))
				for i, m := range tt.want {
					tc.wantFrame(fmt.Sprintf("retransmission %d at once", i), wire.TypeData, hasSeq(I+tt.cum+uint32(i)), hasPayload(m))
				}
				if len(tt.want) == 0 {
					tc.wantIdleFor("a slow peer: nothing to resend", 100*time.Microsecond)
				}
				if st := s.Stats(); st.Retransmits != uint64(len(tt.want)) || st.TimeoutRetransmits != uint64(len(tt.want)) {
					t.Errorf("Stats Retransmits %d TimeoutRetransmits %d, want %d", st.Retransmits, st.TimeoutRetransmits, len(tt.want))
				}
			})
		})
	}
}

// Keepalive: an idle session PINGs after KeepAlive without hearing from the
// peer, and ends with ErrPeerGone after DeadPeerTimeout.
func TestFramesDataKeepaliveAndDeadPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, &Config{Window: 16, KeepAlive: 100 * time.Millisecond, DeadPeerTimeout: 350 * time.Millisecond})
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		E, I := tc.epEpoch, tc.epISN
		start := tc.now()
		tc.write(tc.data(Q, "a"))
		tc.wantFrame("ACK", wire.TypeAck, hasSeq(Q), hasAck(P+1))
		w := tc.advanceUntilFrame(time.Second)
		tc.wantFrame("keepalive", wire.TypePing, hasSeq(I), hasAck(E), hasFlags(0))
		if w != 100*time.Millisecond {
			t.Errorf("keepalive after %v of silence, want 100ms", w)
		}
		tc.write(tc.ackOf(I, I+64).withSeq(I))
		tc.advance(time.Second)
		if !tc.isDone(s) || !errors.Is(s.Err(), ErrPeerGone) {
			t.Fatalf("Err = %v, want ErrPeerGone", s.Err())
		}
		for _, f := range tc.takeFrames() {
			tc.expect("only keepalives while the peer is silent", f, wire.TypePing, hasSeq(I), hasAck(E))
			if f.at > start+100*time.Millisecond+350*time.Millisecond {
				t.Errorf("PING at %v, after the dead-peer timeout", f.at)
			}
		}
		tc.write(tc.ping(Q + 1))
		tc.wantFrame("the session is gone", wire.TypeRst, hasSeq(Q+1), hasAck(P+1), hasReason(wire.RstNoSession))
	})
}

// Flow control with a slow application: messages the application has not
// taken reduce the advertised limit, down to limit == cum; when the
// application reads, the endpoint sends a window update (an ACK nobody
// asked for) that reopens the window.
func TestFramesDataWindowUpdate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const window = 4
		tc := newTestConn(t, &Config{Window: window, RecvBuffer: 1})
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		tc.write(tc.data(Q, "m0"), tc.data(Q+1, "m1"), tc.data(Q+2, "m2"))
		// Nobody reads (RecvBatch takes from the engine's queue; Recv's
		// channel does not exist yet): credit 4 - 3.
		tc.wantFrame("three messages wait for the application", wire.TypeAck, hasSeq(Q+2), hasAck(P+1), hasCum(Q+3), hasLimit(Q+4))
		tc.write(tc.data(Q+3, "m3"))
		tc.wantFrame("the window is shut", wire.TypeAck, hasSeq(Q+3), hasCum(Q+4), hasLimit(Q+4))
		tc.write(tc.data(Q+4, "beyond"))
		tc.wantFrame("DATA past the shut window is dropped", wire.TypeAck, hasSeq(Q+4), hasCum(Q+4), hasLimit(Q+4))
		tc.wantIdle("no update while the application sleeps")
		var got []string
		for range 4 {
			m, ok := tc.recvNow(s)
			if !ok {
				t.Fatalf("only %q delivered", got)
			}
			got = append(got, string(m))
		}
		f := tc.wantFrame("window update once the application read", wire.TypeAck, hasAck(P+1), hasCum(Q+4))
		if f.ack.Limit-(Q+4) < window/2 {
			t.Errorf("window update opens only %d, want at least %d", f.ack.Limit-(Q+4), window/2)
		}
		tc.takeFrames() // further updates, if any
		tc.write(tc.data(Q+4, "m4"))
		tc.wantFrame("the window is open again", wire.TypeAck, hasSeq(Q+4), hasCum(Q+5))
		tc.wantRecv(s, "m4")
	})
}

// A frame whose CRC does not match is dropped and counted, never
// acknowledged; the other frames of its datagram are processed. Unknown
// types are dropped; unknown flags are ignored.
func TestFramesDataCorruptAndUnknown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		b := tc.encode(tc.data(Q, "corrupt"), tc.data(Q+1, "b"))
		b[48] ^= 0xff // the first frame's payload: its CRC no longer matches
		if err := tc.peer.Send(transport.Addr{Port: tc.ep.LocalPort()}, b); err != nil {
			t.Fatal(err)
		}
		tc.wantFrame("only the good frame counts", wire.TypeAck, hasSeq(Q+1), hasAck(P+1), hasCum(Q), hasSack(wire.Range{Start: Q + 1, End: Q + 1}))
		if n := tc.ep.Stats().Rejected["checksum"]; n != 1 {
			t.Errorf("Rejected[checksum] = %d, want 1", n)
		}
		unknown := tc.data(Q, "?")
		unknown.f.Type = 9
		tc.write(unknown, unknown.withAck(tc.epEpoch+1))
		tc.wantIdle("unknown types are dropped")
		tc.write(tc.data(Q, "a").withFlags(0x100))
		tc.wantFrame("unknown flags are ignored", wire.TypeAck, hasSeq(Q), hasCum(Q+2))
		tc.wantRecv(s, "a", "b")
	})
}

// An ACK for DSNs never sent is ignored: it releases nothing, and the
// message it pretends to acknowledge is still retransmitted.
func TestFramesDataAckBeyondSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.acceptSession()
		E, I := tc.epEpoch, tc.epISN
		if err := s.Send(context.Background(), []byte("m0")); err != nil {
			t.Fatal(err)
		}
		tc.wantFrame("DATA", wire.TypeData, hasSeq(I), hasAck(E))
		tc.write(tc.ackOf(I+5, I+64))
		tc.advanceUntilFrame(time.Second)
		tc.wantFrame("the RTO probe", wire.TypePing, hasSeq(I+1))
		tc.write(tc.ackOf(I, I+64).withSeq(I + 1)) // its answer: m0 is missing
		found := false
		for _, f := range tc.takeFrames() {
			found = found || f.Header.Type == wire.TypeData && f.Seq == I
		}
		if !found {
			t.Fatal("m0 was never retransmitted after a bogus ACK claimed it")
		}
		if s.Err() != nil {
			t.Fatalf("session ended: %v", s.Err())
		}
	})
}

// The endpoint honours the limits of the peer's SYN: at most Window
// messages beyond the cumulative ack, messages up to max_message bytes,
// datagrams up to max_datagram bytes.
func TestFramesDataPeerLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		tc.peerSyn.Window, tc.peerSyn.MaxMessage, tc.peerSyn.MaxDatagram = 3, 100, 200
		s := tc.acceptSession()
		E, I := tc.epEpoch, tc.epISN
		ctx := context.Background()
		if s.MaxMessage() != 100 {
			t.Errorf("MaxMessage() = %d, want the peer's 100", s.MaxMessage())
		}
		if err := s.Send(ctx, make([]byte, 101)); !errors.Is(err, ErrMessageTooLarge) {
			t.Errorf("Send(101 bytes) = %v, want ErrMessageTooLarge", err)
		}
		msgs := make([][]byte, 5)
		for i := range msgs {
			msgs[i] = []byte(fmt.Sprintf("%-100d", i))
		}
		if _, err := s.SendBatch(ctx, msgs); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			f := tc.wantFrame("the peer's window is 3", wire.TypeData, hasSeq(I+uint32(i)), hasAck(E), hasPayload(string(msgs[i])))
			if f.dgramLen > 200 {
				t.Errorf("datagram of %d bytes, the peer's max_datagram is 200", f.dgramLen)
			}
		}
		tc.wantIdle("no fourth message in flight")
		tc.write(tc.ackOf(I+1, I+64))
		tc.wantFrame("one acknowledged, one more", wire.TypeData, hasSeq(I+3), hasPayload(string(msgs[3])))
		tc.wantIdle("still three in flight")
	})
}

// The ACK a datagram owes travels in the same datagram as the DATA the
// endpoint sends in that turn.
func TestFramesDataAckCoalescedWithData(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		E, I := tc.epEpoch, tc.epISN
		if err := s.Send(context.Background(), []byte("m0")); err != nil {
			t.Fatal(err)
		}
		tc.wantFrame("DATA", wire.TypeData, hasSeq(I))
		tc.write(tc.ackOf(I+1, I+1)) // window shut
		if err := s.Send(context.Background(), []byte("m1")); err != nil {
			t.Fatal(err)
		}
		tc.wantIdle("window shut")
		tc.write(tc.ackOf(I+1, I+64), tc.data(Q, "a")) // opens the window and owes an ACK
		fs := tc.wantFrames("the window opened and an ACK owed",
			frameWantOf(wire.TypeData, hasSeq(I+1), hasAck(E), hasPayload("m1")),
			frameWantOf(wire.TypeAck, hasSeq(Q), hasAck(P+1), hasCum(Q+1)))
		if fs[0].dgram != fs[1].dgram {
			t.Errorf("DATA and ACK in datagrams #%d and #%d, want one", fs[0].dgram, fs[1].dgram)
		}
	})
}

// A peer whose max_datagram holds a small message and little more gets
// ACKs that fit it: SACK ranges are cut to what fits, never a datagram
// the peer must drop as truncated (found by the torture harness: a peer
// with MaxDatagram 68 dropped 4,031 ACKs and its stream stalled).
func TestFramesDataAckFitsPeerDatagram(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		tc.peerSyn.MaxMessage, tc.peerSyn.MaxDatagram = 20, 68
		tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		// Four holes: four SACK ranges would make an ACK of 92 bytes.
		tc.write(tc.data(Q+1, "b"), tc.data(Q+3, "d"), tc.data(Q+5, "f"), tc.data(Q+7, "h"))
		f := tc.wantFrame("ACK within 68 bytes", wire.TypeAck, hasAck(P+1), hasCum(Q))
		if n := len(f.ack.Ranges); transport.FrameLen(wire.HeaderLen+wire.AckFixedLen+n*wire.RangeLen) > 68 || n == 0 {
			t.Fatalf("ACK carries %d SACK ranges: %d bytes for a peer that receives 68", n, transport.FrameLen(wire.HeaderLen+wire.AckFixedLen+n*wire.RangeLen))
		}
	})
}

// STATUS_REQ is honoured at most once per round trip: a burst of them (a
// peer or a forger inside the session asking again and again) costs one
// retransmission of the window, not one per request; each is still
// answered with an ACK. After a round trip a new one repairs again. And a
// repair resends only what was sent a round trip before the request: a
// younger record may still be on its way, so resending it would make one
// small request cost a whole window.
func TestFramesDataStatusReqPaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.acceptSession()
		E := tc.epEpoch
		const rtt = 100 * time.Microsecond
		I := tc.sampleRTT(s, rtt)
		countData := func() int {
			n := 0
			for _, f := range tc.takeFrames() {
				if f.Header.Type == wire.TypeData {
					n++
				}
			}
			return n
		}
		if _, err := s.SendBatch(context.Background(), [][]byte{[]byte("m0"), []byte("m1")}); err != nil {
			t.Fatal(err)
		}
		tc.wantFrame("m0", wire.TypeData, hasSeq(I))
		tc.wantFrame("m1", wire.TypeData, hasSeq(I+1))
		req := tc.ping(tc.peerSyn.ISN).withFlags(wire.FlagStatusReq)

		// Within the round trip: m0 and m1 may still be on their way.
		tc.advance(rtt / 2)
		tc.write(req)
		if n := countData(); n != 0 {
			t.Fatalf("a STATUS_REQ half a round trip after the send drew %d DATA frames, want 0", n)
		}
		// The repair was spent; the next one is due a round trip after it.
		tc.advance(rtt / 2)
		tc.write(req, req, req, req, req)
		if n := countData(); n != 0 {
			t.Fatalf("five STATUS_REQ within a round trip of a repair drew %d DATA frames, want 0", n)
		}
		tc.advance(rtt / 2)
		tc.write(req, req, req, req, req)
		if n := countData(); n != 2 {
			t.Fatalf("five STATUS_REQ in one datagram a round trip on drew %d DATA frames, want 2 (one repair)", n)
		}
		tc.write(req)
		if n := countData(); n != 0 {
			t.Fatalf("a STATUS_REQ right after a repair drew %d DATA frames", n)
		}
		// A round trip later the retransmissions are a round trip old too.
		tc.advance(rtt)
		tc.write(req)
		tc.wantFrames("a round trip later, a new repair",
			frameWantOf(wire.TypeData, hasSeq(I), hasAck(E)),
			frameWantOf(wire.TypeData, hasSeq(I+1), hasAck(E)),
			frameWantOf(wire.TypeAck),
		)
		if st := s.Stats(); st.StatusRepair != 3 || st.Retransmits != 4 {
			t.Errorf("StatusRepair %d Retransmits %d, want 3 and 4", st.StatusRepair, st.Retransmits)
		}
	})
}

// Answers to frames of unknown sessions are rate-limited per endpoint: a
// flood of 500 stray DATA frames draws at most the burst (100) of RSTs,
// counted in ResetsSent and DatagramsSent, the rest counted suppressed; a
// second later the budget is back.
func TestFramesDataRstRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		var flood []tcOut
		for i := range 500 {
			flood = append(flood, tc.data(uint32(i), "x"))
		}
		for i := 0; i < len(flood); i += 50 {
			tc.write(flood[i : i+50]...)
		}
		n := 0
		for _, f := range tc.takeFrames() {
			if f.Header.Type == wire.TypeRst {
				n++
			}
		}
		st := tc.ep.Stats()
		if n != rstBurst || st.ResetsSent != rstBurst || st.ResetsSuppressed != 500-rstBurst || st.DatagramsSent != rstBurst {
			t.Fatalf("500 stray frames drew %d RSTs; Stats ResetsSent %d ResetsSuppressed %d DatagramsSent %d; want %d, %d, %d, %d",
				n, st.ResetsSent, st.ResetsSuppressed, st.DatagramsSent, rstBurst, rstBurst, 500-rstBurst, rstBurst)
		}
		tc.advance(time.Second)
		tc.write(tc.data(7, "x"))
		tc.wantFrame("the budget is back", wire.TypeRst, hasReason(wire.RstNoSession))
	})
}

// A message above the max_message we announced can never be
// acknowledged: the session ends with ErrProtocol and the peer gets RST 6
// (seq = our cumulative ack - 1, ack = its epoch + 1); what came before
// is still delivered.
func TestFramesDataTooLargeEndsSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, &Config{MaxMessage: 16})
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		// MaxMessage bytes are fine.
		tc.write(tc.data(Q, "sixteen bytes!!!"))
		tc.wantFrame("ACK", wire.TypeAck, hasCum(Q+1))
		tc.write(tc.data(Q+1, "ok"), tc.data(Q+2, "seventeen bytes!!"))
		tc.wantFrame("RST 6 (the session is over: no ACK)", wire.TypeRst, hasSeq(Q+1), hasAck(P+1), hasReason(wire.RstProtocol))
		tc.wantIdle("one RST")
		tc.wantRecv(s, "sixteen bytes!!!", "ok")
		if err := s.Err(); !errors.Is(err, ErrProtocol) {
			t.Fatalf("Err = %v, want ErrProtocol", err)
		}
		if r := tc.ep.Stats().Rejected["too_large"]; r != 1 {
			t.Errorf("Rejected[too_large] = %d, want 1 (%v)", r, tc.ep.Stats().Rejected)
		}
		// Reset-wait answers the peer's retransmission with the same reason.
		tc.write(tc.data(Q+2, "seventeen bytes!!"))
		tc.wantFrame("RST 6 again", wire.TypeRst, hasSeq(Q+2), hasAck(P+1), hasReason(wire.RstProtocol))
	})
}

// REQUEST and FIN mean nothing on a REPLY: a REPLY with FIN set is a
// reply like any other (it does not end the session).
func TestFramesReplyFinIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.acceptSession()
		Q := tc.peerSyn.ISN
		tc.write(tc.data(Q, "a"))
		tc.wantFrame("ACK", wire.TypeAck, hasCum(Q+1))
		// A REPLY answering nothing, with FIN: takes its DSN, ends nothing.
		r := tcOut{f: wire.Frame{ID: tc.ch, Seq: 12345, Ack: tc.epEpoch + 1, Type: wire.TypeReply, Arg: Q + 1, Flags: wire.FlagFin}, payload: []byte("r")}
		tc.write(r, tc.data(Q+2, "b"))
		tc.wantFrame("ACK of both", wire.TypeAck, hasCum(Q+3))
		tc.wantRecv(s, "a", "b")
		if tc.isDone(s) {
			t.Fatalf("a REPLY with FIN ended the session: %v", s.Err())
		}
	})
}
