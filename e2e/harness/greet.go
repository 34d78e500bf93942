//go:build e2e

package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

// Greet runs the greeter binary from the host with -json and returns its report and exit
// code (0 ok, 1 calls failed, 3 an assertion failed).
func (s *Suite) Greet(t testing.TB, args ...string) (report.Summary, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Greeter)
	defer cancel()
	var stdout, stderr bytes.Buffer
	c := exec.CommandContext(ctx, s.Greeter, append(args, "-json", "-quiet")...)
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("greeter %v: %v", args, err)
	}
	var sum report.Summary
	if code != 1 || stdout.Len() > 0 {
		if jerr := json.Unmarshal(stdout.Bytes(), &sum); jerr != nil {
			t.Fatalf("greeter %v: exit %d, output is not a JSON report: %v\nstdout: %s\nstderr: %s", args, code, jerr, stdout.String(), stderr.String())
		}
	}
	if code != 0 {
		t.Logf("greeter %v: exit %d: %s", args, code, strings.TrimSpace(stderr.String()))
	}
	return sum, code
}

// GreetOne makes a single call from the host and returns the reply as JSON fields.
func (s *Suite) GreetOne(t testing.TB, args ...string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	c := exec.CommandContext(ctx, s.Greeter, append(args, "-n", "1", "-json")...)
	c.Stdout = &out
	if err := c.Run(); err != nil {
		t.Fatalf("greeter %v: %v", args, err)
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("greeter reply: %v\n%s", err, out.String())
	}
	return m
}

// WaitFirstCalls waits until calls through an entry point succeed (an Ingress has no
// readiness condition; the proxy picks routes up a moment after they are applied).
func (s *Suite) WaitFirstCalls(t testing.TB, what string, args ...string) {
	t.Helper()
	took := Eventually(t, FirstCalls, Poll, what, func() bool {
		_, code := s.Greet(t, append(args, "-n", "3", "-max-errors", "0", "-timeout", "3s")...)
		return code == 0
	})
	t.Logf("%s: first calls succeeded after %s", what, took.Round(time.Second))
}

// WaitBackends waits until calls through an entry point reach n distinct pods and a
// following burst has no error. A first successful call is not enough behind a weighted
// split: the proxy may know the 90 % backend and still answer "no available server" for
// the 10 % one, whose endpoints it learns a moment later.
func (s *Suite) WaitBackends(t testing.TB, what string, n int, args ...string) {
	t.Helper()
	took := Eventually(t, Backends, Poll, what+": "+strconv.Itoa(n)+" backends answer", func() bool {
		_, code := s.Greet(t, append(args, "-warmup", "60s", "-n", "40", "-c", "2", "-timeout", "3s",
			"-expect-backends", strconv.Itoa(n), "-max-errors", "0")...)
		return code == 0
	})
	t.Logf("%s: %d backends answer after %s", what, n, took.Round(time.Second))
}

// Ready waits until every hello pod of the topology is Ready and, through a proxy, until
// the entry point reaches every backend.
func (s *Suite) Ready(t testing.TB, tp Topology) {
	t.Helper()
	s.WaitPodsReady(t, tp.Namespace, 3)
	if !tp.Entry.InCluster {
		s.WaitBackends(t, tp.Name, tp.Backends, s.HostArgs(tp.Entry)...)
	}
}

// JobReport waits for one of an overlay's greeter Jobs in ns, adds its report to the
// distribution table under row, and fails the test if the Job's own assertions failed.
func (s *Suite) JobReport(t testing.TB, ns, job, row string) report.Summary {
	t.Helper()
	log, ok := s.Kube.WaitJob(t, ns, job, JobDone)
	sum := ParseJobReport(t, log)
	s.Distribution.Add(row, sum)
	if !ok {
		t.Errorf("job %s failed (its own assertions): %+v", job, sum.Assertions)
	}
	return sum
}

// ParseJobReport extracts the JSON report from a greeter Job's log.
func ParseJobReport(t testing.TB, log string) report.Summary {
	t.Helper()
	start, end := strings.Index(log, "{"), strings.LastIndex(log, "}")
	if start < 0 || end < start {
		t.Fatalf("no JSON report in the job log:\n%s", log)
	}
	var sum report.Summary
	if err := json.Unmarshal([]byte(log[start:end+1]), &sum); err != nil {
		t.Fatalf("job report: %v\n%s", err, log)
	}
	return sum
}

// Tail lets each load run TailCalls more calls after the scenario's last event, then stops
// them.
func Tail(t testing.TB, ls ...*Load) []report.Summary {
	t.Helper()
	for _, l := range ls {
		l.WaitCalls(t, l.Count()+TailCalls)
	}
	var out []report.Summary
	for _, l := range ls {
		out = append(out, l.Stop(t))
	}
	return out
}
