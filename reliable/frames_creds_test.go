package reliable

// Frame-level tests of Config.AllowCreds. See frames_harness_test.go for
// the harness.

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/memnet"
)

// With AllowCreds refusing a sender's credentials, its datagrams are
// dropped whole, before any frame is looked at (no SYNACK, no ACK, no
// RST), and counted; the same frames with acceptable credentials work.
// Datagrams without credentials are not subject to AllowCreds.
func TestFramesAllowCreds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const banned = 666
		var uid atomic.Uint32 // the UID memnet stamps on the peer's datagrams
		var valid atomic.Bool
		uid.Store(banned)
		valid.Store(true)
		ncfg := memnet.Config{Creds: func(port uint32) transport.Creds {
			return transport.Creds{PID: port, UID: uid.Load(), Valid: valid.Load()}
		}}
		cfg := &Config{Window: 16, AllowCreds: func(c transport.Creds) bool { return c.UID != banned }}
		tc := newTestConnNet(t, ncfg, cfg)
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		// Credentials are stamped per datagram; Inject stamps afresh.
		inject := func(frames ...tcOut) {
			t.Helper()
			if err := tc.net.Inject(tc.peer.LocalPort(), transport.Addr{Port: tc.ep.LocalPort()}, tc.encode(frames...)); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}

		inject(tc.syn())
		tc.wantIdle("a SYN with refused credentials is not answered")
		if st := tc.ep.Stats(); st.Rejected["credentials"] != 1 || st.DatagramsReceived != 0 {
			t.Errorf("Rejected[credentials] = %d, DatagramsReceived = %d; want 1, 0", st.Rejected["credentials"], st.DatagramsReceived)
		}
		wantNoAccept(t, tc)

		uid.Store(1000)
		inject(tc.syn())
		tc.wantFrame("the same SYN with acceptable credentials", wire.TypeSynAck, hasSeq(Q), hasAck(P+1))
		tc.wantPreAcceptAck()

		uid.Store(banned)
		inject(tc.data(Q, "refused"))
		tc.wantIdle("DATA with refused credentials is not acknowledged")
		if n := tc.ep.Stats().Rejected["credentials"]; n != 2 {
			t.Errorf("Rejected[credentials] = %d, want 2", n)
		}
		uid.Store(1000)
		inject(tc.data(Q, "accepted"))
		tc.wantFrame("DATA with the session's credentials", wire.TypeAck, hasSeq(Q), hasAck(P+1), hasCum(Q+1))
	})
}

// A session is pinned to the credentials of the peer's handshake. A
// datagram from its port without credentials is dropped (counted) and
// changes nothing; one with other credentials comes from another process
// that took the port after the peer died (it may have learnt the epochs
// from our frames): it is dropped and the session ends at once with
// ErrPeerGone, nothing of it delivered.
func TestFramesCredsPinned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var pid atomic.Uint32
		var valid atomic.Bool
		pid.Store(100)
		valid.Store(true)
		ncfg := memnet.Config{Creds: func(port uint32) transport.Creds {
			return transport.Creds{PID: pid.Load(), UID: 0, Valid: valid.Load()}
		}}
		tc := newTestConnNet(t, ncfg, &Config{Window: 16})
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		inject := func(frames ...tcOut) {
			t.Helper()
			if err := tc.net.Inject(tc.peer.LocalPort(), transport.Addr{Port: tc.ep.LocalPort()}, tc.encode(frames...)); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		inject(tc.syn())
		tc.learn(tc.wantFrame("SYNACK", wire.TypeSynAck, hasSeq(Q), hasAck(P+1)))
		tc.wantPreAcceptAck()
		s, err := tc.ep.Accept(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		tc.wantFrame("Accept opens the window", wire.TypeAck)
		if c := s.PeerCreds(); !c.Valid || c.PID != 100 {
			t.Fatalf("PeerCreds = %+v, want pid 100", c)
		}
		inject(tc.data(Q, "a"))
		tc.wantFrame("ACK", wire.TypeAck, hasCum(Q+1))
		valid.Store(false)
		inject(tc.data(Q+1, "no credentials"))
		tc.wantIdle("a datagram without credentials is dropped")
		valid.Store(true)
		pid.Store(200) // the peer died; another process binds its port
		inject(tc.data(Q+1, "forged"), tc.ping(Q+2))
		tc.wantIdle("the squatter gets no answer")
		if !tc.isDone(s) {
			t.Fatal("the session outlived the change of hands")
		}
		if err := s.Err(); !errors.Is(err, ErrPeerGone) {
			t.Fatalf("Err = %v, want ErrPeerGone", err)
		}
		tc.wantRecv(s, "a")
		// The datagram without credentials, then both forged frames.
		if n := tc.ep.Stats().Rejected["credentials_changed"]; n != 3 {
			t.Errorf("Rejected[credentials_changed] = %d, want 3", n)
		}
	})
}

