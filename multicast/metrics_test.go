package multicast

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/embedded"
	metricnoop "go.opentelemetry.io/otel/metric/noop"

	"github.com/cnlink/cnlink"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/memnet"
)

// These tests use the OpenTelemetry API only: the root module does not
// require the SDK (reliable's TestMetricsLibraryHasNoSDK). recorder is a
// MeterProvider written against the API that records the instruments
// created and runs the registered callbacks at collect, as an SDK
// reader's collection does. otelcheck/multicast_test.go checks the same
// instruments with the SDK.

type recorder struct {
	embedded.MeterProvider
	mu       sync.Mutex
	versions map[string]string
	insts    map[string]*recInst
	regs     map[*recReg]metric.Callback
	errs     []string
}

func newRecorder() *recorder {
	return &recorder{versions: make(map[string]string), insts: make(map[string]*recInst), regs: make(map[*recReg]metric.Callback)}
}

// recInst is an observable int64 instrument as created.
type recInst struct {
	metric.Int64Observable
	embedded.Int64ObservableCounter
	embedded.Int64ObservableUpDownCounter
	embedded.Int64ObservableGauge
	name, kind, unit, desc string
}

func (r *recorder) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.versions[name] = metric.NewMeterConfig(opts...).InstrumentationVersion()
	return &recMeter{r: r}
}

type recMeter struct {
	metricnoop.Meter
	r *recorder
}

// add returns the instrument name; creating it again is allowed only with
// the same kind, unit and description (the SDK would report a conflict).
func (m *recMeter) add(name, kind, unit, desc string) *recInst {
	m.r.mu.Lock()
	defer m.r.mu.Unlock()
	if in, ok := m.r.insts[name]; ok {
		if in.kind != kind || in.unit != unit || in.desc != desc {
			m.r.errs = append(m.r.errs, fmt.Sprintf("instrument %s created twice, differently: %s %q %q and %s %q %q",
				name, in.kind, in.unit, in.desc, kind, unit, desc))
		}
		return in
	}
	in := &recInst{name: name, kind: kind, unit: unit, desc: desc}
	m.r.insts[name] = in
	return in
}

func (m *recMeter) Int64ObservableCounter(name string, opts ...metric.Int64ObservableCounterOption) (metric.Int64ObservableCounter, error) {
	c := metric.NewInt64ObservableCounterConfig(opts...)
	return m.add(name, "counter", c.Unit(), c.Description()), nil
}

func (m *recMeter) Int64ObservableUpDownCounter(name string, opts ...metric.Int64ObservableUpDownCounterOption) (metric.Int64ObservableUpDownCounter, error) {
	c := metric.NewInt64ObservableUpDownCounterConfig(opts...)
	return m.add(name, "up-down counter", c.Unit(), c.Description()), nil
}

func (m *recMeter) Int64ObservableGauge(name string, opts ...metric.Int64ObservableGaugeOption) (metric.Int64ObservableGauge, error) {
	c := metric.NewInt64ObservableGaugeConfig(opts...)
	return m.add(name, "gauge", c.Unit(), c.Description()), nil
}

type recReg struct {
	embedded.Registration
	r     *recorder
	insts map[*recInst]bool
}

func (g *recReg) Unregister() error {
	g.r.mu.Lock()
	defer g.r.mu.Unlock()
	delete(g.r.regs, g)
	return nil
}

func (m *recMeter) RegisterCallback(f metric.Callback, obs ...metric.Observable) (metric.Registration, error) {
	g := &recReg{r: m.r, insts: make(map[*recInst]bool)}
	for _, o := range obs {
		in, ok := o.(*recInst)
		if !ok {
			return nil, errors.New("recorder: foreign instrument")
		}
		g.insts[in] = true
	}
	m.r.mu.Lock()
	defer m.r.mu.Unlock()
	m.r.regs[g] = f
	return g, nil
}

func (r *recorder) registrations() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.regs)
}

// point is one observation.
type point struct {
	inst  *recInst
	attrs attribute.Set
	value int64
}

type recObserver struct {
	embedded.Observer
	reg *recReg
	r   *recorder
	out map[string]point
}

// series names an observation: the instrument, then its attributes
// sorted, as name{k=v,...}.
func series(name string, set attribute.Set) string {
	var kv []string
	for _, a := range set.ToSlice() {
		kv = append(kv, string(a.Key)+"="+a.Value.String())
	}
	sort.Strings(kv)
	return name + "{" + strings.Join(kv, ",") + "}"
}

