package serverkit

import (
	"context"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/faultinject"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/slowdown"
)

// middleware: the interceptors of every call.
//
// Unary calls go through one interceptor, callKit.unary, which does in one function what
// a chain of five did, in the same order, outermost first: metrics (every call counted,
// including panics turned into errors), logging (health checks skipped: probes and
// client-side health checks would drown the log; and lazily, see callKit), then, for the
// calls of the kit's services only (not health checks), the ORCA load meter, the injected
// errors and the slowdown (the test knobs of the admin endpoint), and recovery
// (innermost, so a panic becomes codes.Internal that the metrics, the log and the load
// meter see, and the process lives on). One function instead of a
// chain: grpc-go allocates a closure per link of a chain on every call, each link adds
// stack depth, and the features share one clock reading instead of taking four.
//
// Streaming calls keep go-grpc-middleware's chain: metrics, logging (not health
// watches), recovery.
func middleware(log *slog.Logger, metrics *serverMetrics, load *loadMeter, slow *slowdown.Knob, faults *faultinject.Knob) (*callKit, []grpc.ServerOption) {
	lg := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(callLevel),
		// Constant fields ("protocol":"grpc", "grpc.component":"server") and the method
		// type (always unary here) cost time on every call and say nothing.
		logging.WithDisableLoggingFields(logging.SystemTag[0], logging.ComponentFieldKey, logging.MethodTypeFieldKey),
		// callKit runs the handler before the logging interceptor, so the interceptor
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
	rec := func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in handler recovered", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error: the server recovered from a panic (see its log)")
	}
	kit := &callKit{log: log, logged: logging.UnaryServerInterceptor(lg, logOpts...), metrics: metrics, load: load, slow: slow, faults: faults, recovered: rec}
	return kit, []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(kit.unary), // alone in the chain, grpc-go calls it directly (server.go:1218)
		grpc.ChainStreamInterceptor(
			interceptors.StreamServerInterceptor(metrics),
			selector.StreamServerInterceptor(logging.StreamServerInterceptor(lg, append(logOpts, logging.WithLevels(streamLevel))...), notHealth),
			recovery.StreamServerInterceptor(recovery.WithRecoveryHandlerContext(rec)),
		),
	}
}

type callStartKey struct{}

// callKit is the unary interceptor (middleware says what it does and why it is one).
type callKit struct {
	log       *slog.Logger
	logged    grpc.UnaryServerInterceptor // go-grpc-middleware's logging, for the calls that are logged
	metrics   *serverMetrics
	load      *loadMeter        // nil without ORCA
	slow      *slowdown.Knob    // never nil
	faults    *faultinject.Knob // never nil
	recovered func(ctx context.Context, p any) error
	// methods: every method's metric series and whether it is a health check, set by
	// setMethods once the services are registered, read by every call.
	methods atomic.Pointer[map[string]*kitMethod]
}

type kitMethod struct {
	metrics *methodMetrics
	health  bool // grpc.health.v1.Health: no log line, no ORCA accounting, no test knob
}

// setMethods resolves the methods g serves (their metric series at zero, as the
// provider's InitializeMetrics did). Every generation serves the same services: the
// first call wins.
func (k *callKit) setMethods(g *grpc.Server) {
	if k.methods.Load() != nil {
		return
	}
	m := map[string]*kitMethod{}
	for name, mm := range k.metrics.methods(g) {
		m[name] = &kitMethod{metrics: mm, health: mm.labels[1] == healthpb.Health_ServiceDesc.ServiceName}
	}
	k.methods.Store(&m)
}

func (k *callKit) method(fullMethod string) *kitMethod {
	if m, ok := (*k.methods.Load())[fullMethod]; ok {
		return m
	}
	// Not registered when the server was built (grpc-go calls interceptors only for
	// registered methods, so this does not happen): resolved for this call.
	svc, name := splitMethod(fullMethod)
	return &kitMethod{metrics: k.metrics.forMethod(interceptors.Unary, svc, name), health: svc == healthpb.Health_ServiceDesc.ServiceName}
}

func splitMethod(fullMethod string) (service, method string) {
	fullMethod = strings.TrimPrefix(fullMethod, "/")
	if i := strings.Index(fullMethod, "/"); i >= 0 {
		return fullMethod[:i], fullMethod[i+1:]
	}
	return "unknown", "unknown"
}

// unary: metrics, logging, ORCA load meter, injected errors, slowdown, recovery (middleware).
//
// Logging is lazy: the handler runs first, and go-grpc-middleware's logging interceptor
// is handed the finished call only when its log line would be written at the logger's
// level. That interceptor builds its fields (peer, timestamps, method) before the handler
// runs, about a tenth of the server's CPU per call in the benchmark; at the default level
// successful calls are not logged, so they skip that work. The log line is the same
// either way.
func (k *callKit) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	m := k.method(info.FullMethod)
	mm := m.metrics
	mm.started.Inc()
	mm.msgReceived.Inc() // the provider counts a unary call's request as a message received
	var resp any
	var err error
	if m.health {
		resp, err = k.handle(ctx, req, handler)
	} else {
		if k.load != nil {
			k.load.setTrailer(ctx, start)
		}
		resp, err = k.knobHandle(ctx, req, handler)
	}
	took := time.Since(start)
	if err == nil {
		mm.msgSent.Inc()
	}
	code := codeOf(err)
	if !m.health {
		if k.load != nil {
			k.load.done(took, code)
		}
		if k.log.Enabled(ctx, slog.Level(callLevel(code))) {
			resp, err = k.logCall(ctx, start, req, info, resp, err)
			took = time.Since(start) // the histogram times the call with its log line, as before
		}
	}
	k.metrics.done(mm, code, took)
	return resp, err
}

// logCall hands the finished call to go-grpc-middleware's logging interceptor. A
// function of its own: the closure would otherwise move resp and err to the heap on
// every call, logged or not.
func (k *callKit) logCall(ctx context.Context, start time.Time, req any, info *grpc.UnaryServerInfo, resp any, err error) (any, error) {
	done := func(context.Context, any) (any, error) { return resp, err }
	return k.logged(context.WithValue(ctx, callStartKey{}, start), req, info, done)
}

// knobHandle applies the test knobs, then handles the call: an injected error (POST
// /admin/errors) ends the call at once, as a pod failing fast would; else the slowdown
// (POST /admin/slow).
func (k *callKit) knobHandle(ctx context.Context, req any, handler grpc.UnaryHandler) (any, error) {
	if err := k.faults.Fail(); err != nil {
		return nil, err
	}
	if err := k.slow.Apply(ctx); err != nil {
		return nil, err
	}
	return k.handle(ctx, req, handler)
}

// handle runs the handler; a panic becomes the codes.Internal error recovered returns.
func (k *callKit) handle(ctx context.Context, req any, handler grpc.UnaryHandler) (_ any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = k.recovered(ctx, p)
		}
	}()
	return handler(ctx, req)
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
