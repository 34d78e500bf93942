// Command plotjson draws a timeline JSON file (as the greeter's -timeline
// flag writes it) as a picture:
//
//	go run ./internal/plot/cmd/plotjson -in series.json -out plot.svg
//
// The extension of -out picks the format, .svg or .png. -title sets the
// picture's title (the input's file name by default); -event adds a
// scenario event, "SECONDS=LABEL" with seconds since the series' start,
// and may be given more than once.
package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/plot"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/timeline"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "plotjson:", err)
		os.Exit(1)
	}
}

// events collects repeated -event SECONDS=LABEL flags.
type events []timeline.Event

func (e *events) String() string { return fmt.Sprint(*e) }

func (e *events) Set(v string) error {
	sec, label, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want SECONDS=LABEL, got %q", v)
	}
	f, err := strconv.ParseFloat(sec, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("seconds %q: not a number", sec)
	}
	*e = append(*e, timeline.Event{Offset: time.Duration(math.Round(f * 1e9)), Label: label})
	return nil
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plotjson", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "", "timeline JSON file to read (required)")
	out := fs.String("out", "", "picture to write, .svg or .png (required)")
	title := fs.String("title", "", "picture title (default: the -in file's name)")
	var extra events
	fs.Var(&extra, "event", "add an event SECONDS=LABEL (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" || *out == "" || fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("want -in FILE -out FILE and no arguments")
	}
	if *title == "" {
		*title = filepath.Base(*in)
	}

	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	s, err := timeline.ReadJSON(f)
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	for _, e := range extra {
		s.AddEvent(s.Start.Add(e.Offset), e.Label)
	}
	if err := plot.Render(s, *title, *out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s\n", *out, plot.Summary(s))
	return nil
}