func (o *recObserver) ObserveInt64(obs metric.Int64Observable, v int64, opts ...metric.ObserveOption) {
	in := obs.(*recInst)
	if !o.reg.insts[in] {
		o.r.errs = append(o.r.errs, "callback observed "+in.name+", which it did not register")
	}
	set := metric.NewObserveConfig(opts).Attributes()
	k := series(in.name, set)
	if _, dup := o.out[k]; dup {
		o.r.errs = append(o.r.errs, "two observations of "+k)
	}
	o.out[k] = point{inst: in, attrs: set, value: v}
}

func (o *recObserver) ObserveFloat64(obs metric.Float64Observable, _ float64, _ ...metric.ObserveOption) {
	o.r.errs = append(o.r.errs, fmt.Sprintf("unexpected float64 observation of %v", obs))
}

// collect runs every registered callback and returns the observations by
// series.
func (r *recorder) collect(t testing.TB) map[string]point {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]point)
	for g, f := range r.regs {
		if err := f(context.Background(), &recObserver{reg: g, r: r, out: out}); err != nil {
			t.Errorf("callback: %v", err)
		}
	}
	for _, e := range r.errs {
		t.Error(e)
	}
	r.errs = nil
	return out
}

// values returns the observations of one endpoint (its cnlink.local.port)
// as name{other attributes} -> value.
func values(ps map[string]point, port uint32) map[string]int64 {
	out := make(map[string]int64)
	for _, p := range ps {
		if v, ok := p.attrs.Value(attrLocalPort); !ok || v.AsInt64() != int64(port) {
			continue
		}
		var kv []string
		for _, a := range p.attrs.ToSlice() {
			switch a.Key {
			case attrLocalPort, attrGroup, attrChannel, attrRole:
				continue
			}
			kv = append(kv, string(a.Key)+"="+a.Value.String())
		}
		sort.Strings(kv)
		name := p.inst.name
		if len(kv) > 0 {
			name += "{" + strings.Join(kv, ",") + "}"
		}
		out[name] = p.value
	}
	return out
}

// publisherWant is what the publisher's series must report for st.
func publisherWant(st PublisherStats, history int) map[string]int64 {
	want := map[string]int64{
		"cnlink.multicast.message.published":                                         int64(st.Published),
		"cnlink.multicast.payload.published":                                         int64(st.Bytes),
		"cnlink.multicast.datagram.count":                                            int64(st.Datagrams),
		"cnlink.multicast.heartbeat.count":                                           int64(st.Heartbeats),
		"cnlink.multicast.nak.received{cnlink.multicast.nak.outcome=handled}":        int64(st.Naks - st.NaksUnsent - st.NaksTooOld - st.NaksNoRoom),
		"cnlink.multicast.nak.received{cnlink.multicast.nak.outcome=unsent}":         int64(st.NaksUnsent),
		"cnlink.multicast.nak.received{cnlink.multicast.nak.outcome=too_old}":        int64(st.NaksTooOld),
		"cnlink.multicast.nak.received{cnlink.multicast.nak.outcome=rate_limited}":   int64(st.NaksRateLimited),
		"cnlink.multicast.nak.received{cnlink.multicast.nak.outcome=no_room}":        int64(st.NaksNoRoom),
		"cnlink.multicast.repair.sent{cnlink.multicast.repair.mode=unicast}":         int64(st.RepairsUnicast),
		"cnlink.multicast.repair.sent{cnlink.multicast.repair.mode=multicast}":       int64(st.RepairsMulticast),
		"cnlink.multicast.send.peer_busy":                                            int64(st.RepairBusy),
		"cnlink.multicast.status.count":                                              int64(st.Statuses),
		"cnlink.multicast.subscriber.registered":                                     int64(st.Registered),
		"cnlink.multicast.subscriber.evicted{cnlink.multicast.evict.reason=timeout}": int64(st.EvictedTimeout),
		"cnlink.multicast.subscriber.evicted{cnlink.multicast.evict.reason=laggard}": int64(st.EvictedLaggard),
		"cnlink.multicast.subscriber.evicted{cnlink.multicast.evict.reason=refused}": int64(st.EvictedRefused),
		"cnlink.multicast.lag":                                                       int64(int32(st.Next - st.Slowest)),
		"cnlink.multicast.subscriber.active":                                         int64(st.Subscribers),
		"cnlink.multicast.history.usage":                                             int64(int32(st.Next - st.Oldest)),
		"cnlink.multicast.history.limit":                                             int64(history),
		"cnlink.multicast.publish.blocked":                                           int64(st.Blocked),
	}
	rejectedWant(want, st.RejectedBy, st.Rejected)
	return want
}

