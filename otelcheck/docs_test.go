package otelcheck

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/cnlink/cnlink"
	"github.com/cnlink/cnlink/proc"
	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/memnet"
)

// instrument is one row of an instrument table of docs/OBSERVABILITY.md,
// or one instrument as an SDK reader reports it.
type instrument struct {
	kind  string // counter, up-down counter, gauge, histogram
	unit  string
	attrs string // attribute keys, sorted, comma-separated
}

var (
	docRow = regexp.MustCompile("^\\| `(cnlink\\.[a-z0-9_.]+)` \\| ([^|]+) \\| `([^`]*)` \\|([^|]*)\\|")
	// Parenthesised lists of values inside an attribute cell.
	docValues = regexp.MustCompile(`\([^)]*\)`)
	docKey    = regexp.MustCompile("`([a-z0-9_.]+)`")
)

// documented returns the instrument table of the section of
// docs/OBSERVABILITY.md whose heading is section.
func documented(t *testing.T, section string) map[string]instrument {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "docs", "OBSERVABILITY.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := make(map[string]instrument)
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == section
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
			t.Errorf("docs/OBSERVABILITY.md, %s: %s listed twice", section, m[1])
		}
		out[m[1]] = instrument{
			kind:  strings.TrimPrefix(strings.TrimSpace(m[2]), "observable "),
			unit:  m[3],
			attrs: strings.Join(keys, ","),
		}
	}
	if len(out) == 0 {
		t.Fatalf("no instrument table in section %q of docs/OBSERVABILITY.md", section)
	}
	return out
}

// reported returns the instruments of one collection in the scope named
// scope: kind, unit and the attribute keys of their data points. It
// checks the scope's version and that every instrument has a description.
func reported(t *testing.T, r *sdkmetric.ManualReader, scope string) map[string]instrument {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]instrument)
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != scope {
			t.Errorf("scope %q, want %q", sm.Scope.Name, scope)
			continue
		}
		if sm.Scope.Version != cnlink.Version {
			t.Errorf("scope %s: version %q, want cnlink.Version %q", scope, sm.Scope.Version, cnlink.Version)
		}
		for _, m := range sm.Metrics {
			keys := make(map[string]bool)
			var sets []attribute.Set
			var kind string
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				kind = map[bool]string{true: "counter", false: "up-down counter"}[d.IsMonotonic]
				for _, p := range d.DataPoints {
					sets = append(sets, p.Attributes)
				}
			case metricdata.Gauge[int64]:
				kind = "gauge"
				for _, p := range d.DataPoints {
					sets = append(sets, p.Attributes)
				}
			case metricdata.Gauge[float64]:
				kind = "gauge"
				for _, p := range d.DataPoints {
					sets = append(sets, p.Attributes)
				}
			case metricdata.Histogram[float64]:
				kind = "histogram"
				for _, p := range d.DataPoints {
					sets = append(sets, p.Attributes)
				}
			case metricdata.Histogram[int64]:
				kind = "histogram"
				for _, p := range d.DataPoints {
					sets = append(sets, p.Attributes)
				}
			default:
				t.Errorf("%s: unexpected data type %T", m.Name, m.Data)
				continue
			}
			// Every data point of an instrument has the same keys.
			var first []string
			for i, s := range sets {
				var ks []string
				for _, kv := range s.ToSlice() {
					ks = append(ks, string(kv.Key))
					keys[string(kv.Key)] = true
				}
				sort.Strings(ks)
				if i == 0 {
					first = ks
				} else if !slices.Equal(ks, first) {
					t.Errorf("%s: data points with attributes %v and %v", m.Name, first, ks)
				}
			}
			if m.Description == "" {
				t.Errorf("%s: no description", m.Name)
			}
			out[m.Name] = instrument{kind: kind, unit: m.Unit, attrs: strings.Join(first, ",")}
		}
	}
	return out
}

// compareInstruments checks that docs and code list the same instruments
// with the same kind, unit and attribute keys.
func compareInstruments(t *testing.T, doc, got map[string]instrument) {
	t.Helper()
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

// TestInstrumentsDocumented enumerates the instruments an endpoint
// registers, through the SDK's manual reader after a session that
// exercised every one of them (a rejected datagram included), and checks
// them against the table in the Metrics section of docs/OBSERVABILITY.md:
// names, kinds, units and attribute keys, both ways.
func TestInstrumentsDocumented(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		defer mp.Shutdown(context.Background())
		net := memnet.New(memnet.Config{})
		cfg := &reliable.Config{MeterProvider: mp}
		var eps [2]*reliable.Endpoint
		for i := range eps {
			c, err := net.Open(0)
			if err != nil {
				t.Fatal(err)
			}
			if eps[i], err = reliable.NewEndpoint(c, cfg); err != nil {
				t.Fatal(err)
			}
			defer eps[i].Close()
		}
		sa, sb := dialAccept(t, eps[0], eps[1])
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := stream(ctx, sa, sb, 10, 100); err != nil {
			t.Fatal(err)
		}
		if err := sa.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		// A datagram of garbage from a third port: cnlink.frame.rejected
		// reports a reason only once one happened.
		if err := net.Inject(4242, transport.Addr{Port: eps[1].LocalPort()}, []byte("not netlink")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		got := reported(t, reader, reliableScope)
		if _, ok := got["cnlink.frame.rejected"]; !ok {
			t.Error("the injected datagram was not counted as rejected")
		}
		compareInstruments(t, documented(t, "## Metrics"), got)
	})
}

