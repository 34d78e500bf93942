package plot

import (
	"fmt"
	"math"
	"strconv"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
)

// Stack is one layer of a stacked bar chart: a label for the legend and a value per group
// (0 where the group has none of it).
type Stack struct {
	Label  string
	Values []float64
}

// StackedBars draws one bar per group, made of the stacks' values one on top of the other
// in the order given, with each bar's total written above it and the legend outside on the
// right, to the file at path (.svg or .png), replacing it. A group's name may hold "\n"
// for more lines under the bar (figures that go with it). The e2e's cost lane draws CPU
// per call, by component, for each topology with it.
func StackedBars(title, yLabel string, groups []string, stacks []Stack, path string) error {
	format, err := formatOf(path)
	if err != nil {
		return err
	}
	if len(groups) == 0 || len(stacks) == 0 {
		return fmt.Errorf("plot: rendering %s: %d groups and %d stacks, want some of each", path, len(groups), len(stacks))
	}
	p := gplot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = sans(13)
	p.Y.Label.Text = yLabel
	for _, a := range []*gplot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = sans(11)
		a.Tick.Label.Font = sans(9)
	}
	grid := plotter.NewGrid()
	grid.Vertical.Color = nil // it would run through the bars and their totals
	p.Add(grid)
	legend := gplot.NewLegend()
	legend.TextStyle.Font = sans(9)

	barWidth := min(vg.Points(60), (width-2*vg.Inch)/vg.Length(2*len(groups)))
	totals := make([]float64, len(groups))
	colours := palette()
	var below *plotter.BarChart
	var bars []*plotter.BarChart
	for i, st := range stacks {
		if len(st.Values) != len(groups) {
			return fmt.Errorf("plot: rendering %s: stack %q has %d values for %d groups", path, st.Label, len(st.Values), len(groups))
		}
		for g, v := range st.Values {
			if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("plot: rendering %s: stack %q, group %d: value %v, want a finite one ≥ 0", path, st.Label, g, v)
			}
			totals[g] += v
		}
		b, err := plotter.NewBarChart(plotter.Values(st.Values), barWidth)
		if err != nil {
			return fmt.Errorf("plot: rendering %s: stack %q: %w", path, st.Label, err)
		}
		b.Color = colours[i%len(colours)]
		// No outline: a group without this layer (a zero) would show it as a line.
		b.LineStyle.Width = 0
		if below != nil {
			b.StackOn(below)
		}
		below = b
		bars = append(bars, b)
		p.Add(b)
	}
	// The legend top-down, as the layers lie.
	for i := len(bars) - 1; i >= 0; i-- {
		legend.Add(stacks[i].Label, bars[i])
	}
	top := 0.0
	lbl := plotter.XYLabels{}
	for g, v := range totals {
		top = max(top, v)
		lbl.XYs = append(lbl.XYs, plotter.XY{X: float64(g), Y: v})
		lbl.Labels = append(lbl.Labels, strconv.FormatFloat(v, 'g', 3, 64))
	}
	labels, err := plotter.NewLabels(lbl)
	if err != nil {
		return fmt.Errorf("plot: rendering %s: totals: %w", path, err)
	}
	for i := range labels.TextStyle {
		labels.TextStyle[i].Font = sans(9)
		labels.TextStyle[i].XAlign = text.XCenter
	}
	labels.Offset = vg.Point{Y: vg.Points(3)}
	p.Add(labels)
	p.NominalX(groups...)
	p.X.Min, p.X.Max = -0.6, float64(len(groups))-0.4
	if top == 0 {
		top = 1
	}
	p.Y.Min, p.Y.Max = 0, top*1.12 // room for the totals
	return write(p, legend, format, path)
}