// rejectedWant adds the series of cnlink.multicast.frame.rejected: one per
// reason seen, and _OTHER for what the reasons do not account for.
func rejectedWant(want map[string]int64, by map[string]uint64, total uint64) {
	var sum uint64
	for r, v := range by {
		if v > 0 {
			want["cnlink.multicast.frame.rejected{cnlink.reject.reason="+r+"}"] = int64(v)
			sum += v
		}
	}
	if total > sum {
		want["cnlink.multicast.frame.rejected{cnlink.reject.reason=_OTHER}"] = int64(total - sum)
	}
}

// subscriberWant is what a subscriber's series must report for st.
func subscriberWant(st SubscriberStats, window int) map[string]int64 {
	want := map[string]int64{
		"cnlink.multicast.message.received":  int64(st.Received),
		"cnlink.multicast.message.delivered": int64(st.Delivered),
		"cnlink.multicast.payload.delivered": int64(st.Bytes),
		"cnlink.multicast.repair.received":   int64(st.Repaired),
		"cnlink.multicast.duplicate.count":   int64(st.Duplicates),
		"cnlink.multicast.nak.sent":          int64(st.Naks),
		"cnlink.multicast.status.count":      int64(st.Statuses),
		"cnlink.multicast.send.peer_busy":    int64(st.SendBusy),
		"cnlink.multicast.overrun.count":     int64(st.Overruns),
		"cnlink.multicast.message.lost":      int64(st.Lost),
		"cnlink.multicast.lag":               int64(int32(st.Known - st.Position)),
		"cnlink.multicast.window.limit":      int64(window),
	}
	rejectedWant(want, st.RejectedBy, st.Rejected)
	return want
}

func compareValues(t *testing.T, who string, got, want map[string]int64) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("%s: %s not reported", who, k)
		} else if g != w {
			t.Errorf("%s: %s = %d, want %d", who, k, g, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected series %s = %d", who, k, g)
		}
	}
}

// checkAttrs checks that every series of port carries the endpoint's
// group, channel and role.
func checkAttrs(t *testing.T, ps map[string]point, port uint32, role string, group uint32, ch transport.CbID) {
	t.Helper()
	n := 0
	for k, p := range ps {
		if v, ok := p.attrs.Value(attrLocalPort); !ok || v.AsInt64() != int64(port) {
			continue
		}
		n++
		if v, _ := p.attrs.Value(attrRole); v.AsString() != role {
			t.Errorf("%s: role %q, want %q", k, v.String(), role)
		}
		if v, _ := p.attrs.Value(attrGroup); v.AsInt64() != int64(group) {
			t.Errorf("%s: group %s, want %d", k, v.String(), group)
		}
		if v, _ := p.attrs.Value(attrChannel); v.AsString() != ch.String() {
			t.Errorf("%s: channel %q, want %q", k, v.String(), ch)
		}
	}
	if n == 0 {
		t.Errorf("no series with cnlink.local.port=%d", port)
	}
}

