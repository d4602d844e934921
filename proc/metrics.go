package proc

import (
	"context"
	"fmt"
	"math"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/cnlink/cnlink"
)

// instrumentationName is the OpenTelemetry instrumentation scope of the
// Monitor's metrics: the import path of the package. Its version is
// cnlink.Version.
const instrumentationName = "github.com/cnlink/cnlink/proc"

// RegisterMetrics reports the Monitor's counters (see Stats) as
// OpenTelemetry metrics through mp; nil means the global provider, a
// no-op until the application installs an SDK. docs/OBSERVABILITY.md lists
// the instruments. Every series carries cnlink.local.port, the Monitor's
// netlink port, so that several Monitors report separate series.
//
// The instruments are observable: the SDK reads the Monitor's atomic
// counters when it collects, so metrics cost the event path nothing. The
// series disappear when the Monitor ends or when the returned
// registration is unregistered, whichever comes first. It fails only if
// the provider refuses the instruments or the callback.
func (m *Monitor) RegisterMetrics(mp metric.MeterProvider) (metric.Registration, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	meter := mp.Meter(instrumentationName, metric.WithInstrumentationVersion(cnlink.Version))
	var errs []error
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		if err != nil {
			errs = append(errs, err)
		}
		return c
	}
	// Names follow OpenTelemetry's naming guidelines (singular
	// namespaces, .count for counts, .limit for a limit);
	// docs/OBSERVABILITY.md has the table.
	received := counter("cnlink.proc.event.received", "{event}", "Events decoded from the kernel's proc connector, answers to subscription requests included")
	delivered := counter("cnlink.proc.event.delivered", "{event}", "Events and loss reports put into the Monitor's event channel")
	filtered := counter("cnlink.proc.event.filtered", "{event}", "Events received but not selected by Config.Events")
	unknown := counter("cnlink.proc.event.unknown", "{event}", "Delivered events of a kind this package does not know (KindUnknown)")
	lost := counter("cnlink.proc.event.lost", "{event}", "Events that did not reach the application, by cause: missed (kernel sequence gap) or dropped (event buffer full)")
	overruns := counter("cnlink.proc.overrun.count", "{overrun}", "Receive-queue overruns (ENOBUFS): the kernel dropped events for this socket")
	rejected := counter("cnlink.proc.message.rejected", "{message}", "Datagrams or messages refused, by reason: foreign (not from the kernel's proc connector) or malformed")
	rbuf, err := meter.Int64ObservableGauge("cnlink.proc.read_buffer.limit", metric.WithUnit("By"),
		metric.WithDescription("Receive buffer (SO_RCVBUF) last requested; grows after overruns up to Config.MaxReadBuffer"))
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("cnlink/proc: metrics: %w", errs[0])
	}

	local := attribute.Int64("cnlink.local.port", int64(m.port))
	with := func(kv ...attribute.KeyValue) metric.ObserveOption {
		return metric.WithAttributeSet(attribute.NewSet(append(kv, local)...))
	}
	all := with()
	missed := with(attribute.String("cnlink.proc.loss.cause", "missed"))
	dropped := with(attribute.String("cnlink.proc.loss.cause", "dropped"))
	foreign := with(attribute.String("cnlink.reject.reason", "foreign"))
	malformed := with(attribute.String("cnlink.reject.reason", "malformed"))
	u := func(v uint64) int64 { return int64(min(v, math.MaxInt64)) }
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := &m.st
		o.ObserveInt64(received, u(st.received.Load()), all)
		o.ObserveInt64(delivered, u(st.delivered.Load()), all)
		o.ObserveInt64(filtered, u(st.filtered.Load()), all)
		o.ObserveInt64(unknown, u(st.unknown.Load()), all)
		o.ObserveInt64(lost, u(st.missed.Load()), missed)
		o.ObserveInt64(lost, u(st.dropped.Load()), dropped)
		o.ObserveInt64(overruns, u(st.overruns.Load()), all)
		o.ObserveInt64(rejected, u(st.rejected.Load()), foreign)
		o.ObserveInt64(rejected, u(st.malformed.Load()), malformed)
		o.ObserveInt64(rbuf, m.rcvbuf.Load(), all)
		return nil
	}, received, delivered, filtered, unknown, lost, overruns, rejected, rbuf)
	if err != nil {
		return nil, fmt.Errorf("cnlink/proc: metrics: %w", err)
	}
	go func() {
		// Ends with the Monitor, and then the series go. Unregister is
		// idempotent (the API requires it), so the caller may have
		// called it already.
		<-m.done
		_ = reg.Unregister()
	}()
	return reg, nil
}
