package otelcheck

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/fault"
	"github.com/cnlink/cnlink/transport/memnet"
)

// This file was reliable/metrics_test.go's TestMetricsChaos: it moved here
// with the OpenTelemetry SDK, which the root module does not require.
// It uses reliable's exported API only; the names below are the ones
// reliable/metrics.go uses.
const (
	reliableScope  = "github.com/cnlink/cnlink/reliable"
	attrLocalPort  = attribute.Key("cnlink.local.port")
	attrPeerPort   = attribute.Key("cnlink.peer.port")
	attrClose      = attribute.Key("cnlink.close.reason")
	attrState      = attribute.Key("cnlink.handshake.state")
	spanSession    = "cnlink.session"
	spanRequest    = "cnlink.request"
	eventHandshake = "cnlink.handshake"
	eventClose     = "cnlink.close"
	eventReset     = "cnlink.reset"
)

var closeNames = []string{"local", "peer_closed", "peer_gone", "peer_reset", "timeout"}

// tap counts what an endpoint really hands to its transport and gets
// from it: the wire-level truth that the metrics are checked against. It
// sits between the endpoint and the fault injector, so it sees what the
// endpoint sent before faults and what it received after them.
type tap struct {
	transport.Transport
	sentDgrams, sentBytes, sentFrames, sentData atomic.Uint64
	recvData                                    atomic.Uint64
}

func (t *tap) Send(dst transport.Addr, b []byte) error {
	err := t.Transport.Send(dst, b)
	if err == nil {
		frames, data := countFrames(b)
		t.sentDgrams.Add(1)
		t.sentBytes.Add(uint64(len(b)))
		t.sentFrames.Add(frames)
		t.sentData.Add(data)
	}
	return err
}

func (t *tap) Receive(buf []byte) (transport.Packet, error) {
	p, err := t.Transport.Receive(buf)
	if err == nil && !p.Overrun && !p.Truncated && p.Group == 0 {
		_, data := countFrames(p.Data)
		t.recvData.Add(data)
	}
	return p, err
}

// countFrames counts the netlink messages of a datagram and, among them,
// the valid cnlink frames that carry a message (Data or Reply), parsed as
// the endpoint parses them (a corrupted frame fails its CRC here too).
func countFrames(b []byte) (frames, data uint64) {
	var r wire.Reader
	r.Reset(b)
	for r.Next() {
		frames++
		f, err := r.Frame()
		if err == nil && (f.Header.Type == wire.TypeData || f.Header.Type == wire.TypeReply) {
			data++
		}
	}
	return frames, data
}

// points are the data points of one collection: port -> series -> value.
// A series is the instrument name followed by its attributes other than
// cnlink.local.port, as name{k=v,...}; histograms give name.count and
// name.sum. Process-wide series (the histograms) are under procWide.
type points map[int64]map[string]float64

// procWide is the key of series without cnlink.local.port (netlink ports
// of user sockets are never 0).
const procWide = 0

func collect(t testing.TB, r *sdkmetric.ManualReader) points {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collect: %v", err)
	}
	out := make(points)
	// Counters and gauges are per endpoint, histograms per process.
	add := func(name string, set attribute.Set, suffix string, v float64) {
		port := int64(procWide)
		var kv []string
		for _, a := range set.ToSlice() {
			if a.Key == attrLocalPort {
				port = a.Value.AsInt64()
				continue
			}
			kv = append(kv, string(a.Key)+"="+a.Value.String())
		}
		if hist := suffix != ""; hist != (port == procWide) {
			t.Errorf("%s%s: histogram %v, with %s %v", name, kv, hist, attrLocalPort, port != procWide)
		}
		key := name
		if len(kv) > 0 {
			sort.Strings(kv)
			key += "{" + strings.Join(kv, ",") + "}"
		}
		if out[port] == nil {
			out[port] = make(map[string]float64)
		}
		if _, dup := out[port][key+suffix]; dup {
			t.Errorf("%s%s: two data points for one series", key, suffix)
		}
		out[port][key+suffix] = v
	}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != reliableScope {
			t.Errorf("scope %q, want %q", sm.Scope.Name, reliableScope)
		}
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					add(m.Name, p.Attributes, "", float64(p.Value))
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					add(m.Name, p.Attributes, "", p.Value)
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					add(m.Name, p.Attributes, ".count", float64(p.Count))
					add(m.Name, p.Attributes, ".sum", p.Sum)
				}
			case metricdata.Histogram[int64]:
				for _, p := range d.DataPoints {
					add(m.Name, p.Attributes, ".count", float64(p.Count))
					add(m.Name, p.Attributes, ".sum", float64(p.Sum))
				}
			default:
				t.Errorf("%s: unexpected data type %T", m.Name, m.Data)
			}
		}
	}
	return out
}