// TestMetricsMapping fills a Publisher's and a Subscriber's counters with
// distinct values (no engine running) and checks that each series reports
// the Stats field it documents, with the endpoint's attributes; that the
// handled NAK outcome never goes backwards; and that unregister, and the
// endpoint's end, remove the series.
func TestMetricsMapping(t *testing.T) {
	n := memnet.New(memnet.Config{})
	ptr, _ := n.Open(0)
	str, _ := n.Open(0)
	defer ptr.Close()
	defer str.Close()
	ch := transport.CbID{Idx: 0x1234, Val: 7}
	p := &Publisher{tr: ptr, cfg: PublisherConfig{Group: 6, Channel: ch, History: 321}, done: make(chan struct{})}
	s := &Subscriber{tr: str, cfg: SubscriberConfig{Group: 6, Channel: ch, Window: 654}, done: make(chan struct{})}
	ps := &p.stats
	for i, c := range []*atomic.Uint64{&ps.published, &ps.bytes, &ps.datagrams, &ps.heartbeats, &ps.naks,
		&ps.nakUnsent, &ps.nakTooOld, &ps.nakLimited, &ps.nakNoRoom, &ps.repairsUnicast, &ps.repairsMulticast,
		&ps.repairBusy, &ps.registered, &ps.evicted, &p.rej[rejMalformed], &ps.statuses, &ps.blocked} {
		c.Store(uint64(1000 + 17*i))
	}
	ps.naks.Store(100000) // the outcomes below are among them
	p.rej[rejEpoch].Store(3)
	s.rej[rejPublisher].Store(4)
	ps.subscribers.Store(5)
	p.histOldest.Store(0xfffffff0) // across the wrap
	p.histNext.Store(0x10)
	p.histSlowest.Store(0xfffffffd)
	for i := range ps.evictedBy {
		ps.evictedBy[i].Store(uint64(3000 + 7*i))
	}
	ss := &s.stats
	for i, c := range []*atomic.Uint64{&ss.received, &ss.delivered, &ss.bytes, &ss.duplicates, &ss.repaired,
		&ss.outOfWindow, &ss.naks, &ss.statuses, &ss.overruns, &ss.lost, &s.rej[rejMalformed], &ss.sendBusy} {
		c.Store(uint64(2000 + 13*i))
	}
	ss.position.Store(0xfffffffe)
	ss.known.Store(3)

	rec := newRecorder()
	unregP, err := registerPublisherMetrics(rec, p)
	if err != nil {
		t.Fatal(err)
	}
	unregS, err := registerSubscriberMetrics(rec, s)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := rec.versions[instrumentationName]; !ok || v != cnlink.Version {
		t.Errorf("meter %s: version %q (%v), want cnlink.Version %q", instrumentationName, v, ok, cnlink.Version)
	}
	got := rec.collect(t)
	checkAttrs(t, got, ptr.LocalPort(), rolePublisher, 6, ch)
	checkAttrs(t, got, str.LocalPort(), roleSubscriber, 6, ch)
	pw := publisherWant(p.Stats(), 321)
	compareValues(t, "publisher", values(got, ptr.LocalPort()), pw)
	sw := subscriberWant(s.Stats(), 654)
	compareValues(t, "subscriber", values(got, str.LocalPort()), sw)
	if v := pw["cnlink.multicast.history.usage"]; v != 0x20 {
		t.Errorf("history usage across the wrap: %d, want 32", v)
	}
	if v := sw["cnlink.multicast.lag"]; v != 5 {
		t.Errorf("lag across the wrap: %d, want 5", v)
	}
	if v := pw["cnlink.multicast.lag"]; v != 0x13 {
		t.Errorf("publisher lag across the wrap: %d, want 19", v)
	}
	if st := p.Stats(); st.EvictedTimeout != 3007 || st.EvictedLaggard != 3014 || st.EvictedRefused != 3021 {
		t.Errorf("evictions by reason %d %d %d, want 3007 3014 3021", st.EvictedTimeout, st.EvictedLaggard, st.EvictedRefused)
	}

	// A NAK counted in Naks but, for an instant, also seen in an outcome
	// counter that Stats read later: handled must not go backwards.
	const handled = "cnlink.multicast.nak.received{cnlink.multicast.nak.outcome=handled}"
	before := values(rec.collect(t), ptr.LocalPort())[handled]
	ps.nakUnsent.Add(1)
	if v := values(rec.collect(t), ptr.LocalPort())[handled]; v != before {
		t.Errorf("handled went from %d to %d", before, v)
	}
	ps.naks.Add(3)
	if v := values(rec.collect(t), ptr.LocalPort())[handled]; v != before+2 {
		t.Errorf("handled %d, want %d", v, before+2)
	}
	// A publisher that has not yet handled any NAK reports zeros.
	var hi atomic.Int64
	if o := nakOutcomes(&PublisherStats{NaksUnsent: 1}, &hi); o[0] != 0 {
		t.Errorf("handled %d with Naks < the other outcomes, want 0", o[0])
	}

	unregP()
	unregP() // idempotent
	if got := values(rec.collect(t), ptr.LocalPort()); len(got) != 0 {
		t.Errorf("unregistered publisher still reported: %v", got)
	}
	// The subscriber's series go when it ends, without unregister.
	close(s.done)
	for deadline := time.Now().Add(10 * time.Second); rec.registrations() > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("subscriber still registered after its end")
		}
	}
	unregS() // after the automatic one: no effect
	close(p.done)
}

