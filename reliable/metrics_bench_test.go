package reliable

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/transport/memnet"
)

// BenchmarkMetricsHooks measures what the engine pays per datagram sent
// and per acknowledgement received, the only places where metrics do more
// than an atomic add: a datagram of 64 frames and an ack releasing 64
// messages, with the no-op provider and with the recording provider of
// metrics_test.go, whose histograms are enabled and record under a mutex
// (about what the SDK's do). The cost of metrics with the SDK itself, end
// to end, is otelcheck's BenchmarkMetricsOverhead (the root module does
// not require the SDK):
//
//	go test -run '^$' -bench BenchmarkMetricsHooks -count 6 ./reliable
//	cd otelcheck && go test -mod=mod -run '^$' -bench BenchmarkMetricsOverhead -benchtime 2000000x -count 6 .
func BenchmarkMetricsHooks(b *testing.B) {
	for _, c := range []struct {
		name string
		mp   metric.MeterProvider
	}{{"noop", metricnoop.NewMeterProvider()}, {"recorder", newRecorder()}} {
		b.Run(c.name, func(b *testing.B) {
			c0, err := memnet.New(memnet.Config{}).Open(0)
			if err != nil {
				b.Fatal(err)
			}
			e, err := NewEndpoint(c0, &Config{MeterProvider: c.mp})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			in := e.m // e has no session: its owner runs none of these
			var dgram []byte
			for i := range 64 {
				f := wire.Frame{ID: DefaultChannel, Seq: uint32(i), Type: wire.TypeData}
				if dgram, err = wire.Append(dgram, &f, nil, make([]byte, 256)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				in.datagram(dgram)
				now := time.Duration(i) * time.Microsecond
				for range 64 {
					in.acked(now - 20*time.Microsecond)
				}
				in.ackDone(now)
				in.rtt(20 * time.Microsecond)
			}
		})
	}
}
