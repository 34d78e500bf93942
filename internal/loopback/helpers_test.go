package loopback

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver/dns"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/greeter"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/loadgen"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/localdns"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/loopfleet"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serverkit"
)

// binDir holds binaries built once for the tests that need real processes.
var binDir string

// TestMain checks the loopback addresses before any test binds one, and leaves the whole
// package out of `go test -short` (make test-short): these tests start real servers and
// processes and take minutes.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("loopback: integration tests not run with -short (make test runs them)")
		os.Exit(0)
	}
	if err := localdns.CheckLoopback(localdns.LoopbackAddrs()...); err != nil {
		fmt.Fprintln(os.Stderr, "loopback:", err)
		os.Exit(1)
	}
	// grpc-go re-resolves at most every 30s by default; the tests watch DNS changes in
	// seconds. Process-wide, so set once here.
	dns.SetMinResolutionInterval(100 * time.Millisecond)
	dir, err := os.MkdirTemp("", "loopback-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildBinary builds a main package of this module (or, with modfile, of the tools
// module) into binDir once per test process.
func buildBinary(t *testing.T, name, pkg string, extra ...string) string {
	t.Helper()
	out := filepath.Join(binDir, name)
	if _, err := os.Stat(out); err == nil {
		return out
	}
	args := append([]string{"build"}, extra...)
	args = append(args, "-o", out, pkg)
	cmd := exec.Command("go", args...)
	cmd.Dir = moduleRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %v: %v\n%s", args, err, b)
	}
	return out
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(string(b[:len(b)-1]))
}

// freePortOn returns a TCP port free on every one of ips, for a server that is not part
// of a fleet (a process, or a server without a DNS name).
func freePortOn(t *testing.T, ips ...string) int {
	t.Helper()
	port, err := localdns.FreePortOn(ips...)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// testArgs is how the tests' servers differ from the servers' defaults: the HTTP port
// (admin) on a free port, no drain delay and a short shutdown, keepalive enforcement at
// 5s, none of the connection and stream bounds (max connection age, stream max age and
// rate, streams per connection), a goroutine per call, no ORCA, no echoed metadata, the
// admin endpoint on, text logs. A test that needs one of them sets it (a tweak).
var testArgs = []string{"-http-port=0", "-drain-delay=0s", "-shutdown-timeout=2s", "-keepalive-min-time=5s",
	"-max-connection-age=0s", "-max-connection-age-grace=0s", "-stream-max-age=0s", "-stream-max-rate=0",
	"-max-streams-per-conn=0", "-stream-workers=0", "-orca=false", "-orca-interval=0s", "-echo-metadata=",
	"-admin", "-log-format=text"}

// testConfig is a test server's config on ip:port: the servers' defaults with testArgs.
func testConfig(t *testing.T, ip string, port int) serverkit.Config {
	t.Helper()
	cfg, err := loopfleet.Config(ip, port, testArgs...)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// testLog is where the tests' servers log: warnings and errors, in the test's output.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// newFleet is a loopfleet.Fleet on ips (a port free on all of them, a DNS server) whose
// servers stop at the end of the test.
func newFleet(t *testing.T, ips ...string) *loopfleet.Fleet {
	t.Helper()
	f, err := loopfleet.New(ips...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Logf("stop the fleet: %v", err)
		}
	})
	return f
}

// backend is one in-process Hello server.
type backend struct{ *loopfleet.Server }

// helloPod is a Hello server named pod on ip, with testArgs then tweak (if not nil).
func helloPod(t *testing.T, ip, pod string, tweak func(*serverkit.Config)) loopfleet.Pod {
	return loopfleet.Pod{Service: catalog.Hello(), ID: identity.Identity{Pod: pod, PodIP: ip, Version: "v1"},
		Args: testArgs, Tweak: tweak, Log: testLog(t)}
}