// TestMetricsProviders: nil means the global provider (a no-op here), and
// a no-op provider works; neither fails.
func TestMetricsProviders(t *testing.T) {
	n := memnet.New(memnet.Config{})
	tr, _ := n.Open(0)
	defer tr.Close()
	for _, mp := range []metric.MeterProvider{nil, metricnoop.NewMeterProvider()} {
		p := &Publisher{tr: tr, cfg: PublisherConfig{Group: 2, Channel: DefaultChannel}, done: make(chan struct{})}
		s := &Subscriber{tr: tr, cfg: SubscriberConfig{Group: 2, Channel: DefaultChannel}, done: make(chan struct{})}
		up, err := registerPublisherMetrics(mp, p)
		if err != nil || up == nil {
			t.Fatalf("publisher, provider %T: %v", mp, err)
		}
		us, err := registerSubscriberMetrics(mp, s)
		if err != nil || us == nil {
			t.Fatalf("subscriber, provider %T: %v", mp, err)
		}
		up()
		close(s.done)
		us()
		close(p.done)
	}
}

// TestMetricsLive runs a publisher and three subscribers (one with a small
// window) over memnet with metrics registered, collecting while the
// stream runs (for the race detector), then checks every series against
// Stats once everything is quiet, and that the series go when the
// endpoints end.
func TestMetricsLive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := memnet.New(memnet.Config{})
		ptr, err := net.Open(0)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := NewPublisher(ptr, PublisherConfig{Group: 2, History: 512})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pub.Abort)
		rec := newRecorder()
		if _, err := registerPublisherMetrics(rec, pub); err != nil {
			t.Fatal(err)
		}
		var subs []*Subscriber
		for i := range 3 {
			tr, err := net.Open(0)
			if err != nil {
				t.Fatal(err)
			}
			cfg := SubscriberConfig{Group: 2, Publisher: pub.Port()}
			if i == 2 {
				cfg.Window = 64 // flow control follows the smallest window
			}
			s, err := Subscribe(tr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() }) // on failure: the bubble must end empty
			if _, err := registerSubscriberMetrics(rec, s); err != nil {
				t.Fatal(err)
			}
			subs = append(subs, s)
		}
		const N, size = 3000, 200
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		got := make([]int, len(subs))
		for i, s := range subs {
			wg.Go(func() {
				for range s.Recv() {
					if got[i]++; got[i] == N {
						return
					}
				}
			})
		}
		// Publish only once every subscriber has registered: until then
		// flow control does not wait for it, and it may lose messages.
		for pub.Stats().Subscribers < len(subs) {
			time.Sleep(10 * time.Millisecond)
		}
		msg := make([]byte, size)
		for i := range N {
			if i%500 == 0 {
				rec.collect(t)
			}
			if err := pub.Publish(ctx, msg); err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
		for i, s := range subs {
			if got[i] != N {
				t.Fatalf("subscriber %d: %d messages of %d; Err %v; stats %+v", i, got[i], N, s.Err(), s.Stats())
			}
		}
		// A datagram from a stranger: counted as rejected.
		if err := net.Inject(4242, transport.Addr{Port: subs[0].tr.LocalPort()}, []byte("not a frame")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()

		all := rec.collect(t)
		pst := pub.Stats()
		compareValues(t, "publisher", values(all, pub.Port()), publisherWant(pst, 512))
		checkAttrs(t, all, pub.Port(), rolePublisher, 2, DefaultChannel)
		if pst.Published != N {
			t.Errorf("published %d, want %d", pst.Published, N)
		}
		for i, s := range subs {
			sst := s.Stats()
			v := values(all, s.tr.LocalPort())
			compareValues(t, fmt.Sprintf("subscriber %d", i), v, subscriberWant(sst, s.cfg.Window))
			checkAttrs(t, all, s.tr.LocalPort(), roleSubscriber, 2, DefaultChannel)
			if v["cnlink.multicast.message.delivered"] != N {
				t.Errorf("subscriber %d: delivered %d, want %d", i, v["cnlink.multicast.message.delivered"], N)
			}
			if v["cnlink.multicast.lag"] != 0 {
				t.Errorf("subscriber %d: lag %d after delivering everything", i, v["cnlink.multicast.lag"])
			}
		}
		var rejected int64
		for k, v := range values(all, subs[0].tr.LocalPort()) {
			if strings.HasPrefix(k, "cnlink.multicast.frame.rejected{") {
				rejected += v
			}
		}
		if rejected < 1 {
			t.Errorf("subscriber 0: rejected %d, want the injected datagram counted", rejected)
		}

		if err := pub.Close(ctx); err != nil {
			t.Fatal(err)
		}
		for _, s := range subs {
			<-s.Done()
			s.Close()
		}
		synctest.Wait()
		if n := rec.registrations(); n != 0 {
			t.Errorf("%d registrations left after every endpoint ended", n)
		}
		if got := rec.collect(t); len(got) != 0 {
			t.Errorf("%d series reported after every endpoint ended", len(got))
		}
	})
}

