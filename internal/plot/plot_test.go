package plot

import (
	"bytes"
	"encoding/xml"
	"errors"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/timeline"
)

var (
	oldPods = []string{"hello-7d9f8c6b5-x2x9k", "hello-7d9f8c6b5-q8w4z", "hello-7d9f8c6b5-m3n7p"}
	newPods = []string{"hello-5c6f9d4b8-a1b2c", "hello-5c6f9d4b8-d3e4f"}
)

// rollout makes a 60 s series at about 200 calls/s: three old pods serve
// until they fade out between 20 s and 35 s, two new pods arrive from 25 s,
// a few calls fail around 30 s, and two events mark the rollout.
func rollout(t testing.TB) timeline.Series {
	t.Helper()
	start := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	r := timeline.New(start, 250*time.Millisecond)
	rnd := rand.New(rand.NewPCG(1, 2))
	for ms := 0; ms < 60_000; ms += 5 {
		at := start.Add(time.Duration(ms) * time.Millisecond)
		sec := float64(ms) / 1000
		if sec > 29 && sec < 31 && rnd.IntN(10) == 0 {
			code := codes.Unavailable
			if rnd.IntN(3) == 0 {
				code = codes.DeadlineExceeded
			}
			r.Record(at, "", status.Error(code, "injected"))
			continue
		}
		// Weight of old pods falls from 1 to 0 over 20..35 s.
		old := min(max((35-sec)/15, 0), 1)
		if sec < 25 || rnd.Float64() < old {
			r.Record(at, oldPods[rnd.IntN(len(oldPods))], nil)
		} else {
			r.Record(at, newPods[rnd.IntN(len(newPods))], nil)
		}
	}
	r.Mark(start.Add(20*time.Second), "rollout begun")
	r.Mark(start.Add(36*time.Second), "rollout done <ok>")
	return r.Series()
}

func TestRenderSVG(t *testing.T) {
	s := rollout(t)
	path := filepath.Join(t.TempDir(), "rollout.svg")
	if err := Render(s, "rolling update", path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes", path, len(b))
	if len(b) < 10_000 {
		t.Errorf("SVG is only %d bytes", len(b))
	}
	texts := svgText(t, b)
	for _, want := range append(append([]string{"rolling update", "rollout begun", "rollout done <ok>",
		"failed: DeadlineExceeded (", "failed: Unavailable (", "seconds since start", "calls per second"},
		oldPods...), newPods...) {
		if !strings.Contains(texts, want) {
			t.Errorf("SVG text lacks %q; it has:\n%s", want, texts)
		}
	}
}

// svgText parses b as XML and returns the character data of its text
// elements, one a line.
func svgText(t *testing.T, b []byte) string {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	var out strings.Builder
	inText := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG does not parse as XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Local == "text" {
				inText++
			}
		case xml.EndElement:
			if tok.Name.Local == "text" {
				inText--
				out.WriteString("\n")
			}
		case xml.CharData:
			if inText > 0 {
				out.Write(tok)
			}
		}
	}
	return out.String()
}

func TestRenderPNG(t *testing.T) {
	s := rollout(t)
	path := filepath.Join(t.TempDir(), "rollout.png")
	if err := Render(s, "rolling update", path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes", path, fi.Size())
	if fi.Size() < 10_000 {
		t.Errorf("PNG is only %d bytes", fi.Size())
	}
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("PNG does not decode: %v", err)
	}
	if got := img.Bounds().Size(); got.X != 960 || got.Y != 480 {
		t.Errorf("PNG is %v pixels, want 960x480", got)
	}
}

func TestRenderEdgeCases(t *testing.T) {
	dir := t.TempDir()
	empty := timeline.New(time.Now(), time.Second).Series()
	if err := Render(empty, "nothing", filepath.Join(dir, "empty.svg")); err != nil {
		t.Errorf("empty series: %v", err)
	}
	// Many pods and codes: the picture grows to fit the legend.
	start := time.Now()
	r := timeline.New(start, time.Second)
	for i := range 40 {
		r.Record(start.Add(time.Duration(i)*time.Second), strings.Repeat("p", 20)+string(rune('a'+i%26))+string(rune('a'+i/26)), nil)
		r.Record(start.Add(time.Duration(i)*time.Second), "", status.Error(codes.Code(1+i%16), "x"))
	}
	path := filepath.Join(dir, "many.png")
	if err := Render(r.Series(), "many", path); err != nil {
		t.Fatalf("many pods: %v", err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Height <= 480 {
		t.Errorf("56 legend entries fit in %d pixels?", cfg.Height)
	}
	if err := Render(empty, "x", filepath.Join(dir, "x.gif")); err == nil || !strings.Contains(err.Error(), "unsupported format") {
		t.Errorf("Render(.gif) error = %v, want unsupported format", err)
	}
	if err := Render(timeline.Series{}, "x", filepath.Join(dir, "zero.svg")); err == nil {
		t.Error("Render of a zero Series succeeded")
	}
	if err := Render(empty, "x", filepath.Join(dir, "no", "such", "dir.svg")); err == nil {
		t.Error("Render into a missing directory succeeded")
	}
}

func TestSummary(t *testing.T) {
	start := time.Now()
	r := timeline.New(start, time.Second)
	r.Record(start, "a", nil)
	r.Record(start.Add(1500*time.Millisecond), "b", nil)
	r.Record(start.Add(1600*time.Millisecond), "", status.Error(codes.Unavailable, "x"))
	if got, want := Summary(r.Series()), "3 calls in 2 s over 2 pods, 1 failed (Unavailable 1)"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	r = timeline.New(start, time.Second)
	r.Record(start, "a", nil)
	if got, want := Summary(r.Series()), "1 calls in 1 s over 1 pods, none failed"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
}

// TestWriteSamples writes the sample pictures, and the series as JSON, to
// $PLOT_SAMPLES when set, to look at them:
//
//	PLOT_SAMPLES=/tmp/plots go test -run WriteSamples ./internal/plot/
//	go run ./internal/plot/cmd/plotjson -in /tmp/plots/rollout.json -out /tmp/plots/again.png
func TestWriteSamples(t *testing.T) {
	dir := os.Getenv("PLOT_SAMPLES")
	if dir == "" {
		t.Skip("PLOT_SAMPLES not set")
	}
	s := rollout(t)
	for _, name := range []string{"rollout.svg", "rollout.png"} {
		if err := Render(s, "rolling update: hello, 3 → 2 pods", filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(filepath.Join(dir, "rollout.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := s.WriteJSON(f); err != nil {
		t.Fatal(err)
	}
}
