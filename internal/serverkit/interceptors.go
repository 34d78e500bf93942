package serverkit

import (
	"context"
	"log/slog"
	"runtime/debug"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// middleware chains, outermost first: metrics (every call counted, including panics
// turned into errors), logging (health checks skipped: probes and client-side health
// checks would drown the log), recovery (innermost, so a panic becomes codes.Internal
// that the outer interceptors see and the process lives on).
func middleware(log *slog.Logger, metrics *grpcprom.ServerMetrics) []grpc.ServerOption {
	lg := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(callLevel),
		// Constant fields ("protocol":"grpc", "grpc.component":"server") and the method
		// type (always unary here) cost time on every call and say nothing.
		logging.WithDisableLoggingFields(logging.SystemTag[0], logging.ComponentFieldKey, logging.MethodTypeFieldKey),
	}
	notHealth := selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool {
		return c.Service != healthpb.Health_ServiceDesc.ServiceName
	})
	rec := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in handler recovered", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error: the server recovered from a panic (see its log)")
	})
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(
			metrics.UnaryServerInterceptor(),
			selector.UnaryServerInterceptor(logging.UnaryServerInterceptor(lg, logOpts...), notHealth),
			recovery.UnaryServerInterceptor(rec),
		),
		grpc.ChainStreamInterceptor(
			metrics.StreamServerInterceptor(),
			selector.StreamServerInterceptor(logging.StreamServerInterceptor(lg, logOpts...), notHealth),
			recovery.StreamServerInterceptor(rec),
		),
	}
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