// metricsKind is one family of fault mixes for TestMetricsChaos.
type metricsKind struct {
	name       string
	send, recv fault.Direction
}

var metricsKinds = []metricsKind{
	{name: "loss", send: fault.Direction{Loss: 0.2, Reorder: 0.05}},
	{name: "duplication", send: fault.Direction{Duplicate: 0.15}, recv: fault.Direction{Duplicate: 0.05}},
	{name: "mixed",
		send: fault.Direction{Loss: 0.08, Duplicate: 0.05, Reorder: 0.1, Corrupt: 0.02,
			Delay: 50 * time.Microsecond, Jitter: 200 * time.Microsecond, EAGAINBurst: fault.Burst{P: 0.02, Len: 5}},
		recv: fault.Direction{OverrunBurst: fault.Burst{P: 0.02, Len: 3}},
	},
}

// TestMetricsChaos runs sessions through injected faults with the SDK's
// manual reader and span recorder attached, and checks the metrics against
// what really happened: the fault injector's counts and what a tap between
// each endpoint and its fault injector saw on the wire. Rerun one with
// -run 'TestMetricsChaos/loss/seed=2$'.
func TestMetricsChaos(t *testing.T) {
	for _, k := range metricsKinds {
		t.Run(k.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 3; seed++ {
				t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
					t.Parallel()
					synctest.Test(t, func(t *testing.T) { runMetricsChaos(t, k, seed) })
				})
			}
		})
	}
}

// metricsWindow is the window of TestMetricsChaos's sessions.
const metricsWindow = 128

