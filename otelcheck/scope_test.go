package otelcheck

import (
	"context"
	"testing"
	"testing/synctest"

	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/cnlink/cnlink"
	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport/memnet"
)

// TestScopeVersion checks that the spans of a session carry the
// instrumentation scope github.com/cnlink/cnlink/reliable at version
// cnlink.Version (the metrics' scope is checked by reported).
func TestScopeVersion(t *testing.T) {
	if cnlink.Version == "" {
		t.Fatal("cnlink.Version is empty")
	}
	synctest.Test(t, func(t *testing.T) {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		defer tp.Shutdown(context.Background())
		net := memnet.New(memnet.Config{})
		cfg := &reliable.Config{TracerProvider: tp}
		var eps [2]*reliable.Endpoint
		for i := range eps {
			c, err := net.Open(0)
			if err != nil {
				t.Fatal(err)
			}
			if eps[i], err = reliable.NewEndpoint(c, cfg); err != nil {
				t.Fatal(err)
			}
		}
		dialAccept(t, eps[0], eps[1])
		eps[0].Close()
		eps[1].Close()
		synctest.Wait()
		spans := rec.Ended()
		if len(spans) == 0 {
			t.Fatal("no span ended")
		}
		for _, s := range spans {
			if sc := s.InstrumentationScope(); sc.Name != reliableScope || sc.Version != cnlink.Version {
				t.Errorf("span %s: scope %s version %q, want %s version %q", s.Name(), sc.Name, sc.Version, reliableScope, cnlink.Version)
			}
		}
	})
}

// TestSDKHistogramRecordDoesNotAllocate checks what reliable's cost model
// assumes of the SDK (reliable/metrics.go; reliable's
// TestMetricsHooksDoNotAllocate checks the hooks themselves): recording
// into a histogram without attributes, as the hooks do once per datagram
// and per acknowledgement, allocates nothing once the series exists.
func TestSDKHistogramRecordDoesNotAllocate(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	m := mp.Meter(reliableScope)
	f, err := m.Float64Histogram("f", metric.WithExplicitBucketBoundaries(1e-5, 1e-4, 1e-3))
	if err != nil {
		t.Fatal(err)
	}
	i, err := m.Int64Histogram("i", metric.WithExplicitBucketBoundaries(64, 256, 1024))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		if f.Enabled(ctx) {
			f.Record(ctx, 5e-5)
		}
		if i.Enabled(ctx) {
			i.Record(ctx, 300)
		}
	})
	if allocs != 0 {
		t.Errorf("Enabled + Record without attributes: %v allocations, want 0", allocs)
	}
}
