package kustomize

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
)

// What the e2e suite and the READMEs rely on: names, namespaces, ports, hosts, the TLS
// Secret. A change here is a change of the kit's interface: update kustomize/README.md
// and the e2e suite with it.
const (
	headlessNS       = "grpc-kit-headless"
	ingressNS        = "grpc-kit-ingress"
	gatewayNS        = "grpc-kit-gateway"
	gatewayBackendNS = "grpc-kit-gateway-backends"
	xdsNS            = "grpc-kit-xds"
	tlsSecret        = "grpc-kit-tls"
	ingressHost      = "grpc-ingress.kit.local"
	gatewayHost      = "grpc-gateway.kit.local"
)

func job(t *testing.T, objs []object, name string) *batchv1.Job {
	t.Helper()
	return find(t, objs, "Job", headlessNS, name).Obj.(*batchv1.Job)
}

func TestHeadlessContract(t *testing.T) {
	objs, err := render("overlays/headless")
	if err != nil {
		t.Fatal(err)
	}
	find(t, objs, "Namespace", "", headlessNS)
	for _, svc := range []string{"hello-grpc-headless", "goodbye-grpc-headless"} {
		if s := find(t, objs, "Service", headlessNS, svc).Obj.(*corev1.Service); s.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("Service %s: clusterIP %q, want None", svc, s.Spec.ClusterIP)
		}
	}
	for _, name := range []string{"greeter-hello", "greeter-goodbye", "greeter-pick-first"} {
		j := job(t, objs, name)
		if got := j.Spec.Template.Annotations["kubectl.kubernetes.io/default-container"]; got != "greeter" {
			t.Errorf("Job %s: default-container annotation %q, want greeter (kubectl logs job/%s must show the report)", name, got, name)
		}
		if ptr.Deref(j.Spec.BackoffLimit, 6) != 0 {
			t.Errorf("Job %s: backoffLimit %d, want 0 (one attempt, one report)", name, *j.Spec.BackoffLimit)
		}
		c := j.Spec.Template.Spec.Containers[0]
		for _, want := range []string{"-json", "-quiet", "-max-errors=0"} {
			if c.Name != "greeter" || !slices.Contains(c.Args, want) {
				t.Errorf("Job %s: container %s lacks %s (the log must be the JSON report alone)", name, c.Name, want)
			}
		}
	}
}

func TestIngressContract(t *testing.T) {
	objs, err := render("overlays/nginx-ingress")
	if err != nil {
		t.Fatal(err)
	}
	ing := find(t, objs, "Ingress", ingressNS, "grpc-kit").Obj.(*networkingv1.Ingress)
	if ptr.Deref(ing.Spec.IngressClassName, "") != "nginx" {
		t.Errorf("ingressClassName %v, want nginx", ing.Spec.IngressClassName)
	}
	for k, v := range map[string]string{
		"nginx.ingress.kubernetes.io/backend-protocol": "GRPC",
		"nginx.ingress.kubernetes.io/ssl-redirect":     "false",
	} {
		if ing.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, ing.Annotations[k], v)
		}
	}
	if len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != tlsSecret || !slices.Equal(ing.Spec.TLS[0].Hosts, []string{ingressHost}) {
		t.Errorf("tls = %+v, want secret %s for host %s", ing.Spec.TLS, tlsSecret, ingressHost)
	}
	routes := map[string]string{}
	for _, r := range ing.Spec.Rules {
		if r.Host != ingressHost {
			t.Errorf("rule host %q, want %q", r.Host, ingressHost)
		}
		for _, p := range r.HTTP.Paths {
			routes[p.Path] = p.Backend.Service.Name
		}
	}
	want := map[string]string{"/helloworld.Hello": "hello-grpc", "/helloworld.Goodbye": "goodbye-grpc",
		// grpcurl list/describe through the ingress
		"/grpc.reflection.v1.ServerReflection": "hello-grpc", "/grpc.reflection.v1alpha.ServerReflection": "hello-grpc"}
	if d := cmp.Diff(want, routes); d != "" {
		t.Errorf("paths → Services (-want +got):\n%s", d)
	}
	for _, svc := range []string{"hello-grpc", "goodbye-grpc"} {
		s := find(t, objs, "Service", ingressNS, svc).Obj.(*corev1.Service)
		if s.Annotations["traefik.ingress.kubernetes.io/service.serversscheme"] != "h2c" {
			t.Errorf("Service %s: no traefik serversscheme h2c annotation", svc)
		}
	}
}

