package doctor

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"
)

// ErrFindings: the diagnosis ran and found at least one error-level finding (exit 3, the
// greeter's "assertion failed": the tool worked, the system under test did not). Bad flags
// and an unusable kubeconfig are marked exitcode.ErrUsage (exit 2); a runtime failure such
// as an API server that does not answer exits 1.
var ErrFindings = exitcode.MarkCheckFailed(errors.New("error findings"))

// Config of one doctor run: where the Service is, and what the diagnosed client does.
type Config struct {
	Kubeconfig string // "" = as kubectl: $KUBECONFIG, then ~/.kube/config
	Context    string
	Namespace  string // "" = the context's namespace
	Service    string
	Port       int // Service port the client dials; 0 = the Service's gRPC port

	FromPod string // [namespace/]pod the client runs in, for the NetworkPolicy check
	TLS     bool   // the client uses TLS
	LB      string // the client's LB policy

	// Prometheus is the base URL of a Prometheus that scrapes the pods: the metrics checks
	// read the live balance and error rate there. "" skips them.
	Prometheus string
	// PrometheusWindow is the window of the rates the metrics checks read; 0 = the kit's
	// alert's (KitErrorRate). A rule that rates over another window (a test setup's
	// shorter one) gets the doctor judging the same span.
	PrometheusWindow time.Duration

	ClusterDomain string
	Timeout       time.Duration // per gRPC, DNS or Prometheus exchange
	JSON          bool
	Verbose       bool
}

// ParseFlags parses the doctor's arguments (what follows "greeter doctor").
func ParseFlags(args []string, usage io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("greeter doctor", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: as kubectl, $KUBECONFIG then ~/.kube/config)")
	fs.StringVar(&c.Context, "context", "", "kubeconfig context (default: the current one)")
	fs.StringVar(&c.Namespace, "namespace", "", "namespace of the Service (default: the context's)")
	fs.StringVar(&c.Namespace, "n", "", "shorthand for -namespace")
	fs.StringVar(&c.Service, "service", "", "the Service the client dials (required)")
	fs.IntVar(&c.Port, "port", 0, "the Service port the client dials (default: the port named grpc, or the only one)")
	fs.StringVar(&c.FromPod, "from-pod", "", "[namespace/]pod the client runs in: the NetworkPolicy check says whether it may connect")
	fs.BoolVar(&c.TLS, "tls", false, "the client uses TLS (a plaintext server is then reported as a mismatch)")
	fs.StringVar(&c.LB, "lb", dialer.RoundRobin, "the client's LB policy: round_robin, pick_first, or xds for a proxyless client (xds:/// target, routes from istiod)")
	fs.StringVar(&c.Prometheus, "prometheus", "", "base URL of a Prometheus that scrapes the pods (http://localhost:9090 through kubectl port-forward): checks the live balance, error rate and scrape targets from the servers' metrics")
	fs.DurationVar(&c.PrometheusWindow, "prometheus-window", 0, "window of the call rates the -prometheus checks read, as your alert rule's (default: the kit's rule, 5m); pods Ready for less than it are not judged")
	fs.StringVar(&c.ClusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain")
	fs.DurationVar(&c.Timeout, "timeout", 5*time.Second, "bound of each gRPC, DNS or Prometheus exchange")
	fs.BoolVar(&c.JSON, "json", false, "print the findings as JSON")
	fs.BoolVar(&c.Verbose, "v", false, "print evidence under every finding, not only warnings and errors")
	fs.Usage = func() {
		fmt.Fprint(usage, `Usage: greeter doctor -service NAME [-namespace NS] [-port P] [-from-pod [NS/]POD] [-tls] [-lb POLICY] [-prometheus URL] [-json]

Looks at a live cluster and says why gRPC calls to a Service fail or do not balance:
the Service (selector, headless or not vs the client's LB policy, port -> targetPort ->
containerPort, appProtocol), the GRPCRoutes and Ingresses that send calls to it (their
status, Gateway listeners, TLS Secrets, ReferenceGrants, the Ingress class and its gRPC
annotation), its endpoints (and why pods are not ready), each pod over
gRPC through port-forward (listening, plaintext vs TLS, health, reflection), DNS as
CoreDNS answers it, the NetworkPolicies selecting the pods (evaluated from the
objects, not by sending traffic), and the GRPCRoutes whose parent is the Service (GAMMA):
what a proxyless xDS client (-lb xds) rejects or drops of them. With -prometheus, what the
pods did with real calls, from the servers' own metrics: pods of a Deployment that get no
or too few calls, server errors above the kit's alert, streams held on some pods only,
and pods Prometheus does not scrape.

Flags:
`)
		fs.PrintDefaults()
		fmt.Fprint(usage, `
Exit codes: 0 no error finding, 1 the diagnosis could not run (API server), 2 bad flags
or kubeconfig, 3 at least one error finding.
`)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, fmt.Errorf("%w: %w", exitcode.ErrUsage, err)
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if strings.TrimSpace(c.Service) == "" {
		errs = append(errs, errors.New("-service is required"))
	}
	if c.LB != dialer.RoundRobin && c.LB != dialer.PickFirst && c.LB != dialer.FromControlPlane {
		errs = append(errs, fmt.Errorf("-lb %q: want %s, %s or %s", c.LB, dialer.RoundRobin, dialer.PickFirst, dialer.FromControlPlane))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("-port %d: out of range", c.Port))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("-timeout %s: must be positive", c.Timeout))
	}
	if c.Prometheus != "" {
		if err := checkPrometheusURL(c.Prometheus); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case c.PrometheusWindow < 0:
		errs = append(errs, fmt.Errorf("-prometheus-window %s: must be positive", c.PrometheusWindow))
	case c.PrometheusWindow > 0 && c.Prometheus == "":
		errs = append(errs, errors.New("-prometheus-window needs -prometheus URL"))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("%w: %w", exitcode.ErrUsage, err)
	}
	return c, nil
}
