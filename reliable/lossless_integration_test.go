//go:build linux

package reliable

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/transport"
)

// Unicast between netlink user ports loses nothing: a full receive queue
// refuses the send (EAGAIN) instead of dropping it (docs/PLATFORM.md §3).
// So on a real socket with no injected faults, every retransmission is a
// waste, and SessionStats.Retransmits must stay at 0 however the receiver
// behaves: EAGAIN storms (a tiny receive queue), a deep queue of large
// messages (RTT samples of milliseconds), and an application that stalls.
// The receiver's DuplicatesSuppressed checks the other side of the same
// promise: no frame arrived twice.
func TestIntegrationLosslessNoRetransmits(t *testing.T) {
	testenv.RequireNetAdmin(t)
	big := transport.Config{ReadBuffer: 4 << 20, WriteBuffer: 4 << 20}
	for _, c := range []struct {
		name     string
		rx       transport.Config
		cfg      *Config
		n, size  int
		stallsMs int // the receiving application sleeps this long every 1,000 messages
	}{
		{"tiny-queue", transport.Config{ReadBuffer: 4096}, &Config{MaxDatagram: 4096, MaxMessage: 1024}, 20_000, 512, 0},
		{"deep-queue-16KiB", big, nil, 20_000, 16384, 0},
		{"stalling-reader-16KiB", big, nil, 10_000, 16384, 20},
		{"stalling-reader-tiny-queue", transport.Config{ReadBuffer: 4096}, &Config{MaxDatagram: 4096, MaxMessage: 1024}, 10_000, 1024, 20},
	} {
		for _, procs := range []int{1, 2, 4} {
			t.Run(fmt.Sprintf("%s/GOMAXPROCS=%d", c.name, procs), func(t *testing.T) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				a, b := netlinkPair(t, big, c.rx, c.cfg, nil)
				sa, sb := dialAccept(t, a, b)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				errc := make(chan error, 1)
				go func() {
					for i := range c.n {
						if err := sa.Send(ctx, msg(i, c.size)); err != nil {
							errc <- fmt.Errorf("send %d: %w", i, err)
							return
						}
					}
					errc <- sa.Flush(ctx)
				}()
				for i := range c.n {
					if c.stallsMs > 0 && i%1000 == 999 {
						time.Sleep(time.Duration(c.stallsMs) * time.Millisecond)
					}
					select {
					case m := <-sb.Recv():
						if err := checkMsg(m, i, c.size); err != nil {
							t.Fatal(err)
						}
					case <-sb.Done():
						t.Fatalf("receiver ended after %d: %v", i, sb.Err())
					case <-ctx.Done():
						t.Fatalf("received %d of %d: %v", i, c.n, ctx.Err())
					}
				}
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
				st, rt := sa.Stats(), sb.Stats()
				t.Logf("sender %+v; receiver %+v; endpoint %+v", st, rt, a.Stats())
				if st.Retransmits != 0 || rt.Retransmits != 0 || rt.DuplicatesSuppressed != 0 {
					t.Errorf("lossless path: sender Retransmits %d (timeout %d), receiver Retransmits %d, DuplicatesSuppressed %d; want all 0",
						st.Retransmits, st.TimeoutRetransmits, rt.Retransmits, rt.DuplicatesSuppressed)
				}
				if st.Sent != uint64(c.n) {
					t.Errorf("Sent %d, want %d", st.Sent, c.n)
				}
			})
		}
	}
}
