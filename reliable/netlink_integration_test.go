//go:build linux

package reliable

import (
	"context"
	"testing"
	"time"

	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/fault"
)

// netlinkPair opens two real NETLINK_CONNECTOR endpoints; wrap may insert
// the fault injector.
func netlinkPair(t *testing.T, cfgA, cfgB transport.Config, ecfg *Config, wrap func(transport.Transport, int) transport.Transport) (*Endpoint, *Endpoint) {
	t.Helper()
	ta, err := transport.Open(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := transport.Open(cfgB)
	if err != nil {
		ta.Close()
		t.Fatal(err)
	}
	var xa, xb transport.Transport = ta, tb
	if wrap != nil {
		xa, xb = wrap(ta, 0), wrap(tb, 1)
	}
	a, err := NewEndpoint(xa, ecfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewEndpoint(xb, ecfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// 100,000 messages over real netlink with 10% injected loss plus
// duplication and reordering, every one verified.
func TestIntegrationLossy100k(t *testing.T) {
	testenv.RequireNetAdmin(t)
	const seed = 20261127
	var conns []*fault.Conn
	wrap := func(tr transport.Transport, i int) transport.Transport {
		c := fault.Wrap(tr, fault.Config{Seed: seed + uint64(i), Send: fault.Direction{
			Loss: 0.10, Duplicate: 0.02, Reorder: 0.05,
		}})
		conns = append(conns, c)
		return c
	}
	big := transport.Config{ReadBuffer: 4 << 20, WriteBuffer: 4 << 20}
	a, b := netlinkPair(t, big, big, nil, wrap)
	sa, sb := dialAccept(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	if err := stream(ctx, sa, sb, 100_000, 256); err != nil {
		t.Fatalf("seed=%d: %v\n%v\n%v", seed, err, conns[0].Stats(), conns[1].Stats())
	}
	el := time.Since(start)
	st := conns[0].Stats()
	if st.Send.Lost == 0 || st.Send.Duplicated == 0 || st.Send.Reordered == 0 {
		t.Fatalf("faults did not happen: %v", st)
	}
	t.Logf("seed=%d: 100000 x 256 B in %v (%.0f msgs/s); sender %+v; %v", seed, el, 100000/el.Seconds(), sa.Stats(), st)
}

// A receiver with a tiny receive buffer makes the sender meet EAGAIN
// storms; everything still arrives, and the storms really happened.
func TestIntegrationTinyReceiveBuffer(t *testing.T) {
	testenv.RequireNetAdmin(t)
	tiny := transport.Config{ReadBuffer: 4096} // the kernel doubles it: ~8 KiB
	big := transport.Config{ReadBuffer: 4 << 20, WriteBuffer: 4 << 20}
	a, b := netlinkPair(t, big, tiny, &Config{MaxDatagram: 4096, MaxMessage: 1024}, nil)
	sa, sb := dialAccept(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := stream(ctx, sa, sb, 20_000, 512); err != nil {
		t.Fatal(err)
	}
	if a.Stats().PeerBusy == 0 {
		t.Fatalf("no EAGAIN met: the test did not test anything: %+v", a.Stats())
	}
	t.Logf("sender: %+v", a.Stats())
}

// Request/reply over the real kernel path.
func TestIntegrationRequestReply(t *testing.T) {
	testenv.RequireNetAdmin(t)
	a, b := netlinkPair(t, transport.Config{}, transport.Config{}, nil, nil)
	sa, sb := dialAccept(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() {
		for {
			select {
			case q := <-sb.Requests():
				_ = q.Reply(ctx, append([]byte("re:"), q.Data...))
			case <-sb.Done():
				return
			}
		}
	}()
	for i := range 1000 {
		got, err := sa.Request(ctx, msg(i, 64))
		if err != nil {
			t.Fatal(err)
		}
		if err := checkMsg(got[3:], i, 64); err != nil {
			t.Fatal(err)
		}
	}
	if err := sa.Close(); err != nil {
		t.Fatal(err)
	}
}
