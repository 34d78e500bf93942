package serverkit

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	v3orcaservicegrpc "github.com/cncf/xds/go/xds/service/orca/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// trailerReport is the ORCA load report a call's trailer carries, nil without one.
func trailerReport(t *testing.T, tr metadata.MD) *v3orcapb.OrcaLoadReport {
	t.Helper()
	v := tr.Get("endpoint-load-metrics-bin")
	if len(v) == 0 {
		return nil
	}
	var r v3orcapb.OrcaLoadReport
	if err := proto.Unmarshal([]byte(v[0]), &r); err != nil {
		t.Fatalf("trailer load report: %v", err)
	}
	return &r
}

// A server slowed through the admin endpoint reports its load per call and out of band,
// and the slowdown shows in the application utilization: calls in flight per CPU.
func TestORCAReportsTheSlowdown(t *testing.T) {
	const interval = 200 * time.Millisecond
	r := start(t, func(c *Config) { c.AdminEnabled, c.ORCAInterval = true, interval })
	c := pb.NewHelloClient(r.cc)

	code, body := r.post(t, "/admin/slow?latency=20ms")
	if code != http.StatusOK || !strings.Contains(body, `"latency": "20ms"`) {
		t.Fatalf("POST /admin/slow?latency=20ms: HTTP %d %s", code, body)
	}
	t0 := time.Now()
	var tr metadata.MD
	var report *v3orcapb.OrcaLoadReport
	for time.Since(t0) < 3*time.Second {
		if _, err := c.SayHello(context.Background(), &pb.SayHelloRequest{Name: "slow"}, grpc.Trailer(&tr)); err != nil {
			t.Fatal(err)
		}
		if report = trailerReport(t, tr); report != nil && report.GetRpsFractional() > 0 {
			break
		}
	}
	// One call at a time, 20 ms each: about 50 calls/s, about one call in flight all the
	// time, spread over GOMAXPROCS CPUs.
	if report == nil || report.GetRpsFractional() < 10 || report.GetRpsFractional() > 60 {
		t.Fatalf("per-call report after %s: %v, want about 50 qps", time.Since(t0), report)
	}
	if u := report.GetApplicationUtilization() * r.srv.load.procs; u < 0.5 || u > 1.1 {
		t.Errorf("application utilization × CPUs = %.2f, want about 1 call in flight", u)
	}
	if report.GetCpuUtilization() <= 0 {
		t.Errorf("no CPU utilization in %v", report)
	}
	code, body = r.get(t, "/admin/load")
	var load Report
	if err := json.Unmarshal([]byte(body), &load); code != 200 || err != nil || load.Interval != "200ms" {
		t.Errorf("GET /admin/load: HTTP %d %v %s", code, err, body)
	}

	// The out-of-band stream: the first report comes at once.
	stream, err := v3orcaservicegrpc.NewOpenRcaServiceClient(r.cc).StreamCoreMetrics(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	oob, err := stream.Recv()
	if err != nil || oob.GetRpsFractional() <= 0 {
		t.Fatalf("out-of-band report: %v %v", oob, err)
	}
}

func TestSlowAdminValidates(t *testing.T) {
	r := start(t, func(c *Config) { c.AdminEnabled = true })
	for _, tc := range []struct {
		q    string
		code int
		want string
	}{
		{"?latency=abc", 400, `slow latency "abc" is not a duration: want e.g. 20ms`},
		{"?latency=-5ms", 400, "out of range"},
		{"?cpu=2h", 400, "slow cpu 2h0m0s out of range"},
		{"?d=5ms", 400, "give latency, cpu or both"},
		{"?latency=5ms&cpu=1ms", 200, `"cpu": "1ms"`},
		{"?latency=0", 200, `"latency": "0s"`},
	} {
		if code, body := r.post(t, "/admin/slow"+tc.q); code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("POST /admin/slow%s: HTTP %d %q, want %d with %q", tc.q, code, body, tc.code, tc.want)
		}
	}
	if code, body := r.get(t, "/admin/slow"); code != 200 || !strings.Contains(body, `"latency": "0s"`) || !strings.Contains(body, `"cpu": "1ms"`) {
		t.Errorf("GET /admin/slow: HTTP %d %s", code, body)
	}

	off := start(t, func(c *Config) { c.ORCA = false })
	if code, _ := off.post(t, "/admin/slow?latency=5ms"); code != http.StatusForbidden {
		t.Errorf("POST /admin/slow without --admin: HTTP %d, want 403", code)
	}
	if code, _ := off.get(t, "/admin/load"); code != http.StatusNotFound {
		t.Errorf("GET /admin/load with -orca=false: HTTP %d, want 404", code)
	}
	var tr metadata.MD
	if _, err := pb.NewHelloClient(off.cc).SayHello(context.Background(), &pb.SayHelloRequest{Name: "x"}, grpc.Trailer(&tr)); err != nil || trailerReport(t, tr) != nil {
		t.Errorf("-orca=false still sends a load report (%v)", err)
	}
}

func (r *running) post(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Post("http://"+r.srv.HTTPAddr().String()+path, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestORCAAndSlowdownConfig(t *testing.T) {
	c, err := Load("hello", nil, func(string) string { return "" }, io.Discard)
	if err != nil || !c.ORCA || c.ORCAInterval != DefaultORCAInterval || c.SlowLatency != 0 || c.SlowCPU != 0 {
		t.Fatalf("defaults: %v %+v", err, c)
	}
	env := map[string]string{"ORCA": "false", "SLOW_LATENCY": "50ms", "SLOW_CPU": "1ms"}
	c, err = Load("hello", nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil || c.ORCA || c.SlowLatency != 50*time.Millisecond || c.SlowCPU != time.Millisecond {
		t.Fatalf("env: %v %+v", err, c)
	}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"SLOW_LATENCY": "abc"}, `environment SLOW_LATENCY="abc"`},
		{map[string]string{"SLOW_LATENCY": "-1s"}, "slow latency -1s out of range"},
		{map[string]string{"ORCA_INTERVAL": "10ms"}, "orca-interval 10ms out of range"},
	} {
		if _, err := Load("hello", nil, func(k string) string { return tc.env[k] }, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error containing %q", tc.env, err, tc.want)
		}
	}
}

// An open out-of-band stream does not hold the drain: it ends with the health watches.
func TestOOBStreamEndsOnDrain(t *testing.T) {
	r := start(t, func(c *Config) { c.ShutdownTimeout = 10 * time.Second })
	stream, err := v3orcaservicegrpc.NewOpenRcaServiceClient(r.cc).StreamCoreMetrics(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		if d := time.Since(t0); d > 3*time.Second {
			t.Fatalf("drain took %s with an out-of-band stream open", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("drain held by the out-of-band stream for 5s")
	}
}
