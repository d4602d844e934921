package reliable

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/cnlink/cnlink"
	"github.com/cnlink/cnlink/transport"
)

// This file connects an endpoint to OpenTelemetry. docs/OBSERVABILITY.md
// lists every instrument; keep the two in step.
//
// Cost model. Counters and gauges are observable: the engine only bumps
// atomics (most of which it keeps for Stats anyway) and the SDK reads them
// in a callback at collection time, so they cost no call and no allocation
// per message, and nothing at all with the default no-op provider beyond
// the atomics. Histograms are recorded per acknowledgement (round-trip
// time, delivery latency) or per datagram (coalescing), never per message,
// and only when the SDK says that someone listens (Enabled). Attribute sets
// are built once, when the endpoint is created.
//
// Counters and gauges carry cnlink.local.port, the endpoint's netlink
// port, so that several endpoints in one process report separate series
// instead of colliding (OpenTelemetry forbids two observations of one
// instrument with one attribute set in a collection); an endpoint's series
// go when it closes. Histograms are per process, without the port: a
// distribution merges naturally across endpoints, and the SDK keeps every
// histogram series it has seen, so per-endpoint ones would pile up as
// endpoints come and go (each socket gets a new port). The port is
// assigned by the kernel, so a restarted process reports new series;
// docs/OBSERVABILITY.md shows how an application that does not want them
// drops the attribute with a View (the SDK then sums the endpoints).

// instrumentationName names cnlink's meter and tracer (the instrumentation
// scope), as OpenTelemetry asks: the import path of the instrumented
// package. The scope's version is cnlink.Version.
const instrumentationName = "github.com/cnlink/cnlink/reliable"

// Attribute keys. Names follow OpenTelemetry's attribute naming rules:
// namespaced under cnlink., lower snake_case within a component;
// network.io.direction (transmit, receive) is the semantic-convention
// attribute for a direction, and every instrument that counts both
// directions carries it instead of naming the direction.
const (
	attrLocalPort = attribute.Key("cnlink.local.port")
	attrPeerPort  = attribute.Key("cnlink.peer.port")
	attrChannel   = attribute.Key("cnlink.channel")
	attrInitiator = attribute.Key("cnlink.session.initiator")
	attrCause     = attribute.Key("cnlink.retransmission.cause")
	attrReject    = attribute.Key("cnlink.reject.reason")
	attrClose     = attribute.Key("cnlink.close.reason")
	attrState     = attribute.Key("cnlink.handshake.state")
	attrDirection = attribute.Key("network.io.direction")
)

// Span and span-event names.
const (
	spanSession    = "cnlink.session"
	spanRequest    = "cnlink.request"
	eventHandshake = "cnlink.handshake"
	eventClose     = "cnlink.close"
	eventReset     = "cnlink.reset"
)

// instruments holds an endpoint's OpenTelemetry state. Fields are grouped
// by the goroutine that writes them, each group on its own cache lines, so
// that the owner's counters and the pumps' counters do not share a line.
type instruments struct {
	tracer     trace.Tracer
	rttHist    metric.Float64Histogram
	delivHist  metric.Float64Histogram
	sizeHist   metric.Int64Histogram
	framesHist metric.Int64Histogram
	spanAttrs  []attribute.KeyValue // attributes every span starts with
	reg        metric.Registration

	_ [64]byte
	// Written by the owner goroutine, read by the metrics callback.
	msgsSent, bytesSent, msgsRecv, bytesRecv atomic.Uint64
	retransTimeout, retransFast, dups        atomic.Uint64
	opened                                   atomic.Uint64
	active, inflight, capacity, reordered    atomic.Int64
	closed                                   [numCloseReasons]atomic.Uint64
	// Owner only: the oldest first transmission among the messages the
	// acknowledgement being processed released (see acked, ackDone).
	ackOldest time.Duration
	ackAny    bool
	ackCount  int // messages released by the ack being processed
	recvN     int // messages received this burst, not yet published
	recvBytes int

	_ [64]byte
	// Written by the session pumps.
	delivered, deliveredBytes atomic.Int64
	_                         [64]byte
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

// Histogram bucket boundaries. Netlink round trips on one machine are
// microseconds; delivery latency adds loss recovery, whose retransmission
// timeouts back off to seconds.
var (
	rttBuckets      = []float64{2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1}
	deliveryBuckets = []float64{1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5}
	sizeBuckets     = []float64{64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536}
	framesBuckets   = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}
)

