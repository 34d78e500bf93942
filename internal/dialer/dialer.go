// Package dialer turns the greeter's connection options into a gRPC client: target
// checks, TLS, keepalive, and the service config that carries the load-balancing policy
// (wrapped in outlier detection), the retry policy and client-side health checking.
package dialer

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer/leastrequest"       // registers least_request_experimental
	"google.golang.org/grpc/balancer/weightedroundrobin" // registers weighted_round_robin
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // registers the client-side health checker healthCheckConfig uses
	"google.golang.org/grpc/keepalive"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/keepalivepolicy"
)

// LB policies the greeter offers (the -lb values).
const (
	RoundRobin = "round_robin"
	PickFirst  = "pick_first"
	// WeightedRoundRobin weighs each backend by the load it reports with ORCA (QPS over
	// utilization), so a slow or busy pod gets fewer calls; knobs in WRR.
	WeightedRoundRobin = weightedroundrobin.Name
	// LeastRequest sends each call to the backend with the fewest calls in flight out of
	// LeastRequestChoices picked at random: no server support needed. Its grpc-go name
	// is least_request_experimental.
	LeastRequest = "least_request"
)

// OutlierDetectionPolicy is grpc-go's name of outlier detection (gRFC A50): a policy that
// wraps the balancing policy, counts each backend's calls, and ejects a backend whose calls
// fail, for a while. Registered by google.golang.org/grpc/xds, which xds.go imports: the
// implementation is internal to grpc-go (internal/xds/balancer/outlierdetection) and
// registered by internal/xds/balancer, which only grpc/xds imports.
const OutlierDetectionPolicy = "outlier_detection_experimental"

// Policies are the -lb values, in the order usage lists them.
func Policies() []string { return []string{RoundRobin, PickFirst, WeightedRoundRobin, LeastRequest} }

// policyName is the policy's name in the service config.
func policyName(lb string) string {
	if lb == LeastRequest {
		return leastrequest.Name
	}
	return lb
}

// WRR holds weighted_round_robin's knobs (gRFC A58); DefaultWRR gives grpc-go's
// defaults except where it says.
type WRR struct {
	// OOB: take the backends' load from the out-of-band ORCA stream, every
	// OOBReportingPeriod, instead of from each call's trailer. The kit's servers (like
	// every grpc-go server) send out-of-band reports at most every 30s, so per-call
	// reports, which follow every call, are the default here.
	OOB                bool
	OOBReportingPeriod time.Duration
	// BlackoutPeriod: a backend's weight is used only after it has reported for this
	// long (new or reconnected backends do not get a weight from one early report).
	BlackoutPeriod time.Duration
	// WeightExpirationPeriod: a weight not refreshed for this long is dropped, and the
	// backend gets the mean weight until it reports again (and its blackout passes).
	WeightExpirationPeriod time.Duration
	// WeightUpdatePeriod: how often the weights are recomputed (grpc-go's floor: 100ms).
	WeightUpdatePeriod time.Duration
	// ErrorUtilizationPenalty: weight = qps / (utilization + eps/qps × penalty), so a
	// backend that fails fast does not win calls for its speed.
	ErrorUtilizationPenalty float64
}

// DefaultWRR is grpc-go's defaults, with per-call reports (see WRR.OOB).
func DefaultWRR() WRR {
	return WRR{OOB: false, OOBReportingPeriod: 10 * time.Second, BlackoutPeriod: 10 * time.Second,
		WeightExpirationPeriod: 3 * time.Minute, WeightUpdatePeriod: time.Second, ErrorUtilizationPenalty: 1}
}

// DefaultLeastRequestChoices is grpc-go's default choiceCount. With n backends a backend
// is picked alone (both samples land on it) 1/n² of the time, whatever its load: 1/9
// of the calls with 3 backends. grpc-go takes at most 10.
const DefaultLeastRequestChoices = 2

func (w WRR) validate() error {
	var errs []error
	for name, d := range map[string]time.Duration{"wrr-blackout": w.BlackoutPeriod, "wrr-oob-period": w.OOBReportingPeriod} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s is negative (%s)", name, d))
		}
	}
	for name, d := range map[string]time.Duration{"wrr-weight-expiration": w.WeightExpirationPeriod, "wrr-weight-update": w.WeightUpdatePeriod} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive (%s)", name, d))
		}
	}
	if w.ErrorUtilizationPenalty < 0 {
		errs = append(errs, fmt.Errorf("wrr-error-penalty %g is negative", w.ErrorUtilizationPenalty))
	}
	return errors.Join(errs...)
}

