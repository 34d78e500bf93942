package serverkit

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/faultinject"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/slowdown"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/validate"
	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// BenchmarkInterceptor: each piece of the unary path alone, called directly (no
// network, one goroutine), around a handler that returns a fixed reply: allocs/op is
// exact, and under callgrind (valgrind --tool=callgrind ./serverkit.test -test.bench
// 'BenchmarkInterceptor/NAME$' -test.benchtime=Nx, two N, the difference over the
// difference of N) the instructions per call are too. docs/server-cost.md has the
// figures. "chain" is the unary path as it was (issue 26): go-grpc-middleware's
// Prometheus provider, lazy logging, the ORCA meter and the slowdown behind selectors,
// and recovery, chained the way grpc-go chains interceptors; "kit" is callKit.unary,
// which does the same in one function.
func BenchmarkInterceptor(b *testing.B) {
	log := slog.New(slog.NewJSONHandler(io.Discard, nil)) // info: successful calls are not logged
	reply := &pb.SayHelloResponse{Message: "Hello, bench!"}
	handler := func(context.Context, any) (any, error) { return reply, nil }
	info := &grpc.UnaryServerInfo{FullMethod: pb.Hello_SayHello_FullMethodName}
	req := &pb.SayHelloRequest{Name: "bench"}
	knob := slowdown.New(slowdown.Setting{})
	notHealth := selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool {
		return c.Service != healthpb.Health_ServiceDesc.ServiceName
	})
	lg := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	eager := logging.UnaryServerInterceptor(lg, logging.WithLogOnEvents(logging.FinishCall), logging.WithLevels(callLevel))
	pass := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(ctx, req)
	}
	meter := newLoadMeter()
	oldMeter := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		meter.setTrailer(ctx, start)
		resp, err := h(ctx, req)
		meter.done(time.Since(start), codeOf(err))
		return resp, err
	}
	oldSlow := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if err := knob.Apply(ctx); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
	oldLazy := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		if !log.Enabled(ctx, slog.Level(callLevel(codeOf(err)))) {
			return resp, err
		}
		return eager(ctx, req, info, func(context.Context, any) (any, error) { return resp, err })
	}
	prov := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	rec := recovery.UnaryServerInterceptor()

	kit, _ := middleware(log, newServerMetrics(), newLoadMeter(), knob, &faultinject.Knob{})
	kit.methods.Store(&map[string]*kitMethod{info.FullMethod: {metrics: kit.metrics.forMethod(interceptors.Unary, "helloworld.Hello", "SayHello")}})

	cases := []struct {
		name string
		i    grpc.UnaryServerInterceptor
	}{
		{"none", nil},
		{"metrics-provider", prov.UnaryServerInterceptor()},
		{"logging-eager-not-written", eager},
		{"logging-lazy", oldLazy},
		{"selector", selector.UnaryServerInterceptor(pass, notHealth)},
		{"orca-meter", oldMeter},
		{"slowdown-off", oldSlow},
		{"recovery", rec},
		{"validation", func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := validate.Name(req.(*pb.SayHelloRequest).GetName()); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}},
		{"chain", chain(prov.UnaryServerInterceptor(), selector.UnaryServerInterceptor(oldLazy, notHealth),
			selector.UnaryServerInterceptor(oldMeter, notHealth), selector.UnaryServerInterceptor(oldSlow, notHealth), rec)},
		{"kit", kit.unary},
	}
	ctx := context.Background()
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if c.i == nil {
					handler(ctx, req)
					continue
				}
				// As the generated code does for every call: the info and the handler.
				in := &grpc.UnaryServerInfo{FullMethod: info.FullMethod}
				if _, err := c.i(ctx, req, in, handler); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// chain is grpc-go's chainUnaryInterceptors (server.go): a closure per link per call.
func chain(is ...grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return is[0](ctx, req, info, chainHandler(is, 0, info, handler))
	}
}

func chainHandler(is []grpc.UnaryServerInterceptor, cur int, info *grpc.UnaryServerInfo, final grpc.UnaryHandler) grpc.UnaryHandler {
	if cur == len(is)-1 {
		return final
	}
	return func(ctx context.Context, req any) (any, error) {
		return is[cur+1](ctx, req, info, chainHandler(is, cur+1, info, final))
	}
}