// TestProcInstrumentsDocumented does the same for a proc.Monitor and the
// table of the proc section. A Monitor needs the kernel's proc connector
// (Linux, initial namespaces); proc/metrics_test.go checks the values
// against a fake kernel, without the SDK.
func TestProcInstrumentsDocumented(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := proc.Listen(ctx, proc.Config{})
	if err != nil {
		t.Skipf("no proc connector here: %v", err)
	}
	defer m.Close()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	reg, err := m.RegisterMetrics(mp)
	if err != nil {
		t.Fatal(err)
	}
	got := reported(t, reader, "github.com/cnlink/cnlink/proc")
	compareInstruments(t, documented(t, "## Proc events (package `proc`)"), got)
	if err := reg.Unregister(); err != nil {
		t.Fatal(err)
	}
	if got := reported(t, reader, "github.com/cnlink/cnlink/proc"); len(got) != 0 {
		t.Errorf("unregistered Monitor still reported: %v", got)
	}
}

// checkDocumented checks that the series of a chaos run (see collect)
// belong to instruments of the Metrics table, and that every instrument
// of the table was reported (cnlink.frame.rejected only once something
// was rejected).
func checkDocumented(t *testing.T, ps ...map[string]float64) {
	t.Helper()
	doc := documented(t, "## Metrics")
	seen := make(map[string]bool)
	for _, p := range ps {
		for k := range p {
			name, _, _ := strings.Cut(k, "{")
			name = strings.TrimSuffix(strings.TrimSuffix(name, ".count"), ".sum")
			if _, ok := doc[name]; !ok {
				// name.count may be a counter's own name.
				if _, ok := doc[name+".count"]; ok {
					name += ".count"
				}
			}
			seen[name] = true
		}
	}
	for name := range seen {
		if _, ok := doc[name]; !ok {
			t.Errorf("instrument %s is not in the table of docs/OBSERVABILITY.md", name)
		}
	}
	for name := range doc {
		if !seen[name] && name != "cnlink.frame.rejected" {
			t.Errorf("docs/OBSERVABILITY.md lists %s, which the endpoint does not report", name)
		}
	}
}

// TestDropLocalPortView checks the recipe of docs/OBSERVABILITY.md for an
// application that does not want a series per endpoint: a View that drops
// cnlink.local.port makes the SDK sum the endpoints of the process.
func TestDropLocalPortView(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader),
			sdkmetric.WithView(sdkmetric.NewView(
				sdkmetric.Instrument{Name: "cnlink.*"},
				sdkmetric.Stream{AttributeFilter: attribute.NewDenyKeysFilter("cnlink.local.port")})))
		defer mp.Shutdown(context.Background())
		net := memnet.New(memnet.Config{})
		const window = 256
		cfg := &reliable.Config{MeterProvider: mp, Window: window}
		var eps [2]*reliable.Endpoint
		for i := range eps {
			c, err := net.Open(0)
			if err != nil {
				t.Fatal(err)
			}
			if eps[i], err = reliable.NewEndpoint(c, cfg); err != nil {
				t.Fatal(err)
			}
			defer eps[i].Close()
		}
		sa, sb := dialAccept(t, eps[0], eps[1])
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := stream(ctx, sa, sb, 30, 100); err != nil {
			t.Fatal(err)
		}
		if err := stream(ctx, sb, sa, 20, 100); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*reliable.Session{sa, sb} {
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		p := make(map[string]float64)
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				d, ok := m.Data.(metricdata.Sum[int64])
				if !ok {
					continue
				}
				for _, dp := range d.DataPoints {
					if _, ok := dp.Attributes.Value(attrLocalPort); ok {
						t.Errorf("%s: cnlink.local.port despite the View", m.Name)
					}
					var kv []string
					for _, a := range dp.Attributes.ToSlice() {
						kv = append(kv, string(a.Key)+"="+a.Value.String())
					}
					name := m.Name
					if len(kv) > 0 {
						name += "{" + strings.Join(kv, ",") + "}"
					}
					if _, dup := p[name]; dup {
						t.Errorf("%s: two data points", name)
					}
					p[name] = float64(dp.Value)
				}
			}
		}
		for series, want := range map[string]float64{
			"cnlink.message.count{network.io.direction=transmit}": 50,
			"cnlink.message.count{network.io.direction=receive}":  50,
			"cnlink.message.delivered":                            50,
			"cnlink.session.opened":                               2,
			"cnlink.session.active":                               2,
			"cnlink.window.limit":                                 2 * window,
		} {
			if p[series] != want {
				t.Errorf("%s = %v, want %v (the sum of the two endpoints)", series, p[series], want)
			}
		}
	})
}
