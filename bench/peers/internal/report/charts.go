package report

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/cnlink/cnlink/bench"
)

// Colours from the Okabe-Ito palette, distinguishable with colour
// blindness.
var palette = []color.Color{
	color.RGBA{0, 114, 178, 255},   // blue: cnlink
	color.RGBA{0, 0, 0, 255},       // black
	color.RGBA{86, 180, 233, 255},  // sky blue
	color.RGBA{0, 158, 115, 255},   // green
	color.RGBA{204, 121, 167, 255}, // purple
	color.RGBA{213, 94, 0, 255},    // vermilion: kcp-go
	color.RGBA{230, 159, 0, 255},   // orange
}

const (
	chartDPI    = 144
	panelWidth  = 6.4 * vg.Inch
	panelHeight = 4.6 * vg.Inch
)

// siTicks labels a log axis at powers of ten (1k, 10k, 1M, ...), with
// unlabelled minor ticks at 2..9 times them; an axis spanning less than
// two decades labels 2 and 5 times them too.
type siTicks struct{}

func (siTicks) Ticks(lo, hi float64) []plot.Tick {
	narrow := hi < 100*lo
	var ts []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		p := math.Pow(10, e)
		for m := 1.0; m < 10; m++ {
			v := m * p
			if v < lo*0.999 || v > hi*1.001 {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || (narrow && (m == 2 || m == 5)) {
				t.Label = siLabel(v)
			}
			ts = append(ts, t)
		}
	}
	return ts
}

func siLabel(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%gG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	}
	return fmt.Sprintf("%g", v)
}

// series is one line of a chart: y values at the nominal x positions,
// NaN where nothing was measured.
type series struct {
	label  string
	ys     []float64
	colour color.Color
	dashes []vg.Length
	shape  draw.GlyphDrawer
}

var shapes = []draw.GlyphDrawer{
	draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.CrossGlyph{},
	draw.PlusGlyph{}, draw.RingGlyph{}, draw.BoxGlyph{},
}

func newPanel(title, xLabel, yLabel string, xNames []string, logY bool) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.NominalX(xNames...)
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = siTicks{}
	}
	p.Add(plotter.NewGrid())
	return p
}

// newLegend is the legend shared by a chart's panels, drawn beside them.
func newLegend() plot.Legend {
	l := plot.NewLegend()
	l.Top, l.Left = true, true
	l.TextStyle.Font.Size = vg.Points(10)
	l.Padding = vg.Points(4)
	l.ThumbnailWidth = vg.Points(28)
	return l
}

// addSeries draws s on p, skipping points that were not measured (or are
// not positive, on a log axis), and lists it in legend unless that is nil.
func addSeries(p *plot.Plot, legend *plot.Legend, s series, logY bool) error {
	var xys plotter.XYs
	for i, y := range s.ys {
		if math.IsNaN(y) || (logY && y <= 0) {
			continue
		}
		xys = append(xys, plotter.XY{X: float64(i), Y: y})
	}
	if len(xys) == 0 {
		return nil
	}
	l, pts, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	l.Color = s.colour
	l.Width = vg.Points(1.6)
	l.Dashes = s.dashes
	pts.Color = s.colour
	pts.Shape = s.shape
	pts.Radius = vg.Points(3)
	p.Add(l, pts)
	if legend != nil {
		legend.Add(s.label, l, pts)
	}
	return nil
}

// fitLogY pads a log axis so lines do not sit on the frame. A panel with
// nothing measured (a run filtered with -bench) gets an empty decade
// instead of a range a log axis cannot draw.
func fitLogY(p *plot.Plot) {
	if p.Y.Min > 0 && p.Y.Max >= p.Y.Min && !math.IsInf(p.Y.Max, 0) {
		p.Y.Min /= 1.5
		p.Y.Max *= 1.5
		return
	}
	p.Y.Min, p.Y.Max = 1, 10
	p.Title.Text += " (not measured)"
}

// percentTicks labels a linear axis of percentages every 25%, or every
// 100% when the range is wide.
type percentTicks struct{}

