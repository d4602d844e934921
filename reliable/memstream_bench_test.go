package reliable

import (
	"context"
	"encoding/binary"
	"syscall"
	"testing"

	"github.com/cnlink/cnlink/transport/memnet"
)

func BenchmarkMemStream(b *testing.B) {
	net := memnet.New(memnet.Config{ReadBuffer: 8 << 20})
	ta, _ := net.Open(0)
	tb, _ := net.Open(0)
	ea, _ := NewEndpoint(ta, benchConfig())
	eb, _ := NewEndpoint(tb, benchConfig())
	defer ea.Close()
	defer eb.Close()
	ctx := context.Background()
	sa, sb := dialAccept(b, ea, eb)
	n := b.N
	done := make(chan struct{})
	go func() {
		for i := range n {
			m := <-sb.Recv()
			if binary.LittleEndian.Uint64(m) != uint64(i) {
				panic("order")
			}
		}
		close(done)
	}()
	cpu0 := cpuTime()
	b.SetBytes(256)
	b.ReportAllocs()
	bufs := make([][]byte, 64)
	for i := range bufs {
		bufs[i] = make([]byte, 256)
	}
	for i := 0; i < n; i += 64 {
		k := min(64, n-i)
		for j := range k {
			binary.LittleEndian.PutUint64(bufs[j], uint64(i+j))
		}
		sa.SendBatch(ctx, bufs[:k])
	}
	<-done
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(n), "cpu-ns/msg")
}

// cpuTime is the process's user+system CPU time in ns: a throughput
// measure that survives a machine shared with other work.
func cpuTime() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
