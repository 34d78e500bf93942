// Package dialer turns the greeter's connection options into a gRPC client: target
// checks, TLS, and the service config that carries the load-balancing policy, the retry
// policy and client-side health checking.
package dialer

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // registers the client-side health checker healthCheckConfig uses
	"google.golang.org/grpc/keepalive"
)

// LB policies the greeter offers.
const (
	RoundRobin = "round_robin"
	PickFirst  = "pick_first"
)

// Options for one client connection.
type Options struct {
	Target string // dns:///name:port (balanced over every address), or host:port of a proxy
	LB     string // round_robin or pick_first

	// Retry makes calls that failed with UNAVAILABLE or UNKNOWN retry on another backend
	// (up to 5 attempts with backoff; ServiceConfig says why these codes). Only safe for
	// idempotent methods: SayHello and SayGoodbye are.
	Retry bool
	// HealthCheck turns on client-side health checking: the client watches each backend's
	// grpc.health.v1 status for HealthService and stops picking NOT_SERVING ones at once,
	// without waiting for Kubernetes to update endpoints. Needs round_robin.
	HealthCheck   bool
	HealthService string
	Services      []string // fully qualified services the retry policy covers

	TLS       bool   // use TLS (implied by CACert or Insecure)
	CACert    string // PEM file of the CA that signed the server or ingress certificate
	Insecure  bool   // TLS without verifying the certificate (testing only)
	Authority string // :authority header and TLS server name (ingress/gateway host routing)
	Keepalive time.Duration
	UserAgent string
}

// Validate checks the options before anything is dialled, so mistakes get clear errors.
func (o Options) Validate() error {
	var errs []error
	if err := CheckTarget(o.Target); err != nil {
		errs = append(errs, err)
	}
	if o.LB != RoundRobin && o.LB != PickFirst {
		errs = append(errs, fmt.Errorf("lb %q: want %s or %s", o.LB, RoundRobin, PickFirst))
	}
	if o.HealthCheck && o.LB == PickFirst {
		errs = append(errs, errors.New("health-check needs round_robin: pick_first ignores healthCheckConfig"))
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
		case "passthrough", "unix", "unix-abstract", "xds":
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
	sc := map[string]any{
		"loadBalancingConfig": []map[string]any{{o.LB: map[string]any{}}},
	}
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
	sc, err := ServiceConfig(o)
	if err != nil {
		return nil, err
	}
	creds, err := transportCredentials(o)
	if err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(sc),
		// Ignore service configs published in DNS TXT records: the kit's policy is the flags.
		grpc.WithDisableServiceConfig(),
	}
	if o.Authority != "" {
		opts = append(opts, grpc.WithAuthority(o.Authority))
	}
	if o.Keepalive > 0 {
		opts = append(opts, grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: o.Keepalive, Timeout: 10 * time.Second}))
	}
	if o.UserAgent != "" {
		opts = append(opts, grpc.WithUserAgent(o.UserAgent))
	}
	return opts, nil
}

// Dial validates o and creates the client (no connection is made until the first call).
func Dial(o Options) (*grpc.ClientConn, error) {
	if err := o.Validate(); err != nil {
		return nil, err
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
