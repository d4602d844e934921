package reliable

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cnlink/cnlink/transport"
)

// A peer's SYN that arrives before our own Dial (a simultaneous open whose
// SYNs did not cross) opens a session that Accept has not taken: our Dial
// takes it, and Accept never returns it.
func TestDialTakesPendingAcceptedSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newEndpoints(t, nil, nil)
		ctx := context.Background()
		sb, err := p.b.Dial(ctx, p.a.LocalPort(), transport.CbID{})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		sa, err := p.a.Dial(ctx, p.b.LocalPort(), transport.CbID{})
		if err != nil {
			t.Fatalf("Dial after the peer's SYN arrived: %v", err)
		}
		if err := stream(ctx, sa, sb, 100, 32); err != nil {
			t.Fatal(err)
		}
		if err := stream(ctx, sb, sa, 100, 32); err != nil {
			t.Fatal(err)
		}
		actx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if s, err := p.a.Accept(actx); err == nil {
			t.Fatalf("Accept returned the session Dial took: %v", s.Channel())
		}
		// Once Accept took a session, a Dial to the same channel is refused.
		sc, err := p.b.Dial(ctx, p.a.LocalPort(), transport.CbID{Idx: 5, Val: 5})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.a.Accept(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := p.a.Dial(ctx, p.b.LocalPort(), transport.CbID{Idx: 5, Val: 5}); err == nil {
			t.Fatal("Dial took a session Accept had already handed over")
		}
		_ = sc
	})
}
