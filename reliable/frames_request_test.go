package reliable

// Frame-level tests of request/reply (PROTOCOL.md §6.6). See
// frames_harness_test.go for the harness.

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
)

// reply is a REPLY from the peer answering the endpoint's request at DSN
// req: seq = req, ack = E + 1, arg = the reply's own DSN in the peer's
// stream.
func (tc *testConn) reply(req, dsn uint32, payload string) tcOut {
	o := tc.data(req, payload).withAck(tc.epEpoch + 1).withArg(dsn)
	o.f.Type = wire.TypeReply
	return o
}

// The endpoint answers a request with a REPLY carrying the request's seq
// and ack + 1 and, in arg, its own DSN; a retransmitted request is not
// handed to the application again. The ACK of an in-order request waits
// up to ackHoldMax for the reply (PROTOCOL.md §6.4), then leaves alone;
// the duplicate's ACK does not wait.
func TestFramesRequestServed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		E, I := tc.epEpoch, tc.epISN
		ctx := context.Background()
		if err := s.Send(ctx, []byte("m0")); err != nil {
			t.Fatal(err)
		}
		tc.wantFrame("DATA before the reply", wire.TypeData, hasSeq(I), hasAck(E), hasPayload("m0"))
		tc.write(tc.data(Q, "question").withFlags(wire.FlagRequest))
		tc.wantIdleFor("the request's ACK waits for the reply", ackHoldMax-time.Microsecond)
		tc.advance(time.Microsecond)
		f := tc.wantFrame("no reply in time: the request acknowledged alone", wire.TypeAck, hasSeq(Q), hasAck(P+1), hasCum(Q+1))
		if f.at != ackHoldMax {
			t.Errorf("held ACK sent %v after the request, want %v", f.at, ackHoldMax)
		}
		var r *Request
		select {
		case r = <-s.Requests():
		default:
			t.Fatal("the request was not delivered")
		}
		if string(r.Data) != "question" {
			t.Fatalf("request %q", r.Data)
		}
		tc.write(tc.data(Q, "question").withFlags(wire.FlagRequest))
		tc.wantFrame("a retransmitted request", wire.TypeAck, hasSeq(Q), hasCum(Q+1), hasDup(Q))
		synctest.Wait()
		if len(s.Requests()) != 0 {
			t.Fatal("the retransmitted request was delivered again")
		}
		if err := r.Reply(ctx, []byte("answer")); err != nil {
			t.Fatal(err)
		}
		tc.wantFrame("REPLY", wire.TypeReply, hasSeq(Q), hasAck(P+1), hasArg(I+1), hasFlags(0), hasPayload("answer"))
		tc.write(tc.ackOf(I+2, I+64))
		tc.wantIdle("the reply acknowledged")
	})
}

// A request answered at once: its ACK rides in the REPLY's datagram; the
// requester's ACK of the REPLY rides with its next request the same way.
func TestFramesRequestAckRidesWithReply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		I := tc.epISN
		ctx := context.Background()
		served := make(chan error, 1)
		go func() {
			r := <-s.Requests()
			served <- r.Reply(ctx, append([]byte("re:"), r.Data...))
		}()
		tc.write(tc.data(Q, "question").withFlags(wire.FlagRequest))
		rp := tc.wantFrame("the REPLY first", wire.TypeReply, hasSeq(Q), hasAck(P+1), hasArg(I), hasPayload("re:question"))
		ack := tc.wantFrame("the ACK in the same datagram", wire.TypeAck, hasSeq(Q), hasAck(P+1), hasCum(Q+1))
		if rp.dgram != ack.dgram || rp.at != 0 {
			t.Errorf("REPLY in datagram %d at %v, ACK in datagram %d: want one datagram, sent at once", rp.dgram, rp.at, ack.dgram)
		}
		if err := <-served; err != nil {
			t.Fatal(err)
		}
		// Plain DATA is acknowledged at once, held ACK or not.
		tc.write(tc.data(Q+1, "plain"))
		tc.wantFrame("DATA: no hold", wire.TypeAck, hasSeq(Q+1), hasCum(Q+2))
		tc.write(tc.ackOf(I+1, I+64))
		tc.wantIdleFor("all acknowledged", time.Second/2)
	})
}

// The endpoint's request is answered by a REPLY matched by the connector
// rule (seq = the request's DSN, ack = E + 1); the REPLY takes a DSN in the
// peer's stream (arg), in order with its DATA, and its ACK answers that
// DSN. A REPLY with the wrong ack is ignored; one nobody waits for is
// acknowledged and dropped.
func TestFramesRequestAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestConn(t, nil)
		s := tc.acceptSession()
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		E, I := tc.epEpoch, tc.epISN
		got := make(chan string, 1)
		go func() {
			b, err := s.Request(context.Background(), []byte("question"))
			if err != nil {
				got <- "error: " + err.Error()
				return
			}
			got <- string(b)
		}()
		tc.wantFrame("the request", wire.TypeData, hasSeq(I), hasAck(E), hasFlags(wire.FlagRequest), hasPayload("question"))
		tc.write(tc.reply(I, Q+1, "forged").withAck(E))
		tc.wantIdle("a REPLY with the wrong ack is dropped")
		tc.write(tc.reply(I, Q+1, "answer"))
		tc.wantFrame("a REPLY above a hole", wire.TypeAck, hasSeq(Q+1), hasAck(P+1), hasCum(Q), hasSack(wire.Range{Start: Q + 1, End: Q + 1}))
		synctest.Wait()
		if len(got) != 0 {
			t.Fatalf("Request returned %q before the DATA the REPLY follows", <-got)
		}
		tc.write(tc.data(Q, "before"))
		tc.wantFrame("in order now", wire.TypeAck, hasSeq(Q), hasCum(Q+2))
		tc.wantRecv(s, "before")
		synctest.Wait()
		select {
		case r := <-got:
			if r != "answer" {
				t.Fatalf("Request = %q, want answer", r)
			}
		default:
			t.Fatal("Request did not return")
		}
		late := tc.ep.Stats().Rejected["late_reply"]
		tc.write(tc.reply(I+7, Q+2, "nobody asked"))
		tc.wantIdleFor("a REPLY's ACK waits for a request to ride with", ackHoldMax-time.Microsecond)
		tc.advance(time.Microsecond)
		tc.wantFrame("a REPLY nobody waits for still takes its DSN", wire.TypeAck, hasSeq(Q+2), hasAck(P+1), hasCum(Q+3))
		if n := tc.ep.Stats().Rejected["late_reply"]; n != late+1 {
			t.Errorf("Rejected[late_reply] = %d, want %d", n, late+1)
		}
		tc.write(tc.ackOf(I+1, I+64))
		tc.wantIdleFor("nothing more once the request is acknowledged", time.Second/2)
	})
}
