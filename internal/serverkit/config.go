// Package serverkit is the bootstrap shared by the Hello and Goodbye servers: flags with
// environment equivalents, the gRPC server with its interceptors, health, reflection and
// keepalive, the HTTP port for metrics and admin, and the graceful drain on SIGTERM.
package serverkit

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/envflag"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/keepalivepolicy"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/slowdown"
)

// Config of one server process. Every field is a flag with an environment equivalent.
type Config struct {
	ListenHost string // address to bind; empty means all interfaces
	Port       int    // gRPC port
	HTTPPort   int    // HTTP port: /metrics, /healthz, /readyz, /admin/health; -1 disables it

	// Drain on SIGTERM: NOT_SERVING and GOAWAY on open connections, new connections
	// still served for DrainDelay, then GracefulStop for at most ShutdownTimeout, then
	// Stop (see Server.drain).
	DrainDelay      time.Duration
	ShutdownTimeout time.Duration

	// MaxConnectionAge makes the server close every connection (with GOAWAY) after this
	// long. gRPC clients keep a connection for its whole life and only re-resolve DNS when
	// one closes, so without a bound a client never discovers pods added after it
	// connected (scale-out gets no traffic). The grace lets in-flight calls finish.
	MaxConnectionAge      time.Duration
	MaxConnectionAgeGrace time.Duration
	// KeepaliveTime/Timeout: server pings idle connections to detect dead peers.
	KeepaliveTime    time.Duration
	KeepaliveTimeout time.Duration
	// KeepaliveMinTime is the enforcement policy: a client pinging more often than this
	// is sent GOAWAY ("too_many_pings"), protecting the server from ping floods.
	KeepaliveMinTime time.Duration

	// MaxRecvMsgSize bounds request size; larger messages get ResourceExhausted before
	// any handler runs. Requests here are a name (≤ 256 bytes), so 4 KiB is generous.
	MaxRecvMsgSize       int
	MaxConcurrentStreams uint
	StreamWorkers        int // goroutines serving calls (DefaultStreamWorkersPerCPU); 0 = one new goroutine per call

	// Long-lived streams of the kit's services (StreamHellos, ChatHello, ...); streams.go
	// says why they end on purpose.
	// StreamMaxAge ends each stream after this long (±10%) with UNAVAILABLE "stream max
	// age reached, reconnect", so reopened streams rebalance onto new pods. 0 = never.
	StreamMaxAge time.Duration
	// StreamMaxRate bounds the messages a second of one stream, each way: a server stream
	// asking for a shorter interval, or a client sending faster, gets RESOURCE_EXHAUSTED.
	StreamMaxRate float64
	// MaxStreamsPerConn bounds the kit's open streams per client connection
	// (RESOURCE_EXHAUSTED beyond it). Below MaxConcurrentStreams, so a connection full of
	// streams still has room for unary calls and health checks; MaxConcurrentStreams
	// alone would make the client queue new calls silently instead of failing them.
	MaxStreamsPerConn int

	TLSCertFile string // serve TLS instead of plaintext h2c when both are set
	TLSKeyFile  string

	// ORCA makes the server report its load to clients (Open Request Cost Aggregation):
	// in every call's trailer and on the out-of-band stream, for clients that balance by
	// capacity (weighted_round_robin). orca.go says what is reported and how it is
	// measured. ORCAInterval is how often those values are sampled.
	ORCA         bool
	ORCAInterval time.Duration
	// SlowLatency and SlowCPU make every call of the kit's services slower on purpose
	// (package slowdown): demos and tests of balancing with one slow pod. POST /admin/slow
	// changes them at run time. Off (0) by default.
	SlowLatency time.Duration
	SlowCPU     time.Duration

	EchoMetadata string // comma-separated request metadata keys replies echo
	AdminEnabled bool   // POST /admin/health flips health, /admin/slow slows calls, /admin/errors fails them (demos, tests); off by default: it is unauthenticated
	Pprof        bool   // /debug/pprof on the HTTP port
	LogLevel     string // debug, info, warn, error
	LogFormat    string // json or text
}

