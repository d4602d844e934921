//go:build linux

package reliable

import (
	"context"
	"testing"
	"time"

	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/transport"
)

// A receiver that sees its session end (Done, peer closed) and exits at
// once, closing its socket without Endpoint.Close (os.Exit, a crash
// after the last message), must not make the sender's Close fail: Done
// closes only after the ACK of the sender's FIN left the socket.
func TestIntegrationReceiverExitsAfterDone(t *testing.T) {
	testenv.RequireNetAdmin(t)
	const rounds, n = 100, 200
	for r := range rounds {
		var raw [2]transport.Transport
		wrap := func(tr transport.Transport, i int) transport.Transport { raw[i] = tr; return tr }
		a, b := netlinkPair(t, transport.Config{}, transport.Config{}, nil, wrap)
		sa, sb := dialAccept(t, a, b)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		closed := make(chan error, 1)
		go func() {
			for i := range n {
				if err := sa.Send(ctx, msg(i, 64)); err != nil {
					closed <- err
					return
				}
			}
			closed <- sa.Close()
		}()
		got := 0
		for m, err := range sb.RecvIter(ctx) {
			if err != nil {
				t.Fatalf("round %d: receiver: %v after %d", r, err, got)
			}
			if err := checkMsg(m, got, 64); err != nil {
				t.Fatalf("round %d: %v", r, err)
			}
			got++
		}
		// The process "exits": its socket closes under the endpoint.
		raw[1].Close()
		if err := <-closed; err != nil || got != n {
			t.Fatalf("round %d: the receiver got %d of %d, then exited; the sender's Close: %v", r, got, n, err)
		}
		cancel()
		a.Close()
		b.Close()
	}
}