func (percentTicks) Ticks(lo, hi float64) []plot.Tick {
	step := 25.0
	for (hi-lo)/step > 10 {
		step *= 2
	}
	var ts []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		ts = append(ts, plot.Tick{Value: v, Label: fmt.Sprintf("%g%%", v)})
	}
	return ts
}

// legendWidth is the column on the right that holds the shared legend.
const legendWidth = 2.4 * vg.Inch

// savePanels writes panels side by side, and their legend to the right of
// them, as one PNG.
func savePanels(path string, legend plot.Legend, panels ...*plot.Plot) error {
	w := panelWidth*vg.Length(len(panels)) + legendWidth
	img := vgimg.NewWith(vgimg.UseWH(w, panelHeight), vgimg.UseDPI(chartDPI))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(panels), PadX: vg.Points(24), PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6)}
	row := [][]*plot.Plot{panels}
	canvases := plot.Align(row, tiles, draw.Crop(dc, 0, -legendWidth, 0, 0))
	for i, p := range panels {
		p.Draw(canvases[0][i])
	}
	legend.Draw(draw.Crop(dc, w-legendWidth+vg.Points(12), 0, 0, -vg.Points(40)))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (r *Results) median(name, unit string) float64 {
	v, ok := r.Median(name, unit)
	if !ok {
		return math.NaN()
	}
	return v
}

// SizeChart draws throughput against message size at 0% loss for every
// transport: messages per second and bytes per second.
func (r *Results) SizeChart(path string) error {
	var names []string
	for _, s := range bench.Sizes {
		names = append(names, sizeLabel(s))
	}
	msgs := newPanel("Messages per second, no loss", "message size", "msgs/s (log)", names, true)
	bytes := newPanel("Payload bytes per second, no loss", "message size", "B/s (log)", names, true)
	legend := newLegend()
	for i, im := range Impls {
		m := series{label: im.Label, colour: palette[i%len(palette)], shape: shapes[i%len(shapes)]}
		bps := m
		for _, s := range bench.Sizes {
			m.ys = append(m.ys, r.median(im.Name(s), UnitMsgs))
			bps.ys = append(bps.ys, r.median(im.Name(s), UnitBytes))
		}
		if err := addSeries(msgs, &legend, m, true); err != nil {
			return err
		}
		if err := addSeries(bytes, nil, bps, true); err != nil {
			return err
		}
	}
	fitLogY(msgs)
	fitLogY(bytes)
	return savePanels(path, legend, msgs, bytes)
}

// LossSizes are the message sizes the loss chart draws.
var LossSizes = []int{256, 4096}

// LossChart draws cnlink against kcp-go as injected loss grows: absolute
// msgs/s, and the share of each one's own loss-free rate with the
// targets (80% at 1%, 50% at 10%) marked.
func (r *Results) LossChart(path string) error {
	var names []string
	for _, l := range bench.LossPercents {
		names = append(names, fmt.Sprintf("%d%%", l))
	}
	abs := newPanel("Messages per second under loss", "injected loss per datagram", "msgs/s (log)", names, true)
	rel := newPanel("Share of the loss-free rate", "injected loss per datagram", "% of own 0% rate", names, false)
	rel.Y.Tick.Marker = percentTicks{}
	legend := newLegend()
	impls := []struct {
		label  string
		name   func(loss, size int) string
		colour color.Color
	}{
		{"cnlink", ReliableName, palette[0]},
		{"kcp-go", KCPName, palette[5]},
	}
	for ii, im := range impls {
		for si, size := range LossSizes {
			s := series{label: fmt.Sprintf("%s, %s", im.label, sizeLabel(size)), colour: im.colour, shape: shapes[2*ii+si]}
			if si > 0 {
				s.dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			}
			share := s
			base := r.median(im.name(0, size), UnitMsgs)
			for _, l := range bench.LossPercents {
				v := r.median(im.name(l, size), UnitMsgs)
				s.ys = append(s.ys, v)
				share.ys = append(share.ys, 100*v/base)
			}
			if err := addSeries(abs, &legend, s, true); err != nil {
				return err
			}
			if err := addSeries(rel, nil, share, false); err != nil {
				return err
			}
		}
	}
	// The targets, where they apply.
	var tgt plotter.XYs
	for i, l := range bench.LossPercents {
		switch l {
		case 1:
			tgt = append(tgt, plotter.XY{X: float64(i), Y: 80})
		case 10:
			tgt = append(tgt, plotter.XY{X: float64(i), Y: 50})
		}
	}
	if len(tgt) > 0 {
		sc, err := plotter.NewScatter(tgt)
		if err != nil {
			return err
		}
		sc.Shape = draw.PyramidGlyph{}
		sc.Color = color.RGBA{0, 0, 0, 255}
		sc.Radius = vg.Points(5)
		rel.Add(sc)
		legend.Add("cnlink target, 256 B (at least)", sc)
	}
	fitLogY(abs)
	rel.Y.Min = 0
	rel.Y.Max = math.Max(rel.Y.Max, 100) * 1.1
	return savePanels(path, legend, abs, rel)
}

