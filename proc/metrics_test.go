package proc

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"testing/synctest"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/cnlink/cnlink/transport"
)

// collectProc returns the Monitor metrics of one collection: series ->
// value, a series being name{k=v,...} without cnlink.local.port, which
// must be port.
func collectProc(t *testing.T, r *sdkmetric.ManualReader, port uint32) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]int64)
	add := func(name string, set attribute.Set, v int64) {
		var kv []string
		for _, a := range set.ToSlice() {
			if a.Key == "cnlink.local.port" {
				if a.Value.AsInt64() != int64(port) {
					t.Errorf("%s: cnlink.local.port %d, want %d", name, a.Value.AsInt64(), port)
				}
				continue
			}
			kv = append(kv, string(a.Key)+"="+a.Value.Emit())
		}
		sort.Strings(kv)
		if len(kv) > 0 {
			name += "{" + strings.Join(kv, ",") + "}"
		}
		out[name] = v
	}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != instrumentationName {
			t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					add(m.Name, p.Attributes, p.Value)
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					add(m.Name, p.Attributes, p.Value)
				}
			default:
				t.Errorf("%s: unexpected %T", m.Name, m.Data)
			}
		}
	}
	return out
}

// TestMetrics drives a Monitor through the fake kernel into every kind of
// loss and refusal, and checks that the metrics say what Stats says, that
// they are the ones docs/OBSERVABILITY.md lists, and that they go when the
// Monitor ends.
func TestMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		defer mp.Shutdown(context.Background())
		k := newFakeKernel(t)
		m := listenFake(t, k, Config{Buffer: 4, Events: MaskAll &^ MaskExit}, nil)
		if _, err := m.RegisterMetrics(mp); err != nil {
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
		got := collectProc(t, reader, m.LocalPort())
		want := map[string]int64{
			"cnlink.proc.events.received":                             int64(st.Received),
			"cnlink.proc.events.delivered":                            int64(st.Delivered),
			"cnlink.proc.events.filtered":                             int64(st.Filtered),
			"cnlink.proc.events.unknown":                              int64(st.Unknown),
			"cnlink.proc.events.lost{cnlink.proc.loss.cause=missed}":  int64(st.Missed),
			"cnlink.proc.events.lost{cnlink.proc.loss.cause=dropped}": int64(st.Dropped),
			"cnlink.proc.overruns":                                    int64(st.Overruns),
			"cnlink.proc.rejected{cnlink.reject.reason=foreign}":      int64(st.Rejected),
			"cnlink.proc.rejected{cnlink.reject.reason=malformed}":    int64(st.Malformed),
			"cnlink.proc.read_buffer":                                 int64(st.ReadBuffer),
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

		documented := make(map[string]bool)
		for _, n := range procDocumented(t) {
			documented[n] = true
		}
		reported := make(map[string]bool)
		for name := range got {
			n, _, _ := strings.Cut(name, "{")
			reported[n] = true
			if !documented[n] {
				t.Errorf("%s is not in docs/OBSERVABILITY.md", n)
			}
		}
		for n := range documented {
			if !reported[n] {
				t.Errorf("docs/OBSERVABILITY.md lists %s, which the Monitor does not report", n)
			}
		}

		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := collectProc(t, reader, m.LocalPort()); len(got) != 0 {
			t.Errorf("closed Monitor still reported: %v", got)
		}
	})
}

var procDocRow = regexp.MustCompile("^\\| `(cnlink\\.proc\\.[a-z0-9_.]+)` \\|")

// procDocumented returns the instruments in the proc section of
// docs/OBSERVABILITY.md.
func procDocumented(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "docs", "OBSERVABILITY.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := procDocRow.FindStringSubmatch(sc.Text()); m != nil {
			names = append(names, m[1])
		}
	}
	if len(names) == 0 {
		t.Fatal("no proc instrument table in docs/OBSERVABILITY.md")
	}
	return names
}