// The multicast section of docs/OBSERVABILITY.md and the rows of its
// instrument table (the same format otelcheck's docs check parses).
const docSection = "## Multicast (package `multicast`)"

var (
	docRow    = regexp.MustCompile("^\\| `(cnlink\\.[a-z0-9_.]+)` \\| ([^|]+) \\| `([^`]*)` \\|([^|]*)\\|")
	docValues = regexp.MustCompile(`\([^)]*\)`)
	docKey    = regexp.MustCompile("`([a-z0-9_.]+)`")
)

// docInstrument is a table row, or an instrument as registered: kind,
// unit, sorted attribute keys.
type docInstrument struct{ kind, unit, attrs string }

func documented(t *testing.T) map[string]docInstrument {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "docs", "OBSERVABILITY.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := make(map[string]docInstrument)
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == docSection
		}
		m := docRow.FindStringSubmatch(line)
		if !in || m == nil {
			continue
		}
		var keys []string
		for _, k := range docKey.FindAllStringSubmatch(docValues.ReplaceAllString(m[4], ""), -1) {
			keys = append(keys, k[1])
		}
		sort.Strings(keys)
		if _, dup := out[m[1]]; dup {
			t.Errorf("docs/OBSERVABILITY.md: %s listed twice", m[1])
		}
		out[m[1]] = docInstrument{kind: strings.TrimPrefix(strings.TrimSpace(m[2]), "observable "), unit: m[3], attrs: strings.Join(keys, ",")}
	}
	if len(out) == 0 {
		t.Fatalf("no instrument table in section %q of docs/OBSERVABILITY.md", docSection)
	}
	return out
}

// TestMetricsDocumented checks the instrument table of the multicast
// section of docs/OBSERVABILITY.md against what a publisher and a
// subscriber register and observe: names, kinds, units and attribute
// keys, both ways; and that every instrument has a description.
func TestMetricsDocumented(t *testing.T) {
	n := memnet.New(memnet.Config{})
	ptr, _ := n.Open(0)
	str, _ := n.Open(0)
	defer ptr.Close()
	defer str.Close()
	p := &Publisher{tr: ptr, cfg: PublisherConfig{Group: 2, Channel: DefaultChannel}, done: make(chan struct{})}
	s := &Subscriber{tr: str, cfg: SubscriberConfig{Group: 2, Channel: DefaultChannel}, done: make(chan struct{})}
	defer close(p.done)
	defer close(s.done)
	// cnlink.multicast.frame.rejected reports a reason once it happened.
	p.rej[rejMalformed].Add(1)
	s.rej[rejMalformed].Add(1)
	rec := newRecorder()
	if _, err := registerPublisherMetrics(rec, p); err != nil {
		t.Fatal(err)
	}
	if _, err := registerSubscriberMetrics(rec, s); err != nil {
		t.Fatal(err)
	}
	got := make(map[string]docInstrument)
	for k, pt := range rec.collect(t) {
		var keys []string
		for _, a := range pt.attrs.ToSlice() {
			keys = append(keys, string(a.Key))
		}
		sort.Strings(keys)
		d := docInstrument{kind: pt.inst.kind, unit: pt.inst.unit, attrs: strings.Join(keys, ",")}
		if old, ok := got[pt.inst.name]; ok && old != d {
			t.Errorf("%s: series with attributes [%s] and [%s]", k, old.attrs, d.attrs)
		}
		got[pt.inst.name] = d
		if pt.inst.desc == "" {
			t.Errorf("%s: no description", pt.inst.name)
		}
	}
	doc := documented(t)
	for name, g := range got {
		d, ok := doc[name]
		switch {
		case !ok:
			t.Errorf("instrument %s (%s, %s, attributes [%s]) is not in the table of docs/OBSERVABILITY.md", name, g.kind, g.unit, g.attrs)
		case d != g:
			t.Errorf("instrument %s: docs/OBSERVABILITY.md says %s, unit %q, attributes [%s]; registered: %s, unit %q, attributes [%s]",
				name, d.kind, d.unit, d.attrs, g.kind, g.unit, g.attrs)
		}
	}
	for name := range doc {
		if _, ok := got[name]; !ok {
			t.Errorf("docs/OBSERVABILITY.md lists %s, which is not reported", name)
		}
	}
}
