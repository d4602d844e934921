package reliable

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// instrumentationName names cnlink's meter and tracer.
const instrumentationName = "github.com/cnlink/cnlink/reliable"

// instruments connects an endpoint to OpenTelemetry. Counters are
// observable: the hot path only bumps atomics that the SDK reads at
// collection time, so metrics cost no allocation and no call per message.
// Histograms are recorded per acknowledgement (RTT) and per datagram
// (batch size), never per message.
type instruments struct {
	tracer      trace.Tracer
	rttHist     metric.Float64Histogram
	batchHist   metric.Int64Histogram
	deliverHist metric.Float64Histogram
	reg         metric.Registration

	msgsSent, bytesSent, msgsRecv, bytesRecv atomic.Uint64
	retransTimeout, retransFast, dups        atomic.Uint64
	delivered, opened, active, inflight      atomic.Int64
	closed                                   [numCloseReasons]atomic.Uint64
}

type closeReason int

const (
	closeLocal closeReason = iota
	closePeer
	closePeerGone
	closePeerReset
	closeTimeout
	numCloseReasons
)

var closeNames = [numCloseReasons]string{"local", "peer_closed", "peer_gone", "peer_reset", "timeout"}

func closeReasonOf(err error) closeReason {
	switch {
	case errors.Is(err, ErrPeerClosed):
		return closePeer
	case errors.Is(err, ErrPeerGone):
		return closePeerGone
	case errors.Is(err, ErrPeerReset):
		return closePeerReset
	case errors.Is(err, ErrTimeout):
		return closeTimeout
	}
	return closeLocal
}

func newInstruments(c *Config, e *Endpoint) *instruments {
	mp := c.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	tp := c.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	in := &instruments{tracer: tp.Tracer(instrumentationName)}
	m := mp.Meter(instrumentationName)
	// Instrument creation errors only happen with invalid names; the
	// returned instrument is then a no-op, which is the right fallback.
	in.rttHist, _ = m.Float64Histogram("cnlink.rtt", metric.WithUnit("s"),
		metric.WithDescription("Round-trip time samples (unambiguous: never from a retransmitted frame)"),
		metric.WithExplicitBucketBoundaries(2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 5e-3, 2e-2, 0.1))
	in.batchHist, _ = m.Int64Histogram("cnlink.datagram.size", metric.WithUnit("By"),
		metric.WithDescription("Bytes per sent datagram (coalescing batch size)"),
		metric.WithExplicitBucketBoundaries(64, 256, 1024, 4096, 16384, 32768, 65536))
	in.deliverHist, _ = m.Float64Histogram("cnlink.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Request round trip as seen by the caller"))

	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, _ := m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		return c
	}
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		g, _ := m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		return g
	}
	msgs := counter("cnlink.messages", "{message}", "Application messages, by direction (sent, received, delivered)")
	bytes := counter("cnlink.message.bytes", "By", "Application payload bytes, by direction (sent, received)")
	retrans := counter("cnlink.retransmissions", "{frame}", "Frames sent again, by cause (timeout, fast)")
	dups := counter("cnlink.duplicates", "{frame}", "Duplicate frames suppressed")
	rejected := counter("cnlink.frames.rejected", "{frame}", "Frames or datagrams dropped, by reason")
	overruns := counter("cnlink.overruns", "{event}", "Receive-queue overruns (ENOBUFS) reported by the transport")
	eagain := counter("cnlink.peer_busy", "{event}", "Sends that met a full peer queue (EAGAIN)")
	opened := counter("cnlink.sessions.opened", "{session}", "Sessions opened")
	closedC := counter("cnlink.sessions.closed", "{session}", "Sessions closed, by reason")
	inflight := gauge("cnlink.inflight", "{message}", "Messages sent and not yet acknowledged")
	sessions := gauge("cnlink.sessions.active", "{session}", "Sessions open on the endpoint")

	dir := func(d string) metric.ObserveOption {
		return metric.WithAttributes(attribute.String("cnlink.direction", d))
	}
	sentO, recvO, delivO := dir("sent"), dir("received"), dir("delivered")
	toO := metric.WithAttributes(attribute.String("cnlink.cause", "timeout"))
	fastO := metric.WithAttributes(attribute.String("cnlink.cause", "fast"))
	var rejO [numRejectReasons]metric.ObserveOption
	for i := range rejO {
		rejO[i] = metric.WithAttributes(attribute.String("cnlink.reason", rejectReason(i).String()))
	}
	var closeO [numCloseReasons]metric.ObserveOption
	for i := range closeO {
		closeO[i] = metric.WithAttributes(attribute.String("cnlink.reason", closeNames[i]))
	}
	i64 := func(v uint64) int64 { return int64(v) }
	in.reg, _ = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(msgs, i64(in.msgsSent.Load()), sentO)
		o.ObserveInt64(msgs, i64(in.msgsRecv.Load()), recvO)
		o.ObserveInt64(msgs, in.delivered.Load(), delivO)
		o.ObserveInt64(bytes, i64(in.bytesSent.Load()), sentO)
		o.ObserveInt64(bytes, i64(in.bytesRecv.Load()), recvO)
		o.ObserveInt64(retrans, i64(in.retransTimeout.Load()), toO)
		o.ObserveInt64(retrans, i64(in.retransFast.Load()), fastO)
		o.ObserveInt64(dups, i64(in.dups.Load()))
		for i := range e.stats.rejected {
			if v := e.stats.rejected[i].Load(); v > 0 {
				o.ObserveInt64(rejected, i64(v), rejO[i])
			}
		}
		o.ObserveInt64(overruns, i64(e.stats.overruns.Load()))
		o.ObserveInt64(eagain, i64(e.stats.eagain.Load()))
		o.ObserveInt64(opened, in.opened.Load())
		for i := range in.closed {
			o.ObserveInt64(closedC, i64(in.closed[i].Load()), closeO[i])
		}
		o.ObserveInt64(inflight, in.inflight.Load())
		o.ObserveInt64(sessions, in.active.Load())
		return nil
	}, msgs, bytes, retrans, dups, rejected, overruns, eagain, opened, closedC, inflight, sessions)
	return in
}

