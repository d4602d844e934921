package reliable

// Frame-level tests of Config.AllowCreds. See frames_harness_test.go for
// the harness.

import (
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/memnet"
	"github.com/cnlink/cnlink/wire"
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

		uid.Store(banned)
		inject(tc.data(Q, "refused"))
		tc.wantIdle("DATA with refused credentials is not acknowledged")
		valid.Store(false)
		inject(tc.data(Q, "no credentials"))
		tc.wantFrame("DATA without credentials", wire.TypeAck, hasSeq(Q), hasAck(P+1), hasCum(Q+1))
		if n := tc.ep.Stats().Rejected["credentials"]; n != 2 {
			t.Errorf("Rejected[credentials] = %d, want 2", n)
		}
	})
}