func newInstruments(c *Config, e *Endpoint) *instruments {
	mp := c.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	tp := c.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	local := attrLocalPort.Int64(int64(e.tr.LocalPort()))
	in := &instruments{
		tracer:    tp.Tracer(instrumentationName, trace.WithInstrumentationVersion(cnlink.Version)),
		spanAttrs: []attribute.KeyValue{local},
	}
	m := mp.Meter(instrumentationName, metric.WithInstrumentationVersion(cnlink.Version))

	// Instrument creation fails only for invalid names or units, which
	// the tests rule out; the instrument returned then is a no-op, the
	// right fallback for a library that must not fail on telemetry.
	// Names follow OpenTelemetry's naming guidelines: singular
	// namespaces, {operation}.duration for durations, .count for counts
	// of things, limit/usage/utilization for the window, direction as an
	// attribute (docs/OBSERVABILITY.md has the table, checked against
	// what is registered by otelcheck's TestInstrumentsDocumented).
	in.rttHist, _ = m.Float64Histogram("cnlink.round_trip.duration", metric.WithUnit("s"),
		metric.WithDescription("Round-trip time samples: one per acknowledgement that acknowledged a message sent only once (Karn's rule)"),
		metric.WithExplicitBucketBoundaries(rttBuckets...))
	in.delivHist, _ = m.Float64Histogram("cnlink.delivery.duration", metric.WithUnit("s"),
		metric.WithDescription("Per acknowledgement that released messages: time since the first transmission of the oldest of them, loss recovery included"),
		metric.WithExplicitBucketBoundaries(deliveryBuckets...))
	in.sizeHist, _ = m.Int64Histogram("cnlink.datagram.size", metric.WithUnit("By"),
		metric.WithDescription("Bytes per datagram sent (coalescing batch size in bytes)"),
		metric.WithExplicitBucketBoundaries(sizeBuckets...))
	in.framesHist, _ = m.Int64Histogram("cnlink.datagram.frames", metric.WithUnit("{frame}"),
		metric.WithDescription("Frames per datagram sent (coalescing batch size in frames)"),
		metric.WithExplicitBucketBoundaries(framesBuckets...))

	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, _ := m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		return c
	}
	// Current counts that add up across endpoints are up-down counters,
	// as OpenTelemetry's conventions ask (a Prometheus gauge either way).
	updown := func(name, unit, desc string) metric.Int64ObservableUpDownCounter {
		g, _ := m.Int64ObservableUpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		return g
	}
	msgCount := counter("cnlink.message.count", "{message}", "Messages sent for the first time (transmit: Send, Request, Reply, and the end-of-stream marker of Close) and received in order, each once (receive)")
	msgDeliv := counter("cnlink.message.delivered", "{message}", "Messages handed to the application: Recv, Requests, and replies returned by Request")
	msgUndeliv := counter("cnlink.message.undelivered", "{message}", "Messages received but dropped because their session ended before the application took them")
	payIO := counter("cnlink.payload.io", "By", "Payload bytes of the messages in cnlink.message.count, by direction")
	payDeliv := counter("cnlink.payload.delivered", "By", "Payload bytes of the messages in cnlink.message.delivered")
	dgrams := counter("cnlink.datagram.count", "{datagram}", "Datagrams sent (accepted by the transport) and received (handed to the protocol)")
	retrans := counter("cnlink.retransmission.count", "{message}", "Messages sent again, by cause: timeout (RTO expiry) or fast (loss detection, overrun repair)")
	spurious := counter("cnlink.retransmission.spurious", "{message}", "Retransmissions that the peer reported as duplicates: they were not needed")
	dups := counter("cnlink.duplicate.count", "{message}", "Duplicate message frames received and suppressed")
	rejected := counter("cnlink.frame.rejected", "{frame}", "Frames or whole datagrams dropped on receipt, by reason")
	overruns := counter("cnlink.overrun.count", "{overrun}", "Receive-queue overruns (ENOBUFS) reported by the transport: the kernel dropped datagrams")
	busy := counter("cnlink.send.peer_busy", "{send}", "Sends refused because the peer's receive queue was full (EAGAIN); retried later")
	sendErrs := counter("cnlink.send.error.count", "{send}", "Sends that failed for another reason (peer gone, permission, too large)")
	opened := counter("cnlink.session.opened", "{session}", "Sessions created: dialed or accepted")
	closedC := counter("cnlink.session.closed", "{session}", "Sessions ended, by reason")
	active := updown("cnlink.session.active", "{session}", "Sessions dialing or established")
	usage := updown("cnlink.window.usage", "{message}", "Messages sent and not yet acknowledged (send-window occupancy)")
	limit := updown("cnlink.window.limit", "{message}", "Send windows of the established sessions, summed")
	reorder := updown("cnlink.reorder.buffered", "{message}", "Messages received out of order, waiting in reorder buffers for a gap to fill")
	util, _ := m.Float64ObservableGauge("cnlink.window.utilization", metric.WithUnit("1"),
		metric.WithDescription("cnlink.window.usage / cnlink.window.limit (0 when no session is established)"))

	with := func(kv ...attribute.KeyValue) metric.ObserveOption {
		return metric.WithAttributeSet(attribute.NewSet(append(kv, local)...))
	}
	all := with()
	tx, rx := with(attrDirection.String("transmit")), with(attrDirection.String("receive"))
	toO, fastO := with(attrCause.String("timeout")), with(attrCause.String("fast"))
	var rejO [numRejectReasons]metric.ObserveOption
	for i := range rejO {
		rejO[i] = with(attrReject.String(rejectReason(i).String()))
	}
	var closeO [numCloseReasons]metric.ObserveOption
	for i := range closeO {
		closeO[i] = with(attrClose.String(closeNames[i]))
	}
	u := func(v uint64) int64 { return int64(min(v, math.MaxInt64)) }
	st := &e.stats
	in.reg, _ = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(msgCount, u(in.msgsSent.Load()), tx)
		o.ObserveInt64(msgCount, u(in.msgsRecv.Load()), rx)
		o.ObserveInt64(msgDeliv, in.delivered.Load(), all)
		o.ObserveInt64(msgUndeliv, u(st.undelivered.Load()), all)
		o.ObserveInt64(payIO, u(in.bytesSent.Load()), tx)
		o.ObserveInt64(payIO, u(in.bytesRecv.Load()), rx)
		o.ObserveInt64(payDeliv, in.deliveredBytes.Load(), all)
		o.ObserveInt64(dgrams, u(st.datagramsSent.Load()), tx)
		o.ObserveInt64(dgrams, u(st.datagramsRecv.Load()), rx)
		o.ObserveInt64(retrans, u(in.retransTimeout.Load()), toO)
		o.ObserveInt64(retrans, u(in.retransFast.Load()), fastO)
		o.ObserveInt64(spurious, u(st.spurious.Load()), all)
		o.ObserveInt64(dups, u(in.dups.Load()), all)
		for i := range st.rejected {
			// Reasons never seen stay out: twelve zero series per
			// endpoint would be noise.
			if v := st.rejected[i].Load(); v > 0 {
				o.ObserveInt64(rejected, u(v), rejO[i])
			}
		}
		o.ObserveInt64(overruns, u(st.overruns.Load()), all)
		o.ObserveInt64(busy, u(st.eagain.Load()), all)
		o.ObserveInt64(sendErrs, u(st.sendErrors.Load()), all)
		o.ObserveInt64(opened, u(in.opened.Load()), all)
		for i := range in.closed {
			o.ObserveInt64(closedC, u(in.closed[i].Load()), closeO[i])
		}
		o.ObserveInt64(active, in.active.Load(), all)
		fl, cp := in.inflight.Load(), in.capacity.Load()
		o.ObserveInt64(usage, fl, all)
		o.ObserveInt64(limit, cp, all)
		o.ObserveInt64(reorder, in.reordered.Load(), all)
		ratio := 0.0
		if cp > 0 {
			ratio = float64(fl) / float64(cp)
		}
		o.ObserveFloat64(util, ratio, all)
		return nil
	}, msgCount, msgDeliv, msgUndeliv, payIO, payDeliv, dgrams, retrans, spurious,
		dups, rejected, overruns, busy, sendErrs, opened, closedC, active, usage, limit, reorder, util)
	return in
}

