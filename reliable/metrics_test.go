package reliable

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/embedded"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/cnlink/cnlink"
	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/transport/memnet"
)

// The tests of this file use the OpenTelemetry API only: the root module
// does not require the SDK (see TestMetricsLibraryHasNoSDK). Instead of
// the SDK they use recorder, a MeterProvider written against the API that
// really records: every instrument created, the callbacks registered (run
// at collect, like an SDK reader's collection) and the histograms'
// samples. The tests against the SDK itself, the chaos run that checks
// every value against the wire, and the check of docs/OBSERVABILITY.md
// against the registered instruments are in the otelcheck module
// (otelcheck/reliable_test.go, otelcheck/docs_test.go).

// recorder is a metric.MeterProvider that records.
type recorder struct {
	embedded.MeterProvider
	mu       sync.Mutex
	versions map[string]string // meter name -> instrumentation version
	insts    map[string]*recInst
	regs     map[*recReg]metric.Callback
	errs     []string // API misuse seen (observing an unregistered instrument)
}

func newRecorder() *recorder {
	return &recorder{versions: make(map[string]string), insts: make(map[string]*recInst), regs: make(map[*recReg]metric.Callback)}
}

// recInst describes one instrument as it was created.
type recInst struct {
	name, kind, unit, desc string
}

func (r *recorder) add(name, kind, unit, desc string) *recInst {
	r.mu.Lock()
	defer r.mu.Unlock()
	in := &recInst{name: name, kind: kind, unit: unit, desc: desc}
	if _, dup := r.insts[name]; dup {
		r.errs = append(r.errs, "instrument "+name+" created twice")
	}
	r.insts[name] = in
	return in
}

func (r *recorder) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.versions[name] = metric.NewMeterConfig(opts...).InstrumentationVersion()
	return &recMeter{r: r}
}

// recMeter creates recording instruments of the kinds reliable and proc
// use; any other kind is the no-op one.
type recMeter struct {
	metricnoop.Meter
	r *recorder
}

type recInt64Obs struct {
	metric.Int64Observable
	embedded.Int64ObservableCounter
	embedded.Int64ObservableUpDownCounter
	embedded.Int64ObservableGauge
	*recInst
}

type recFloat64Obs struct {
	metric.Float64Observable
	embedded.Float64ObservableGauge
	*recInst
}

// recHist records a histogram's count and sum.
type recHist struct {
	*recInst
	mu       sync.Mutex
	count    int64
	sum      float64
	disabled bool
}

func (h *recHist) record(v float64) {
	h.mu.Lock()
	h.count++
	h.sum += v
	h.mu.Unlock()
}

type recFloat64Hist struct {
	embedded.Float64Histogram
	*recHist
}

func (h recFloat64Hist) Record(_ context.Context, v float64, _ ...metric.RecordOption) { h.record(v) }
func (h recFloat64Hist) Enabled(context.Context) bool                                  { return !h.disabled }

type recInt64Hist struct {
	embedded.Int64Histogram
	*recHist
}

func (h recInt64Hist) Record(_ context.Context, v int64, _ ...metric.RecordOption) {
	h.record(float64(v))
}
func (h recInt64Hist) Enabled(context.Context) bool { return !h.disabled }

func (m *recMeter) Int64ObservableCounter(name string, opts ...metric.Int64ObservableCounterOption) (metric.Int64ObservableCounter, error) {
	c := metric.NewInt64ObservableCounterConfig(opts...)
	return &recInt64Obs{recInst: m.r.add(name, "counter", c.Unit(), c.Description())}, nil
}

func (m *recMeter) Int64ObservableUpDownCounter(name string, opts ...metric.Int64ObservableUpDownCounterOption) (metric.Int64ObservableUpDownCounter, error) {
	c := metric.NewInt64ObservableUpDownCounterConfig(opts...)
	return &recInt64Obs{recInst: m.r.add(name, "up-down counter", c.Unit(), c.Description())}, nil
}

func (m *recMeter) Int64ObservableGauge(name string, opts ...metric.Int64ObservableGaugeOption) (metric.Int64ObservableGauge, error) {
	c := metric.NewInt64ObservableGaugeConfig(opts...)
	return &recInt64Obs{recInst: m.r.add(name, "gauge", c.Unit(), c.Description())}, nil
}

