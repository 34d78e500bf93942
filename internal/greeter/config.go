// Package greeter is the greeter command: flags, one call or many, and the report.
package greeter

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/envflag"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/keepalivepolicy"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/loadgen"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/statuscode"
)

// Config of one greeter run.
type Config struct {
	Dial    dialer.Options
	Service catalog.Service // from -service
	Method  catalog.Method  // from -method
	Name    string
	Headers []Header
	Plan    loadgen.Plan
	Expect  report.Expect
	// Stream is the stream mode (-stream server|bidi); its Kind is "" for unary calls.
	Stream       StreamPlan
	StreamExpect report.StreamExpect

	WaitForReady       bool
	Warmup             time.Duration
	DNSMinResolve      time.Duration
	JSON               bool
	Verbose            bool
	Quiet              bool
	ProgressEvery      time.Duration
	PrintServiceConfig bool
	// XDSDump: print the xDS configuration the client received for its xds:/// target
	// (routes with weights, clusters, endpoints, and what it rejected) instead of calling.
	XDSDump bool
	// Timeline is where the per-bucket series goes: a .csv or JSON file, or "-" for the
	// "timeline" field of the -json report. "" records none.
	Timeline       string
	TimelineBucket time.Duration
	// Linger: after the run (its report printed), stay up this long before exiting.
	Linger time.Duration
}

// StreamPlan is a run of long-lived streams: Count streams open at once, each reopened
// with backoff when it ends (whatever the status) and resumed from the last message
// received, until Duration has passed (0: until interrupted).
type StreamPlan struct {
	Kind     catalog.StreamKind
	Method   catalog.StreamMethod
	Count    int
	Duration time.Duration
	// Interval between two messages: asked of the server for a server stream, the pace
	// of the client's messages on a bidi stream.
	Interval time.Duration
	// Backoff before reopening a stream, doubled (up to BackoffMax) while reopened
	// streams deliver nothing, back to Backoff once one does; each wait is jittered ±20%.
	Backoff, BackoffMax time.Duration
}

// Header is one -H key=value metadata entry.
type Header struct{ Key, Value string }

// MultiCall reports whether the run makes more than one call (and so ends with a report).
func (c Config) MultiCall() bool {
	return c.Plan.Calls != 1 || c.Plan.Duration > 0 || c.Expect.Code != nil
}

// FullMethod is the method called, e.g. helloworld.Hello/SayHello.
func (c Config) FullMethod() string { return c.Service.FullMethod(c.Method) }

type headerFlag struct{ hs *[]Header }

func (h headerFlag) String() string {
	if h.hs == nil {
		return ""
	}
	var parts []string
	for _, x := range *h.hs {
		parts = append(parts, x.Key+"="+x.Value)
	}
	return strings.Join(parts, ",")
}

func (h headerFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok {
		k, val, ok = strings.Cut(v, ":")
	}
	k = strings.ToLower(strings.TrimSpace(k))
	if !ok || k == "" {
		return fmt.Errorf("header %q: want key=value (or 'key: value')", v)
	}
	if strings.HasPrefix(k, ":") || strings.HasPrefix(k, "grpc-") {
		return fmt.Errorf("header %q: pseudo-headers and grpc-* are reserved (use -authority for :authority)", v)
	}
	*h.hs = append(*h.hs, Header{Key: k, Value: strings.TrimSpace(val)})
	return nil
}

