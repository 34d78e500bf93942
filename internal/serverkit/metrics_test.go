package serverkit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/faultinject"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/hello"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/slowdown"
	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// TestMetricsMatchProvider: the same calls through go-grpc-middleware's Prometheus
// provider (what the kit used before serverMetrics) and through ours give the same
// metrics: names, help, types, label sets, counter values and histogram counts and
// buckets, the series every method starts with included.
func TestMetricsMatchProvider(t *testing.T) {
	serve := func(opts []grpc.ServerOption, after func(*grpc.Server)) *grpc.ClientConn {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		g := grpc.NewServer(opts...)
		pb.RegisterHelloServer(g, panicky{hello.New(identity.Identity{Pod: "p1"}, nil)})
		healthpb.RegisterHealthServer(g, health.NewServer())
		after(g)
		go g.Serve(lis)
		t.Cleanup(g.Stop)
		cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	// The kit's recovery: a panic becomes Internal.
	rec := recovery.WithRecoveryHandlerContext(func(context.Context, any) error { return status.Error(codes.Internal, "recovered") })

	theirs := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	theirCC := serve([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(theirs.UnaryServerInterceptor(), recovery.UnaryServerInterceptor(rec)),
		grpc.ChainStreamInterceptor(theirs.StreamServerInterceptor(), recovery.StreamServerInterceptor(rec)),
	}, func(g *grpc.Server) { theirs.InitializeMetrics(g) })

	ours := newServerMetrics()
	kit, opts := middleware(slog.New(slog.NewTextHandler(io.Discard, nil)), ours, nil, slowdown.New(slowdown.Setting{}), &faultinject.Knob{})
	ourCC := serve(opts, kit.setMethods)

	calls := func(cc *grpc.ClientConn) {
		c := pb.NewHelloClient(cc)
		ctx := context.Background()
		for _, name := range []string{"a", "b", "", "panic", strings.Repeat("x", 300)} {
			c.SayHello(ctx, &pb.SayHelloRequest{Name: name})
		}
		healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s, err := c.StreamHellos(sctx, &pb.StreamHellosRequest{Name: "s"})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := s.Recv(); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
		for { // until the server has ended the stream (the handled counter is set by then)
			if _, err := s.Recv(); err != nil {
				break
			}
		}
	}
	calls(theirCC)
	calls(ourCC)

	gather := func(c prometheus.Collector) string {
		reg := prometheus.NewRegistry()
		reg.MustRegister(c)
		var mfs []*dto.MetricFamily
		for range 50 { // the stream's last counts land just after the client sees it end
			var err error
			if mfs, err = reg.Gather(); err != nil {
				t.Fatal(err)
			}
			if streamDone(mfs) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		var b strings.Builder
		for _, mf := range mfs {
			fmt.Fprintf(&b, "# %s %s %s\n", mf.GetName(), mf.GetType(), mf.GetHelp())
			var lines []string
			for _, m := range mf.GetMetric() {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, l.GetName()+"="+l.GetValue())
				}
				v := ""
				switch {
				case m.GetCounter() != nil:
					v = fmt.Sprint(m.GetCounter().GetValue())
				case m.GetHistogram() != nil:
					h := m.GetHistogram()
					var bounds []string
					for _, bk := range h.GetBucket() {
						bounds = append(bounds, fmt.Sprint(bk.GetUpperBound()))
					}
					v = fmt.Sprintf("count=%d buckets=%s", h.GetSampleCount(), strings.Join(bounds, ","))
				}
				lines = append(lines, strings.Join(ls, ",")+" "+v)
			}
			slices.Sort(lines)
			b.WriteString(strings.Join(lines, "\n") + "\n")
		}
		return b.String()
	}
	want, got := gather(theirs), gather(ours)
	if want != got {
		t.Errorf("metrics differ from the provider's\n--- provider\n%s\n--- ours\n%s", want, got)
	}
	if !strings.Contains(got, "grpc_code=Internal,grpc_method=SayHello,grpc_service=helloworld.Hello,grpc_type=unary 1") {
		t.Errorf("the recovered panic is not counted as Internal:\n%s", got)
	}
}

// streamDone: the StreamHellos call has been counted as handled.
func streamDone(mfs []*dto.MetricFamily) bool {
	for _, mf := range mfs {
		if mf.GetName() != "grpc_server_handled_total" {
			continue
		}
		var n float64
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "grpc_method" && l.GetValue() == "StreamHellos" {
					n += m.GetCounter().GetValue()
				}
			}
		}
		return n > 0
	}
	return false
}