func TestGatewayContract(t *testing.T) {
	objs, err := render("overlays/gateway-api")
	if err != nil {
		t.Fatal(err)
	}
	g := find(t, objs, "Gateway", gatewayNS, "grpc-kit").Obj.(*gatewayv1.Gateway)
	if g.Spec.GatewayClassName != traefikClass {
		t.Errorf("gatewayClassName %q, want %q", g.Spec.GatewayClassName, traefikClass)
	}
	type listener struct {
		Port     int32
		Protocol string
		Hostname string
		Secret   string
	}
	got := map[string]listener{}
	for _, l := range g.Spec.Listeners {
		x := listener{Port: int32(l.Port), Protocol: string(l.Protocol), Hostname: string(ptr.Deref(l.Hostname, ""))}
		if l.TLS != nil {
			if ptr.Deref(l.TLS.Mode, gatewayv1.TLSModeTerminate) != gatewayv1.TLSModeTerminate || len(l.TLS.CertificateRefs) != 1 {
				t.Errorf("listener %s: want TLS Terminate with one certificate", l.Name)
			} else {
				x.Secret = string(l.TLS.CertificateRefs[0].Name)
			}
		}
		got[string(l.Name)] = x
	}
	want := map[string]listener{
		"https": {Port: 8443, Protocol: "HTTPS", Hostname: gatewayHost, Secret: tlsSecret},
		"h2c":   {Port: 8000, Protocol: "HTTP", Hostname: gatewayHost},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("listeners (-want +got):\n%s", d)
	}

	// Routes: backends and weights per rule.
	type backend struct {
		NS, Name string
		Weight   int32
	}
	rules := func(name string) [][]backend {
		r := find(t, objs, "GRPCRoute", gatewayNS, name).Obj.(*gatewayv1.GRPCRoute)
		if !slices.Equal(r.Spec.Hostnames, []gatewayv1.Hostname{gatewayHost}) {
			t.Errorf("GRPCRoute %s: hostnames %v, want [%s]", name, r.Spec.Hostnames, gatewayHost)
		}
		var out [][]backend
		for i, rule := range r.Spec.Rules {
			if !slices.ContainsFunc(rule.Filters, func(f gatewayv1.GRPCRouteFilter) bool {
				return f.Type == gatewayv1.GRPCRouteFilterRequestHeaderModifier && f.RequestHeaderModifier != nil &&
					slices.Contains(f.RequestHeaderModifier.Add, gatewayv1.HTTPHeader{Name: "x-routed-by", Value: "grpc-k8s-kit"})
			}) {
				t.Errorf("GRPCRoute %s rule %d: no RequestHeaderModifier adding x-routed-by: grpc-k8s-kit", name, i)
			}
			var bs []backend
			for _, b := range rule.BackendRefs {
				bs = append(bs, backend{NS: string(ptr.Deref(b.Namespace, gatewayv1.Namespace(gatewayNS))), Name: string(b.Name), Weight: ptr.Deref(b.Weight, 1)})
			}
			out = append(out, bs)
		}
		return out
	}
	if d := cmp.Diff([][]backend{
		{{gatewayNS, "hello-v2", 1}},                               // header x-experiment-group: canary
		{{gatewayNS, "hello-v1", 90}, {gatewayNS, "hello-v2", 10}}, // everyone else
	}, rules("hello")); d != "" {
		t.Errorf("GRPCRoute hello backends (-want +got):\n%s", d)
	}
	if d := cmp.Diff([][]backend{{{gatewayBackendNS, "goodbye-grpc", 1}}}, rules("goodbye")); d != "" {
		t.Errorf("GRPCRoute goodbye backends (-want +got):\n%s", d)
	}
	// Every method of each service, unary and streaming (the catalog, the one table of
	// them), is routed by every rule of its route: a stream must follow the same canary
	// and the same backends as the unary calls.
	for route, svc := range map[string]catalog.Service{"hello": catalog.Hello(), "goodbye": catalog.Goodbye()} {
		methods := []string{}
		for _, m := range svc.Methods {
			methods = append(methods, m.Name)
		}
		for _, m := range svc.Streams {
			methods = append(methods, m.Name)
		}
		for i, rule := range find(t, objs, "GRPCRoute", gatewayNS, route).Obj.(*gatewayv1.GRPCRoute).Spec.Rules {
			for _, m := range methods {
				if !slices.ContainsFunc(rule.Matches, func(x gatewayv1.GRPCRouteMatch) bool { return grpcMatches(x, svc.Name(), m) }) {
					t.Errorf("GRPCRoute %s rule %d does not route %s/%s", route, i, svc.Name(), m)
				}
			}
		}
	}
	header := find(t, objs, "GRPCRoute", gatewayNS, "hello").Obj.(*gatewayv1.GRPCRoute).Spec.Rules[0].Matches[0].Headers
	if len(header) != 1 || header[0].Name != "x-experiment-group" || header[0].Value != "canary" {
		t.Errorf("GRPCRoute hello rule 0: header match %+v, want x-experiment-group: canary", header)
	}

	// hello-v1 and hello-v2 each select exactly one Deployment's pods.
	for svc, deploy := range map[string]string{"hello-v1": "hello", "hello-v2": "hello-v2"} {
		sel := labels.SelectorFromSet(find(t, objs, "Service", gatewayNS, svc).Obj.(*corev1.Service).Spec.Selector)
		for _, d := range []string{"hello", "hello-v2"} {
			pods := labels.Set(find(t, objs, "Deployment", gatewayNS, d).Obj.(*appsv1.Deployment).Spec.Template.Labels)
			if sel.Matches(pods) != (d == deploy) {
				t.Errorf("Service %s selects the pods of Deployment %s: %v, want %v", svc, d, sel.Matches(pods), d == deploy)
			}
		}
	}
}