func runMetricsChaos(t *testing.T, k metricsKind, seed uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = mp.Shutdown(ctx); _ = tp.Shutdown(ctx) }()

	// Large receive queues: memnet's own backpressure (EAGAIN from the
	// wrapped transport, which the injector counts as Failed) would blur
	// the injector's counts, which the checks below compare exactly.
	net := memnet.New(memnet.Config{ReadBuffer: 16 << 20})
	var conns [2]*fault.Conn
	var taps [2]*tap
	var eps [2]*reliable.Endpoint
	// Datagrams of at most 8 KiB: enough of them that injected faults hit
	// message frames, not only acknowledgements.
	cfg := &reliable.Config{Window: metricsWindow, MaxMessage: 4096, MaxDatagram: 8192, DeadPeerTimeout: time.Minute,
		MeterProvider: mp, TracerProvider: tp}
	for i := range 2 {
		c, err := net.Open(0)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = fault.Wrap(c, fault.Config{Seed: seed*2 + uint64(i), Send: k.send, Recv: k.recv})
		taps[i] = &tap{Transport: conns[i]}
		if eps[i], err = reliable.NewEndpoint(taps[i], cfg); err != nil {
			t.Fatal(err)
		}
		defer eps[i].Close()
	}
	a, b := eps[0], eps[1]
	sa, sb := dialAccept(t, a, b)

	// Traffic: a stream each way, then requests from a to b.
	r := rand.New(rand.NewPCG(seed, 7))
	n, size, requests := 300+r.IntN(200), 8+r.IntN(2000), 5+r.IntN(10)
	errc := make(chan error, 2)
	go func() { errc <- stream(ctx, sa, sb, n, size) }()
	go func() { errc <- stream(ctx, sb, sa, n, size) }()
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatalf("%v\n%v\n%v", err, conns[0].Stats(), conns[1].Stats())
		}
	}
	go func() {
		for range requests {
			select {
			case q := <-sb.Requests():
				if err := q.Reply(ctx, append([]byte("re:"), q.Data...)); err != nil {
					t.Errorf("reply: %v", err)
				}
			case <-sb.Done():
				return
			}
		}
	}()
	reqBytes := 0
	for i := range requests {
		q := msg(i, 16+i)
		got, err := sa.Request(ctx, q)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if string(got) != "re:"+string(q) {
			t.Fatalf("request %d: wrong reply", i)
		}
		reqBytes += len(q)
	}
	// Quiesce: everything acknowledged, every delayed or held-back
	// datagram handed on and processed.
	for _, s := range []*reliable.Session{sa, sb} {
		if err := s.Flush(ctx); err != nil {
			t.Fatalf("flush: %v", err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	synctest.Wait()

	pts := collect(t, reader)
	pa, pb := pts[int64(a.LocalPort())], pts[int64(b.LocalPort())]
	if pa == nil || pb == nil {
		t.Fatalf("no metrics for the endpoints' ports %d and %d: %v", a.LocalPort(), b.LocalPort(), pts)
	}
	checkDocumented(t, pa, pts[procWide])

	// What each side sent, in messages and payload bytes: n stream
	// messages; a also sent the requests and b their replies.
	msgs := float64(n + requests)
	sentBytes := [2]float64{float64(n*size + reqBytes), float64(n*size + reqBytes + 3*requests)}
	var st [2]fault.Stats
	for i := range 2 {
		st[i] = conns[i].Stats()
	}
	totalRetrans, totalDups, totalLost := 0.0, 0.0, 0.0
	for i, p := range []map[string]float64{pa, pb} {
		side := fmt.Sprintf("endpoint %c", 'a'+i)
		eq := func(what string, got, want float64) {
			t.Helper()
			if got != want {
				t.Errorf("%s: %s = %v, want %v\n%v", side, what, got, want, st[i])
			}
		}
		le := func(what string, got, bound float64) {
			t.Helper()
			if got > bound {
				t.Errorf("%s: %s = %v, want <= %v\n%v", side, what, got, bound, st[i])
			}
		}
		retrans := p["cnlink.retransmission.count{cnlink.retransmission.cause=timeout}"] +
			p["cnlink.retransmission.count{cnlink.retransmission.cause=fast}"]
		totalRetrans += retrans
		totalDups += p["cnlink.duplicate.count"]

		// Messages: each side sent msgs and received, and delivered,
		// all of the peer's.
		eq("cnlink.message.count{network.io.direction=transmit}", p["cnlink.message.count{network.io.direction=transmit}"], msgs)
		eq("cnlink.message.count{network.io.direction=receive}", p["cnlink.message.count{network.io.direction=receive}"], msgs)
		eq("cnlink.message.delivered", p["cnlink.message.delivered"], msgs)
		eq("cnlink.message.undelivered", p["cnlink.message.undelivered"], 0)
		eq("cnlink.payload.io{network.io.direction=transmit}", p["cnlink.payload.io{network.io.direction=transmit}"], sentBytes[i])
		eq("cnlink.payload.io{network.io.direction=receive}", p["cnlink.payload.io{network.io.direction=receive}"], sentBytes[1-i])
		eq("cnlink.payload.delivered", p["cnlink.payload.delivered"], sentBytes[1-i])

		// Wire: every message frame the endpoint sent is a first
		// transmission or a retransmission. (A retransmission counted
		// while the peer is busy may never leave: at most equal then.)
		tp, tpeer := taps[i], taps[1-i]
		if p["cnlink.send.peer_busy"] == 0 {
			eq("message frames sent (tap)", float64(tp.sentData.Load()), msgs+retrans)
		} else {
			le("message frames sent (tap)", float64(tp.sentData.Load()), msgs+retrans)
		}
		// Every message frame that arrived was received, a duplicate,
		// or refused; refusals by session state or epoch also count
		// control frames, hence a range.
		arrived := float64(tp.recvData.Load())
		base := p["cnlink.message.count{network.io.direction=receive}"] + p["cnlink.duplicate.count"] +
			p["cnlink.frame.rejected{cnlink.reject.reason=window}"] + p["cnlink.frame.rejected{cnlink.reject.reason=too_large}"]
		if arrived < base || arrived > base+p["cnlink.frame.rejected{cnlink.reject.reason=state}"]+
			p["cnlink.frame.rejected{cnlink.reject.reason=epoch}"]+p["cnlink.frame.rejected{cnlink.reject.reason=no_session}"] {
			t.Errorf("%s: %v message frames arrived (tap), metrics account for %v (received+duplicates+refused)", side, arrived, base)
		}
		// Each message was delivered, so each of its lost copies was
		// made up for by a retransmission: retransmissions >= copies
		// sent minus copies that arrived (duplicates only lower the
		// right-hand side).
		lost := float64(tp.sentData.Load()) - float64(tpeer.recvData.Load())
		if retrans < lost {
			t.Errorf("%s: %v retransmissions, but %v message frames were lost on the way", side, retrans, lost)
		}
		// Conversely, copies that arrived beyond those sent are
		// duplicates (or refused): arrivals - sends = duplicates +
		// refusals - retransmissions.
		peerP := map[int]map[string]float64{0: pb, 1: pa}[i]
		if extra := -lost; extra > peerP["cnlink.duplicate.count"]+peerP["cnlink.frame.rejected{cnlink.reject.reason=window}"]+
			peerP["cnlink.frame.rejected{cnlink.reject.reason=state}"]+peerP["cnlink.frame.rejected{cnlink.reject.reason=epoch}"] {
			t.Errorf("%s: %v more message frames arrived at the peer than were sent, but it counted %v duplicates", side, extra, peerP["cnlink.duplicate.count"])
		}
		totalLost += lost

		// Datagrams against the fault injector. The endpoint counts a
		// datagram when Send returned nil: passed on at once or later,
		// or lost; duplicates are extra copies passed on.
		if st[i].Send.Failed != 0 {
			t.Fatalf("%s: memnet refused %d datagrams; the queues are meant to be large enough", side, st[i].Send.Failed)
		}
		tx, rx := p["cnlink.datagram.count{network.io.direction=transmit}"], p["cnlink.datagram.count{network.io.direction=receive}"]
		eq("datagrams sent + injected duplicates", tx+float64(st[i].Send.Duplicated), float64(st[i].Send.Passed+st[i].Send.Lost))
		eq("datagrams sent vs tap", tx, float64(tp.sentDgrams.Load()))
		eq("datagrams received", rx, float64(st[i].Recv.Passed))
		eq("cnlink.overrun.count", p["cnlink.overrun.count"], float64(st[i].Recv.Overruns))
		eq("cnlink.send.peer_busy", p["cnlink.send.peer_busy"], float64(st[i].Send.EAGAIN))
		eq("cnlink.send.error.count", p["cnlink.send.error.count"], 0)

		// Gauges at rest.
		eq("cnlink.session.opened", p["cnlink.session.opened"], 1)
		eq("cnlink.session.active", p["cnlink.session.active"], 1)
		eq("cnlink.window.usage", p["cnlink.window.usage"], 0)
		eq("cnlink.window.limit", p["cnlink.window.limit"], metricsWindow)
		eq("cnlink.window.utilization", p["cnlink.window.utilization"], 0)
		eq("cnlink.reorder.buffered", p["cnlink.reorder.buffered"], 0)
	}
	// Histograms (process-wide): one size and frame-count sample per
	// datagram sent, summing to what the taps saw; round trips and
	// delivery latency.
	ph := pts[procWide]
	heq := func(what string, got, want float64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	tx := pa["cnlink.datagram.count{network.io.direction=transmit}"] + pb["cnlink.datagram.count{network.io.direction=transmit}"]
	heq("cnlink.datagram.size.count", ph["cnlink.datagram.size.count"], tx)
	heq("cnlink.datagram.size.sum", ph["cnlink.datagram.size.sum"], float64(taps[0].sentBytes.Load()+taps[1].sentBytes.Load()))
	heq("cnlink.datagram.frames.count", ph["cnlink.datagram.frames.count"], tx)
	heq("cnlink.datagram.frames.sum", ph["cnlink.datagram.frames.sum"], float64(taps[0].sentFrames.Load()+taps[1].sentFrames.Load()))
	if ph["cnlink.round_trip.duration.count"] == 0 || ph["cnlink.delivery.duration.count"] == 0 {
		t.Errorf("%v RTT and %v delivery-latency samples, want some of each", ph["cnlink.round_trip.duration.count"], ph["cnlink.delivery.duration.count"])
	}
	// An RTT sample needs an ack that released a message, which gives a
	// delivery sample too.
	if ph["cnlink.round_trip.duration.count"] > ph["cnlink.delivery.duration.count"] {
		t.Errorf("%v RTT samples, more than the %v delivery samples", ph["cnlink.round_trip.duration.count"], ph["cnlink.delivery.duration.count"])
	}

	// The kinds with a single fault make sure it hit message frames, so
	// that the checks above had something to check.
	switch k.name {
	case "loss":
		if totalLost <= 0 || totalRetrans == 0 {
			t.Errorf("loss injected (%d, %d datagrams): %v message frames lost, %v retransmissions; want both > 0",
				st[0].Send.Lost, st[1].Send.Lost, totalLost, totalRetrans)
		}
	case "duplication":
		if totalLost >= 0 || totalDups == 0 {
			t.Errorf("duplication injected (%d, %d datagrams): %v extra message frames arrived, %v duplicates counted; want both > 0",
				st[0].Send.Duplicated+st[0].Recv.Duplicated, st[1].Send.Duplicated+st[1].Recv.Duplicated, -totalLost, totalDups)
		}
	}

	// Spans: one per Request, ended, a client span to b's port.
	var reqSpans int
	for _, s := range rec.Ended() {
		if s.Name() != spanRequest {
			continue
		}
		reqSpans++
		if s.SpanKind() != trace.SpanKindClient || s.Status().Code != codes.Unset {
			t.Errorf("request span: kind %v, status %v", s.SpanKind(), s.Status())
		}
		if v, ok := attrOf(s.Attributes(), attrPeerPort); !ok || v.AsInt64() != int64(b.LocalPort()) {
			t.Errorf("request span: peer port %v, want %d", v.String(), b.LocalPort())
		}
	}
	if reqSpans != requests {
		t.Errorf("%d request spans, want %d", reqSpans, requests)
	}

	// A reset: with the faults off, b aborts; a's session ends with
	// ErrPeerReset.
	for _, c := range conns {
		c.SetConfig(fault.Config{})
	}
	sb.Abort()
	<-sa.Done()
	if !errors.Is(sa.Err(), reliable.ErrPeerReset) {
		t.Fatalf("a's session ended with %v, want ErrPeerReset", sa.Err())
	}
	if _, err := sa.Request(ctx, []byte("late")); err == nil {
		t.Fatal("Request on a reset session succeeded")
	}
	synctest.Wait()
	pts = collect(t, reader)
	pa, pb = pts[int64(a.LocalPort())], pts[int64(b.LocalPort())]
	for i, c := range []struct {
		p      map[string]float64
		reason string
	}{{pa, "peer_reset"}, {pb, "local"}} {
		for _, r := range closeNames {
			want := 0.0
			if r == c.reason {
				want = 1
			}
			if got := c.p["cnlink.session.closed{cnlink.close.reason="+r+"}"]; got != want {
				t.Errorf("endpoint %c: sessions closed for %s = %v, want %v", 'a'+i, r, got, want)
			}
		}
		for _, g := range []string{"cnlink.session.active", "cnlink.window.limit", "cnlink.window.usage", "cnlink.reorder.buffered"} {
			if c.p[g] != 0 {
				t.Errorf("endpoint %c: %s = %v after the session ended", 'a'+i, g, c.p[g])
			}
		}
	}
	checkSessionSpans(t, rec.Ended(), a.LocalPort(), b.LocalPort())

	// Closed endpoints leave the provider: their series disappear.
	a.Close()
	b.Close()
	pts = collect(t, reader)
	if len(pts[int64(a.LocalPort())])+len(pts[int64(b.LocalPort())]) != 0 {
		t.Errorf("closed endpoints still reported: %v", pts)
	}
}

func attrOf(kvs []attribute.KeyValue, k attribute.Key) (attribute.Value, bool) {
	for _, kv := range kvs {
		if kv.Key == k {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// checkSessionSpans checks the two session spans after b aborted: a's
// (the dialer) saw the handshake complete and a reset, b's accepted and
// closed locally; the failed Request after the reset is an error span.
func checkSessionSpans(t *testing.T, spans []sdktrace.ReadOnlySpan, portA, portB uint32) {
	t.Helper()
	type want struct {
		local     uint32
		handshake string
		end       string
		reason    string
		status    codes.Code
	}
	wants := []want{
		{portA, "established", eventReset, "peer_reset", codes.Error},
		{portB, "accepted", eventClose, "local", codes.Unset},
	}
	for _, w := range wants {
		var found []sdktrace.ReadOnlySpan
		for _, s := range spans {
			if v, _ := attrOf(s.Attributes(), attrLocalPort); s.Name() == spanSession && v.AsInt64() == int64(w.local) {
				found = append(found, s)
			}
		}
		if len(found) != 1 {
			t.Errorf("port %d: %d session spans ended, want 1", w.local, len(found))
			continue
		}
		s := found[0]
		var names []string
		for _, ev := range s.Events() {
			names = append(names, ev.Name)
			switch ev.Name {
			case eventHandshake:
				if v, _ := attrOf(ev.Attributes, attrState); v.AsString() != w.handshake {
					t.Errorf("port %d: handshake event %q, want %q", w.local, v.String(), w.handshake)
				}
			case w.end:
				if v, _ := attrOf(ev.Attributes, attrClose); v.AsString() != w.reason {
					t.Errorf("port %d: %s event reason %q, want %q", w.local, w.end, v.String(), w.reason)
				}
			}
		}
		if !slices.Equal(names, []string{eventHandshake, w.end}) {
			t.Errorf("port %d: session span events %q, want [%s %s]", w.local, names, eventHandshake, w.end)
		}
		if s.Status().Code != w.status {
			t.Errorf("port %d: session span status %v, want %v", w.local, s.Status(), w.status)
		}
	}
	var failed int
	for _, s := range spans {
		if s.Name() == spanRequest && s.Status().Code == codes.Error {
			failed++
			if v, _ := attrOf(s.Attributes(), "error.type"); v.AsString() != "peer_reset" {
				t.Errorf("failed request span: error.type %q, want peer_reset", v.String())
			}
		}
	}
	if failed != 1 {
		t.Errorf("%d failed request spans, want 1", failed)
	}
}
