// Package plot draws a timeline.Series as a picture of how calls spread over
// pods in time, and writes a static HTML index of such pictures.
//
// Render draws one line per pod (calls per second against seconds since the
// start of the run), scenario events as labelled vertical lines, and failed
// calls as red marks on the time axis, with the legend outside the plot on
// the right. It uses gonum.org/v1/plot; the format follows the file name
// (.svg or .png). Index writes an index.html that shows many such files.
package plot

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"google.golang.org/grpc/codes"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/timeline"
)

const (
	// Size of a picture: 10 × 5 inches, 960 × 480 pixels in PNG (96 dpi).
	// The height grows when the legend needs more room.
	width  = 10 * vg.Inch
	height = 5 * vg.Inch

	// svgFonts replaces the SVG's bare font-family, adding fallbacks.
	svgFonts = "font-family:'Liberation Sans',Arial,Helvetica,sans-serif;"
)

// Render draws s with the given title to the file at path, replacing it.
// The extension of path picks the format: ".svg" or ".png". SVG is the
// smaller (about 30 kB for 60 s of 5 pods, against 160 kB of PNG) and stays
// sharp when zoomed; its text names Liberation Sans with fallbacks rather
// than embedding the font, which would add about 550 kB a file.
//
// Each pod's line shows the rate of the successful calls it served, per
// bucket, at the middle of the bucket; a line starts one bucket before the
// pod's first call and ends one bucket after its last (at zero), so pods
// that arrive or fade out are visible without lines lying along the axis
// for the whole run. Failed calls are counted per bucket and code and
// drawn as red glyphs at y = 0; the legend gives each code's total, such
// as "failed: Unavailable (12)".
func Render(s timeline.Series, title, path string) error {
	format, err := formatOf(path)
	if err != nil {
		return err
	}
	if s.Bucket <= 0 {
		return fmt.Errorf("plot: rendering %s: series has bucket %v, want a positive one", path, s.Bucket)
	}
	p, legend, err := build(s, title)
	if err != nil {
		return fmt.Errorf("plot: rendering %s: %w", path, err)
	}
	return write(p, legend, format, path)
}

// write draws p with its legend outside it on the right into the file at path, in format
// (svg or png), replacing the file.
func write(p *gplot.Plot, legend gplot.Legend, format, path string) error {
	// Measure the legend on a scratch canvas to lay out the picture.
	legend.Left = true
	legend.Top = true
	lr := legend.Rectangle(draw.Canvas{Rectangle: vg.Rectangle{Max: vg.Point{X: width, Y: height}}})
	const pad = 2 * vg.Millimeter
	h := max(height, lr.Size().Y+4*pad)

	c, err := draw.NewFormattedCanvas(width, h, format)
	if err != nil {
		return fmt.Errorf("plot: rendering %s: %w", path, err)
	}
	dc := draw.New(c)
	// The plot fills only its own part; the legend's part would stay
	// transparent (in SVG) without this.
	dc.FillPolygon(color.White, []vg.Point{{X: 0, Y: 0}, {X: width, Y: 0}, {X: width, Y: h}, {X: 0, Y: h}})
	legendW := lr.Size().X + 2*pad
	p.Draw(draw.Crop(dc, 0, -legendW, 0, 0))
	legend.Draw(draw.Crop(dc, width-legendW+pad, -pad, 0, -3*pad))

	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return fmt.Errorf("plot: rendering %s: %w", path, err)
	}
	out := buf.Bytes()
	if format == "svg" {
		// The fonts are not embedded (that would add about half a
		// megabyte); name fallbacks for viewers without Liberation Sans.
		out = bytes.ReplaceAll(out, []byte("font-family:Liberation Sans;"), []byte(svgFonts))
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot: rendering: %w", err)
	}
	if _, err := f.Write(out); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("plot: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("plot: writing %s: %w", path, err)
	}
	return nil
}