func (m *recMeter) Float64ObservableGauge(name string, opts ...metric.Float64ObservableGaugeOption) (metric.Float64ObservableGauge, error) {
	c := metric.NewFloat64ObservableGaugeConfig(opts...)
	return &recFloat64Obs{recInst: m.r.add(name, "gauge", c.Unit(), c.Description())}, nil
}

// hists are the histograms of all recorders, by instrument.
var hists sync.Map // *recInst -> *recHist

func (m *recMeter) Float64Histogram(name string, opts ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	c := metric.NewFloat64HistogramConfig(opts...)
	h := &recHist{recInst: m.r.add(name, "histogram", c.Unit(), c.Description())}
	hists.Store(h.recInst, h)
	return recFloat64Hist{recHist: h}, nil
}

func (m *recMeter) Int64Histogram(name string, opts ...metric.Int64HistogramOption) (metric.Int64Histogram, error) {
	c := metric.NewInt64HistogramConfig(opts...)
	h := &recHist{recInst: m.r.add(name, "histogram", c.Unit(), c.Description())}
	hists.Store(h.recInst, h)
	return recInt64Hist{recHist: h}, nil
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
		switch o := o.(type) {
		case *recInt64Obs:
			g.insts[o.recInst] = true
		case *recFloat64Obs:
			g.insts[o.recInst] = true
		default:
			return nil, errors.New("recorder: foreign instrument")
		}
	}
	m.r.mu.Lock()
	defer m.r.mu.Unlock()
	m.r.regs[g] = f
	return g, nil
}

// recObserver collects the observations of one callback.
type recObserver struct {
	embedded.Observer
	reg *recReg
	out map[string]float64
	r   *recorder
}

// series names an observation: the instrument name, then its attributes
// sorted as {k=v,...}.
func series(name string, set attribute.Set) string {
	var kv []string
	for _, a := range set.ToSlice() {
		kv = append(kv, string(a.Key)+"="+a.Value.String())
	}
	if len(kv) == 0 {
		return name
	}
	sort.Strings(kv)
	return name + "{" + strings.Join(kv, ",") + "}"
}

func (o *recObserver) observe(in *recInst, v float64, opts []metric.ObserveOption) {
	if !o.reg.insts[in] {
		o.r.errs = append(o.r.errs, "callback observed "+in.name+", which it did not register")
	}
	k := series(in.name, metric.NewObserveConfig(opts).Attributes())
	if _, dup := o.out[k]; dup {
		o.r.errs = append(o.r.errs, "two observations of "+k)
	}
	o.out[k] = v
}

func (o *recObserver) ObserveInt64(obs metric.Int64Observable, v int64, opts ...metric.ObserveOption) {
	o.observe(obs.(*recInt64Obs).recInst, float64(v), opts)
}

func (o *recObserver) ObserveFloat64(obs metric.Float64Observable, v float64, opts ...metric.ObserveOption) {
	o.observe(obs.(*recFloat64Obs).recInst, v, opts)
}

// collect runs the registered callbacks and returns every series: the
// observations, and name.count and name.sum of each histogram of this
// recorder that has samples.
func (r *recorder) collect(t testing.TB) map[string]float64 {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]float64)
	for g, f := range r.regs {
		if err := f(context.Background(), &recObserver{reg: g, out: out, r: r}); err != nil {
			t.Errorf("callback: %v", err)
		}
	}
	for _, in := range r.insts {
		if h, ok := hists.Load(in); ok {
			h := h.(*recHist)
			h.mu.Lock()
			if h.count > 0 {
				out[in.name+".count"], out[in.name+".sum"] = float64(h.count), h.sum
			}
			h.mu.Unlock()
		}
	}
	for _, e := range r.errs {
		t.Error(e)
	}
	r.errs = nil
	return out
}

// recTracerProvider records the instrumentation versions of the tracers
// asked for; the tracers are no-ops.
type recTracerProvider struct {
	tracenoop.TracerProvider
	mu       sync.Mutex
	versions map[string]string
}

