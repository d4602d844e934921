//go:build linux

package reliable

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"testing"

	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/fault"
)

// BenchmarkStream measures one session over real netlink: SendBatch of 64
// on one side, Recv on the other, every message checked for order. The
// full comparison suite is in bench/; this one is for profiling the
// engine (go test -run ^$ -bench Stream -cpuprofile cpu.out ./reliable/).
func BenchmarkStream(b *testing.B) {
	testenv.RequireNetAdmin(b)
	for _, size := range []int{64, 256, 1024, 4096, 16384} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			big := transport.Config{ReadBuffer: 4 << 20, WriteBuffer: 4 << 20}
			ta, _ := transport.Open(big)
			tb, _ := transport.Open(big)
			cfg := benchConfig()
			var xa, xb transport.Transport = ta, tb
			if l := os.Getenv("CNLINK_BENCH_LOSS"); l != "" {
				var loss float64
				fmt.Sscan(l, &loss)
				xa = fault.Wrap(ta, fault.Config{Seed: 1, Send: fault.Direction{Loss: loss}})
				xb = fault.Wrap(tb, fault.Config{Seed: 2, Send: fault.Direction{Loss: loss}})
			}
			ea, _ := NewEndpoint(xa, cfg)
			eb, _ := NewEndpoint(xb, cfg)
			defer ea.Close()
			defer eb.Close()
			ctx := context.Background()
			sa, sb := dialAccept(b, ea, eb)
			done := make(chan error, 1)
			n := b.N
			go func() {
				for i := range n {
					m := <-sb.Recv()
					if got := binary.LittleEndian.Uint64(m); got != uint64(i) {
						done <- fmt.Errorf("got %d want %d", got, i)
						return
					}
				}
				done <- nil
			}()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			const batch = 64
			bufs := make([][]byte, batch)
			for i := range bufs {
				bufs[i] = make([]byte, size)
			}
			for i := 0; i < n; i += batch {
				k := min(batch, n-i)
				for j := range k {
					binary.LittleEndian.PutUint64(bufs[j], uint64(i+j))
				}
				if _, err := sa.SendBatch(ctx, bufs[:k]); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(n), "cpu-ns/msg")
			b.ReportMetric(float64(sa.Stats().Retransmits)/float64(n), "retrans/msg")
		})
	}
}

func benchConfig() *Config {
	var c Config
	if w := os.Getenv("CNLINK_BENCH_WINDOW"); w != "" {
		fmt.Sscan(w, &c.Window)
	}
	if r := os.Getenv("CNLINK_BENCH_RECVBUF"); r != "" {
		fmt.Sscan(r, &c.RecvBuffer)
	}
	return &c
}
