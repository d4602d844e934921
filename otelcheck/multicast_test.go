package otelcheck

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/cnlink/cnlink"
	"github.com/cnlink/cnlink/multicast"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/memnet"
)

// multicastScope is the instrumentation scope of package multicast's
// metrics (multicast/metrics.go).
const multicastScope = "github.com/cnlink/cnlink/multicast"

// multicastPoints collects once and returns the data points of the
// multicast scope by series (name{k=v,...}, attributes sorted), and its
// instruments as the docs table describes them. Other scopes are ignored.
func multicastPoints(t *testing.T, r *sdkmetric.ManualReader) (map[string]int64, map[string]instrument) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	points := make(map[string]int64)
	insts := make(map[string]instrument)
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != multicastScope {
			continue
		}
		if sm.Scope.Version != cnlink.Version {
			t.Errorf("scope %s: version %q, want cnlink.Version %q", multicastScope, sm.Scope.Version, cnlink.Version)
		}
		for _, m := range sm.Metrics {
			var kind string
			var dps []metricdata.DataPoint[int64]
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				kind = map[bool]string{true: "counter", false: "up-down counter"}[d.IsMonotonic]
				if d.Temporality != metricdata.CumulativeTemporality {
					t.Errorf("%s: temporality %v", m.Name, d.Temporality)
				}
				dps = d.DataPoints
			case metricdata.Gauge[int64]:
				kind, dps = "gauge", d.DataPoints
			default:
				t.Errorf("%s: unexpected data type %T", m.Name, m.Data)
				continue
			}
			if m.Description == "" {
				t.Errorf("%s: no description", m.Name)
			}
			var first []string
			for i, p := range dps {
				var keys, kv []string
				for _, a := range p.Attributes.ToSlice() {
					keys = append(keys, string(a.Key))
					kv = append(kv, string(a.Key)+"="+a.Value.String())
				}
				sort.Strings(keys)
				sort.Strings(kv)
				if i == 0 {
					first = keys
				} else if !slices.Equal(keys, first) {
					t.Errorf("%s: data points with attributes %v and %v", m.Name, first, keys)
				}
				k := m.Name + "{" + strings.Join(kv, ",") + "}"
				if _, dup := points[k]; dup {
					t.Errorf("%s: two data points", k)
				}
				points[k] = p.Value
			}
			if len(dps) > 0 {
				insts[m.Name] = instrument{kind: kind, unit: m.Unit, attrs: strings.Join(first, ",")}
			}
		}
	}
	return points, insts
}

// endpointPoints returns the series of one endpoint (its
// cnlink.local.port) as name{other attributes than the endpoint's}.
func endpointPoints(points map[string]int64, port uint32) map[string]int64 {
	out := make(map[string]int64)
	tag := "cnlink.local.port=" + attribute.Int64Value(int64(port)).String()
	for k, v := range points {
		name, attrs, _ := strings.Cut(strings.TrimSuffix(k, "}"), "{")
		var keep []string
		mine := false
		for _, a := range strings.Split(attrs, ",") {
			switch {
			case a == tag:
				mine = true
			case strings.HasPrefix(a, "cnlink.local.port="), strings.HasPrefix(a, "cnlink.multicast.role="),
				strings.HasPrefix(a, "cnlink.multicast.group="), strings.HasPrefix(a, "cnlink.channel="):
			default:
				keep = append(keep, a)
			}
		}
		if !mine {
			continue
		}
		if len(keep) > 0 {
			name += "{" + strings.Join(keep, ",") + "}"
		}
		out[name] = v
	}
	return out
}

