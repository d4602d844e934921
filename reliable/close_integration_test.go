//go:build linux

package reliable

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/fault"
)

// closeRun streams n messages with SendBatch, then closes the sender, and
// reads everything at the receiver with RecvBatch + Recycle (pausing
// `pause` per message to be slower than the sender). It returns the
// receiver's count, the sender's Close error and the receiver's end.
type closeRun struct {
	n         int
	pause     time.Duration
	cfg       *Config
	wrap      func(transport.Transport, int) transport.Transport
	closeErr  error
	recvErr   error
	got       int
	violation error
}

func (r *closeRun) run(t *testing.T) {
	t.Helper()
	big := transport.Config{ReadBuffer: 1 << 20, WriteBuffer: 1 << 20}
	a, b := netlinkPair(t, big, big, r.cfg, r.wrap)
	sa, sb := dialAccept(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sent := make(chan error, 1)
	go func() {
		batch := make([][]byte, 64)
		for i := 0; i < r.n; {
			k := min(len(batch), r.n-i)
			for j := range k {
				batch[j] = msg(i+j, 256)
			}
			if _, err := sa.SendBatch(ctx, batch[:k]); err != nil {
				sent <- err
				return
			}
			i += k
		}
		sent <- sa.Close()
	}()
	buf := make([][]byte, 64)
	for {
		k, err := sb.RecvBatch(ctx, buf)
		if err != nil {
			r.recvErr = err
			break
		}
		for _, m := range buf[:k] {
			if r.violation == nil {
				if err := checkMsg(m, r.got, 256); err != nil {
					r.violation = err
				}
			}
			r.got++
			sb.Recycle(m)
			if r.pause > 0 && r.got%10 == 0 {
				// Sleeps are coarse: pause ten messages' worth at once.
				time.Sleep(10 * r.pause)
			}
		}
	}
	r.closeErr = <-sent
	if r.violation == nil && r.closeErr == nil && r.got != r.n {
		r.violation = fmt.Errorf("sender's Close returned nil but the receiver got %d of %d (undelivered %d)",
			r.got, r.n, b.Stats().Undelivered)
	}
	if r.violation == nil && errors.Is(r.recvErr, ErrPeerClosed) && r.got != r.n {
		r.violation = fmt.Errorf("receiver ended with %v after %d of %d messages", r.recvErr, r.got, r.n)
	}
}

// Regression (issue 9, bug 1): a FIN that arrives while the pump is
// blocked on a full Recv channel must not make it drop the rest. The
// default config has Window > RecvBuffer, which is what exposes it.
func TestIntegrationCloseDeliversEverything(t *testing.T) {
	testenv.RequireNetAdmin(t)
	for i := range 4 {
		t.Run(fmt.Sprintf("fast/%d", i), func(t *testing.T) {
			r := &closeRun{n: 100_000}
			r.run(t)
			if r.violation != nil || r.closeErr != nil || !errors.Is(r.recvErr, ErrPeerClosed) {
				t.Fatalf("violation: %v; sender Close: %v; receiver end: %v", r.violation, r.closeErr, r.recvErr)
			}
		})
	}
	t.Run("slow-reader", func(t *testing.T) {
		r := &closeRun{n: 20_000, pause: 100 * time.Microsecond}
		r.run(t)
		if r.violation != nil || r.closeErr != nil || !errors.Is(r.recvErr, ErrPeerClosed) {
			t.Fatalf("violation: %v; sender Close: %v; receiver end: %v", r.violation, r.closeErr, r.recvErr)
		}
	})
}

// Regression (issue 9, bug 2): under loss, Close must not return nil
// before the peer holds every message (a FIN acknowledged by SACK above a
// hole is not enough). Close may fail (then the receiver may lack the
// tail), but nil means everything arrived.
func TestIntegrationLossyCloseNilMeansDelivered(t *testing.T) {
	testenv.RequireNetAdmin(t)
	for i := range 12 {
		seed := uint64(20261201 + i)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			wrap := func(tr transport.Transport, i int) transport.Transport {
				if i != 0 {
					return tr
				}
				return fault.Wrap(tr, fault.Config{Seed: seed,
					Send: fault.Direction{Loss: 0.10}, Recv: fault.Direction{Loss: 0.10}})
			}
			r := &closeRun{n: 20_000, wrap: wrap, cfg: &Config{CloseTimeout: 20 * time.Second, DeadPeerTimeout: 20 * time.Second}}
			r.run(t)
			if r.violation != nil {
				t.Fatalf("violation: %v; sender Close: %v; receiver end: %v", r.violation, r.closeErr, r.recvErr)
			}
			if r.closeErr != nil {
				t.Logf("Close failed honestly: %v (receiver got %d of %d)", r.closeErr, r.got, r.n)
			}
		})
	}
}
