package reliable

import (
	"context"
	"encoding/binary"
	"runtime"
	"testing"
)

// The steady-state data path allocates nothing per message when the
// application uses SendBatch, RecvBatch and Recycle: not on send, not in
// the engine, not on receive.
func TestZeroAllocPerMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counting needs a quiet run")
	}
	if raceEnabled {
		// sync.Pool (pool.go) drops a random part of what it is given
		// under the race detector, on purpose.
		t.Skip("buffer pools do not keep everything under the race detector")
	}
	p := newPair(t, &Config{Window: 512, RecvBuffer: 512}, nil)
	ctx := context.Background()
	const size, batch = 256, 64
	out := make([][]byte, batch)
	for i := range out {
		out[i] = make([]byte, size)
	}
	in := make([][]byte, batch)
	run := func(n int) {
		done := make(chan error, 1)
		go func() {
			for got := 0; got < n; {
				k, err := p.sb.RecvBatch(ctx, in)
				if err != nil {
					done <- err
					return
				}
				for _, m := range in[:k] {
					if binary.LittleEndian.Uint64(m) != uint64(got) {
						t.Errorf("message %d out of order", got)
					}
					got++
					p.sb.Recycle(m)
				}
			}
			done <- nil
		}()
		for i := 0; i < n; i += batch {
			for j := range batch {
				binary.LittleEndian.PutUint64(out[j], uint64(i+j))
			}
			if _, err := p.sa.SendBatch(ctx, out); err != nil {
				t.Fatal(err)
			}
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	run(64 * 200) // warm up: buffers, free lists, rings
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	const n = 64 * 500
	run(n)
	runtime.ReadMemStats(&m1)
	per := float64(m1.Mallocs-m0.Mallocs) / n
	t.Logf("%.4f allocations per message", per)
	// A few allocations per run (goroutine, channel) are fine; one per
	// message is not.
	if per > 0.05 {
		t.Fatalf("%.3f allocations per message, want ~0", per)
	}
}
