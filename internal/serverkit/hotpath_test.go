package serverkit

import (
	"context"
	"io"
	"log"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	examplepb "google.golang.org/grpc/examples/helloworld/helloworld"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/hello"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/reqmeta"
	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// The hot path, measured over a real loopback TCP connection: one client, one server,
// in this process, calls one after another. The same client, request and deadline call
// both servers, so the difference in allocations per call is the servers' own.
//
// "example" is grpc-go's examples/helloworld/greeter_server (what make bench runs as the
// reference), rebuilt here because a main package cannot be imported: grpc.NewServer()
// with no option, and a SayHello that logs "Received: <name>" with the log package (to
// io.Discard here; to stderr, which make bench sends to /dev/null, there) and returns
// "Hello <name>".

// maxAllocsPerCall bounds the allocations of one unary SayHello through our server with
// every default feature on (metrics, logging, recovery, validation, health, ORCA, the
// stream workers, keepalive), client side included, counted by testing.AllocsPerRun.
// maxExtraAllocs bounds how many more than the example server's the same call makes:
// what the features cost in allocations (docs/server-cost.md lists them). A change
// that adds allocations to every call fails TestHotPathAllocs; raise the numbers only
// with the reason in the commit.
const (
	maxAllocsPerCall = 170
	maxExtraAllocs   = 6
	maxReportAllocs  = 12
)

type exampleGreeter struct {
	examplepb.UnimplementedGreeterServer
	log *log.Logger
}

func (s exampleGreeter) SayHello(_ context.Context, in *examplepb.HelloRequest) (*examplepb.HelloReply, error) {
	s.log.Printf("Received: %v", in.GetName())
	return &examplepb.HelloReply{Message: "Hello " + in.GetName()}, nil
}

// hotServer is a server under test and a client connection to it.
type hotServer struct {
	cc     *grpc.ClientConn
	method string
	stop   func()
}

// startExample serves the example's greeter on a loopback port.
func startExample(tb testing.TB) *hotServer {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	g := grpc.NewServer()
	examplepb.RegisterGreeterServer(g, exampleGreeter{log: log.New(io.Discard, "", log.LstdFlags)})
	go g.Serve(lis)
	return dialHot(tb, lis.Addr().String(), examplepb.Greeter_SayHello_FullMethodName, g.Stop)
}

// startOurs serves the Hello service through New with the defaults Load gives (as
// services/hello does), changed by tweak; then after, if set, is given the server.
func startOurs(tb testing.TB, tweak func(*Config), after func(*Server)) *hotServer {
	tb.Helper()
	cfg, err := Load("hello", []string{"-listen-host=127.0.0.1", "-port=0", "-http-port=-1", "-drain-delay=0s"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		tb.Fatal(err)
	}
	if tweak != nil {
		tweak(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	echo := reqmeta.ParseKeys(cfg.EchoMetadata)
	// make bench starts services/hello with POD_NAME=bench and nothing else of the downward API.
	id := identity.FromEnv(func(k string) string { return map[string]string{"POD_NAME": "bench"}[k] }, cfg.ListenHost)
	srv, err := New(cfg, NewLogger(cfg, io.Discard), Service{Name: pb.Hello_ServiceDesc.ServiceName, Register: func(r grpc.ServiceRegistrar) {
		pb.RegisterHelloServer(r, hello.New(id, echo))
	}})
	if err != nil {
		tb.Fatal(err)
	}
	if after != nil {
		after(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	return dialHot(tb, srv.Addr().String(), pb.Hello_SayHello_FullMethodName, func() { cancel(); <-done })
}

func dialHot(tb testing.TB, addr, method string, stop func()) *hotServer {
	tb.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	h := &hotServer{cc: cc, method: method, stop: func() { cc.Close(); stop() }}
	for range 100 { // connect, and warm the buffer pools and metric children
		if err := h.call(); err != nil {
			h.stop()
			tb.Fatal(err)
		}
	}
	return h
}

var hotRequest = &pb.SayHelloRequest{Name: "bench"}

// call is make bench's call: one SayHello with a 5 s deadline; the example's HelloRequest
// and HelloReply share field 1 with ours, so one message type calls both.
func (h *hotServer) call() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var reply pb.SayHelloResponse
	return h.cc.Invoke(ctx, h.method, hotRequest, &reply)
}

// hotVariants: the example, ours as shipped, and ours with one option changed, for the
// per-feature figures (docs/server-cost.md).
var hotVariants = []struct {
	name  string
	start func(testing.TB) *hotServer
}{
	{"example", startExample},
	{"ours", func(tb testing.TB) *hotServer { return startOurs(tb, nil, nil) }},
	{"ours,orca=false", func(tb testing.TB) *hotServer { return startOurs(tb, func(c *Config) { c.ORCA = false }, nil) }},
	// No ORCA report yet (the first comes after an interval): no call carries one.
	{"ours,no-orca-report", func(tb testing.TB) *hotServer { return startOurs(tb, noORCAReport, nil) }},
	// A report in every call's trailer: what trailerGap saves.
	{"ours,orca-report-every-call", func(tb testing.TB) *hotServer { return startOurs(tb, nil, reportEveryCall) }},
	{"ours,stream-workers=0", func(tb testing.TB) *hotServer { return startOurs(tb, func(c *Config) { c.StreamWorkers = 0 }, nil) }},
	{"ours,log-level=debug", func(tb testing.TB) *hotServer { return startOurs(tb, func(c *Config) { c.LogLevel = "debug" }, nil) }},
}

// noORCAReport: the first ORCA report a minute after the start, so no call of a short
// test carries one.
func noORCAReport(c *Config) { c.ORCAInterval = time.Minute }

// reportEveryCall: an ORCA report now, and in the trailer of every call.
func reportEveryCall(s *Server) {
	t := time.Now()
	s.load.publish(reading{at: t.Add(-time.Second), calls: 0}, reading{at: t, calls: 1000})
	s.load.gap = 0
}

// BenchmarkHotPath: one unary call at a time per op, client and server in this process.
// allocs/op is the figure to compare (deterministic); ns/op is wall time of a call round
// trip on loopback, for benchstat (run it under the machine's heavy-work lock).
func BenchmarkHotPath(b *testing.B) {
	for _, v := range hotVariants {
		b.Run(v.name, func(b *testing.B) {
			h := v.start(b)
			defer h.stop()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := h.call(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestHotPathAllocs fails when a change adds allocations to every call of our server:
// a count, not a time. Without an ORCA report (a call carries one at most once a
// millisecond, trailerGap) and with one on every call.
func TestHotPathAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("loopback servers")
	}
	count := func(h *hotServer) float64 {
		defer h.stop()
		return testing.AllocsPerRun(2000, func() {
			if err := h.call(); err != nil {
				t.Fatal(err)
			}
		})
	}
	example := count(startExample(t))
	ours := count(startOurs(t, noORCAReport, nil))
	withReport := count(startOurs(t, nil, reportEveryCall))
	t.Logf("allocations per call, client included: example %.0f; ours %.0f (%+.0f), with an ORCA report in the trailer %.0f (%+.0f)",
		example, ours, ours-example, withReport, withReport-example)
	if ours > maxAllocsPerCall {
		t.Errorf("ours: %.0f allocations per call, more than the %d allowed", ours, maxAllocsPerCall)
	}
	if ours-example > maxExtraAllocs {
		t.Errorf("ours: %.0f allocations per call more than the example server's, more than the %d allowed", ours-example, maxExtraAllocs)
	}
	if withReport-ours > maxReportAllocs {
		t.Errorf("an ORCA report in the trailer costs %.0f allocations, more than the %d allowed", withReport-ours, maxReportAllocs)
	}
}
