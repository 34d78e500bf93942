package kustomize

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/utils/ptr"
)

// Traefik's settings for a pod that stops answering, a node frozen or cut off
// (docs/resilience.md, "Through Traefik: a silent backend"), and the e2e suite's negative
// control of them (e2e/components/silent-backend).
const (
	staticDialTimeoutFlag  = "--serverstransport.forwardingtimeouts.dialtimeout"
	ingressNginxDialFlag   = "--providers.kubernetesingressnginx.proxyconnecttimeout"
	staticForwardingPrefix = "--serverstransport.forwardingtimeouts."
	connectTimeoutKey      = "nginx.ingress.kubernetes.io/proxy-connect-timeout"
	stockDialIngress       = "grpc-kit-stock-dial"
	stockDialHost          = "grpc-ingress-stock-dial.kit.local"
	// Traefik v3.7.13's default connect timeout for its ingress-nginx provider, in seconds
	// (pkg/provider/kubernetes/ingress-nginx/kubernetes.go, defaultProxyConnectTimeout):
	// what the negative control keeps.
	traefikStockConnectTimeout = "60"
	// A dial timeout of at least 1 s: a live pod answers a dial within milliseconds, and
	// Linux resends a lost SYN after 1 s, so less would fail a dial on one lost packet. At
	// most 3 s: retry-unsent's next attempt must start well inside a call's deadline (the
	// greeter's default is 5 s).
	minDialTimeout = time.Second
	maxDialTimeout = 3 * time.Second
)

// staticForwardingTimeouts are the only forwardingTimeouts of Traefik v3.7.13's static
// serversTransport (pkg/config/static/static_config.go, ForwardingTimeouts), the one every
// GRPCRoute backend uses. Traefik refuses to start with any other, readIdleTimeout and
// pingTimeout included ("field not found, node: readIdleTimeout").
var staticForwardingTimeouts = []string{"dialtimeout", "responseheadertimeout", "idleconntimeout"}

// traefikArgs decodes deploy/traefik/deployment.yaml strictly and returns its container's
// flags by lower-cased name, as Traefik reads them (case-insensitively).
func traefikArgs(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(traefikDeployment)
	if err != nil {
		t.Fatal(err)
	}
	o, err := decodeStrict(data)
	if err != nil {
		t.Fatalf("%s: %v", traefikDeployment, err)
	}
	d, ok := o.Obj.(*appsv1.Deployment)
	if !ok || len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%s: not a Deployment with one container", traefikDeployment)
	}
	args := map[string]string{}
	for _, a := range d.Spec.Template.Spec.Containers[0].Args {
		k, v, _ := strings.Cut(a, "=")
		k = strings.ToLower(k)
		if _, dup := args[k]; dup {
			t.Errorf("%s: flag %s given twice", traefikDeployment, k)
		}
		args[k] = v
	}
	return args
}

// TestTraefikDialTimeouts: both topologies' paths through Traefik fail a dial to a pod that
// does not answer within the same short bound, so retry-unsent moves the call on: the
// static servers transport (GRPCRoute backends) and the ingress-nginx provider's default
// (Ingresses of class nginx). And no static forwarding timeout Traefik does not know.
func TestTraefikDialTimeouts(t *testing.T) {
	args := traefikArgs(t)

	static, err := time.ParseDuration(args[staticDialTimeoutFlag])
	if err != nil {
		t.Errorf("%s: %s=%q: %v (the default servers transport dials for 30 s)", traefikDeployment, staticDialTimeoutFlag, args[staticDialTimeoutFlag], err)
	} else if static < minDialTimeout || static > maxDialTimeout {
		t.Errorf("%s: %s=%s, want %s to %s", traefikDeployment, staticDialTimeoutFlag, static, minDialTimeout, maxDialTimeout)
	}

	secs, err := strconv.Atoi(args[ingressNginxDialFlag])
	nginx := time.Duration(secs) * time.Second
	if err != nil {
		t.Errorf("%s: %s=%q: want whole seconds: %v (the provider's default is %s s)", traefikDeployment, ingressNginxDialFlag, args[ingressNginxDialFlag], err, traefikStockConnectTimeout)
	} else if nginx < minDialTimeout || nginx > maxDialTimeout {
		t.Errorf("%s: %s=%d, want %s to %s", traefikDeployment, ingressNginxDialFlag, secs, minDialTimeout, maxDialTimeout)
	}
	if err == nil && static != nginx {
		t.Errorf("%s: dial timeouts differ: %s for GRPCRoute backends, %s for Ingresses: one bound for both topologies", traefikDeployment, static, nginx)
	}

	for k := range args {
		if f, ok := strings.CutPrefix(k, staticForwardingPrefix); ok && !slices.Contains(staticForwardingTimeouts, f) {
			t.Errorf("%s: %s is not a static option of Traefik v3.7.13 (only %v): Traefik would refuse to start", traefikDeployment, k, staticForwardingTimeouts)
		}
	}
}