// startBackend starts a Hello server named pod on ip at f's port; tweak may adjust its config.
func startBackend(t *testing.T, f *loopfleet.Fleet, ip, pod string, tweak func(*serverkit.Config)) *backend {
	t.Helper()
	s, err := f.Start(helloPod(t, ip, pod, tweak))
	if err != nil {
		t.Fatal(err)
	}
	return &backend{s}
}

// startGroup starts a Hello server on each of ips, named prefix-1, prefix-2, ..., behind
// name: a headless Service and its pods.
func startGroup(t *testing.T, name, prefix string, ips []string, tweak func(*serverkit.Config)) (*cluster, []*backend) {
	t.Helper()
	f := newFleet(t, ips...)
	target, servers, err := f.Group(name, prefix, ips, helloPod(t, "", "", tweak))
	if err != nil {
		t.Fatal(err)
	}
	var bs []*backend
	for _, s := range servers {
		bs = append(bs, &backend{s})
	}
	return &cluster{dns: f.DNS(), name: name, target: target}, bs
}

// setHealth flips b through its real admin HTTP endpoint.
func (b *backend) setHealth(t *testing.T, status string) {
	t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://%s/admin/health?status=%s", b.HTTPAddr(), status), "", nil)
	if err != nil {
		t.Fatalf("flip %s: %v", b.ID.Pod, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("flip %s to %s: HTTP %d", b.ID.Pod, status, resp.StatusCode)
	}
}

// cluster is a DNS name resolving to several backends.
type cluster struct {
	dns    *localdns.Server
	name   string
	target string
}

// newCluster makes name resolve to ips through f's DNS server.
func newCluster(t *testing.T, f *loopfleet.Fleet, name string, ips ...string) *cluster {
	t.Helper()
	target, err := f.Name(name, ips...)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{dns: f.DNS(), name: name, target: target}
}

// client dials c's name with the greeter's own dialer.
func (c *cluster) client(t *testing.T, lb string, healthCheck bool) *grpc.ClientConn {
	t.Helper()
	cc, err := dialer.Dial(dialer.Options{
		Target: c.target, LB: lb, Retry: true, HealthCheck: healthCheck,
		HealthService: catalog.Hello().Name(), Services: []string{catalog.Hello().Name()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func helloCall(cc *grpc.ClientConn) loadgen.CallFunc {
	return greeter.NewCall(cc, catalog.Hello().Methods[0], "loopback", nil, nil)
}

// run makes calls with the real load generator and returns the summary.
func run(t *testing.T, call loadgen.CallFunc, p loadgen.Plan) report.Summary {
	t.Helper()
	r := <-runAsync(call, p)
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.s
}

func counts(s report.Summary) map[string]int64 {
	m := map[string]int64{}
	for _, b := range s.Backends {
		m[b.Pod] += b.Calls
	}
	return m
}

// warmUp calls until n distinct backends have answered, so round robin rotates over all.
func warmUp(t *testing.T, call loadgen.CallFunc, n int) {
	t.Helper()
	if seen := loadgen.WarmUp(context.Background(), call, n, 10*time.Second, time.Second); seen < n {
		t.Fatalf("warm-up: only %d of %d backends answered in 10s", seen, n)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening after 10s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type loadResult struct {
	s   report.Summary
	err error
}

// runAsync runs a load in its own goroutine; the test reads the result (and fails, if it
// must, on its own goroutine: t.Fatal only works there).
func runAsync(call loadgen.CallFunc, p loadgen.Plan) <-chan loadResult {
	if p.Concurrency == 0 {
		p.Concurrency = 1
	}
	if p.Timeout == 0 {
		p.Timeout = 5 * time.Second
	}
	ch := make(chan loadResult, 1)
	go func() {
		tally, elapsed, err := loadgen.Run(context.Background(), p, call, 0, nil)
		if err != nil {
			ch <- loadResult{err: err}
			return
		}
		ch <- loadResult{s: tally.Summary(elapsed)}
	}()
	return ch
}
