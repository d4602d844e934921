//go:build linux

package reliable

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/fault"
)

// Regression (issue 9, bug 3): two endpoints dial each other on the same
// channel at the same moment (a 100µs path delay makes the SYNs cross, or
// one arrives before the other side dials). Both Dials succeed with one
// session between them, which carries data both ways, and neither Accept
// sees it.
func TestIntegrationSimultaneousOpen(t *testing.T) {
	testenv.RequireNetAdmin(t)
	for i := range 20 {
		t.Run(fmt.Sprintf("run=%d", i), func(t *testing.T) {
			wrap := func(tr transport.Transport, i int) transport.Transport {
				return fault.Wrap(tr, fault.Config{Seed: uint64(i + 1), Send: fault.Direction{Delay: 100 * time.Microsecond}})
			}
			a, b := netlinkPair(t, transport.Config{}, transport.Config{}, nil, wrap)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			type res struct {
				s   *Session
				err error
			}
			rb := make(chan res, 1)
			go func() {
				s, err := b.Dial(ctx, a.LocalPort(), transport.CbID{})
				rb <- res{s, err}
			}()
			sa, err := a.Dial(ctx, b.LocalPort(), transport.CbID{})
			if err != nil {
				t.Fatalf("a's Dial: %v", err)
			}
			r := <-rb
			if r.err != nil {
				t.Fatalf("b's Dial: %v", r.err)
			}
			sb := r.s
			for _, ep := range []*Endpoint{a, b} {
				actx, acancel := context.WithTimeout(ctx, 10*time.Millisecond)
				if s, err := ep.Accept(actx); err == nil {
					t.Fatalf("Accept returned the dialed session %v", s.Channel())
				}
				acancel()
			}
			if err := stream(ctx, sa, sb, 1000, 100); err != nil {
				t.Fatalf("a->b: %v", err)
			}
			if err := stream(ctx, sb, sa, 1000, 100); err != nil {
				t.Fatalf("b->a: %v", err)
			}
			// Both close at once: both must learn the other holds everything.
			errc := make(chan error, 1)
			go func() { errc <- sb.Close() }()
			if err := sa.Close(); err != nil {
				t.Fatalf("a's Close: %v", err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("b's Close: %v", err)
			}
		})
	}
}
