package plot

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The cost lane's picture: CPU per 10 000 calls by component, one bar per topology.
func costStacks() ([]string, []Stack) {
	groups := []string{"direct\np50 0.42 ms", "headless\np50 0.34 ms", "gateway-api\np50 1.10 ms"}
	return groups, []Stack{
		{Label: "client", Values: []float64{5.8, 4.8, 6.1}},
		{Label: "servers", Values: []float64{4.1, 3.8, 4.0}},
		{Label: "proxy", Values: []float64{0, 0, 7.25}},
	}
}

func TestStackedBarsSVG(t *testing.T) {
	groups, stacks := costStacks()
	path := filepath.Join(t.TempDir(), "cost.svg")
	if err := StackedBars("CPU-seconds per 10 000 calls", "CPU-s per 10 000 calls", groups, stacks, path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	texts := svgText(t, b)
	// Every group's two lines, every stack in the legend, each bar's total (9.9, 8.6, 17.4)
	// and the axis.
	for _, want := range []string{"direct", "p50 0.42 ms", "gateway-api", "p50 1.10 ms", "client", "servers", "proxy",
		"9.9", "8.6", "17.4", "CPU-s per 10 000 calls"} {
		if !strings.Contains(texts, want) {
			t.Errorf("SVG text lacks %q; it has:\n%s", want, texts)
		}
	}
}

func TestStackedBarsPNG(t *testing.T) {
	groups, stacks := costStacks()
	path := filepath.Join(t.TempDir(), "cost.png")
	if err := StackedBars("cost", "CPU-s", groups, stacks, path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("PNG does not decode: %v", err)
	}
	if got := img.Bounds().Size(); got.X != 960 || got.Y != 480 {
		t.Errorf("PNG is %v pixels, want 960x480", got)
	}
}

func TestStackedBarsRefuses(t *testing.T) {
	groups, stacks := costStacks()
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		groups []string
		stacks []Stack
		path   string
		want   string
	}{
		{"format", groups, stacks, filepath.Join(dir, "cost.jpg"), "unsupported format"},
		{"no groups", nil, stacks, filepath.Join(dir, "a.svg"), "0 groups"},
		{"short stack", groups, []Stack{{Label: "client", Values: []float64{1}}}, filepath.Join(dir, "b.svg"), `stack "client" has 1 values for 3 groups`},
		{"negative", groups, []Stack{{Label: "client", Values: []float64{1, -1, 1}}}, filepath.Join(dir, "c.svg"), "want a finite one ≥ 0"},
	} {
		err := StackedBars("t", "y", tc.groups, tc.stacks, tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
		if _, serr := os.Stat(tc.path); serr == nil {
			t.Errorf("%s: a file was written despite the error", tc.name)
		}
	}
}