func (p *recTracerProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.versions == nil {
		p.versions = make(map[string]string)
	}
	c := trace.NewTracerConfig(opts...)
	p.versions[name] = c.InstrumentationVersion()
	return p.TracerProvider.Tracer(name, opts...)
}

// TestMetricsRecorded runs a session between two endpoints, each with its
// own recorder, and checks what the callbacks and histograms report
// against the traffic and Stats; that the instrumentation scope carries
// cnlink.Version; and that a closed endpoint stops reporting.
func TestMetricsRecorded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := memnet.New(memnet.Config{})
		var recs [2]*recorder
		var tps [2]*recTracerProvider
		var eps [2]*Endpoint
		const window = 64
		for i := range eps {
			c, err := net.Open(0)
			if err != nil {
				t.Fatal(err)
			}
			recs[i], tps[i] = newRecorder(), &recTracerProvider{}
			if eps[i], err = NewEndpoint(c, &Config{Window: window, MeterProvider: recs[i], TracerProvider: tps[i]}); err != nil {
				t.Fatal(err)
			}
			defer eps[i].Close()
		}
		for i := range eps {
			if v, ok := recs[i].versions[instrumentationName]; !ok || v != cnlink.Version {
				t.Errorf("meter %s: version %q (%v), want cnlink.Version %q", instrumentationName, v, ok, cnlink.Version)
			}
			if v := tps[i].versions[instrumentationName]; v != cnlink.Version {
				t.Errorf("tracer %s: version %q, want cnlink.Version %q", instrumentationName, v, cnlink.Version)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		sa, sb := dialAccept(t, eps[0], eps[1])
		const n, size = 200, 100
		if err := stream(ctx, sa, sb, n, size); err != nil {
			t.Fatal(err)
		}
		if err := stream(ctx, sb, sa, n/2, size); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*Session{sa, sb} {
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		sent := [2]float64{n, n / 2}
		for i, e := range eps {
			p := recs[i].collect(t)
			at := func(name string, kv ...string) string {
				return series(name, attribute.NewSet(append(toKVs(kv), attrLocalPort.Int64(int64(e.LocalPort())))...))
			}
			st := e.Stats()
			want := map[string]float64{
				at("cnlink.message.count", "network.io.direction", "transmit"):  sent[i],
				at("cnlink.message.count", "network.io.direction", "receive"):   sent[1-i],
				at("cnlink.message.delivered"):                                  sent[1-i],
				at("cnlink.message.undelivered"):                                0,
				at("cnlink.payload.io", "network.io.direction", "transmit"):     sent[i] * size,
				at("cnlink.payload.io", "network.io.direction", "receive"):      sent[1-i] * size,
				at("cnlink.payload.delivered"):                                  sent[1-i] * size,
				at("cnlink.datagram.count", "network.io.direction", "transmit"): float64(st.DatagramsSent),
				at("cnlink.datagram.count", "network.io.direction", "receive"):  float64(st.DatagramsReceived),
				at("cnlink.session.opened"):                                     1,
				at("cnlink.session.active"):                                     1,
				at("cnlink.window.usage"):                                       0,
				at("cnlink.window.limit"):                                       window,
				at("cnlink.window.utilization"):                                 0,
				at("cnlink.reorder.buffered"):                                   0,
				at("cnlink.send.peer_busy"):                                     float64(st.PeerBusy),
				at("cnlink.send.error.count"):                                   float64(st.SendErrors),
				at("cnlink.overrun.count"):                                      float64(st.Overruns),
				at("cnlink.retransmission.spurious"):                            float64(st.SpuriousRetransmits),
				"cnlink.datagram.size.count":                                    float64(st.DatagramsSent),
				"cnlink.datagram.frames.count":                                  float64(st.DatagramsSent),
			}
			for k, w := range want {
				if g, ok := p[k]; !ok || g != w {
					t.Errorf("endpoint %d: %s = %v (reported %v), want %v", i, k, g, ok, w)
				}
			}
			if p["cnlink.round_trip.duration.count"] == 0 || p["cnlink.delivery.duration.count"] == 0 {
				t.Errorf("endpoint %d: no round-trip or delivery sample: %v", i, p)
			}
			if p["cnlink.datagram.frames.sum"] < sent[i] {
				t.Errorf("endpoint %d: %v frames sent in all, fewer than the %v messages", i, p["cnlink.datagram.frames.sum"], sent[i])
			}
		}
		// Every instrument has a unit and a description.
		for _, in := range recs[0].insts {
			if in.unit == "" || in.desc == "" {
				t.Errorf("instrument %s: unit %q, description %q", in.name, in.unit, in.desc)
			}
		}
		eps[0].Close()
		synctest.Wait()
		for k := range recs[0].collect(t) {
			if !strings.HasSuffix(k, ".count") && !strings.HasSuffix(k, ".sum") {
				t.Errorf("closed endpoint still reports %s", k)
			}
		}
	})
}

