//go:build e2e

package harness

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

// SumCounter reads what a real client_golang registry serves on /metrics, as the servers'
// is read through the pod proxy.
func TestSumCounterOnRealExposition(t *testing.T) {
	reg := prometheus.NewRegistry()
	handled := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "grpc_server_handled_total", Help: "calls"},
		[]string{"grpc_method", "grpc_code"})
	reg.MustRegister(handled)
	handled.WithLabelValues("SayHello", "OK").Add(40)
	handled.WithLabelValues("SayHello", "InvalidArgument").Add(2)
	handled.WithLabelValues("SayGoodbye", "OK").Add(7)
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))

	for _, tc := range []struct {
		method string
		want   float64
	}{{"SayHello", 42}, {"SayGoodbye", 7}, {"ChatHello", 0}} {
		got, err := SumCounter(bytes.NewReader(rec.Body.Bytes()), "grpc_server_handled_total", map[string]string{"grpc_method": tc.method})
		if err != nil || got != tc.want {
			t.Errorf("SumCounter(%s) = %v, %v; want %v", tc.method, got, err, tc.want)
		}
	}
	if got, err := SumCounter(bytes.NewReader(rec.Body.Bytes()), "grpc_server_started_total", nil); err != nil || got != 0 {
		t.Errorf("a metric not exposed yet: %v, %v; want 0, nil", got, err)
	}
	if _, err := SumCounter(strings.NewReader("not { metrics"), "x", nil); err == nil {
		t.Error("SumCounter accepted text that is not the exposition format")
	}
}

// Gauge reads the kubernetes_feature_enabled gauge as Kubernetes components serve it
// (component-base's featuregate metrics: one series per gate, labels name and stage).
func TestGaugeReadsFeatureEnabled(t *testing.T) {
	const exposition = `# HELP kubernetes_feature_enabled [BETA] This metric records the data about the stage and enablement of a k8s feature.
# TYPE kubernetes_feature_enabled gauge
kubernetes_feature_enabled{name="GRPCContainerProbeTLS",stage="ALPHA"} 1
kubernetes_feature_enabled{name="InPlacePodVerticalScaling",stage=""} 1
kubernetes_feature_enabled{name="GenericWorkload",stage="BETA"} 0
`
	for _, tc := range []struct {
		name         string
		want, exists bool
	}{{"GRPCContainerProbeTLS", true, true}, {"GenericWorkload", false, true}, {"NoSuchGate", false, false}} {
		v, found, err := Gauge(strings.NewReader(exposition), "kubernetes_feature_enabled", map[string]string{"name": tc.name})
		if err != nil || found != tc.exists || (v == 1) != tc.want {
			t.Errorf("Gauge(%s) = %v, %t, %v; want enabled %t, found %t", tc.name, v, found, err, tc.want, tc.exists)
		}
	}
	if _, _, err := Gauge(strings.NewReader("# TYPE x counter\nx 1\n"), "x", nil); err == nil {
		t.Error("Gauge read a counter")
	}
}

// A Job's log interleaves the greeter's stderr (progress records, its own lines, grpc-go's
// log) with its stdout (the report): the load counts the records and decodes the report.
func TestLoadReadsAJobLog(t *testing.T) {
	var log strings.Builder
	for _, n := range []int64{200, 400, 600} {
		log.WriteString(report.Progress{Calls: n, ElapsedS: float64(n) / 200}.JSONLine() + "\n")
	}
	log.WriteString("warmup: 3 backends answered\n2026/12/01 22:48:11 grpc: addrConn.createTransport failed\n")
	log.WriteString("{\n  \"calls\": 600,\n  \"ok\": 599,\n  \"failed\": 1\n}\n")
	l := newLoad("test")
	go l.read(strings.NewReader(log.String()), nil, func() error { return nil })
	l.WaitCalls(t, 600)
	if l.Count() != 600 {
		t.Errorf("Count = %d, want 600", l.Count())
	}
	sum := l.Result(t)
	if sum.Calls != 600 || sum.OK != 599 || sum.Failed != 1 {
		t.Errorf("report = %+v, want 600 calls, 599 ok, 1 failed", sum)
	}
}