// Config.AllowPeer decides about a SYN before any session exists: refused
// with RST 3 and counted, Accept never sees it; allowed, it opens as usual
// with the credentials it was judged by.
func TestFramesAllowPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ncfg := memnet.Config{Creds: func(port uint32) transport.Creds {
			return transport.Creds{PID: 4242, UID: 1000, GID: 1000, Valid: true}
		}}
		var asked []transport.Creds
		allow := false
		cfg := &Config{Window: 16, AllowPeer: func(port uint32, ch transport.CbID, c transport.Creds) bool {
			asked = append(asked, c)
			return allow
		}}
		tc := newTestConnNet(t, ncfg, cfg)
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		tc.write(tc.syn())
		tc.wantFrame("a refused peer", wire.TypeRst, hasSeq(Q), hasAck(P+1), hasReason(wire.RstRefused))
		wantNoAccept(t, tc)
		if n := tc.ep.Stats().Rejected["refused"]; n != 1 {
			t.Errorf("Rejected[refused] = %d, want 1", n)
		}
		allow = true
		s := tc.acceptSession()
		if len(asked) != 2 || asked[1].PID != 4242 || s.PeerCreds() != asked[1] {
			t.Fatalf("AllowPeer saw %+v; session pinned to %+v", asked, s.PeerCreds())
		}
	})
}

// A SYN from a pinned session's port with other credentials comes from the
// port's new owner: replaying the old session's epoch gets no answer and
// does not keep the session alive (it ends, ErrPeerGone); a SYN of its own
// opens a new session.
func TestFramesCredsSynFromNewOwner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var pid atomic.Uint32
		pid.Store(100)
		ncfg := memnet.Config{Creds: func(port uint32) transport.Creds {
			return transport.Creds{PID: pid.Load(), Valid: true}
		}}
		tc := newTestConnNet(t, ncfg, &Config{Window: 16})
		inject := func(frames ...tcOut) {
			t.Helper()
			if err := tc.net.Inject(tc.peer.LocalPort(), transport.Addr{Port: tc.ep.LocalPort()}, tc.encode(frames...)); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		P, Q := tc.peerSyn.Epoch, tc.peerSyn.ISN
		inject(tc.syn())
		tc.learn(tc.wantFrame("SYNACK", wire.TypeSynAck, hasSeq(Q), hasAck(P+1)))
		tc.wantPreAcceptAck()
		s, err := tc.ep.Accept(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		tc.wantFrame("Accept opens the window", wire.TypeAck)
		pid.Store(200)
		inject(tc.syn()) // the old epoch, replayed by the new owner
		tc.wantIdle("a replayed SYN is not answered")
		if !tc.isDone(s) || !errors.Is(s.Err(), ErrPeerGone) {
			t.Fatalf("session after a replayed SYN from another process: %v, want ErrPeerGone", s.Err())
		}
		tc.peerSyn.Epoch = P + 7
		inject(tc.syn())
		tc.wantFrame("the new owner's own SYN opens a session", wire.TypeSynAck, hasSeq(Q), hasAck(P+8))
	})
}
