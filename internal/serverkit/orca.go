package serverkit

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	v3orcaservicegrpc "github.com/cncf/xds/go/xds/service/orca/v3"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/orca"
	"google.golang.org/protobuf/proto"
)

// The timing of the server's ORCA load reports, in one place.
const (
	// DefaultORCAInterval is how often the reported values are sampled (-orca-interval).
	// Every report, per call or out of band, carries the last complete interval.
	DefaultORCAInterval = time.Second
	// minORCAInterval keeps the samples meaningful: a shorter window holds too few calls
	// of a slow pod (at 20 ms a call and a few calls in flight, a handful).
	minORCAInterval = 100 * time.Millisecond
	// oobMinInterval is the shortest interval between two reports on one out-of-band
	// stream. grpc-go's ORCA service does not go below 30s (a shorter value, here or in a
	// client's request, is raised to it): a client that balances on out-of-band reports
	// follows changes at that pace, one that reads the per-call trailers at every call.
	oobMinInterval = 30 * time.Second
	// trailerGap spaces the calls whose trailer carries the report: at most one a
	// millisecond per server. The report is the interval's (the same for every call in
	// it) and a client recomputes weights once a second, so a report per call adds
	// nothing but cost: encoding, sending and decoding it took 15% of the throughput in
	// `make bench` (12 000 calls/s; a trailer on one call in 12 costs about 1%). A server
	// under 1 000 calls/s still reports on nearly every call, so a slow pod's few calls,
	// and every client, keep their weights fresh.
	trailerGap = time.Millisecond
)

// loadMeter measures what the server reports with ORCA, over each interval:
//
//   - CPU utilization: the process's CPU time (user + system, from getrusage) over the
//     interval, divided by the interval times GOMAXPROCS. Go sets GOMAXPROCS from the
//     container's CPU limit, so 1.0 is "every CPU this pod may use, all the time".
//   - QPS: calls of the kit's services finished per second (health checks, reflection and
//     the ORCA stream itself are not counted).
//   - EPS: of those, the ones that failed through the server's fault (the codes logged at
//     warn or error: Internal, Unavailable, Unknown, ...), not a caller's bad input.
//   - application utilization: the time calls spent in the handler chain over the
//     interval (their summed durations), divided by the interval times GOMAXPROCS: the
//     average number of calls in flight per CPU; never less than the CPU utilization
//     (publish says why). Unlike CPU, it counts the time a call waits (a slow disk, a
//     throttled CPU, a slow dependency, the slowdown knob), which is what makes a slow
//     pod slow. weighted_round_robin prefers it to CPU when it is set and weighs each
//     backend by QPS / utilization: a pod whose calls wait 10× longer gets about a tenth
//     of the weight.
//
// Call trailers carry the last interval's report, marshalled once per interval (grpc-go's
// orca.CallMetricsServerOption builds and marshals one per call), at most every
// trailerGap; the out-of-band stream is grpc-go's orca service.
type loadMeter struct {
	rec     orca.ServerMetricsRecorder  // what the out-of-band stream sends
	trailer atomic.Pointer[metadata.MD] // what the calls' trailers carry; nil until the first sample
	sentAt  atomic.Int64                // when a trailer last carried it, Unix ns
	procs   float64                     // GOMAXPROCS: the CPUs the process may use
	gap     time.Duration               // trailerGap (tests set 0: a report on every call)

	// Totals since start, updated by every call (atomics: the hot path takes no lock).
	calls, failed atomic.Int64
	busy          atomic.Int64 // nanoseconds spent in the handler chain
}

func newLoadMeter() *loadMeter {
	return &loadMeter{rec: orca.NewServerMetricsRecorder(), procs: float64(runtime.GOMAXPROCS(0)), gap: trailerGap}
}

// trailerKey is where ORCA clients (weighted_round_robin) read a call's load report: the
// binary OrcaLoadReport message under this metadata key (gRFC A51).
const trailerKey = "endpoint-load-metrics-bin"

// serviceOptions configure the out-of-band ORCA service (StreamCoreMetrics): it
// streams rec to each client that asks, every oobMinInterval or less often.
func (m *loadMeter) serviceOptions() orca.ServiceOptions {
	return orca.ServiceOptions{ServerMetricsProvider: m.rec, MinReportingInterval: oobMinInterval}
}

// setTrailer puts the last report in the call's trailer unless one went out less than
// trailerGap ago; start is when the call began. Only for calls of the kit's services.
func (m *loadMeter) setTrailer(ctx context.Context, start time.Time) {
	if md := m.trailer.Load(); md != nil {
		now, last := start.UnixNano(), m.sentAt.Load()
		if now-last >= int64(m.gap) && m.sentAt.CompareAndSwap(last, now) {
			grpc.SetTrailer(ctx, *md) // copied into the call's trailer: the shared MD is never changed
		}
	}
}