// TestIngressConnectTimeoutInTemplates: no template's Ingress of class nginx overrides the
// connect timeout deploy/traefik sets with a longer one.
func TestIngressConnectTimeoutInTemplates(t *testing.T) {
	for _, tg := range targets {
		if strings.HasPrefix(tg.dir, "../e2e/") {
			continue
		}
		t.Run(tg.name, func(t *testing.T) {
			for _, o := range tg.render(t) {
				ing, ok := o.Obj.(*networkingv1.Ingress)
				if !ok || ptr.Deref(ing.Spec.IngressClassName, "") != "nginx" {
					continue
				}
				v, set := ing.Annotations[connectTimeoutKey]
				if !set {
					continue
				}
				secs, err := strconv.Atoi(v)
				if d := time.Duration(secs) * time.Second; err != nil || d < minDialTimeout || d > maxDialTimeout {
					t.Errorf("%s: annotation %s=%q, want whole seconds from %s to %s, or none (deploy/traefik's default)", o, connectTimeoutKey, v, minDialTimeout, maxDialTimeout)
				}
			}
		})
	}
}

// TestStockDialIngress: the e2e suite's negative control is the template's Ingress under
// its own host with Traefik's default connect timeout, and nothing else changed.
func TestStockDialIngress(t *testing.T) {
	objs, err := render("../e2e/overlays/nginx-ingress")
	if err != nil {
		t.Fatal(err)
	}
	kit := find(t, objs, "Ingress", ingressNS, "grpc-kit").Obj.(*networkingv1.Ingress)
	stock := find(t, objs, "Ingress", ingressNS, stockDialIngress).Obj.(*networkingv1.Ingress)

	if got := stock.Annotations[connectTimeoutKey]; got != traefikStockConnectTimeout {
		t.Errorf("Ingress %s: annotation %s=%q, want Traefik's default %q", stockDialIngress, connectTimeoutKey, got, traefikStockConnectTimeout)
	}
	if len(stock.Spec.TLS) != 0 {
		t.Errorf("Ingress %s: a TLS section (cleartext only: no certificate is made for %s)", stockDialIngress, stockDialHost)
	}
	if len(stock.Spec.Rules) != 1 || stock.Spec.Rules[0].Host != stockDialHost {
		t.Fatalf("Ingress %s: want one rule for host %s", stockDialIngress, stockDialHost)
	}

	// Annotations: the template's, except ssl-redirect (no TLS section, so nothing to
	// redirect) and the connect timeout.
	want := map[string]string{}
	for k, v := range kit.Annotations {
		if k != "nginx.ingress.kubernetes.io/ssl-redirect" && k != connectTimeoutKey {
			want[k] = v
		}
	}
	got := map[string]string{}
	for k, v := range stock.Annotations {
		if k != connectTimeoutKey {
			got[k] = v
		}
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Ingress %s: annotations differ from grpc-kit's beyond %s (-grpc-kit +%s):\n%s", stockDialIngress, connectTimeoutKey, stockDialIngress, d)
	}
	if d := cmp.Diff(kit.Spec.IngressClassName, stock.Spec.IngressClassName); d != "" {
		t.Errorf("Ingress %s: ingressClassName differs from grpc-kit's:\n%s", stockDialIngress, d)
	}
	rules := slices.Clone(kit.Spec.Rules)
	for i := range rules {
		rules[i].Host = stockDialHost
	}
	if d := cmp.Diff(rules, stock.Spec.Rules); d != "" {
		t.Errorf("Ingress %s: routes differ from grpc-kit's (-grpc-kit +%s):\n%s", stockDialIngress, stockDialIngress, d)
	}
}
