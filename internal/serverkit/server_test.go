package serverkit

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/hello"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// panicky panics for the name "panic" and greets otherwise.
type panicky struct{ *hello.Server }

func (p panicky) SayHello(ctx context.Context, r *pb.SayHelloRequest) (*pb.SayHelloResponse, error) {
	if r.GetName() == "panic" {
		panic("boom")
	}
	return p.Server.SayHello(ctx, r)
}

type running struct {
	srv    *Server
	cc     *grpc.ClientConn
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, tweak func(*Config)) *running {
	t.Helper()
	cfg, err := Load("test", []string{"-listen-host=127.0.0.1", "-port=0", "-http-port=0", "-drain-delay=0s"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := New(cfg, slog.New(slog.NewTextHandler(t.Output(), nil)), Service{Name: pb.Hello_ServiceDesc.ServiceName, Register: func(r grpc.ServiceRegistrar) {
		pb.RegisterHelloServer(r, panicky{hello.New(identity.Identity{Pod: "p1"}, nil)})
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- srv.Serve(ctx) }()
	r.cc, err = grpc.NewClient(srv.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.cc.Close(); cancel(); <-r.done })
	return r
}

func (r *running) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + r.srv.HTTPAddr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestPanicBecomesInternalAndServerLives(t *testing.T) {
	r := start(t, nil)
	c := pb.NewHelloClient(r.cc)
	ctx := context.Background()
	_, err := c.SayHello(ctx, &pb.SayHelloRequest{Name: "panic"})
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "recovered from a panic") {
		t.Fatalf("panic: %v, want Internal", err)
	}
	if _, err := c.SayHello(ctx, &pb.SayHelloRequest{Name: "after"}); err != nil {
		t.Fatalf("server did not survive the panic: %v", err)
	}
	code, body := r.get(t, "/metrics")
	if code != 200 || !strings.Contains(body, `grpc_server_handled_total{grpc_code="Internal",grpc_method="SayHello",grpc_service="helloworld.Hello",grpc_type="unary"} 1`) {
		t.Fatalf("metrics do not count the Internal error (HTTP %d)", code)
	}
}

func TestInputLimits(t *testing.T) {
	r := start(t, nil)
	c := pb.NewHelloClient(r.cc)
	_, err := c.SayHello(context.Background(), &pb.SayHelloRequest{Name: strings.Repeat("x", 5000)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("5000-byte request: %v, want ResourceExhausted (max-recv-msg-size 4096)", err)
	}
	_, err = c.SayHello(context.Background(), &pb.SayHelloRequest{Name: strings.Repeat("x", 300)})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("300-byte name: %v, want InvalidArgument", err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := c.SayHello(ctx, &pb.SayHelloRequest{Name: "late"}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("expired deadline: %v, want DeadlineExceeded", err)
	}
	if _, err := c.SayHello(context.Background(), &pb.SayHelloRequest{Name: "still here"}); err != nil {
		t.Errorf("server stopped serving after bad input: %v", err)
	}
}

func TestHealthAndAdmin(t *testing.T) {
	r := start(t, func(c *Config) { c.AdminEnabled = true })
	h := healthpb.NewHealthClient(r.cc)
	check := func(svc string) healthpb.HealthCheckResponse_ServingStatus {
		resp, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			t.Fatalf("Check(%q): %v", svc, err)
		}
		return resp.GetStatus()
	}
	if check("") != healthpb.HealthCheckResponse_SERVING || check(pb.Hello_ServiceDesc.ServiceName) != healthpb.HealthCheckResponse_SERVING {
		t.Fatal("not SERVING at start")
	}
	if code, _ := r.get(t, "/readyz"); code != 200 {
		t.Fatalf("/readyz %d", code)
	}

	post := func(q string) int {
		resp, err := http.Post("http://"+r.srv.HTTPAddr().String()+"/admin/health"+q, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("?status=MAYBE"); code != http.StatusBadRequest {
		t.Fatalf("bad status: HTTP %d, want 400", code)
	}
	if code := post("?status=NOT_SERVING"); code != 200 {
		t.Fatalf("flip: HTTP %d", code)
	}
	if check("") != healthpb.HealthCheckResponse_NOT_SERVING || check(pb.Hello_ServiceDesc.ServiceName) != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatal("admin flip did not reach every status")
	}
	if code, _ := r.get(t, "/readyz"); code != 503 {
		t.Fatalf("/readyz %d while NOT_SERVING, want 503", code)
	}
	if code, body := r.get(t, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz must stay 200 (liveness): %d %q", code, body)
	}
	post("?status=SERVING")
	if check(pb.Hello_ServiceDesc.ServiceName) != healthpb.HealthCheckResponse_SERVING {
		t.Fatal("flip back failed")
	}
}

// TestAdminOffByDefault: without --admin, POST /admin/health is refused and the health
// status does not change (the endpoint is unauthenticated).
func TestAdminOffByDefault(t *testing.T) {
	r := start(t, nil)
	resp, err := http.Post("http://"+r.srv.HTTPAddr().String()+"/admin/health?status=NOT_SERVING", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("HTTP %d, want 403", resp.StatusCode)
	}
	st, err := healthpb.NewHealthClient(r.cc).Check(context.Background(), &healthpb.HealthCheckRequest{Service: pb.Hello_ServiceDesc.ServiceName})
	if err != nil || st.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health after a refused flip: %v %v, want SERVING", st, err)
	}
}

// During the drain delay the server still answers calls but health says NOT_SERVING, and
// Serve returns nil once stopped.
func TestDrainOrder(t *testing.T) {
	r := start(t, func(c *Config) { c.DrainDelay = 400 * time.Millisecond })
	h := healthpb.NewHealthClient(r.cc)
	watch, err := h.Watch(context.Background(), &healthpb.HealthCheckRequest{Service: pb.Hello_ServiceDesc.ServiceName})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := watch.Recv(); err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch start: %v %v", first, err)
	}
	r.cancel() // what SIGTERM does
	next, err := watch.Recv()
	if err != nil || next.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch during drain: %v %v, want NOT_SERVING", next, err)
	}
	if _, err := pb.NewHelloClient(r.cc).SayHello(context.Background(), &pb.SayHelloRequest{Name: "in drain"}); err != nil {
		t.Fatalf("call during drain delay failed: %v", err)
	}
	select {
	case err := <-r.done:
		r.done <- err
		if err != nil {
			t.Fatalf("Serve after drain: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
}

// On SIGTERM open connections get a GOAWAY at once (direct clients re-resolve and leave),
// while new connections are still accepted and served for the drain delay (proxies that
// have not dropped the pod yet); after it, the port refuses.
func TestDrainGoAwayFirstAcceptUntilDelay(t *testing.T) {
	const delay = 1500 * time.Millisecond
	r := start(t, func(c *Config) { c.DrainDelay = delay })
	if _, err := pb.NewHelloClient(r.cc).SayHello(context.Background(), &pb.SayHelloRequest{Name: "before"}); err != nil {
		t.Fatal(err)
	}
	if s := r.cc.GetState(); s != connectivity.Ready {
		t.Fatalf("client state %v before the drain, want READY", s)
	}
	sigterm := time.Now()
	r.cancel()

	ctx, cancel := context.WithTimeout(context.Background(), delay/2)
	defer cancel()
	if !r.cc.WaitForStateChange(ctx, connectivity.Ready) {
		t.Fatalf("open connection still READY %s after SIGTERM: no GOAWAY", delay/2)
	}
	t.Logf("open connection left READY (%v) %s after SIGTERM", r.cc.GetState(), time.Since(sigterm).Round(time.Millisecond))

	late, err := grpc.NewClient(r.srv.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	rep, err := pb.NewHelloClient(late).SayHello(context.Background(), &pb.SayHelloRequest{Name: "late"})
	if err != nil {
		t.Fatalf("new connection during the drain delay: %v, want it served", err)
	}
	if since := time.Since(sigterm); since >= delay {
		t.Fatalf("the late call ended %s after SIGTERM, not inside the %s drain delay", since, delay)
	}
	t.Logf("new connection served during the drain delay: %q", rep.GetMessage())

	select {
	case err := <-r.done:
		r.done <- err
		if err != nil {
			t.Fatalf("Serve after drain: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
	if c, err := net.DialTimeout("tcp", r.srv.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("the port still accepts connections after the drain")
	}
}

// Calls are logged as JSON (successes at debug); health checks are not logged at all.
func TestCallLogging(t *testing.T) {
	var buf safeBuffer
	cfg, err := Load("test", []string{"-listen-host=127.0.0.1", "-port=0", "-http-port=-1", "-drain-delay=0s", "-log-level=debug"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, NewLogger(cfg, &buf), Service{Name: pb.Hello_ServiceDesc.ServiceName, Register: func(r grpc.ServiceRegistrar) {
		pb.RegisterHelloServer(r, hello.New(identity.Identity{Pod: "p1"}, nil))
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	cc, err := grpc.NewClient(srv.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	pb.NewHelloClient(cc).SayHello(context.Background(), &pb.SayHelloRequest{Name: "logged"})
	pb.NewHelloClient(cc).SayHello(context.Background(), &pb.SayHelloRequest{})

	var sawOK, sawInvalid bool
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		switch {
		case rec["grpc.service"] == healthpb.Health_ServiceDesc.ServiceName:
			t.Errorf("health check logged: %s", line)
		case rec["grpc.method"] == "SayHello" && rec["grpc.code"] == "OK":
			sawOK = rec["level"] == "DEBUG" && rec["grpc.time_ms"] != nil && rec["peer.address"] != nil
		case rec["grpc.method"] == "SayHello" && rec["grpc.code"] == "InvalidArgument":
			sawInvalid = rec["level"] == "INFO" && rec["grpc.time_ms"] != nil
		}
	}
	if !sawOK || !sawInvalid {
		t.Fatalf("want SayHello OK at DEBUG and InvalidArgument at INFO, with grpc.time_ms, in:\n%s", buf.String())
	}
}

type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *safeBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
