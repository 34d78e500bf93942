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
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serverkit"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serving"
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

// freePortOn returns a TCP port free on every one of ips.
func freePortOn(t *testing.T, ips ...string) int {
	t.Helper()
	port, err := localdns.FreePortOn(ips...)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// backend is one in-process Hello server.
type backend struct {
	ip, pod string
	srv     *serverkit.Server
	stop    context.CancelFunc
	done    chan error
}

func testConfig(ip string, port int) serverkit.Config {
	return serverkit.Config{
		ListenHost: ip, Port: port, HTTPPort: 0,
		DrainDelay: 0, ShutdownTimeout: 2 * time.Second,
		KeepaliveTime: 30 * time.Second, KeepaliveTimeout: 10 * time.Second, KeepaliveMinTime: 5 * time.Second,
		MaxRecvMsgSize: 4096, MaxConcurrentStreams: 1000,
		AdminEnabled: true, LogLevel: "info", LogFormat: "text",
	}
}

// startBackend starts a Hello server named pod on ip:port; tweak may adjust its config.
func startBackend(t *testing.T, ip string, port int, pod string, tweak func(*serverkit.Config)) *backend {
	t.Helper()
	cfg := testConfig(ip, port)
	if tweak != nil {
		tweak(&cfg)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})).With("pod", pod)
	id := identity.Identity{Pod: pod, PodIP: ip, Version: "v1"}
	srv, err := serverkit.New(cfg, log, serving.Server(catalog.Hello(), id, nil))
	if err != nil {
		t.Fatalf("start %s: %v", pod, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &backend{ip: ip, pod: pod, srv: srv, stop: cancel, done: make(chan error, 1)}
	go func() { b.done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-b.done })
	return b
}

// setHealth flips b through its real admin HTTP endpoint.
func (b *backend) setHealth(t *testing.T, status string) {
	t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://%s/admin/health?status=%s", b.srv.HTTPAddr(), status), "", nil)
	if err != nil {
		t.Fatalf("flip %s: %v", b.pod, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("flip %s to %s: HTTP %d", b.pod, status, resp.StatusCode)
	}
}

// cluster is a DNS name resolving to several backends.
type cluster struct {
	dns    *localdns.Server
	name   string
	port   int
	target string
}

func newCluster(t *testing.T, name string, port int, ips ...string) *cluster {
	t.Helper()
	d, err := localdns.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.Set(name, ips...); err != nil {
		t.Fatal(err)
	}
	return &cluster{dns: d, name: name, port: port, target: fmt.Sprintf("dns://%s/%s:%d", d.Addr(), name, port)}
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
	seen := map[string]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for len(seen) < n {
		if time.Now().After(deadline) {
			t.Fatalf("warm-up: only %d of %d backends answered in 10s", len(seen), n)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		b, err := call(ctx)
		cancel()
		if err == nil {
			seen[b.GetPod()] = true
		}
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
