package serverkit

import (
	"context"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// serverMetrics are the grpc_server_* metrics of go-grpc-middleware's Prometheus provider
// (providers/prometheus v1.1.1, NewServerMetrics with WithServerHandlingTimeHistogram):
// the same names, help, labels, buckets and values, and every method's series created at
// zero when the server starts (its InitializeMetrics). The difference is the hot path:
// the provider looks each series up by its label values on every call (five lookups,
// each hashing the labels under a lock, and a reporter allocated per call); here every
// method's series are resolved once, when the server is built, and a unary call only
// increments them (docs/server-cost.md has the figures).
type serverMetrics struct {
	started, handled, msgReceived, msgSent *prometheus.CounterVec
	handling                               *prometheus.HistogramVec
}

func newServerMetrics() *serverMetrics {
	labels := []string{"grpc_type", "grpc_service", "grpc_method"}
	return &serverMetrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_started_total",
			Help: "Total number of RPCs started on the server.",
		}, labels),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_handled_total",
			Help: "Total number of RPCs completed on the server, regardless of success or failure.",
		}, append(labels[:3:3], "grpc_code")),
		msgReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_msg_received_total",
			Help: "Total number of RPC stream messages received on the server.",
		}, labels),
		msgSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_msg_sent_total",
			Help: "Total number of gRPC stream messages sent by the server.",
		}, labels),
		handling: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "grpc_server_handling_seconds",
			Help:    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
			Buckets: prometheus.DefBuckets,
		}, labels),
	}
}

func (m *serverMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.started.Describe(ch)
	m.handled.Describe(ch)
	m.msgReceived.Describe(ch)
	m.msgSent.Describe(ch)
	m.handling.Describe(ch)
}

func (m *serverMetrics) Collect(ch chan<- prometheus.Metric) {
	m.started.Collect(ch)
	m.handled.Collect(ch)
	m.msgReceived.Collect(ch)
	m.msgSent.Collect(ch)
	m.handling.Collect(ch)
}

// methodMetrics are one method's series, resolved once.
type methodMetrics struct {
	started, msgReceived, msgSent prometheus.Counter
	handling                      prometheus.Observer
	handled                       [codes.Unauthenticated + 1]prometheus.Counter // by code; every code gRPC defines
	labels                        [3]string                                     // type, service, method
}

// forMethod resolves (creating them at zero) a method's series.
func (m *serverMetrics) forMethod(typ interceptors.GRPCType, service, method string) *methodMetrics {
	mm := &methodMetrics{labels: [3]string{string(typ), service, method}}
	l := mm.labels[:]
	mm.started = m.started.WithLabelValues(l...)
	mm.msgReceived = m.msgReceived.WithLabelValues(l...)
	mm.msgSent = m.msgSent.WithLabelValues(l...)
	mm.handling = m.handling.WithLabelValues(l...)
	for c := range mm.handled {
		mm.handled[c] = m.handled.WithLabelValues(string(typ), service, method, codes.Code(c).String())
	}
	return mm
}

// done counts a finished call with its status code.
func (m *serverMetrics) done(mm *methodMetrics, code codes.Code, took time.Duration) {
	if int(code) < len(mm.handled) {
		mm.handled[code].Inc()
	} else { // not a code gRPC defines: looked up by label like any other series
		m.handled.WithLabelValues(mm.labels[0], mm.labels[1], mm.labels[2], code.String()).Inc()
	}
	mm.handling.Observe(took.Seconds())
}

// methods resolves the series of every method g serves, keyed by full method name
// ("/helloworld.Hello/SayHello"): what the provider's InitializeMetrics creates.
func (m *serverMetrics) methods(g *grpc.Server) map[string]*methodMetrics {
	out := map[string]*methodMetrics{}
	for svc, info := range g.GetServiceInfo() {
		for _, mi := range info.Methods {
			out["/"+svc+"/"+mi.Name] = m.forMethod(methodType(mi.IsClientStream, mi.IsServerStream), svc, mi.Name)
		}
	}
	return out
}

func methodType(clientStream, serverStream bool) interceptors.GRPCType {
	switch {
	case !clientStream && !serverStream:
		return interceptors.Unary
	case clientStream && !serverStream:
		return interceptors.ClientStream
	case !clientStream && serverStream:
		return interceptors.ServerStream
	}
	return interceptors.BidiStream
}

// codeOf is the status code the metrics record for err: what the provider records (a
// context error as its status, anything else without a status as Unknown).
func codeOf(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	s, ok := status.FromError(err)
	if !ok {
		s = status.FromContextError(err)
	}
	return s.Code()
}

// The streaming calls go through go-grpc-middleware's own stream interceptor
// (interceptors.StreamServerInterceptor) with these metrics as its reporter: a stream
// is one call for many messages, so the lookups per message stay as the provider does
// them.

func (m *serverMetrics) ServerReporter(ctx context.Context, c interceptors.CallMeta) (interceptors.Reporter, context.Context) {
	r := &streamReporter{m: m, labels: [3]string{string(c.Typ), c.Service, c.Method}}
	m.started.WithLabelValues(r.labels[:]...).Inc()
	return r, ctx
}

type streamReporter struct {
	m      *serverMetrics
	labels [3]string
}

func (r *streamReporter) PostCall(err error, d time.Duration) {
	r.m.handled.WithLabelValues(r.labels[0], r.labels[1], r.labels[2], codeOf(err).String()).Inc()
	r.m.handling.WithLabelValues(r.labels[:]...).Observe(d.Seconds())
}

func (r *streamReporter) PostMsgSend(_ any, err error, _ time.Duration) {
	if err == nil {
		r.m.msgSent.WithLabelValues(r.labels[:]...).Inc()
	}
}

func (r *streamReporter) PostMsgReceive(_ any, err error, _ time.Duration) {
	if err == nil {
		r.m.msgReceived.WithLabelValues(r.labels[:]...).Inc()
	}
}