// unregister stops reporting the endpoint: its series disappear from the
// next collection, and the provider no longer holds the endpoint. Call it
// once, when the endpoint has closed.
func (in *instruments) unregister() {
	if in.reg != nil {
		_ = in.reg.Unregister()
		in.reg = nil
	}
}

// The methods below are the engine's hooks. Unless noted, they run on the
// owner goroutine.

// sent counts a message's first transmission.
// sent counts n messages of bytes bytes in all accepted by a window
// (owner, once per batch: atomics per message would cost more than the
// rest of the accounting).
func (in *instruments) sent(n, bytes int) {
	in.msgsSent.Add(uint64(n))
	in.bytesSent.Add(uint64(bytes))
	in.inflight.Add(int64(n))
}

// acked is called for every message an acknowledgement releases, with
// the time of its first transmission (msgBuf.sentAt, stamped where the
// window accepts it).
func (in *instruments) acked(sentAt time.Duration) {
	in.ackCount++
	if !in.ackAny || sentAt < in.ackOldest {
		in.ackOldest, in.ackAny = sentAt, true
	}
}

// ackDone records one delivery-latency sample for the acknowledgement just
// processed, if it released messages.
func (in *instruments) ackDone(now time.Duration) {
	if !in.ackAny {
		return
	}
	in.inflight.Add(-int64(in.ackCount))
	in.ackCount = 0
	in.ackAny = false
	if in.delivHist.Enabled(context.Background()) {
		in.delivHist.Record(context.Background(), (now - in.ackOldest).Seconds())
	}
}