// TestMulticastInstrumentsDocumented runs a publisher and two subscribers
// over memnet with an SDK provider and a manual reader, and checks what
// the SDK reports against the table of the multicast section of
// docs/OBSERVABILITY.md (names, kinds, units, attribute keys, both ways),
// a few values against Stats, and that the series go when the endpoints
// end.
//
// The provider goes in through PublisherConfig.MeterProvider and
// SubscriberConfig.MeterProvider; TestMulticastGlobalProvider checks the
// nil default (the global provider).
func TestMulticastInstrumentsDocumented(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		defer mp.Shutdown(context.Background())

		net := memnet.New(memnet.Config{ReadBuffer: 4 << 20})
		ptr, err := net.Open(0)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := multicast.NewPublisher(ptr, multicast.PublisherConfig{Group: 2, MeterProvider: mp})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pub.Abort)
		var subs []*multicast.Subscriber
		var subPorts []uint32
		for range 2 {
			tr, err := net.Open(0)
			if err != nil {
				t.Fatal(err)
			}
			s, err := multicast.Subscribe(tr, multicast.SubscriberConfig{Group: 2, Publisher: pub.Port(), MeterProvider: mp})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			subs, subPorts = append(subs, s), append(subPorts, tr.LocalPort())
		}
		for pub.Stats().Subscribers < len(subs) {
			time.Sleep(10 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		const n = 100
		for i := range n {
			if err := pub.Publish(ctx, []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range subs {
			for range n {
				if _, ok := <-s.Recv(); !ok {
					t.Fatalf("subscription ended: %v", s.Err())
				}
			}
		}
		// Garbage at each end: cnlink.multicast.frame.rejected reports a
		// reason once one happened.
		for _, port := range append([]uint32{pub.Port()}, subPorts...) {
			if err := net.Inject(4242, transport.Addr{Port: port}, []byte("not netlink")); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()

		points, got := multicastPoints(t, reader)
		if len(got) == 0 {
			t.Fatal("no multicast series: NewPublisher and Subscribe did not register metrics with the MeterProvider given")
		}
		compareInstruments(t, documented(t, "## Multicast (package `multicast`)"), got)

		pst := pub.Stats()
		pp := endpointPoints(points, pub.Port())
		for name, want := range map[string]int64{
			"cnlink.multicast.message.published":                                         n,
			"cnlink.multicast.subscriber.active":                                         int64(len(subs)),
			"cnlink.multicast.subscriber.registered":                                     int64(pst.Registered),
			"cnlink.multicast.datagram.count":                                            int64(pst.Datagrams),
			"cnlink.multicast.history.usage":                                             int64(pst.Next - pst.Oldest),
			"cnlink.multicast.lag":                                                       int64(pst.Next - pst.Slowest),
			"cnlink.multicast.subscriber.evicted{cnlink.multicast.evict.reason=timeout}": int64(pst.EvictedTimeout),
			"cnlink.multicast.subscriber.evicted{cnlink.multicast.evict.reason=laggard}": int64(pst.EvictedLaggard),
			"cnlink.multicast.subscriber.evicted{cnlink.multicast.evict.reason=refused}": int64(pst.EvictedRefused),
		} {
			if _, ok := pp[name]; !ok {
				t.Errorf("publisher: %s not reported", name)
			}
			if pp[name] != want {
				t.Errorf("publisher: %s = %d, want %d", name, pp[name], want)
			}
		}
		for i, s := range subs {
			st := s.Stats()
			sp := endpointPoints(points, subPorts[i])
			for name, want := range map[string]int64{
				"cnlink.multicast.message.delivered": n,
				"cnlink.multicast.message.received":  int64(st.Received),
				"cnlink.multicast.message.lost":      0,
				"cnlink.multicast.lag":               0,
				"cnlink.multicast.nak.sent":          int64(st.Naks),
			} {
				if sp[name] != want {
					t.Errorf("subscriber %d: %s = %d, want %d", i, name, sp[name], want)
				}
			}
		}

		if err := pub.Close(ctx); err != nil {
			t.Fatal(err)
		}
		for _, s := range subs {
			<-s.Done()
		}
		synctest.Wait()
		if points, _ := multicastPoints(t, reader); len(points) != 0 {
			t.Errorf("%d series still reported after every endpoint ended", len(points))
		}
	})
}

// TestMulticastEvictionReason refuses a subscriber (Allow) and checks that
// cnlink.multicast.subscriber.evicted counts it under reason refused, and
// that the subscriber ends with the *EvictedError that says so.
func TestMulticastEvictionReason(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		defer mp.Shutdown(context.Background())
		net := memnet.New(memnet.Config{})
		ptr, err := net.Open(0)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := multicast.NewPublisher(ptr, multicast.PublisherConfig{Group: 2, MeterProvider: mp,
			Allow: func(uint32, transport.Creds) bool { return false }})
		if err != nil {
			t.Fatal(err)
		}
		defer pub.Abort()
		str, err := net.Open(0)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := multicast.Subscribe(str, multicast.SubscriberConfig{Group: 2, Publisher: pub.Port()})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		<-sub.Done()
		var ev *multicast.EvictedError
		if !errors.As(sub.Err(), &ev) || ev.Reason != multicast.EvictRefused {
			t.Fatalf("subscriber ended with %v, want *EvictedError refused", sub.Err())
		}
		synctest.Wait()
		points, _ := multicastPoints(t, reader)
		pp := endpointPoints(points, pub.Port())
		for reason, want := range map[string]int64{"timeout": 0, "laggard": 0, "refused": 1} {
			name := "cnlink.multicast.subscriber.evicted{cnlink.multicast.evict.reason=" + reason + "}"
			if v, ok := pp[name]; !ok || v != want {
				t.Errorf("%s = %d (reported %v), want %d", name, v, ok, want)
			}
		}
		if st := pub.Stats(); st.EvictedRefused != 1 || st.Evicted != 1 {
			t.Errorf("Stats: Evicted %d, EvictedRefused %d, want 1 and 1", st.Evicted, st.EvictedRefused)
		}
	})
}

// TestMulticastGlobalProvider: a nil MeterProvider means the global one.
func TestMulticastGlobalProvider(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		otel.SetMeterProvider(mp)
		defer otel.SetMeterProvider(metricnoop.NewMeterProvider())
		defer mp.Shutdown(context.Background())
		net := memnet.New(memnet.Config{})
		ptr, err := net.Open(0)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := multicast.NewPublisher(ptr, multicast.PublisherConfig{Group: 2})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		points, _ := multicastPoints(t, reader)
		if _, ok := endpointPoints(points, pub.Port())["cnlink.multicast.history.limit"]; !ok {
			t.Errorf("no publisher series through the global provider: %v", points)
		}
		pub.Abort()
		synctest.Wait()
	})
}
