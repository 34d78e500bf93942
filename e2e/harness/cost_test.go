//go:build e2e

package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/promapi"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

// A Job's greeter lingers after its report (-linger): Report returns the report while the
// log is still open, and Result still has it once the log ends.
func TestLoadReportBeforeTheLogEnds(t *testing.T) {
	pr, pw := io.Pipe()
	l := newLoad("lingering")
	go l.read(pr, nil, func() error { return nil })
	go func() {
		fmt.Fprintln(pw, report.Progress{Calls: 100, ElapsedS: 0.5}.JSONLine())
		fmt.Fprint(pw, "{\n  \"calls\": 120,\n  \"ok\": 120,\n  \"latency_ms\": {\n    \"p50\": 0.4\n  }\n}\n")
		// ... and the log stays open, as the container lingers.
	}()
	got := make(chan report.Summary, 1)
	go func() { got <- l.Report(t) }()
	select {
	case sum := <-got:
		if sum.Calls != 120 || LatencyOf(sum).P50 != 0.4 {
			t.Errorf("report = %+v, want 120 calls, p50 0.4", sum)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Report waited for the log to end")
	}
	pw.Close()
	if sum := l.Result(t); sum.Calls != 120 {
		t.Errorf("Result after the log ended = %+v, want the same report", sum)
	}
}

func TestCostTable(t *testing.T) {
	var c CostTable
	c.SetLoad("Load: test")
	mib := float64(1 << 20)
	c.Add(CostRow{Topology: "direct", Calls: 10_000, P50: 0.4, P99: 1.5, Goals: "baseline",
		Parts: map[string]Usage{RoleClient: {CPUSeconds: 5, MaxWorkingSet: 12 * mib, Pods: 1}, RoleServers: {CPUSeconds: 4, MaxWorkingSet: 8 * mib, Pods: 1}}})
	c.Add(CostRow{Topology: "gateway-api", Calls: 20_000, Failed: 1, P50: 0.9, P99: 6.5,
		Parts: map[string]Usage{RoleClient: {CPUSeconds: 10, MaxWorkingSet: 12 * mib, Pods: 1}, RoleServers: {CPUSeconds: 8, MaxWorkingSet: 32 * mib, Pods: 4},
			RoleProxy: {CPUSeconds: 16, MaxWorkingSet: 41.6 * mib, Pods: 1}}})
	got := c.String()
	for _, want := range []string{
		"Load: test\n\n| topology |",
		"| direct | 10000 | 0 | 0.400 | 1.500 | 5.00 | 4.00 | – | – | – | 12.0 | 8.0 | – | – | 1 | baseline |",
		// Per 10 000 calls; the proxy's ratio to the servers only where there is a proxy.
		"| gateway-api | 20000 | 1 | 0.900 | 6.500 | 5.00 | 4.00 | 8.00 | – | 2.00 | 12.0 | 32.0 | 41.6 | – | 4 |  |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if _, ok := (CostRow{Calls: 0, Parts: map[string]Usage{RoleClient: {CPUSeconds: 1}}}).PerCall10k(RoleClient); ok {
		t.Error("a row without calls has no CPU per call")
	}
}

// fakeCAdvisor is a Prometheus that holds cAdvisor's two series for a few containers
// and answers the range selectors WaitUsage sends with the samples stored in the range.
type fakeCAdvisor struct {
	cpu, mem map[string][]model.SamplePair // by pod
}

func (f *fakeCAdvisor) serve(t *testing.T) *Prometheus {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("form: %v", err)
		}
		q := r.Form.Get("query")
		var at float64
		fmt.Sscan(r.Form.Get("time"), &at)
		expr, err := parseRange(q)
		if err != nil {
			t.Errorf("fake Prometheus: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		store := f.cpu
		if expr.metric == "container_memory_working_set_bytes" {
			store = f.mem
		}
		end := model.TimeFromUnixNano(int64(at * 1e9))
		start := end.Add(-expr.rng)
		var m model.Matrix
		for pod, samples := range store {
			if !strings.Contains(expr.pods, pod) {
				continue
			}
			ss := &model.SampleStream{Metric: model.Metric{"pod": model.LabelValue(pod), "id": "/kubepods/" + model.LabelValue(pod)}}
			for _, sp := range samples {
				if sp.Timestamp > start && sp.Timestamp <= end {
					ss.Values = append(ss.Values, sp)
				}
			}
			if len(ss.Values) > 0 {
				m = append(m, ss)
			}
		}
		b, _ := json.Marshal(map[string]any{"status": "success", "data": map[string]any{"resultType": "matrix", "result": m}})
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	api, err := promapi.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &Prometheus{api: api, URL: srv.URL}
}

type rangeExpr struct {
	metric, pods string
	rng          time.Duration
}

// parseRange reads what Prometheus.samples sends: metric{namespace=..., container=..., pod=~"a|b"}[Ns].
func parseRange(q string) (rangeExpr, error) {
	open, cl := strings.IndexByte(q, '{'), strings.LastIndexByte(q, '[')
	if open < 0 || cl < 0 || !strings.HasSuffix(q, "]") {
		return rangeExpr{}, fmt.Errorf("not a range selector: %s", q)
	}
	d, err := model.ParseDuration(q[cl+1 : len(q)-1])
	if err != nil {
		return rangeExpr{}, err
	}
	return rangeExpr{metric: q[:open], pods: q[open:cl], rng: time.Duration(d)}, nil
}

// every15s are samples every 15 s from t0 for n scrapes, value f(i).
func every15s(t0 time.Time, n int, f func(i int) float64) []model.SamplePair {
	var out []model.SamplePair
	for i := range n {
		out = append(out, model.SamplePair{Timestamp: model.TimeFromUnixNano(t0.Add(time.Duration(i) * 15 * time.Second).UnixNano()), Value: model.SampleValue(f(i))})
	}
	return out
}

// The interval is bracketed by the last sample stored at or before its start and the first
// stored CAdvisorLag or more after its end; a new container counts from zero; memory is
// the highest sample between them.
func TestUsageBracketsTheInterval(t *testing.T) {
	// Scrapes at t0, t0+15 s, ...; the load runs from t0+20 s to t0+50 s, so the samples
	// that bracket it are t0+15 s (before) and t0+75 s (the first at or after 50+15 s).
	t0 := time.Now().Add(-3 * time.Minute).Truncate(time.Second)
	start, end := t0.Add(20*time.Second), t0.Add(50*time.Second)
	f := &fakeCAdvisor{
		cpu: map[string][]model.SamplePair{
			"hello-a": every15s(t0, 10, func(i int) float64 { return 10 + float64(i) }),
			// The client: its first sample after start.
			"load-1": every15s(t0.Add(30*time.Second), 6, func(i int) float64 { return 2 + float64(i) }),
		},
		mem: map[string][]model.SamplePair{
			"hello-a": every15s(t0, 10, func(i int) float64 { return []float64{1, 1, 5, 7, 6, 2, 2, 9, 9, 9}[i] }),
			"load-1":  every15s(t0.Add(30*time.Second), 6, func(i int) float64 { return 3 }),
		},
	}
	p := f.serve(t)
	u, err := p.usage(context.Background(), Containers{Namespace: "ns", Container: "hello", Pods: []string{"hello-a"}}, start, end)
	// before: i=1 (t0+15 s, 11); after: i=5 (t0+75 s, 15); memory max over i=2..5.
	if err != nil || u.CPUSeconds != 4 || u.MaxWorkingSet != 7 || u.Pods != 1 ||
		!u.From.Equal(t0.Add(15*time.Second)) || !u.To.Equal(t0.Add(75*time.Second)) {
		t.Errorf("server usage = %+v, %v; want 4 CPU-s (11 to 15), memory 7, from t0+15s to t0+75s", u, err)
	}
	u, err = p.usage(context.Background(), Containers{Namespace: "ns", Container: "greeter", Pods: []string{"load-1"}, New: true}, start, end)
	// No sample before: from zero to t0+75 s (i=3 of its series, 5).
	if err != nil || u.CPUSeconds != 5 || u.MaxWorkingSet != 3 || !u.From.IsZero() {
		t.Errorf("new client usage = %+v, %v; want 5 CPU-s from zero, memory 3", u, err)
	}
	// The same client not marked New: no sample before the interval is an error.
	if _, err := p.usage(context.Background(), Containers{Namespace: "ns", Container: "greeter", Pods: []string{"load-1"}}, start, end); err == nil || !strings.Contains(err.Error(), "no sample at or before") {
		t.Errorf("a container without a sample before the interval: %v", err)
	}
}

func TestUsageWaitsAndRefuses(t *testing.T) {
	t0 := time.Now().Add(-40 * time.Second).Truncate(time.Second)
	f := &fakeCAdvisor{
		cpu: map[string][]model.SamplePair{
			// Scraped at t0, t0+15 s, t0+30 s: nothing yet at or after end+lag.
			"hello-a": every15s(t0, 3, func(i int) float64 { return float64(i) }),
			// A counter that went down: a restart.
			"hello-b": every15s(t0.Add(-60*time.Second), 7, func(i int) float64 { return math.Abs(float64(3 - i)) }),
		},
		mem: map[string][]model.SamplePair{},
	}
	p := f.serve(t)
	start, end := t0.Add(5*time.Second), t0.Add(20*time.Second)
	_, err := p.usage(context.Background(), Containers{Namespace: "ns", Container: "hello", Pods: []string{"hello-a"}}, start, end)
	if !errors.Is(err, errNotYet) {
		t.Errorf("before the sample after the interval: %v, want errNotYet", err)
	}
	end = t0.Add(-40 * time.Second)
	start = end.Add(-5 * time.Second)
	_, err = p.usage(context.Background(), Containers{Namespace: "ns", Container: "hello", Pods: []string{"hello-b"}}, start, end)
	if err == nil || !strings.Contains(err.Error(), "went down") {
		t.Errorf("a counter reset: %v, want an error saying the container restarted", err)
	}
}
