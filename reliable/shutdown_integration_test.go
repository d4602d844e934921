//go:build linux

package reliable

import (
	"context"
	"testing"
	"time"

	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/transport"
)

// The new user's program over real netlink: 100,000 Sends return nil,
// then the client shuts its endpoint down without closing the session
// (defer ep.Shutdown(ctx)); the server gets every message, and the
// client's Shutdown returns nil.
func TestIntegrationShutdownDeliversAll(t *testing.T) {
	testenv.RequireNetAdmin(t)
	const n = 100000
	big := transport.Config{ReadBuffer: 1 << 20, WriteBuffer: 1 << 20}
	a, b := netlinkPair(t, big, big, nil, nil)
	sa, sb := dialAccept(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got := make(chan int, 1)
	go func() {
		k := 0
		for m, err := range sb.RecvIter(ctx) {
			if err != nil {
				t.Errorf("server: %v after %d", err, k)
				break
			}
			if err := checkMsg(m, k, 128); err != nil {
				t.Error(err)
				break
			}
			k++
		}
		got <- k
	}()
	for i := range n {
		if err := sa.Send(ctx, msg(i, 128)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if k := <-got; k != n {
		t.Fatalf("the server got %d of %d", k, n)
	}
}