// config is the policy's loadBalancingConfig entry.
func (w WRR) config() map[string]any {
	c := map[string]any{
		"blackoutPeriod":          seconds(w.BlackoutPeriod),
		"weightExpirationPeriod":  seconds(w.WeightExpirationPeriod),
		"weightUpdatePeriod":      seconds(w.WeightUpdatePeriod),
		"errorUtilizationPenalty": w.ErrorUtilizationPenalty,
		"enableOobLoadReport":     w.OOB,
	}
	if w.OOB {
		c["oobReportingPeriod"] = seconds(w.OOBReportingPeriod)
	}
	return c
}

// seconds writes d as the service config's JSON duration, e.g. "0.5s".
func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s" }

// Options for one client connection.
type Options struct {
	Target string // dns:///name:port (balanced over every address), host:port of a proxy, or xds:///name:port
	LB     string // one of Policies(), or FromControlPlane for an xds:/// target
	WRR    WRR    // weighted_round_robin's knobs
	// LeastRequestChoices is least_request's choiceCount: how many backends it samples
	// for each call (2 to 10).
	LeastRequestChoices int

	// Retry makes calls that failed with UNAVAILABLE or UNKNOWN retry on another backend
	// (up to 5 attempts with backoff; ServiceConfig says why these codes). Only safe for
	// idempotent methods: SayHello and SayGoodbye are.
	Retry bool
	// DisableRetry turns retries off whatever the service config says, the one an xDS
	// control plane sends included (grpc.WithDisableRetry).
	DisableRetry bool
	// HealthCheck turns on client-side health checking: the client watches each backend's
	// grpc.health.v1 status for HealthService and stops picking NOT_SERVING ones at once,
	// without waiting for Kubernetes to update endpoints. Needs a policy other than
	// pick_first.
	HealthCheck   bool
	HealthService string
	Services      []string // fully qualified services the retry policy covers

	// Outlier wraps the policy in outlier detection (Outlier.Enabled), which ejects a
	// backend whose calls fail: a pod on a lost node leaves the rotation within the
	// deadline plus two intervals instead of when keepalive or TCP gives up. Not with
	// pick_first (Validate says why), and not for an xds:/// target, whose control plane
	// sends the whole policy (istiod sends no outlier detection to proxyless clients:
	// kustomize/components/xds-least-request/README.md).
	Outlier Outlier

	TLS       bool   // use TLS (implied by CACert or Insecure)
	CACert    string // PEM file of the CA that signed the server or ingress certificate
	Insecure  bool   // TLS without verifying the certificate (testing only)
	Authority string // :authority header and TLS server name (ingress/gateway host routing)
	// Keepalive pings a connection that has read nothing for this long and closes it when
	// the ping is not answered within KeepaliveTimeout (0: no keepalive). See
	// DefaultKeepalive.
	Keepalive time.Duration
	// KeepaliveTimeout is how long a ping may go unanswered, and grpc-go also sets it as
	// the socket's TCP_USER_TIMEOUT (how long sent data may go unacknowledged). 0 with
	// Keepalive on: DefaultKeepaliveTimeout.
	KeepaliveTimeout time.Duration
	UserAgent        string
}

// The greeter's keepalive defaults: what bounds a lost node when outlier detection cannot
// (too few calls, pick_first) and what closes the lost node's connection in any case.
//
// DefaultKeepalive is 10s: grpc-go's floor (a client's keepalive Time under 10s is raised
// to 10s, grpc-go dialoptions.go) and the kit's servers' keepalive-min-time
// (keepalivepolicy.MinTime), so the pings never earn a GOAWAY too_many_pings from them. A
// ping goes out only on a connection that read nothing for that long: a busy connection
// is never pinged, an idle one every 10s (a few bytes).
//
// DefaultKeepaliveTimeout is 2s. The peer answers a PING from its transport's reader at
// once, without the application, so the wait only has to cover one round trip plus the
// scheduling delays of a busy node (a CPU-throttled pod, a GC pause): milliseconds
// normally, 2s leaves a wide margin. The same value becomes TCP_USER_TIMEOUT (grpc-go
// http2_client.go), so a connection whose sent bytes go unacknowledged for 2s is closed
// too: a node that is gone (no kernel to ACK) fails its connection 2s after the first call
// sent to it, and the retry policy resends that call (UNAVAILABLE) elsewhere. On a live
// peer a kernel ACKs with no help from the process, and Linux retransmits an unacknowledged
// segment after 0.2, 0.6 and 1.4s (200ms minimum RTO), so 2s cuts a healthy connection
// only if the same segment is lost four times in a row: a partition, which is what it is
// for. Against a frozen node whose kernel still ACKs (a stopped VM, a SIGSTOPped process)
// only the ping finds it: the connection closes at most Keepalive + KeepaliveTimeout (12s)
// after the last byte the peer sent.
const (
	DefaultKeepalive        = keepalivepolicy.MinTime
	DefaultKeepaliveTimeout = 2 * time.Second
)