// received counts a message popped in order from a reorder buffer.
// The owner counts in plain fields and publishes once per burst
// (flushReceived).
func (in *instruments) received(n int) { in.recvN++; in.recvBytes += n }

// flushReceived publishes the messages counted by received.
func (in *instruments) flushReceived() {
	if in.recvN > 0 {
		in.msgsRecv.Add(uint64(in.recvN))
		in.bytesRecv.Add(uint64(in.recvBytes))
		in.recvN, in.recvBytes = 0, 0
	}
}

// deliver counts n messages of bytes bytes in all handed to the
// application. Any goroutine (the pumps, and the owner).
func (in *instruments) deliver(n, bytes int) {
	in.delivered.Add(int64(n))
	in.deliveredBytes.Add(int64(bytes))
}

// reorder adds d to the messages held in reorder buffers.
func (in *instruments) reorder(d int) {
	if d != 0 {
		in.reordered.Add(int64(d))
	}
}

func (in *instruments) dup() { in.dups.Add(1) }

func (in *instruments) retransmit(rto bool) {
	if rto {
		in.retransTimeout.Add(1)
	} else {
		in.retransFast.Add(1)
	}
}

// batch records the size of a datagram sent.
func (in *instruments) batch(n int) {
	if in.sizeHist.Enabled(context.Background()) {
		in.sizeHist.Record(context.Background(), int64(n))
	}
}

// datagram records a datagram sent: its size and how many frames it
// coalesced. Counting walks the netlink length fields only (the engine
// built the datagram, so they are sound): one load per frame, and only
// when someone listens.
func (in *instruments) datagram(b []byte) {
	in.batch(len(b))
	if !in.framesHist.Enabled(context.Background()) {
		return
	}
	n := 0
	for off := 0; off+transport.FrameHeaderLen <= len(b); n++ {
		l := int(binary.NativeEndian.Uint32(b[off:]))
		if l < transport.FrameHeaderLen {
			break
		}
		off += transport.Align(l)
	}
	in.framesHist.Record(context.Background(), int64(n))
}

func (in *instruments) rtt(d time.Duration) {
	if in.rttHist.Enabled(context.Background()) {
		in.rttHist.Record(context.Background(), d.Seconds())
	}
}

// sessionOpened counts a new session and starts its span, which lasts
// until sessionClosed.
func (in *instruments) sessionOpened(s *Session) {
	in.opened.Add(1)
	in.active.Add(1)
	attrs := append(in.spanAttrs[:len(in.spanAttrs):len(in.spanAttrs)],
		attrPeerPort.Int64(int64(s.key.port)),
		attrChannel.String(s.key.ch.String()),
		attrInitiator.Bool(s.initiator))
	_, s.span = in.tracer.Start(context.Background(), spanSession,
		trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
}

// handshake marks a session established (how is "established" for the
// dialer, "accepted" for the acceptor, "simultaneous" when both dialed):
// the window is open from now on.
func (in *instruments) handshake(s *Session, how string) {
	if s.snd != nil {
		in.capacity.Add(int64(s.snd.Window()))
	}
	if s.span != nil {
		s.span.AddEvent(eventHandshake, trace.WithAttributes(attrState.String(how)))
	}
}

// sessionClosed counts the end of a session, releases its share of the
// gauges and ends its span. It runs before the session's state changes to
// its final one.
func (in *instruments) sessionClosed(s *Session, err error) {
	r := closeReasonOf(err)
	in.closed[r].Add(1)
	in.active.Add(-1)
	if s.state == stateEstablished && s.snd != nil {
		in.capacity.Add(-int64(s.snd.Window()))
	}
	if s.rcv != nil {
		in.reorder(-s.rcv.Buffered())
	}
	if s.span == nil {
		return
	}
	name := eventClose
	if r == closePeerReset {
		name = eventReset
	}
	s.span.AddEvent(name, trace.WithAttributes(attrClose.String(closeNames[r])))
	if r != closeLocal && r != closePeer {
		s.span.SetStatus(codes.Error, err.Error())
	}
	s.span.End()
}

// startRequest starts the span of one Session.Request.
func (in *instruments) startRequest(ctx context.Context, s *Session) (context.Context, trace.Span) {
	return in.tracer.Start(ctx, spanRequest, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attrLocalPort.Int64(int64(s.ep.tr.LocalPort())), attrPeerPort.Int64(int64(s.key.port))))
}

// requestFailed marks a Request's span as failed, with the error's kind
// in error.type as OpenTelemetry's conventions ask.
func (in *instruments) requestFailed(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	span.SetAttributes(attribute.String("error.type", errorType(err)))
}

// errorType names an error's kind for error.type: the sentinel it
// matches, or the context error.
func errorType(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	}
	if r := closeReasonOf(err); r != closeLocal {
		return closeNames[r]
	}
	if errors.Is(err, ErrClosed) {
		return "closed"
	}
	return "_OTHER"
}