func (in *instruments) unregister() {
	if in.reg != nil {
		_ = in.reg.Unregister()
	}
}

func (in *instruments) sent(n int)     { in.msgsSent.Add(1); in.bytesSent.Add(uint64(n)) }
func (in *instruments) received(n int) { in.msgsRecv.Add(1); in.bytesRecv.Add(uint64(n)) }
func (in *instruments) dup()           { in.dups.Add(1) }
func (in *instruments) retransmit(rto bool) {
	if rto {
		in.retransTimeout.Add(1)
	} else {
		in.retransFast.Add(1)
	}
}
func (in *instruments) batch(n int) {
	if in.batchHist.Enabled(context.Background()) {
		in.batchHist.Record(context.Background(), int64(n))
	}
}
func (in *instruments) rtt(d time.Duration) {
	if in.rttHist.Enabled(context.Background()) {
		in.rttHist.Record(context.Background(), d.Seconds())
	}
}

func (in *instruments) sessionOpened(s *Session) {
	in.opened.Add(1)
	in.active.Add(1)
	_, s.span = in.tracer.Start(context.Background(), "cnlink.session",
		trace.WithAttributes(attribute.Int64("cnlink.peer.port", int64(s.key.port)),
			attribute.String("cnlink.channel", s.key.ch.String()),
			attribute.Bool("cnlink.initiator", s.initiator)))
}

func (in *instruments) sessionClosed(s *Session, err error) {
	r := closeReasonOf(err)
	in.closed[r].Add(1)
	in.active.Add(-1)
	if s.span == nil {
		return
	}
	name := "cnlink.close"
	if r == closePeerReset {
		name = "cnlink.reset"
	}
	s.span.AddEvent(name, trace.WithAttributes(attribute.String("cnlink.reason", closeNames[r])))
	if r != closeLocal && r != closePeer {
		s.span.SetStatus(codes.Error, err.Error())
	}
	s.span.End()
}

func (in *instruments) event(s *Session, name, what string) {
	if s.span != nil {
		s.span.AddEvent(name, trace.WithAttributes(attribute.String("cnlink.state", what)))
	}
}

func (in *instruments) startRequest(ctx context.Context, s *Session) (context.Context, trace.Span) {
	return in.tracer.Start(ctx, "cnlink.Request", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.Int64("cnlink.peer.port", int64(s.key.port))))
}
