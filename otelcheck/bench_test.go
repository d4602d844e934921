package otelcheck

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/memnet"
)

// The cost of metrics: 256-byte messages streamed over the in-memory
// network (real goroutines and time, no synctest) with the no-op meter
// provider and with an SDK provider whose manual reader is collected every
// 100 ms, far more often than any exporter would. One op is one message,
// so allocs/op is allocations per message.
//
//	go test -run '^$' -bench BenchmarkMetricsOverhead -benchtime 2000000x -count 6 .
//
// The interleaved sub-benchmark alternates 50,000-message rounds of the
// two configurations so that both see the same machine noise, and reports
// the overhead directly: overhead-% is how much lower the SDK's throughput
// was, cpu-overhead-% how much more CPU time per message it took (the
// steadier figure on a shared machine). docs/OBSERVABILITY.md has the
// figures (about 1% on the 2-core development machine, no allocation
// added). It moved here from package reliable with the SDK;
// reliable's BenchmarkMetricsHooks measures the engine's hooks alone.
func BenchmarkMetricsOverhead(b *testing.B) {
	b.Run("noop", func(b *testing.B) { benchMetricsStream(b, false) })
	b.Run("sdk", func(b *testing.B) { benchMetricsStream(b, true) })
	b.Run("interleaved", benchMetricsInterleaved)
}

// metricsBench is one streaming pair with its meter provider.
type metricsBench struct {
	a, b   *reliable.Endpoint
	sa, sb *reliable.Session
	stop   func()
	bufs   [][]byte
	next   uint64 // index of the next message
}

const metricsBenchSize = 256

func newMetricsBench(tb testing.TB, sdk bool) *metricsBench {
	tb.Helper()
	var mp metric.MeterProvider = metricnoop.NewMeterProvider()
	stopCollect := func() {}
	if sdk {
		reader := sdkmetric.NewManualReader()
		smp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		mp = smp
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			var rm metricdata.ResourceMetrics
			for {
				select {
				case <-t.C:
					_ = reader.Collect(context.Background(), &rm)
				case <-done:
					return
				}
			}
		}()
		stopCollect = func() {
			close(done)
			wg.Wait()
			_ = smp.Shutdown(context.Background())
		}
	}
	cfg := &reliable.Config{MeterProvider: mp, TracerProvider: tracenoop.NewTracerProvider()}
	net := memnet.New(memnet.Config{ReadBuffer: 8 << 20})
	ta, err := net.Open(0)
	if err != nil {
		tb.Fatal(err)
	}
	tbb, err := net.Open(0)
	if err != nil {
		tb.Fatal(err)
	}
	m := &metricsBench{}
	if m.a, err = reliable.NewEndpoint(ta, cfg); err != nil {
		tb.Fatal(err)
	}
	if m.b, err = reliable.NewEndpoint(tbb, cfg); err != nil {
		tb.Fatal(err)
	}
	m.stop = func() {
		m.a.Close()
		m.b.Close()
		stopCollect()
	}
	ctx := context.Background()
	acc := make(chan *reliable.Session, 1)
	go func() {
		s, err := m.b.Accept(ctx)
		if err != nil {
			tb.Error(err)
		}
		acc <- s
	}()
	if m.sa, err = m.a.Dial(ctx, m.b.LocalPort(), transport.CbID{}); err != nil {
		m.stop()
		tb.Fatal(err)
	}
	if m.sb = <-acc; m.sb == nil {
		m.stop()
		tb.FailNow()
	}
	m.bufs = make([][]byte, 64)
	for i := range m.bufs {
		m.bufs[i] = make([]byte, metricsBenchSize)
	}
	return m
}

// run streams n messages from a to b and waits until b has received them
// all, checking their order.
func (m *metricsBench) run(n int) error {
	ctx := context.Background()
	first := m.next
	m.next += uint64(n)
	errc := make(chan error, 1)
	go func() {
		for i := range n {
			select {
			case got := <-m.sb.Recv():
				if v := binary.LittleEndian.Uint64(got); v != first+uint64(i) {
					errc <- fmt.Errorf("got message %d, want %d", v, first+uint64(i))
					return
				}
			case <-m.sb.Done():
				errc <- m.sb.Err()
				return
			}
		}
		errc <- nil
	}()
	for i := 0; i < n; i += len(m.bufs) {
		k := min(len(m.bufs), n-i)
		for j := range k {
			binary.LittleEndian.PutUint64(m.bufs[j], first+uint64(i+j))
		}
		if _, err := m.sa.SendBatch(ctx, m.bufs[:k]); err != nil {
			return err
		}
	}
	return <-errc
}

func benchMetricsStream(b *testing.B, sdk bool) {
	m := newMetricsBench(b, sdk)
	defer m.stop()
	if err := m.run(10_000); err != nil { // warm the pools and windows
		b.Fatal(err)
	}
	b.SetBytes(metricsBenchSize)
	b.ReportAllocs()
	b.ResetTimer()
	if err := m.run(b.N); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	// How often the per-datagram and per-ack hooks ran, per message:
	// with reliable's BenchmarkMetricsHooks this bounds the metrics' cost per
	// message independently of the machine's noise.
	sa, sb := m.a.Stats(), m.b.Stats()
	b.ReportMetric(float64(sa.DatagramsSent+sb.DatagramsSent)/float64(b.N+10_000), "dgrams/msg")
}

func benchMetricsInterleaved(b *testing.B) {
	const round = 50_000
	noop, sdk := newMetricsBench(b, false), newMetricsBench(b, true)
	defer noop.stop()
	defer sdk.stop()
	for _, m := range []*metricsBench{noop, sdk} {
		if err := m.run(10_000); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var tNoop, tSDK, cNoop, cSDK time.Duration
	var nNoop, nSDK int
	for done := 0; done < b.N; {
		k := min(round, b.N-done)
		for i, m := range []*metricsBench{noop, sdk} {
			// Alternate which goes first, so that neither always runs
			// right after the other's garbage.
			if (done/round)%2 == 1 {
				m = []*metricsBench{sdk, noop}[i]
			}
			t0, c0 := time.Now(), benchCPUTime()
			if err := m.run(k); err != nil {
				b.Fatal(err)
			}
			dt, dc := time.Since(t0), benchCPUTime()-c0
			if m == noop {
				tNoop, cNoop, nNoop = tNoop+dt, cNoop+dc, nNoop+k
			} else {
				tSDK, cSDK, nSDK = tSDK+dt, cSDK+dc, nSDK+k
			}
		}
		done += k
	}
	b.StopTimer()
	rNoop, rSDK := float64(nNoop)/tNoop.Seconds(), float64(nSDK)/tSDK.Seconds()
	b.ReportMetric(rNoop, "noop-msgs/s")
	b.ReportMetric(rSDK, "sdk-msgs/s")
	b.ReportMetric(100*(1-rSDK/rNoop), "overhead-%")
	// CPU time per message is steadier than wall time on a shared
	// machine: other processes' load stretches rounds, not our CPU use.
	cpuNoop, cpuSDK := float64(cNoop)/float64(nNoop), float64(cSDK)/float64(nSDK)
	b.ReportMetric(cpuNoop, "noop-cpu-ns/msg")
	b.ReportMetric(cpuSDK, "sdk-cpu-ns/msg")
	b.ReportMetric(100*(cpuSDK/cpuNoop-1), "cpu-overhead-%")
}

// benchCPUTime is the process's user+system CPU time.
func benchCPUTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