// TestCanaryDerivedFromStable: hello-v2 is base/hello's Deployment through base/hello-v2,
// which changes only its name, version label (metadata, selector, template), VERSION and
// replicas. In each overlay that runs it, the overlay's own patches must treat it like
// hello (both are selected by app.kubernetes.io/name=hello), so the rendered pair still
// differs only there.
func TestCanaryDerivedFromStable(t *testing.T) {
	for dir, ns := range map[string]string{"base/hello-v2": "", "overlays/gateway-api": gatewayNS, "overlays/proxyless-xds": xdsNS} {
		t.Run(dir, func(t *testing.T) { canaryMatchesStable(t, dir, ns) })
	}
}

func canaryMatchesStable(t *testing.T, dir, ns string) {
	objs, err := render(dir)
	if err != nil {
		t.Fatal(err)
	}
	v2 := find(t, objs, "Deployment", ns, "hello-v2").Obj.(*appsv1.Deployment).DeepCopy()
	stable := objs
	if dir == "base/hello-v2" {
		if len(objs) != 1 {
			t.Errorf("base/hello-v2 renders %d objects, want the Deployment alone: %v", len(objs), objs)
		}
		if stable, err = render("base/hello"); err != nil {
			t.Fatal(err)
		}
	}
	v1 := find(t, stable, "Deployment", ns, "hello").Obj.(*appsv1.Deployment)
	if v2.Labels["version"] != "v2" || v2.Spec.Template.Labels["version"] != "v2" || v2.Spec.Selector.MatchLabels["version"] != "v2" {
		t.Errorf("hello-v2: version labels must be v2 (metadata, selector, template)")
	}
	if r := v2.Spec.Replicas; r == nil || *r != 1 {
		t.Errorf("hello-v2: replicas %v, want 1", r)
	}
	// Undo the allowed differences, then nothing may remain.
	v2.Name, v2.Spec.Replicas = v1.Name, v1.Spec.Replicas
	for _, m := range []map[string]string{v2.Labels, v2.Spec.Selector.MatchLabels, v2.Spec.Template.Labels} {
		m["version"] = "v1"
	}
	version := false
	for i, e := range v2.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "VERSION" {
			version = true
			if e.Value != "v2" {
				t.Errorf("hello-v2: VERSION=%q, want v2", e.Value)
			}
			v2.Spec.Template.Spec.Containers[0].Env[i].Value = "v1"
		}
	}
	if !version {
		t.Errorf("hello-v2: no VERSION variable")
	}
	if d := cmp.Diff(v1, v2); d != "" {
		t.Errorf("hello-v2 differs from hello beyond name, version, VERSION and replicas (-hello +hello-v2):\n%s", d)
	}
}

// TestGatewayAPIVersionsServed: every Gateway API object uses a version that the CRDs in
// deploy/gateway-api serve (ReferenceGrant was v1beta1 only up to v1.4; v1.6.1 serves v1 too).
func TestGatewayAPIVersionsServed(t *testing.T) {
	served, err := servedGatewayVersions()
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		for _, o := range tg.render(t) {
			if o.GVK.Group != gatewayv1.GroupName {
				continue
			}
			if !slices.Contains(served[o.GVK.Kind], o.GVK.Version) {
				t.Errorf("%s: %s: %s/%s is not served by deploy/gateway-api (served: %v)", tg.name, o, o.GVK.Group, o.GVK.Version, served[o.GVK.Kind])
			}
		}
	}
}

// servedGatewayVersions reads kind → served versions from deploy/gateway-api's CRDs.
func servedGatewayVersions() (map[string][]string, error) {
	type crd struct {
		Spec struct {
			Names    struct{ Kind string }
			Versions []struct {
				Name   string
				Served bool
			}
		}
	}
	files, err := filepath.Glob("../deploy/gateway-api/gateway.networking.k8s.io_*.yaml")
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, f := range files {
		var c crd
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		// Not strict: only the few fields above are of interest.
		if err := yaml.Unmarshal(data, &c); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, v := range c.Spec.Versions {
			if v.Served {
				out[c.Spec.Names.Kind] = append(out[c.Spec.Names.Kind], v.Name)
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no CRD in ../deploy/gateway-api")
	}
	return out, nil
}

// grpcMatches says whether a GRPCRoute match (type Exact, the default) selects
// service/method: a match without a method selects every method of its service.
func grpcMatches(m gatewayv1.GRPCRouteMatch, service, method string) bool {
	if m.Method == nil {
		return true
	}
	if t := ptr.Deref(m.Method.Type, gatewayv1.GRPCMethodMatchExact); t != gatewayv1.GRPCMethodMatchExact {
		return false // RegularExpression: not used by the kit
	}
	return ptr.Deref(m.Method.Service, service) == service && ptr.Deref(m.Method.Method, method) == method
}
