//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

// greet runs the greeter binary from the host with -json and returns its report and exit
// code (0 ok, 1 calls failed, 3 an assertion failed).
func greet(t *testing.T, args ...string) (report.Summary, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	c := exec.CommandContext(ctx, e.greeter, append(args, "-json", "-quiet")...)
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("greeter %v: %v", args, err)
	}
	var s report.Summary
	if code != 1 || stdout.Len() > 0 {
		if jerr := json.Unmarshal(stdout.Bytes(), &s); jerr != nil {
			t.Fatalf("greeter %v: exit %d, output is not a JSON report: %v\nstdout: %s\nstderr: %s", args, code, jerr, stdout.String(), stderr.String())
		}
	}
	if code != 0 {
		t.Logf("greeter %v: exit %d: %s", args, code, strings.TrimSpace(stderr.String()))
	}
	return s, code
}

// jobReport waits for one of an overlay's greeter Jobs in ns, adds its report to the
// distribution table under row, and fails the test if the Job's own assertions failed.
func jobReport(t *testing.T, ns, job, row string) report.Summary {
	t.Helper()
	log, ok := e.k.waitJob(t, ns, job, 5*time.Minute)
	s := parseJobReport(t, log)
	results.add(row, s)
	if !ok {
		t.Errorf("job %s failed (its own assertions): %+v", job, s.Assertions)
	}
	return s
}

// parseJobReport extracts the JSON report from a greeter Job's log.
func parseJobReport(t *testing.T, log string) report.Summary {
	t.Helper()
	start, end := strings.Index(log, "{"), strings.LastIndex(log, "}")
	if start < 0 || end < start {
		t.Fatalf("no JSON report in the job log:\n%s", log)
	}
	var s report.Summary
	if err := json.Unmarshal([]byte(log[start:end+1]), &s); err != nil {
		t.Fatalf("job report: %v\n%s", err, log)
	}
	return s
}

// checkSpread asserts every backend's share is within tol of an even split over want pods.
func checkSpread(t *testing.T, what string, s report.Summary, want int, tol float64) {
	t.Helper()
	if s.Failed != 0 {
		t.Errorf("%s: %d calls failed: %+v", what, s.Failed, s.Errors)
	}
	if len(s.Backends) != want {
		t.Errorf("%s: %d backends served calls, want %d: %+v", what, len(s.Backends), want, s.Backends)
	}
	if k := s.Skew(); k > tol {
		t.Errorf("%s: skew %.3f > %.3f: %+v", what, k, tol, s.Backends)
	}
}

// checkRouting asserts every call was answered by the expected service on pods whose
// names start with podPrefix.
func checkRouting(t *testing.T, what string, s report.Summary, service, podPrefix string) {
	t.Helper()
	for _, b := range s.Backends {
		if b.Service != service || !strings.HasPrefix(b.Pod, podPrefix) {
			t.Errorf("%s: %d calls answered by %s (service %s), want only %s pods of %s", what, b.Calls, b.Pod, b.Service, podPrefix, service)
		}
	}
}

// table collects topology → pod → calls for the closing summary.
type table struct {
	mu   sync.Mutex
	rows []row
}

type row struct {
	topology, pod, version string
	calls                  int64
	share                  float64
}

func newTable() *table { return &table{} }

func (tb *table) add(topology string, s report.Summary) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, b := range s.Backends {
		tb.rows = append(tb.rows, row{topology, b.Pod, b.Version, b.Calls, b.Share})
	}
	if s.Failed > 0 {
		tb.rows = append(tb.rows, row{topology, fmt.Sprintf("(failed: %d)", s.Failed), "", s.Failed, 0})
	}
}

func (tb *table) String() string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.rows) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("| topology | pod | version | calls | share |\n|---|---|---|---:|---:|\n")
	rows := append([]row(nil), tb.rows...)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].topology < rows[j].topology })
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %.1f%% |\n", r.topology, r.pod, r.version, r.calls, 100*r.share)
	}
	return b.String()
}