// done counts a finished call of the kit's services: how long it took (with the
// slowdown, so a slowed call is a slow call here too) and whether it failed through the
// server's fault.
func (m *loadMeter) done(took time.Duration, code codes.Code) {
	m.busy.Add(int64(took))
	m.calls.Add(1)
	if serverFault(code) {
		m.failed.Add(1)
	}
}

// serverFault: failures the server is to blame for, i.e. the codes logged at warn or
// error (callLevel), which weighted_round_robin's error penalty should count.
func serverFault(c codes.Code) bool { return callLevel(c) >= logging.LevelWarn }

// endOOBOnDrain ends the out-of-band ORCA streams when stop closes (the drain, with the
// health watches): like a health Watch, such a stream never finishes on its own and would
// hold GracefulStop for its whole timeout.
func endOOBOnDrain(stop <-chan struct{}) grpc.StreamServerInterceptor {
	prefix := "/" + v3orcaservicegrpc.OpenRcaService_ServiceDesc.ServiceName + "/"
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !strings.HasPrefix(info.FullMethod, prefix) {
			return handler(srv, ss)
		}
		ctx, cancel := context.WithCancel(ss.Context())
		defer cancel()
		go func() {
			select {
			case <-stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		return handler(srv, ctxStream{ss, ctx})
	}
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (c ctxStream) Context() context.Context { return c.ctx }

// reading is the meter's totals at one instant.
type reading struct {
	at                  time.Time
	cpu                 time.Duration
	cpuOK               bool
	calls, failed, busy int64
}

func (m *loadMeter) read() reading {
	cpu, ok := processCPU()
	return reading{at: time.Now(), cpu: cpu, cpuOK: ok, calls: m.calls.Load(), failed: m.failed.Load(), busy: m.busy.Load()}
}

// run publishes a report every interval until ctx ends.
func (m *loadMeter) run(ctx context.Context, interval time.Duration) {
	prev := m.read()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cur := m.read()
			m.publish(prev, cur)
			prev = cur
		}
	}
}

// publish sets the report from the difference between two readings.
func (m *loadMeter) publish(a, b reading) {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return
	}
	r := &v3orcapb.OrcaLoadReport{
		RpsFractional:          float64(b.calls-a.calls) / wall,
		Eps:                    float64(b.failed-a.failed) / wall,
		ApplicationUtilization: time.Duration(b.busy-a.busy).Seconds() / (wall * m.procs),
	}
	if a.cpuOK && b.cpuOK {
		r.CpuUtilization = (b.cpu - a.cpu).Seconds() / (wall * m.procs)
		m.rec.SetCPUUtilization(r.CpuUtilization)
		// The CPU is a floor under the time in handlers: a call costs the process more than
		// its handler (the transport, the interceptors, the encoding), and for a handler as
		// short as the kit's the handler time alone is near zero. Weighed by it, a fast pod
		// looked a thousand times more capable than one 50 ms slower, so the slow pod got
		// one call every few seconds, sent its reports as rarely, and took longer than 10 s
		// to win its share back once fast again (the e2e slow-pod scenario). With the floor the
		// ratio is the real one and a recovered pod reports within an interval or two.
		r.ApplicationUtilization = max(r.ApplicationUtilization, r.CpuUtilization)
	}
	m.rec.SetQPS(r.RpsFractional)
	m.rec.SetEPS(r.Eps)
	m.rec.SetApplicationUtilization(r.ApplicationUtilization)
	bin, err := proto.Marshal(r)
	if err != nil {
		return // cannot happen for this message; the last trailer stays
	}
	md := metadata.Pairs(trailerKey, string(bin))
	m.trailer.Store(&md)
}

// Report is the load the server reports now, as GET /admin/load shows it.
type Report struct {
	CPUUtilization float64 `json:"cpu_utilization"`
	AppUtilization float64 `json:"application_utilization"`
	QPS            float64 `json:"qps"`
	EPS            float64 `json:"eps"`
	Interval       string  `json:"interval"`
}

func (m *loadMeter) report(interval time.Duration) Report {
	sm := m.rec.ServerMetrics()
	unset := func(v float64) float64 { return max(v, 0) } // -1 = not measured yet
	return Report{CPUUtilization: unset(sm.CPUUtilization), AppUtilization: unset(sm.AppUtilization),
		QPS: unset(sm.QPS), EPS: unset(sm.EPS), Interval: interval.String()}
}