// A load that ends without a report says why; one that never reaches its count fails
// the waiting test instead of hanging.
func TestLoadWithoutReport(t *testing.T) {
	l := newLoad("broken")
	go l.read(strings.NewReader(report.Progress{Calls: 10}.JSONLine()+"\n"), nil, func() error { return nil })
	var ft fakeT
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.WaitCalls(&ft, 1000)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("WaitCalls did not return for a load that ended")
	}
	if !ft.failed || !strings.Contains(ft.msg, "ended after 10 calls") {
		t.Errorf("WaitCalls on an ended load: failed=%v %q", ft.failed, ft.msg)
	}
}

// fakeT records a Fatal without ending the test that uses it.
type fakeT struct {
	testing.TB
	failed bool
	msg    string
	logs   []string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Logf(format string, args ...any) {
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fakeDocker is a docker CLI whose pause fails with out for its first fails calls (each
// call appends a line to a file beside it), then succeeds.
func fakeDocker(t *testing.T, fails int, out string) (path string, calls func() int) {
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %s\n[ $(wc -l < %s) -gt %d ] && exit 0\necho '%s' >&2\nexit 1\n", log, log, fails, out)
	path = filepath.Join(dir, "docker")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, func() int {
		b, _ := os.ReadFile(log)
		return bytes.Count(b, []byte("\n"))
	}
}

// runc's message when the cgroup v1 freezer gives up, as docker prints it.
const unableToFreeze = "Error response from daemon: Cannot pause container 29e6: OCI runtime pause failed: unable to freeze: unknown"

func TestPauseRetriesWhenTheFreezerGivesUp(t *testing.T) {
	docker, calls := fakeDocker(t, 2, unableToFreeze)
	var ft fakeT
	runFake(&ft, func() { (&Suite{Docker: docker}).Pause(&ft, "node") })
	if ft.failed || calls() != 3 || len(ft.logs) != 3 || !strings.Contains(ft.logs[2], "frozen at attempt 3") {
		t.Errorf("pause that froze at the third try: failed=%v %q, %d calls, logs %q", ft.failed, ft.msg, calls(), ft.logs)
	}
}

// The negative controls: another failure is not retried, and the tries are bounded.
func TestPauseFailsOtherwise(t *testing.T) {
	for _, c := range []struct {
		name, out string
		fails     int
		calls     int
	}{
		{"no such container", "Error response from daemon: No such container: node", 1, 1},
		{"freezer gives up every time", unableToFreeze, 100, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			docker, calls := fakeDocker(t, c.fails, c.out)
			var ft fakeT
			runFake(&ft, func() { (&Suite{Docker: docker}).Pause(&ft, "node") })
			if !ft.failed || calls() != c.calls || !strings.Contains(ft.msg, c.out) {
				t.Errorf("failed=%v after %d calls (want %d): %q", ft.failed, calls(), c.calls, ft.msg)
			}
		})
	}
}

// runFake runs f, which may end its goroutine through ft.Fatalf, and waits for it.
func runFake(ft *fakeT, f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

func TestResultTableOrder(t *testing.T) {
	tb := NewResultTable("failed calls")
	tb.Add("gateway-api", "failover", 0, 1500*time.Millisecond, "target ≤ 6s")
	tb.Add("headless", "failover", 2, 0, "")
	order := []string{"headless", "gateway-api"}
	s := &Suite{order: order}
	got := tb.String(s.byTopology)
	want := "| scenario | topology | failed calls | seconds | note |\n|---|---|---:|---:|---|\n" +
		"| failover | headless | 2 | – |  |\n| failover | gateway-api | 0 | 1.5 | target ≤ 6s |\n"
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

// The gate lets the tests on in its order, not in the order they arrive, and no more than
// its slots at once.
func TestNodeGateOrder(t *testing.T) {
	g := NewNodeGate(1, "TestNodeGateOrder/first", "TestNodeGateOrder/second")
	var order []string
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	for _, name := range []string{"second", "first"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g.Enter(t)
			<-mu
			order = append(order, name)
			mu <- struct{}{}
			time.Sleep(50 * time.Millisecond)
		})
	}
	t.Cleanup(func() {
		if strings.Join(order, ",") != "first,second" {
			t.Errorf("gate order %v, want first,second", order)
		}
	})
}
