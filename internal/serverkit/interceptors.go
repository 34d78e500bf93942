package serverkit

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/slowdown"
)

// middleware chains, outermost first: metrics (every call counted, including panics
// turned into errors), logging (health checks skipped: probes and client-side health
// checks would drown the log), then, for the calls of the kit's services only (not
// health checks), the given inner interceptors (the ORCA load meter and the slowdown),
// and recovery (innermost, so a panic becomes codes.Internal that the outer interceptors
// see and the process lives on).
func middleware(log *slog.Logger, metrics *grpcprom.ServerMetrics, inner ...grpc.UnaryServerInterceptor) []grpc.ServerOption {
	lg := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(callLevel),
		// Constant fields ("protocol":"grpc", "grpc.component":"server") and the method
		// type (always unary here) cost time on every call and say nothing.
		logging.WithDisableLoggingFields(logging.SystemTag[0], logging.ComponentFieldKey, logging.MethodTypeFieldKey),
		// lazyLogging runs the handler before the logging interceptor, so the interceptor
		// cannot time it: the real duration comes from the context instead.
		logging.WithDurationField(func(time.Duration) logging.Fields { return nil }),
		logging.WithFieldsFromContext(func(ctx context.Context) logging.Fields {
			if start, ok := ctx.Value(callStartKey{}).(time.Time); ok {
				return logging.DurationToTimeMillisFields(time.Since(start))
			}
			return nil
		}),
	}
	notHealth := selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool {
		return c.Service != healthpb.Health_ServiceDesc.ServiceName
	})
	rec := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in handler recovered", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error: the server recovered from a panic (see its log)")
	})
	unary := []grpc.UnaryServerInterceptor{
		metrics.UnaryServerInterceptor(),
		selector.UnaryServerInterceptor(lazyLogging(log, logging.UnaryServerInterceptor(lg, logOpts...)), notHealth),
	}
	for _, in := range inner {
		unary = append(unary, selector.UnaryServerInterceptor(in, notHealth))
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(append(unary, recovery.UnaryServerInterceptor(rec))...),
		grpc.ChainStreamInterceptor(
			metrics.StreamServerInterceptor(),
			selector.StreamServerInterceptor(logging.StreamServerInterceptor(lg, append(logOpts, logging.WithLevels(streamLevel))...), notHealth),
			recovery.StreamServerInterceptor(rec),
		),
	}
}

type callStartKey struct{}

// slowdownInterceptor makes every call wait what knob says before its handler runs.
func slowdownInterceptor(knob *slowdown.Knob) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := knob.Apply(ctx); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// lazyLogging runs the handler first and hands the finished call to the go-grpc-middleware
// logging interceptor only when its log line would be written at the logger's level. That
// interceptor builds its fields (peer, timestamps, method) before the handler runs, about a
// tenth of the server's CPU per call in the benchmark; at the default level successful calls
// are not logged, so they skip that work. The log line is the same either way.
func lazyLogging(log *slog.Logger, logged grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		if !log.Enabled(ctx, slog.Level(callLevel(status.Code(err)))) {
			return resp, err
		}
		done := func(context.Context, any) (any, error) { return resp, err }
		return logged(context.WithValue(ctx, callStartKey{}, start), req, info, done)
	}
}

// streamLevel is callLevel for streaming calls, except UNAVAILABLE at info: the server
// only ends a stream with it on purpose (stream max age, drain: "..., reconnect"), which
// is routine, not a server failure, and happens to every long-lived stream.
func streamLevel(c codes.Code) logging.Level {
	if c == codes.Unavailable {
		return logging.LevelInfo
	}
	return callLevel(c)
}

// callLevel logs successful calls at debug: a log line per call on the hot path costs
// throughput, and the metrics already count them. LOG_LEVEL=debug shows every call.
// Caller mistakes are info; server-side failures are warn and error.
func callLevel(c codes.Code) logging.Level {
	switch c {
	case codes.OK:
		return logging.LevelDebug
	case codes.Canceled, codes.InvalidArgument, codes.NotFound, codes.AlreadyExists,
		codes.PermissionDenied, codes.Unauthenticated, codes.ResourceExhausted,
		codes.FailedPrecondition, codes.OutOfRange, codes.DeadlineExceeded:
		return logging.LevelInfo
	case codes.Unknown, codes.Unimplemented, codes.Internal, codes.DataLoss:
		return logging.LevelError
	default:
		return logging.LevelWarn
	}
}