// DefaultStreamWorkersPerCPU: the stream workers (grpc.NumStreamWorkers) per CPU the
// process may use (GOMAXPROCS). Without workers grpc-go serves every call on a new
// goroutine, whose stack starts small and is grown, by copying it, on the way down the
// handler chain: 13-17% of the server's CPU in make bench's profiles, for ours and for
// grpc-go's example alike. A worker keeps its grown stack from call to call. A call
// finds a worker only when one is idle, so there must be about as many as calls in
// flight; more is not free either: idle workers take calls in turn (first parked, first
// woken), so each waits longer between calls and the GC shrinks its stack in between.
// Instructions per call under callgrind, make bench's load (16 callers, 2 CPUs): 115 500
// with 2 workers (the old default, GOMAXPROCS), 72 300 with 16, 73 400 with 32, 78 600
// with 64, 101 200 with 256; grpc-go's example 108 000-111 500. 16 per CPU: 32 here.
const DefaultStreamWorkersPerCPU = 16

// DefaultStreamMaxAge: five minutes. A stream reopens once per this long (one new stream
// and its first message: nothing next to five minutes of messages), and a scale-out or a
// rollout is spread over the new pods within it. Shorter costs reconnects for little;
// much longer leaves new pods idle for as long.
const DefaultStreamMaxAge = 5 * time.Minute

// DefaultMaxConnectionAgeGrace: six minutes, so that MaxConnectionAge moves unary calls and
// lets direct clients find new pods (every 30 s) without ending a single stream: after its
// connection's GOAWAY a stream keeps going, on that old connection, until its own
// STREAM_MAX_AGE (5 m + 10 % jitter = 5.5 m at most) ends it, a margin before the grace
// runs out (streams.go, connStreamEnd). A connection with no stream left closes at once
// (grpc-go closes a draining connection when its last stream ends), so the long grace
// costs nothing to unary-only clients.
const DefaultMaxConnectionAgeGrace = 6 * time.Minute

// Load parses args and the environment (flag > env > default) into a Config.
// name is the program name used in usage and errors. Usage goes to usage.
func Load(name string, args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&c.ListenHost, "listen-host", "", "address to bind, empty for all interfaces")
	fs.IntVar(&c.Port, "port", 50051, "gRPC port (0 picks a free port)")
	fs.IntVar(&c.HTTPPort, "http-port", 8080, "HTTP port for /metrics, /healthz, /readyz and /admin/health (-1 disables; 0 picks a free port)")
	fs.DurationVar(&c.DrainDelay, "drain-delay", 5*time.Second, "on SIGTERM (health NOT_SERVING, GOAWAY on open connections), how long new connections are still accepted and served, so proxies that still route here get answers")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "longest GracefulStop may take before in-flight calls are cut")
	fs.DurationVar(&c.MaxConnectionAge, "max-connection-age", 30*time.Second, "close client connections after this long so clients re-resolve and find new pods (0 = never)")
	fs.DurationVar(&c.MaxConnectionAgeGrace, "max-connection-age-grace", DefaultMaxConnectionAgeGrace, "time calls and streams in flight get after max-connection-age before the connection is closed; streams end on purpose before then (keep it above 1.1 × stream-max-age for streams to live their full age)")
	fs.DurationVar(&c.KeepaliveTime, "keepalive-time", 30*time.Second, "ping an idle connection after this long")
	fs.DurationVar(&c.KeepaliveTimeout, "keepalive-timeout", 10*time.Second, "close the connection if a ping gets no answer in this long")
	fs.DurationVar(&c.KeepaliveMinTime, "keepalive-min-time", keepalivepolicy.MinTime, "reject clients that ping more often than this")
	fs.IntVar(&c.MaxRecvMsgSize, "max-recv-msg-size", 4096, "largest request in bytes; larger gets RESOURCE_EXHAUSTED")
	fs.UintVar(&c.MaxConcurrentStreams, "max-concurrent-streams", 1000, "concurrent calls per client connection")
	fs.DurationVar(&c.StreamMaxAge, "stream-max-age", DefaultStreamMaxAge, "end each streaming call after this long (±10%) with UNAVAILABLE \"stream max age reached, reconnect\", so reopened streams rebalance onto new pods (0 = never)")
	fs.Float64Var(&c.StreamMaxRate, "stream-max-rate", 100, "most messages per second on one stream, each way (a shorter interval, or a client sending faster, gets RESOURCE_EXHAUSTED; 0 = no limit)")
	fs.IntVar(&c.MaxStreamsPerConn, "max-streams-per-conn", 500, "open streaming calls per client connection; more get RESOURCE_EXHAUSTED (0 = bounded by max-concurrent-streams only)")
	fs.IntVar(&c.StreamWorkers, "stream-workers", DefaultStreamWorkersPerCPU*runtime.GOMAXPROCS(0), "pooled goroutines serving calls, each keeping the stack it grew; calls beyond them get a new goroutine each (0 = a new goroutine for every call, grpc-go's default)")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", "", "PEM certificate: serve TLS instead of plaintext")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", "", "PEM private key for -tls-cert-file")
	fs.BoolVar(&c.ORCA, "orca", true, "report load to clients with ORCA (per-call trailers and the out-of-band stream): CPU utilization, QPS, errors per second, and application utilization (time in handlers per CPU), for clients balancing with weighted_round_robin")
	fs.DurationVar(&c.ORCAInterval, "orca-interval", DefaultORCAInterval, "how often the ORCA load values are sampled (each report carries the last interval's)")
	fs.DurationVar(&c.SlowLatency, "slow-latency", 0, "add this latency to every call of the service, e.g. 20ms (demos and tests of one slow pod; POST /admin/slow changes it at run time; 0 = off)")
	fs.DurationVar(&c.SlowCPU, "slow-cpu", 0, "spin a CPU for this long in every call of the service before -slow-latency (0 = off)")
	fs.StringVar(&c.EchoMetadata, "echo-metadata", "x-experiment-group,x-routed-by", "request metadata keys replies echo in request_metadata (comma-separated; empty for none)")
	fs.BoolVar(&c.AdminEnabled, "admin", false, "allow POST /admin/health, POST /admin/slow and POST /admin/errors on the HTTP port to flip health, slow the server down and fail calls on purpose (demos, failover and alert tests). Unauthenticated: whoever reaches the HTTP port can take the server out of rotation, so keep it off in production")
	fs.BoolVar(&c.Pprof, "pprof", false, "serve Go profiles at /debug/pprof on the HTTP port")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "json", "json or text")
	envflag.AnnotateUsage(fs, "")
	if err := envflag.Parse(fs, args, "", getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("%w: %w", exitcode.ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%w: unexpected arguments %q: %s takes flags only", exitcode.ErrUsage, fs.Args(), name)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%w: %w", exitcode.ErrUsage, err)
	}
	return c, nil
}