// toKVs turns "k", "v", ... into string attributes.
func toKVs(kv []string) []attribute.KeyValue {
	var out []attribute.KeyValue
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, attribute.String(kv[i], kv[i+1]))
	}
	return out
}

// TestMetricsHooksDoNotAllocate checks the per-datagram and per-ack hooks
// with a provider whose histograms are enabled and record: the hooks must
// not allocate. (otelcheck's TestSDKHistogramRecordDoesNotAllocate checks
// that the SDK's Record does not either.)
func TestMetricsHooksDoNotAllocate(t *testing.T) {
	rec := newRecorder()
	net := memnet.New(memnet.Config{})
	c, err := net.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEndpoint(c, &Config{MeterProvider: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var dgram []byte
	for i := range 8 {
		f := wire.Frame{ID: DefaultChannel, Seq: uint32(i), Type: wire.TypeData}
		if dgram, err = wire.Append(dgram, &f, nil, make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	// e has no session: its owner goroutine calls none of these meanwhile.
	in := e.m
	allocs := testing.AllocsPerRun(1000, func() {
		in.sent(1, 100)
		in.received(100)
		in.deliver(1, 100)
		in.dup()
		in.retransmit(true)
		in.retransmit(false)
		in.reorder(1)
		in.reorder(-1)
		in.acked(time.Millisecond)
		in.ackDone(2 * time.Millisecond)
		in.rtt(50 * time.Microsecond)
		in.datagram(dgram)
		in.batch(len(dgram))
	})
	if allocs != 0 {
		t.Errorf("hooks allocate %v times per run, want 0", allocs)
	}
	p := rec.collect(t)
	if got := p["cnlink.datagram.frames.sum"]; got != 8*1001 {
		t.Errorf("frames counted: %v, want %d", got, 8*1001)
	}
	if got := p["cnlink.round_trip.duration.count"]; got != 1001 {
		t.Errorf("round-trip samples: %v, want 1001", got)
	}
}

// TestMetricsLibraryHasNoSDK proves that the library packages depend on
// the OpenTelemetry API only, and that the module requires nothing more:
// the SDK and exporters are the application's choice (and otelcheck's
// and examples/observe's, modules of their own).
func TestMetricsLibraryHasNoSDK(t *testing.T) {
	forbidden := []string{
		"go.opentelemetry.io/otel/sdk",
		"go.opentelemetry.io/otel/exporters/",
		"github.com/prometheus/",
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to list the dependencies with: %v", err)
	}
	pkgs := []string{"./reliable", "./transport/...", "./window", "./retry", "./loss", "./internal/wire", "./proc", "./discover", "./multicast", "./repair", "."}
	cmd := exec.Command(goBin, append([]string{"list", "-deps"}, pkgs...)...)
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, d := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(d, f) {
				t.Errorf("library depends on %s", d)
			}
		}
	}
	// The list is real: the API is there.
	for _, api := range []string{"go.opentelemetry.io/otel/metric", "go.opentelemetry.io/otel/trace", "github.com/cnlink/cnlink/reliable"} {
		if !slices.Contains(deps, api) {
			t.Errorf("go list -deps does not list %s: %d packages listed", api, len(deps))
		}
	}

	// go.mod: what a consumer's module graph gets from cnlink. A test of
	// the root module that imported the SDK would put it back here (go
	// mod tidy adds test dependencies too).
	f, err := os.Open(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "require "))
		for _, fb := range forbidden {
			if strings.HasPrefix(line, fb) {
				t.Errorf("go.mod requires %s: move the code that needs it to otelcheck or examples/observe", line)
			}
		}
	}
}
