package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/timeline"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	r := timeline.New(start, time.Second)
	for i := range 100 {
		r.Record(start.Add(time.Duration(i)*100*time.Millisecond), []string{"hello-a", "hello-b"}[i%2], nil)
	}
	r.Record(start.Add(5*time.Second), "", status.Error(codes.Unavailable, "x"))
	in := filepath.Join(dir, "series.json")
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Series().WriteJSON(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(dir, "plot.svg")
	var stdout, stderr bytes.Buffer
	if err := run([]string{"-in", in, "-out", out, "-event", "4.5=pod killed", "-event", "7=back"}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if want := "101 calls in 10 s over 2 pods, 1 failed (Unavailable 1)"; !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout = %q, want it to contain %q", stdout.String(), want)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"series.json", "pod killed", "back", "hello-a", "failed: Unavailable (1)"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s lacks %q", out, want)
		}
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"version":9}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"no flags":    nil,
		"no out":      {"-in", bad},
		"missing in":  {"-in", filepath.Join(dir, "none.json"), "-out", filepath.Join(dir, "x.svg")},
		"bad json":    {"-in", bad, "-out", filepath.Join(dir, "x.svg")},
		"bad event":   {"-in", bad, "-out", "x.svg", "-event", "soon"},
		"extra arg":   {"-in", bad, "-out", "x.svg", "more"},
		"bad seconds": {"-in", bad, "-out", "x.svg", "-event", "NaN=x"},
	} {
		var stdout, stderr bytes.Buffer
		if err := run(args, &stdout, &stderr); err == nil {
			t.Errorf("%s: run(%q) succeeded", name, args)
		}
	}
}