// Validate reports every problem in c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d out of range 0-65535", c.Port))
	}
	if c.HTTPPort < -1 || c.HTTPPort > 65535 {
		errs = append(errs, fmt.Errorf("http-port %d out of range: 0-65535, or -1 to disable", c.HTTPPort))
	}
	if c.Port != 0 && c.Port == c.HTTPPort {
		errs = append(errs, fmt.Errorf("port and http-port are both %d: they must differ", c.Port))
	}
	for name, d := range map[string]time.Duration{
		"drain-delay": c.DrainDelay, "shutdown-timeout": c.ShutdownTimeout,
		"max-connection-age": c.MaxConnectionAge, "max-connection-age-grace": c.MaxConnectionAgeGrace,
		"keepalive-time": c.KeepaliveTime, "keepalive-timeout": c.KeepaliveTimeout, "keepalive-min-time": c.KeepaliveMinTime,
		"stream-max-age": c.StreamMaxAge,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s is negative (%s)", name, d))
		}
	}
	if c.ORCA && (c.ORCAInterval < minORCAInterval || c.ORCAInterval > time.Minute) {
		errs = append(errs, fmt.Errorf("orca-interval %s out of range %s-1m", c.ORCAInterval, minORCAInterval))
	}
	if err := c.slowdown().Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.StreamMaxRate < 0 {
		errs = append(errs, fmt.Errorf("stream-max-rate %g is negative", c.StreamMaxRate))
	}
	if c.MaxStreamsPerConn < 0 {
		errs = append(errs, fmt.Errorf("max-streams-per-conn %d is negative", c.MaxStreamsPerConn))
	}
	if c.StreamWorkers < 0 || c.StreamWorkers > 1<<16 {
		errs = append(errs, fmt.Errorf("stream-workers %d out of range 0-65536", c.StreamWorkers))
	}
	if c.MaxRecvMsgSize < 64 {
		errs = append(errs, fmt.Errorf("max-recv-msg-size %d is too small: at least 64 bytes", c.MaxRecvMsgSize))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("tls-cert-file and tls-key-file go together: set both or neither"))
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("log-format %q: want json or text", c.LogFormat))
	}
	return errors.Join(errs...)
}

func (c Config) slowdown() slowdown.Setting {
	return slowdown.Setting{Latency: c.SlowLatency, CPU: c.SlowCPU}
}

// ParseLevel maps a level name to slog.Level.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// NewLogger builds the process logger from c (JSON by default, for log pipelines).
func NewLogger(c Config, w io.Writer) *slog.Logger {
	lvl, _ := ParseLevel(c.LogLevel) // validated in Load
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
