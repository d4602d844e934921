package proc

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/embedded"
	metricnoop "go.opentelemetry.io/otel/metric/noop"

	"github.com/cnlink/cnlink"
	"github.com/cnlink/cnlink/transport"
)

// These tests use the OpenTelemetry API only: the root module does not
// require the SDK. recorder is a MeterProvider written against the API
// that records the instruments created and runs the registered callbacks
// at collect, like an SDK reader's collection. otelcheck's
// TestProcInstrumentsDocumented checks a live Monitor with the SDK.

// recorder is a metric.MeterProvider that records.
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

// recInst is an instrument as created: an observable int64 counter or
// gauge (what RegisterMetrics uses).
type recInst struct {
	metric.Int64Observable
	embedded.Int64ObservableCounter
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

func (m *recMeter) add(name, kind, unit, desc string) *recInst {
	m.r.mu.Lock()
	defer m.r.mu.Unlock()
	in := &recInst{name: name, kind: kind, unit: unit, desc: desc}
	if _, dup := m.r.insts[name]; dup {
		m.r.errs = append(m.r.errs, "instrument "+name+" created twice")
	}
	m.r.insts[name] = in
	return in
}

func (m *recMeter) Int64ObservableCounter(name string, opts ...metric.Int64ObservableCounterOption) (metric.Int64ObservableCounter, error) {
	c := metric.NewInt64ObservableCounterConfig(opts...)
	return m.add(name, "counter", c.Unit(), c.Description()), nil
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

type recObserver struct {
	embedded.Observer
	reg  *recReg
	port uint32
	out  map[string]int64
	r    *recorder
}

func (o *recObserver) ObserveFloat64(metric.Float64Observable, float64, ...metric.ObserveOption) {
	o.r.errs = append(o.r.errs, "float64 observation: RegisterMetrics has no float64 instrument")
}

// ObserveInt64 records a series as name{k=v,...}, without
// cnlink.local.port, which must be the Monitor's port.
func (o *recObserver) ObserveInt64(obs metric.Int64Observable, v int64, opts ...metric.ObserveOption) {
	in := obs.(*recInst)
	if !o.reg.insts[in] {
		o.r.errs = append(o.r.errs, "callback observed "+in.name+", which it did not register")
	}
	var kv []string
	port := false
	set := metric.NewObserveConfig(opts).Attributes()
	for _, a := range set.ToSlice() {
		if a.Key == "cnlink.local.port" {
			port = true
			if a.Value.AsInt64() != int64(o.port) {
				o.r.errs = append(o.r.errs, in.name+": cnlink.local.port "+a.Value.String())
			}
			continue
		}
		kv = append(kv, string(a.Key)+"="+a.Value.String())
	}
	if !port {
		o.r.errs = append(o.r.errs, in.name+": no cnlink.local.port")
	}
	name := in.name
	sort.Strings(kv)
	if len(kv) > 0 {
		name += "{" + strings.Join(kv, ",") + "}"
	}
	if _, dup := o.out[name]; dup {
		o.r.errs = append(o.r.errs, "two observations of "+name)
	}
	o.out[name] = v
}

// collect runs the registered callbacks: the Monitor metrics of one
// collection, series -> value.
func (r *recorder) collect(t *testing.T, port uint32) map[string]int64 {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int64)
	for g, f := range r.regs {
		if err := f(context.Background(), &recObserver{reg: g, port: port, out: out, r: r}); err != nil {
			t.Errorf("callback: %v", err)
		}
	}
	for _, e := range r.errs {
		t.Error(e)
	}
	r.errs = nil
	return out
}

// TestMetrics drives a Monitor through the fake kernel into every kind of
// loss and refusal, and checks that the metrics say what Stats says, that
// they are the ones docs/OBSERVABILITY.md lists, and that they go when the
// Monitor ends.
func TestMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		k := newFakeKernel(t)
		m := listenFake(t, k, Config{Buffer: 4, Events: MaskAll &^ MaskExit}, nil)
		if _, err := m.RegisterMetrics(rec); err != nil {
			t.Fatal(err)
		}
		// 10 events for a buffer of 4 (one is filtered out), a gap of 3,
		// a forgery from a user port.
		for i := range 8 {
			k.emit(0, Event{Kind: KindExec, PID: 100 + i, TID: 100 + i})
		}
		k.emit(0, Event{Kind: KindExit, PID: 99, TID: 99})
		k.emit(1, Event{Kind: KindExec, PID: 200, TID: 200})
		k.skip(1, 3)
		k.emit(1, Event{Kind: KindExec, PID: 201, TID: 201})
		fake := Event{Kind: KindFork, What: whatFork, PID: 666, TID: 666}
		if err := k.net.Inject(77, transport.Addr{Port: m.LocalPort()}, frameOf(&fake)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()

		st := m.Stats()
		got := rec.collect(t, m.LocalPort())
		want := map[string]int64{
			"cnlink.proc.event.received":                                   int64(st.Received),
			"cnlink.proc.event.delivered":                                  int64(st.Delivered),
			"cnlink.proc.event.filtered":                                   int64(st.Filtered),
			"cnlink.proc.event.unknown":                                    int64(st.Unknown),
			"cnlink.proc.event.lost{cnlink.proc.loss.cause=missed}":        int64(st.Missed),
			"cnlink.proc.event.lost{cnlink.proc.loss.cause=dropped}":       int64(st.Dropped),
			"cnlink.proc.overrun.count":                                    int64(st.Overruns),
			"cnlink.proc.message.rejected{cnlink.reject.reason=foreign}":   int64(st.Rejected),
			"cnlink.proc.message.rejected{cnlink.reject.reason=malformed}": int64(st.Malformed),
			"cnlink.proc.read_buffer.limit":                                int64(st.ReadBuffer),
		}
		for name, w := range want {
			if g, ok := got[name]; !ok || g != w {
				t.Errorf("%s = %d (reported %v), want %d as in Stats", name, g, ok, w)
			}
		}
		if len(got) != len(want) {
			t.Errorf("reported %v, want %v", got, want)
		}
		// The scenario really produced what it aimed at.
		if st.Missed != 3 || st.Dropped == 0 || st.Filtered != 1 || st.Rejected != 1 {
			t.Errorf("stats %+v: want 3 missed, some dropped, 1 filtered, 1 rejected", st)
		}

		if v, ok := rec.versions[instrumentationName]; !ok || v != cnlink.Version {
			t.Errorf("meter %s: version %q (%v), want cnlink.Version %q", instrumentationName, v, ok, cnlink.Version)
		}
		// The instruments registered, with their kinds and units, are
		// the table of docs/OBSERVABILITY.md, both ways.
		documented := procDocumented(t)
		for name, in := range rec.insts {
			d, ok := documented[name]
			switch {
			case !ok:
				t.Errorf("%s is not in docs/OBSERVABILITY.md", name)
			case d != in.kind+" "+in.unit:
				t.Errorf("%s: docs/OBSERVABILITY.md says %q, registered as %q", name, d, in.kind+" "+in.unit)
			}
			if in.desc == "" {
				t.Errorf("%s: no description", name)
			}
		}
		for n := range documented {
			if _, ok := rec.insts[n]; !ok {
				t.Errorf("docs/OBSERVABILITY.md lists %s, which the Monitor does not register", n)
			}
		}

		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := rec.collect(t, m.LocalPort()); len(got) != 0 {
			t.Errorf("closed Monitor still reported: %v", got)
		}
	})
}

var procDocRow = regexp.MustCompile("^\\| `(cnlink\\.proc\\.[a-z0-9_.]+)` \\| (?:observable )?([^|]+?) \\| `([^`]*)` \\|")

// procDocumented returns the instruments in the proc section of
// docs/OBSERVABILITY.md: name -> "kind unit".
func procDocumented(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "docs", "OBSERVABILITY.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := procDocRow.FindStringSubmatch(sc.Text()); m != nil {
			names[m[1]] = m[2] + " " + m[3]
		}
	}
	if len(names) == 0 {
		t.Fatal("no proc instrument table in docs/OBSERVABILITY.md")
	}
	return names
}
