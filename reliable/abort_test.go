package reliable

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/fault"
)

// Regression (found by the torture harness): the acceptor aborts right
// after the handshake over a lossy, reordering path, in real time. The
// dialer must end within the dead-peer bound. It used to live on: its
// RST lost, a late retransmitted SYN made the acceptor open a second
// session, which knew the dialer's epoch and kept it alive with ACKs.
func TestPeerAbortUnderLossEndsSession(t *testing.T) {
	for i := range 60 {
		seed := uint64(7000 + i)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			wrap := func(tr transport.Transport, j int) transport.Transport {
				return fault.Wrap(tr, fault.Config{Seed: seed*2 + uint64(j), Send: fault.Direction{
					Loss: 0.3, Reorder: 0.1, Delay: 100 * time.Microsecond, Jitter: 300 * time.Microsecond}})
			}
			cfg := &Config{KeepAlive: 50 * time.Millisecond, DeadPeerTimeout: time.Second}
			p := newEndpoints(t, cfg, wrap)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			acc := make(chan *Session, 1)
			go func() { s, _ := p.b.Accept(ctx); acc <- s }()
			sa, err := p.a.Dial(ctx, p.b.LocalPort(), transport.CbID{})
			if err != nil {
				return // lost handshake: nothing to test
			}
			if sb := <-acc; sb != nil {
				sb.Abort()
			}
			select {
			case <-sa.Done():
			case <-time.After(3 * time.Second):
				t.Fatalf("still open 3s after the peer aborted (dead-peer timeout 1s): a=%+v b=%+v", p.a.Stats(), p.b.Stats())
			}
		})
	}
}