// Validate checks the options before anything is dialled, so mistakes get clear errors.
func (o Options) Validate() error {
	var errs []error
	if err := CheckTarget(o.Target); err != nil {
		errs = append(errs, err)
	}
	if IsXDS(o.Target) {
		// The control plane sends the policy, retries and health settings of an xds:///
		// client: none of the kit's service config applies (ParseFlags refuses the flags;
		// the one thing a client may do is turn the retries off: DisableRetry).
		if o.LB != FromControlPlane {
			errs = append(errs, fmt.Errorf("lb %q: an xds:/// target takes its policy from the control plane (lb %q)", o.LB, FromControlPlane))
		}
		if o.Insecure && o.CACert != "" {
			errs = append(errs, errors.New("-insecure and -cacert contradict: verify with a CA, or do not verify"))
		}
		return errors.Join(errs...)
	}
	switch o.LB {
	case RoundRobin, PickFirst:
	case WeightedRoundRobin:
		if err := o.WRR.validate(); err != nil {
			errs = append(errs, err)
		}
	case LeastRequest:
		if o.LeastRequestChoices < 2 || o.LeastRequestChoices > 10 {
			errs = append(errs, fmt.Errorf("lr-choices %d out of range 2-10", o.LeastRequestChoices))
		}
	default:
		errs = append(errs, fmt.Errorf("lb %q: want one of %s", o.LB, strings.Join(Policies(), ", ")))
	}
	if o.HealthCheck && o.LB == PickFirst {
		errs = append(errs, errors.New("health-check needs round_robin, weighted_round_robin or least_request: pick_first ignores healthCheckConfig"))
	}
	if o.Outlier.Enabled {
		if o.LB == PickFirst {
			// Outlier detection compares backends over an interval, and pick_first sends
			// every call to one backend: only one ever has calls, MinimumHosts (at least
			// 2) is never met, and nothing would ever be ejected. pick_first stays gRPC's
			// bare default, the kit's negative control.
			errs = append(errs, errors.New("outlier-detection needs round_robin, weighted_round_robin or least_request: pick_first sends every call to one backend, so there is nothing to compare it with"))
		}
		if err := o.Outlier.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if o.Keepalive < 0 || o.KeepaliveTimeout < 0 {
		errs = append(errs, errors.New("keepalive and keepalive-timeout must not be negative"))
	}
	if o.Insecure && o.CACert != "" {
		errs = append(errs, errors.New("-insecure and -cacert contradict: verify with a CA, or do not verify"))
	}
	return errors.Join(errs...)
}

// CheckTarget rejects targets grpc-go would accept but never connect with.
func CheckTarget(target string) error {
	if target == "" {
		return errors.New("target is empty: want dns:///name:port or host:port")
	}
	hostport := target
	if scheme, rest, ok := strings.Cut(target, "://"); ok {
		switch scheme {
		case "dns":
			// dns://[authority]/host:port: the authority is an optional DNS server.
			_, hp, found := strings.Cut(rest, "/")
			if !found {
				return fmt.Errorf("target %q: dns targets are dns:///name:port (three slashes)", target)
			}
			hostport = hp
		case XDSScheme:
			_, _, err := XDSHostPort(target)
			return err
		case "passthrough", "unix", "unix-abstract":
			return nil
		default:
			return fmt.Errorf("target %q: unknown scheme %q: use dns:///name:port or host:port", target, scheme)
		}
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("target %q: want name:port (e.g. dns:///hello-headless.default.svc.cluster.local:50051): %v", target, err)
	}
	if host == "" {
		return fmt.Errorf("target %q has no host name", target)
	}
	if port == "" {
		return fmt.Errorf("target %q has no port", target)
	}
	return nil
}

// ServiceConfig is the JSON service config for o. It is the one place the kit's client
// policies live, so `greeter -print-service-config` shows users what to copy.
func ServiceConfig(o Options) (string, error) {
	type name struct {
		Service string `json:"service"`
	}
	type retryPolicy struct {
		MaxAttempts          int      `json:"maxAttempts"`
		InitialBackoff       string   `json:"initialBackoff"`
		MaxBackoff           string   `json:"maxBackoff"`
		BackoffMultiplier    float64  `json:"backoffMultiplier"`
		RetryableStatusCodes []string `json:"retryableStatusCodes"`
	}
	type methodConfig struct {
		Name        []name       `json:"name"`
		RetryPolicy *retryPolicy `json:"retryPolicy,omitempty"`
	}
	policy := map[string]any{}
	switch o.LB {
	case WeightedRoundRobin:
		policy = o.WRR.config()
	case LeastRequest:
		policy["choiceCount"] = o.LeastRequestChoices
	}
	lb := []map[string]any{{policyName(o.LB): policy}}
	if o.Outlier.Enabled {
		lb = []map[string]any{{OutlierDetectionPolicy: o.Outlier.config(lb)}}
	}
	sc := map[string]any{"loadBalancingConfig": lb}
	if o.Retry && len(o.Services) > 0 {
		// UNAVAILABLE: the backend could not be reached or went away (connection
		// refused or reset, GOAWAY, a proxy's 502, 503 or 504).
		// UNKNOWN: what gRPC makes of a proxy's HTTP 500. Traefik answers 500 when its
		// upstream connection ends while a call is in flight (Go's HTTP/2 transport
		// reports io.ErrUnexpectedEOF, or a GoAwayError after a GOAWAY, and Traefik
		// maps errors that are neither io.EOF nor net.Error to 500). The e2e saw it
		// once in 8 001 calls when a pod was force-deleted behind the gateway. The
		// kit's servers never answer UNKNOWN themselves (handler errors carry their
		// codes, panics become INTERNAL), so here it only means "the call was cut".
		// In both cases the call may or may not have run: retry idempotent methods only.
		mc := methodConfig{RetryPolicy: &retryPolicy{
			// 5 is grpc-go's cap. Backoffs are random in [0, 0.1s·2ⁿ] up to 1s, about 0.75s in
			// all on average: long enough for a proxy to drop a pod that went away.
			MaxAttempts:          5,
			InitialBackoff:       "0.1s",
			MaxBackoff:           "1s",
			BackoffMultiplier:    2,
			RetryableStatusCodes: []string{"UNAVAILABLE", "UNKNOWN"},
		}}
		for _, s := range o.Services {
			mc.Name = append(mc.Name, name{Service: s})
		}
		sc["methodConfig"] = []methodConfig{mc}
	}
	if o.HealthCheck {
		sc["healthCheckConfig"] = map[string]string{"serviceName": o.HealthService}
	}
	b, err := json.MarshalIndent(sc, "", "  ")
	return string(b), err
}

// DialOptions builds the grpc.DialOptions for o.
func DialOptions(o Options) ([]grpc.DialOption, error) {
	creds, err := transportCredentials(o)
	if err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if !IsXDS(o.Target) {
		sc, err := ServiceConfig(o)
		if err != nil {
			return nil, err
		}
		opts = append(opts,
			grpc.WithDefaultServiceConfig(sc),
			// Ignore service configs published in DNS TXT records: the kit's policy is the flags.
			// (Not for xds:///: the xDS resolver delivers routes and clusters as the service config.)
			grpc.WithDisableServiceConfig())
	}
	if o.DisableRetry {
		opts = append(opts, grpc.WithDisableRetry())
	}
	if o.Authority != "" {
		opts = append(opts, grpc.WithAuthority(o.Authority))
	}
	if o.Keepalive > 0 {
		timeout := o.KeepaliveTimeout
		if timeout == 0 {
			timeout = DefaultKeepaliveTimeout
		}
		opts = append(opts, grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time: o.Keepalive, Timeout: timeout,
			// Ping a connection with no call in flight too. Without it keepalive sleeps on
			// a connection with no stream open, and once outlier detection has ejected a
			// lost pod and its calls have timed out nothing is open on it (with health
			// checking off): the dead connection stays READY until the ejection ends and
			// the pod's next calls wait out their deadlines again. The kit's servers allow
			// it (serverkit: KeepaliveEnforcementPolicy.PermitWithoutStream); a server
			// that does not answers GOAWAY too_many_pings, which the greeter's hint names.
			PermitWithoutStream: true,
		}))
	}
	if o.UserAgent != "" {
		opts = append(opts, grpc.WithUserAgent(o.UserAgent))
	}
	return opts, nil
}

// Dial validates o and creates the client (no connection is made until the first call).
// An xds:/// target also needs an xDS bootstrap in the environment (CheckBootstrap).
func Dial(o Options) (*grpc.ClientConn, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if IsXDS(o.Target) {
		if err := CheckBootstrap(os.Getenv); err != nil {
			return nil, err
		}
	}
	opts, err := DialOptions(o)
	if err != nil {
		return nil, err
	}
	cc, err := grpc.NewClient(o.Target, opts...)
	if err != nil {
		return nil, fmt.Errorf("create client for %q: %w", o.Target, err)
	}
	return cc, nil
}

func transportCredentials(o Options) (credentials.TransportCredentials, error) {
	if !o.TLS && o.CACert == "" && !o.Insecure {
		return insecure.NewCredentials(), nil // plaintext HTTP/2 (h2c)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.Authority}
	if o.Insecure {
		cfg.InsecureSkipVerify = true
	}
	if o.CACert != "" {
		pem, err := os.ReadFile(o.CACert)
		if err != nil {
			return nil, fmt.Errorf("read CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA certificate %s: no PEM certificate found in it", o.CACert)
		}
		cfg.RootCAs = pool
	}
	return credentials.NewTLS(cfg), nil
}