// formatOf is the picture format path's extension asks for: svg or png.
func formatOf(path string) (string, error) {
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	if format != "svg" && format != "png" {
		return "", fmt.Errorf("plot: rendering %s: unsupported format %q, want .svg or .png", path, filepath.Ext(path))
	}
	return format, nil
}

// palette has no red: red is for failures. (Tableau 10 without its red.)
func palette() []color.Color {
	return []color.Color{
		color.RGBA{31, 119, 180, 255},  // blue
		color.RGBA{255, 127, 14, 255},  // orange
		color.RGBA{44, 160, 44, 255},   // green
		color.RGBA{148, 103, 189, 255}, // purple
		color.RGBA{140, 86, 75, 255},   // brown
		color.RGBA{227, 119, 194, 255}, // pink
		color.RGBA{127, 127, 127, 255}, // grey
		color.RGBA{188, 189, 34, 255},  // olive
		color.RGBA{23, 190, 207, 255},  // cyan
	}
}

// dashes has a length prime to len(palette), so that colour and dash
// together tell 45 pods apart.
func dashes() [][]vg.Length {
	return [][]vg.Length{
		nil,
		{vg.Points(6), vg.Points(2)},
		{vg.Points(2), vg.Points(2)},
		{vg.Points(6), vg.Points(2), vg.Points(2), vg.Points(2)},
		{vg.Points(10), vg.Points(4)},
	}
}

func failureGlyphs() []draw.GlyphDrawer {
	return []draw.GlyphDrawer{draw.CrossGlyph{}, draw.PlusGlyph{}, draw.TriangleGlyph{}, draw.BoxGlyph{}, draw.RingGlyph{}}
}

func sans(size vg.Length) font.Font {
	return font.Font{Typeface: "Liberation", Variant: "Sans", Size: size}
}

// build makes the plot and its legend (drawn apart from the plot).
func build(s timeline.Series, title string) (*gplot.Plot, gplot.Legend, error) {
	p := gplot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = sans(13)
	p.X.Label.Text = "seconds since start"
	p.Y.Label.Text = "calls per second"
	for _, a := range []*gplot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = sans(11)
		a.Tick.Label.Font = sans(9)
	}
	p.Add(plotter.NewGrid())
	legend := gplot.NewLegend()
	legend.TextStyle.Font = sans(9)

	bucket := s.Bucket.Seconds()
	n := s.Buckets()
	xmin, xmax := 0.0, math.Max(float64(n)*bucket, bucket)
	for _, e := range s.Events {
		xmin = math.Min(xmin, e.Offset.Seconds())
		xmax = math.Max(xmax, e.Offset.Seconds())
	}
	ymax := 0.0

	colours, dash := palette(), dashes()
	for i, pod := range s.Pods {
		rates := s.Rates(pod)
		first, last := -1, -1
		for b, r := range rates {
			if r > 0 {
				last = b
				if first < 0 {
					first = b
				}
			}
		}
		if first < 0 {
			continue // the pod served no successful call
		}
		lo, hi := max(first-1, 0), min(last+1, n-1)
		xys := make(plotter.XYs, 0, hi-lo+1)
		for b := lo; b <= hi; b++ {
			xys = append(xys, plotter.XY{X: (float64(b) + 0.5) * bucket, Y: rates[b]})
			ymax = math.Max(ymax, rates[b])
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, legend, fmt.Errorf("line of pod %s: %w", pod, err)
		}
		l.Color = colours[i%len(colours)]
		l.Dashes = dash[i%len(dash)]
		l.Width = vg.Points(1.5)
		p.Add(l)
		legend.Add(pod, l)
	}
	if ymax == 0 {
		ymax = 1
	}
	ymax *= 1.15 // room for the event labels above the lines

	// Failures: one glyph per bucket and code, at y = 0.
	failed := map[codes.Code]plotter.XYs{}
	for _, pt := range s.Points {
		if pt.Code != codes.OK && pt.Calls > 0 {
			failed[pt.Code] = append(failed[pt.Code], plotter.XY{X: pt.Offset.Seconds() + bucket/2, Y: 0})
		}
	}
	glyphs := failureGlyphs()
	for i, cc := range s.FailedByCode() {
		sc, err := plotter.NewScatter(failed[cc.Code])
		if err != nil {
			return nil, legend, fmt.Errorf("failures %v: %w", cc.Code, err)
		}
		sc.Color = color.RGBA{214, 39, 40, 255}
		sc.Shape = glyphs[i%len(glyphs)]
		sc.Radius = vg.Points(3.5)
		p.Add(sc)
		legend.Add(fmt.Sprintf("failed: %v (%d)", cc.Code, cc.Calls), sc)
	}

	if err := addEvents(p, s.Events, ymax); err != nil {
		return nil, legend, err
	}

	p.X.Tick.Marker = secondsTicker{}
	p.X.Min, p.X.Max = xmin, xmax
	p.Y.Min, p.Y.Max = 0, ymax
	return p, legend, nil
}