func sizeLabel(s int) string {
	if s >= 1024 {
		return fmt.Sprintf("%d KiB", s/1024)
	}
	return fmt.Sprintf("%d B", s)
}

// SessionsChart draws BenchmarkSessions against the number of sessions:
// aggregate msgs/s with the 1,000-session target (0.8x one session's),
// and memory per idle session end, established and after the throughput
// run, with the 16 KiB target.
func (r *Results) SessionsChart(path string) error {
	var names []string
	for _, n := range SessionCounts {
		names = append(names, thousands(n))
	}
	msgs := newPanel("Aggregate messages per second", "sessions on one endpoint", "msgs/s (log)", names, true)
	mem := newPanel("Memory per idle session end", "sessions on one endpoint", "bytes (log)", names, true)
	legend := newLegend()
	rate := series{label: "msgs/s, all sessions", colour: palette[0], shape: shapes[0]}
	idle := series{label: "B/session, idle", colour: palette[0], shape: shapes[1]}
	after := series{label: "B/session, idle after a run", colour: palette[6], shape: shapes[2],
		dashes: []vg.Length{vg.Points(5), vg.Points(3)}}
	for _, n := range SessionCounts {
		rate.ys = append(rate.ys, r.median(SessionsName(n), UnitMsgs))
		idle.ys = append(idle.ys, r.median(SessionsName(n), UnitSessionBytes))
		after.ys = append(after.ys, r.median(SessionsName(n), UnitSessionBytesAfter))
	}
	if err := addSeries(msgs, &legend, rate, true); err != nil {
		return err
	}
	for _, s := range []series{idle, after} {
		if err := addSeries(mem, &legend, s, true); err != nil {
			return err
		}
	}
	// The targets, at the session count they are set at.
	at := slices.Index(SessionCounts, SessionsTargetN)
	if one := r.median(SessionsName(1), UnitMsgs); at >= 0 && one > 0 {
		sc, err := plotter.NewScatter(plotter.XYs{{X: float64(at), Y: 0.8 * one}})
		if err != nil {
			return err
		}
		sc.Shape = draw.PyramidGlyph{}
		sc.Color = color.RGBA{0, 0, 0, 255}
		sc.Radius = vg.Points(5)
		msgs.Add(sc)
		legend.Add("target: 0.8x of 1 session", sc)
	}
	if at >= 0 {
		l, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 16 << 10}, {X: float64(len(SessionCounts) - 1), Y: 16 << 10}})
		if err != nil {
			return err
		}
		l.Color = color.RGBA{0, 0, 0, 255}
		l.Width = vg.Points(1)
		l.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
		mem.Add(l)
		legend.Add("target: at most 16 KiB", l)
	}
	for _, p := range []*plot.Plot{msgs, mem} {
		fitLogY(p)
	}
	return savePanels(path, legend, msgs, mem)
}