// ParseFlags reads args and GREETER_* environment variables into a Config.
func ParseFlags(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	var c Config
	var nameBytes int
	var service, method string
	c.Expect = report.NoExpect()
	fs := flag.NewFlagSet("greeter", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.Usage = func() {
		fmt.Fprint(usage, `greeter: call helloworld.Hello or helloworld.Goodbye and show which pods answered.

  greeter -target dns:///hello-headless.default.svc.cluster.local:50051 -n 300 -expect-backends 3 -max-skew 0
  greeter -target 127.0.0.1:8443 -authority grpc.kit.local -cacert ca.pem -service goodbye
  greeter -target dns:///localhost:50051 -c 8 -duration 30s -rate 500
  greeter -target dns:///localhost:50051 -stream server -streams 30 -duration 5m -max-lost 0 -max-gap 2s
  greeter -target xds:///hello-grpc.grpc-kit-xds.svc.cluster.local:50051 -n 1000   # proxyless, routes from istiod
  greeter -target xds:///hello-grpc.grpc-kit-xds.svc.cluster.local:50051 -xds-dump  # the routes, weights and endpoints it got
  greeter doctor -n grpc-kit-headless -service hello-grpc-headless   # why calls fail or do not balance (doctor -h)

Flags (each also read from the environment variable shown):
`)
		fs.PrintDefaults()
		fmt.Fprint(usage, `
Exit codes: 0 success; 1 calls failed (the single call, or every call of a run); 2 bad flags; 3 an assertion failed.
`)
	}
	fs.StringVar(&c.Dial.Target, "target", "dns:///localhost:50051", "dns:///name:port to balance over every address of name, host:port of an ingress/gateway, or xds:///name:port for a proxyless client of an xDS control plane (bootstrap in "+dialer.BootstrapConfigEnv+" or "+dialer.BootstrapFileEnv+")")
	fs.StringVar(&c.Dial.LB, "lb", dialer.RoundRobin, "load-balancing policy: "+strings.Join(dialer.Policies(), ", ")+
		" (weighted_round_robin follows the load the servers report with ORCA; least_request, the calls in flight)")
	// weighted_round_robin's knobs (gRFC A58), defaults from dialer.DefaultWRR.
	c.Dial.WRR = dialer.DefaultWRR()
	fs.DurationVar(&c.Dial.WRR.BlackoutPeriod, "wrr-blackout", c.Dial.WRR.BlackoutPeriod, "weighted_round_robin: use a backend's weight only after it has reported load for this long (until then it gets the mean weight)")
	fs.DurationVar(&c.Dial.WRR.WeightExpirationPeriod, "wrr-weight-expiration", c.Dial.WRR.WeightExpirationPeriod, "weighted_round_robin: drop a weight not refreshed for this long")
	fs.DurationVar(&c.Dial.WRR.WeightUpdatePeriod, "wrr-weight-update", c.Dial.WRR.WeightUpdatePeriod, "weighted_round_robin: recompute the weights this often (grpc-go's floor: 100ms)")
	fs.Float64Var(&c.Dial.WRR.ErrorUtilizationPenalty, "wrr-error-penalty", c.Dial.WRR.ErrorUtilizationPenalty, "weighted_round_robin: weight = qps / (utilization + penalty × eps/qps): how much a backend's errors cost it")
	fs.BoolVar(&c.Dial.WRR.OOB, "wrr-oob", c.Dial.WRR.OOB, "weighted_round_robin: read load from the out-of-band ORCA stream instead of each call's trailer (the kit's servers, like grpc-go's, send it at most every 30s)")
	fs.DurationVar(&c.Dial.WRR.OOBReportingPeriod, "wrr-oob-period", c.Dial.WRR.OOBReportingPeriod, "weighted_round_robin with -wrr-oob: the out-of-band report interval to ask for")
	fs.IntVar(&c.Dial.LeastRequestChoices, "lr-choices", dialer.DefaultLeastRequestChoices, "least_request: backends sampled per call, the least busy wins (2-10; with n backends each is picked alone 1/n² of the time whatever its load)")
	fs.BoolVar(&c.Dial.Retry, "retry", true, "retry calls that fail with UNAVAILABLE or UNKNOWN (a proxy's HTTP 500) on another backend (service-config retry policy; idempotent methods only); with an xds:/// target only -retry=false, which turns off the control plane's retry policy in this client")
	fs.BoolVar(&c.Dial.HealthCheck, "health-check", true, "client-side health checking: skip backends whose grpc.health.v1 status is NOT_SERVING (every -lb but pick_first)")
	fs.StringVar(&c.Dial.HealthService, "health-service", "", "service name for client-side health checks (default: the called service)")
	fs.BoolVar(&c.Dial.TLS, "tls", false, "use TLS (implied by -cacert and -insecure)")
	fs.StringVar(&c.Dial.CACert, "cacert", "", "PEM CA certificate to verify the server or ingress with")
	fs.BoolVar(&c.Dial.Insecure, "insecure", false, "TLS without certificate verification (testing only)")
	fs.StringVar(&c.Dial.Authority, "authority", "", "value of :authority and the TLS server name (host-based routing in ingresses and gateways)")
	fs.DurationVar(&c.Dial.Keepalive, "keepalive", dialer.DefaultKeepalive, fmt.Sprintf("ping a connection that read nothing for this long, and close it when the ping is not answered within -keepalive-timeout: finds a dead or frozen pod's connection (0 = off; grpc-go's floor is 10s). Must be at least the server's keepalive-min-time (%s on the kit's servers), else the server closes the connection with GOAWAY too_many_pings", keepalivepolicy.MinTime))
	fs.DurationVar(&c.Dial.KeepaliveTimeout, "keepalive-timeout", dialer.DefaultKeepaliveTimeout, "-keepalive: close the connection when a ping is not answered within this long; also the socket's TCP_USER_TIMEOUT (sent data unacknowledged this long closes it)")
	// Outlier detection's knobs, defaults and their reasons in dialer.DefaultOutlier.
	c.Dial.Outlier = dialer.DefaultOutlier()
	fs.BoolVar(&c.Dial.Outlier.Enabled, "outlier-detection", c.Dial.Outlier.Enabled, "wrap the policy in outlier detection: eject, for a while, a backend most of whose calls failed in the last interval (a pod on a lost node: its calls time out), so calls stop going to it within the deadline plus two intervals (every -lb but pick_first)")
	fs.DurationVar(&c.Dial.Outlier.Interval, "outlier-interval", c.Dial.Outlier.Interval, "outlier detection: judge the backends' calls this often")
	fs.DurationVar(&c.Dial.Outlier.BaseEjectionTime, "outlier-base-ejection", c.Dial.Outlier.BaseEjectionTime, "outlier detection: an ejected backend stays out this long (times the ejections in a row)")
	fs.IntVar(&c.Dial.Outlier.Threshold, "outlier-threshold", c.Dial.Outlier.Threshold, "outlier detection: eject a backend when more than this percentage of its calls in the interval failed (any status but OK)")
	fs.IntVar(&c.Dial.Outlier.RequestVolume, "outlier-request-volume", c.Dial.Outlier.RequestVolume, "outlier detection: judge only backends that finished at least this many calls in the interval")
	fs.IntVar(&c.Dial.Outlier.MinimumHosts, "outlier-min-hosts", c.Dial.Outlier.MinimumHosts, "outlier detection: judge nothing unless at least this many backends had that many calls (at least 2)")
	fs.IntVar(&c.Dial.Outlier.MaxEjectionPercent, "outlier-max-ejection-percent", c.Dial.Outlier.MaxEjectionPercent, "outlier detection: eject no more while this percentage of the backends is out (the first ejection is always allowed; 20: one pod of 2 to 5)")
	fs.DurationVar(&c.DNSMinResolve, "dns-min-resolve", 0, "shortest interval between DNS re-resolutions (0 keeps grpc-go's default of 30s)")
	fs.Var(headerFlag{&c.Headers}, "H", "metadata header key=value, repeatable (e.g. -H x-experiment-group=canary)")
	fs.StringVar(&service, "service", catalog.Keys()[0], "which service to call: "+strings.Join(catalog.Keys(), " or "))
	fs.StringVar(&method, "method", "", "which method of -service to call (default: its first, e.g. SayHello)")
	fs.StringVar(&c.Name, "name", "world", "name to send")
	fs.IntVar(&nameBytes, "name-bytes", 0, "send a name of this many bytes instead of -name (to test size limits)")
	fs.IntVar(&c.Plan.Calls, "n", 1, "number of calls (0 with -duration: as many as fit)")
	fs.DurationVar(&c.Plan.Duration, "duration", 0, "run for this long (load mode)")
	fs.IntVar(&c.Plan.Concurrency, "c", 1, "concurrent callers")
	fs.Float64Var(&c.Plan.Rate, "rate", 0, "calls per second over all callers (0 = as fast as possible)")
	fs.DurationVar(&c.Plan.Timeout, "timeout", 5*time.Second, "deadline of each call")
	fs.BoolVar(&c.WaitForReady, "wait-for-ready", false, "calls wait for a ready backend instead of failing fast while none is")
	fs.DurationVar(&c.Linger, "linger", 0, "after the report, stay up this long before exiting: in a pod, a follower of its log (kubectl logs -f) can be cut off when the container exits, before the last lines, and the pod's log goes with the pod")
	fs.DurationVar(&c.Warmup, "warmup", 0, "before counting, make uncounted calls for up to this long (ends early once -expect-backends backends answered), so every connection is up and round robin is exact (with -stream: unary calls of the service before the streams open)")
	fs.IntVar(&c.Expect.Backends, "expect-backends", -1, "exit 3 unless exactly this many backends served calls")
	fs.Float64Var(&c.Expect.MaxSkew, "max-skew", -1, "exit 3 if a backend's call count is off the even share by more than this fraction (0 = exact)")
	fs.Int64Var(&c.Expect.MaxErrors, "max-errors", -1, "exit 3 if more calls than this fail")
	fs.Func("expect-code", "exit 3 unless every call ends with this status code, e.g. InvalidArgument (tests of bad input)", func(v string) error {
		code, err := statuscode.Parse(v)
		c.Expect.Code = &code
		return err
	})
	var streamKind string
	fs.StringVar(&streamKind, "stream", "", "stream mode: open -streams long-lived streams of this kind, server or bidi, of -service (-method picks one by name), reopen each when it ends and resume it where it stopped; report streams and messages per pod, why streams ended, gaps, lost and duplicated messages")
	fs.IntVar(&c.Stream.Count, "streams", 1, "-stream: streams open at once")
	fs.DurationVar(&c.Stream.Interval, "interval", 100*time.Millisecond, "-stream: time between two messages (server streams ask the server for it; bidi streams send at this pace)")
	fs.DurationVar(&c.Stream.Backoff, "reconnect-backoff", 100*time.Millisecond, "-stream: wait before reopening a stream that ended (doubles while reopened streams deliver nothing)")
	fs.DurationVar(&c.Stream.BackoffMax, "reconnect-backoff-max", 5*time.Second, "-stream: longest wait before reopening a stream")
	c.StreamExpect = report.NoStreamExpect()
	fs.DurationVar(&c.StreamExpect.MaxGap, "max-gap", 0, "-stream: exit 3 if a stream went longer than this without a message, across reopens (0 = not asserted)")
	fs.Int64Var(&c.StreamExpect.MaxLost, "max-lost", -1, "-stream: exit 3 if more messages than this were lost (gaps in sequence numbers)")
	fs.Int64Var(&c.StreamExpect.MaxDup, "max-dup", -1, "-stream: exit 3 if more messages than this were received twice")
	fs.Int64Var(&c.StreamExpect.MaxReconnects, "max-reconnects", -1, "-stream: exit 3 if more streams than this ended during the run (whatever the status)")
	fs.BoolVar(&c.JSON, "json", false, "print the result as JSON on stdout")
	fs.BoolVar(&c.Verbose, "v", false, "print every call's backend")
	fs.BoolVar(&c.Quiet, "quiet", false, "no progress lines on stderr")
	fs.DurationVar(&c.ProgressEvery, "progress", 2*time.Second, "progress line interval on stderr for long runs")
	fs.BoolVar(&c.PrintServiceConfig, "print-service-config", false, "print the service config these flags produce, and exit")
	fs.BoolVar(&c.XDSDump, "xds-dump", false, "xds:/// targets: print the xDS config the client received (listeners, routes with weights, clusters, endpoints, and any resource it rejected) once it settles or -timeout passes, and exit; exit 3 if a resource is not ACKED")
	fs.StringVar(&c.Timeline, "timeline", "", "write calls per second per pod and every failed call over time to this file (.csv: CSV, else JSON; - : into the -json report), to plot a run (go run ./internal/plot/cmd/plotjson)")
	fs.DurationVar(&c.TimelineBucket, "timeline-bucket", 500*time.Millisecond, "width of one -timeline sample")
	envflag.AnnotateUsage(fs, "GREETER_")
	if err := envflag.Parse(fs, args, "GREETER_", getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, fmt.Errorf("%w: %w", exitcode.ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected arguments %q (did you mean -target?)", exitcode.ErrUsage, fs.Args())
	}
	if streamKind != "" {
		return parseStreamFlags(c, fs, streamKind, service, method)
	}
	if err := unaryOnly(fs); err != nil {
		return c, err
	}
	if c.Plan.Duration > 0 && !flagSet(fs, "n") {
		c.Plan.Calls = 0 // -duration alone: as many calls as fit, not the single default call
	}
	if nameBytes > 0 {
		c.Name = strings.Repeat("x", nameBytes)
	}
	var err error
	if c.Service, err = catalog.Lookup(service); err != nil {
		return c, fmt.Errorf("%w: -service: %w", exitcode.ErrUsage, err)
	}
	if c.Method, err = c.Service.Method(method); err != nil {
		return c, fmt.Errorf("%w: -method: %w", exitcode.ErrUsage, err)
	}
	return c, finishDial(&c, fs)
}

// xdsPlaneFlags are the client policies an xDS control plane sets for an xds:/// target
// (in its clusters and routes): asking for them on the command line would be ignored.
var xdsPlaneFlags = append([]string{"lb", "health-check", "health-service", "dns-min-resolve",
	"wrr-blackout", "wrr-weight-expiration", "wrr-weight-update", "wrr-error-penalty", "wrr-oob", "wrr-oob-period", "lr-choices", "print-service-config",
	"outlier-detection"}, outlierKnobs...)

// outlierKnobs are outlier detection's flags other than the switch.
var outlierKnobs = []string{"outlier-interval", "outlier-base-ejection", "outlier-threshold", "outlier-request-volume", "outlier-min-hosts", "outlier-max-ejection-percent"}

// finishXDS completes the dial options of an xds:/// target: the control plane decides
// the policies, so the flags that set them are refused rather than silently ignored. The
// one exception is -retry=false: a client may refuse the routes' retry policy (the
// negative control of a pod killed under load).
func finishXDS(c *Config, fs *flag.FlagSet) error {
	var errs []error
	for _, f := range xdsPlaneFlags {
		if flagSet(fs, f) {
			errs = append(errs, fmt.Errorf("-%s does not apply to an xds:/// target: the control plane sends the load-balancing policy, retries and routing", f))
		}
	}
	if flagSet(fs, "retry") {
		if c.Dial.Retry {
			errs = append(errs, errors.New("-retry does not apply to an xds:/// target: the control plane sends the retry policy with the routes (-xds-dump shows it); -retry=false turns it off in this client"))
		}
		c.Dial.DisableRetry = true
	}
	c.Dial.LB, c.Dial.Retry, c.Dial.HealthCheck, c.Dial.Outlier.Enabled = dialer.FromControlPlane, false, false, false
	return errors.Join(errs...)
}

// finishDial completes and checks the dial options of either mode.
func finishDial(c *Config, fs *flag.FlagSet) error {
	if dialer.IsXDS(c.Dial.Target) {
		if err := finishXDS(c, fs); err != nil {
			return fmt.Errorf("%w: %w", exitcode.ErrUsage, err)
		}
	} else if c.XDSDump {
		return fmt.Errorf("%w: -xds-dump needs an xds:/// target (this is %s)", exitcode.ErrUsage, c.Dial.Target)
	}
	c.Dial.Services = catalog.Names()
	if c.Dial.HealthService == "" {
		c.Dial.HealthService = c.Service.Name()
	}
	if c.Dial.LB == dialer.PickFirst && !flagSet(fs, "health-check") {
		c.Dial.HealthCheck = false // pick_first has no health checking; only complain if asked for
	}
	if c.Dial.LB == dialer.PickFirst && !flagSet(fs, "outlier-detection") {
		c.Dial.Outlier.Enabled = false // nothing to compare with (dialer.Options.Validate); only complain if asked for
	}
	if c.Dial.CACert != "" || c.Dial.Insecure {
		c.Dial.TLS = true
	}
	c.Dial.UserAgent = "greeter"
	var errs []error
	for _, f := range []string{"wrr-blackout", "wrr-weight-expiration", "wrr-weight-update", "wrr-error-penalty", "wrr-oob", "wrr-oob-period"} {
		if flagSet(fs, f) && c.Dial.LB != dialer.WeightedRoundRobin {
			errs = append(errs, fmt.Errorf("-%s applies to -lb %s only (this run uses %s)", f, dialer.WeightedRoundRobin, c.Dial.LB))
		}
	}
	if flagSet(fs, "lr-choices") && c.Dial.LB != dialer.LeastRequest {
		errs = append(errs, fmt.Errorf("-lr-choices applies to -lb %s only (this run uses %s)", dialer.LeastRequest, c.Dial.LB))
	}
	if !dialer.IsXDS(c.Dial.Target) && !c.Dial.Outlier.Enabled {
		for _, f := range outlierKnobs {
			if flagSet(fs, f) {
				errs = append(errs, fmt.Errorf("-%s applies with outlier detection only (off in this run: -outlier-detection=false or -lb %s)", f, dialer.PickFirst))
			}
		}
	}
	if flagSet(fs, "keepalive-timeout") && c.Dial.Keepalive == 0 {
		errs = append(errs, errors.New("-keepalive-timeout applies with keepalive only (-keepalive=0 turns it off)"))
	}
	if c.Dial.Keepalive > 0 && c.Dial.KeepaliveTimeout <= 0 {
		errs = append(errs, errors.New("-keepalive-timeout must be positive"))
	}
	if err := c.Dial.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Stream.Kind == "" {
		if err := c.Plan.Validate(); err != nil {
			errs = append(errs, err)
		}
		if c.Timeline == "-" && !c.JSON {
			errs = append(errs, errors.New("-timeline - puts the series in the JSON report: add -json, or give a file name"))
		}
		if c.TimelineBucket <= 0 {
			errs = append(errs, errors.New("-timeline-bucket must be positive"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", exitcode.ErrUsage, err)
	}
	return nil
}

// streamOnlyFlags apply to -stream runs only; unaryOnlyFlags to runs of unary calls.
var (
	streamOnlyFlags = []string{"streams", "interval", "reconnect-backoff", "reconnect-backoff-max", "max-gap", "max-lost", "max-dup", "max-reconnects"}
	unaryOnlyFlags  = []string{"n", "c", "rate", "max-errors", "expect-code", "timeline", "timeline-bucket", "name-bytes", "v"}
)

func unaryOnly(fs *flag.FlagSet) error {
	for _, f := range streamOnlyFlags {
		if flagSet(fs, f) {
			return fmt.Errorf("%w: -%s applies to -stream runs only", exitcode.ErrUsage, f)
		}
	}
	return nil
}

// parseStreamFlags finishes c for -stream kind.
func parseStreamFlags(c Config, fs *flag.FlagSet, kind, service, method string) (Config, error) {
	var errs []error
	for _, f := range unaryOnlyFlags {
		if flagSet(fs, f) {
			errs = append(errs, fmt.Errorf("-%s applies to unary calls, not to -stream runs", f))
		}
	}
	c.Stream.Kind = catalog.StreamKind(kind)
	if c.Stream.Kind != catalog.ServerStreaming && c.Stream.Kind != catalog.BidiStreaming {
		errs = append(errs, fmt.Errorf("-stream %q: want %s or %s", kind, catalog.ServerStreaming, catalog.BidiStreaming))
	}
	c.Stream.Duration = c.Plan.Duration
	if c.Stream.Count < 1 {
		errs = append(errs, errors.New("-streams must be at least 1"))
	}
	if c.Stream.Interval <= 0 {
		errs = append(errs, errors.New("-interval must be positive"))
	}
	if c.Stream.Backoff <= 0 || c.Stream.BackoffMax < c.Stream.Backoff {
		errs = append(errs, errors.New("-reconnect-backoff must be positive and at most -reconnect-backoff-max"))
	}
	if c.Stream.Duration < 0 {
		errs = append(errs, errors.New("-duration must not be negative (0: until interrupted)"))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("%w: %w", exitcode.ErrUsage, err)
	}
	var err error
	if c.Service, err = catalog.Lookup(service); err != nil {
		return c, fmt.Errorf("%w: -service: %w", exitcode.ErrUsage, err)
	}
	if c.Stream.Method, err = c.Service.Stream(c.Stream.Kind, method); err != nil {
		return c, fmt.Errorf("%w: -method: %w", exitcode.ErrUsage, err)
	}
	if c.Stream.Method.Kind != c.Stream.Kind {
		return c, fmt.Errorf("%w: -method %s is a %s stream, not -stream %s", exitcode.ErrUsage, method, c.Stream.Method.Kind, c.Stream.Kind)
	}
	return c, finishDial(&c, fs)
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