// addEvents draws each event as a dashed vertical line from 0 to ymax with
// its label written downwards from the top, just right of the line.
func addEvents(p *gplot.Plot, events []timeline.Event, ymax float64) error {
	if len(events) == 0 {
		return nil
	}
	lbl := plotter.XYLabels{}
	for _, e := range events {
		x := e.Offset.Seconds()
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: ymax}})
		if err != nil {
			return fmt.Errorf("event %q: %w", e.Label, err)
		}
		l.Color = color.Gray{Y: 90}
		l.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
		l.Width = vg.Points(1)
		p.Add(l)
		lbl.XYs = append(lbl.XYs, plotter.XY{X: x, Y: ymax})
		lbl.Labels = append(lbl.Labels, e.Label)
	}
	labels, err := plotter.NewLabels(lbl)
	if err != nil {
		return fmt.Errorf("event labels: %w", err)
	}
	for i := range labels.TextStyle {
		labels.TextStyle[i] = text.Style{
			Color:    color.Gray{Y: 40},
			Font:     sans(8),
			Rotation: math.Pi / 2,
			XAlign:   text.XRight,
			YAlign:   text.YTop,
			Handler:  labels.TextStyle[i].Handler,
		}
	}
	labels.Offset = vg.Point{X: vg.Points(1), Y: -vg.Points(2)}
	p.Add(labels)
	return nil
}

// Summary is a one-line caption for s, such as
// "1200 calls in 60 s over 5 pods, 12 failed (Unavailable 12)".
func Summary(s timeline.Series) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d calls in %g s over %d pods", s.Calls(), (time.Duration(s.Buckets()) * s.Bucket).Seconds(), len(s.Pods))
	by := s.FailedByCode()
	if len(by) == 0 {
		b.WriteString(", none failed")
		return b.String()
	}
	parts := make([]string, len(by))
	for i, c := range by {
		parts[i] = fmt.Sprintf("%v %d", c.Code, c.Calls)
	}
	fmt.Fprintf(&b, ", %d failed (%s)", s.Failed(), strings.Join(parts, ", "))
	return b.String()
}

// secondsTicker puts major ticks on round numbers of seconds (1, 2, 5, 10,
// 15, 30, 60, … apart) so that there are at most 12 of them, with four
// unlabelled minor ticks between two major ones where they fit.
type secondsTicker struct{}

// Ticks implements gplot.Ticker.
func (secondsTicker) Ticks(lo, hi float64) []gplot.Tick {
	step := 1.0
	for _, st := range []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600} {
		step = st
		if (hi-lo)/st <= 12 {
			break
		}
	}
	for (hi-lo)/step > 12 {
		step *= 2
	}
	var ticks []gplot.Tick
	minor := step / 5
	for i := math.Ceil(lo / minor); i*minor <= hi; i++ {
		x := i * minor
		if math.Abs(math.Remainder(x, step)) < minor/2 {
			ticks = append(ticks, gplot.Tick{Value: x, Label: strconv.FormatFloat(x, 'f', -1, 64)})
		} else {
			ticks = append(ticks, gplot.Tick{Value: x})
		}
	}
	return ticks
}
