package kustomize

import (
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	networkingapiv1 "istio.io/api/networking/v1"
	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/doctor"
)

// The proxyless-xds topology: the clients' bootstrap (overlays/proxyless-xds) must point
// at deploy/istiod (istiod_test.go), and no GAMMA route of the kit may use a match that
// proxyless clients reject.

// checkMeshRoute: a GRPCRoute whose parent is a Service must not match a service without
// a method (trap 1: grpc-go rejects the whole route configuration). The doctor's own
// analysis decides. Dropped filters are allowed: the kit keeps one as a negative control.
func checkMeshRoute(f *findings, o object, r *gatewayv1.GRPCRoute) {
	if !slices.ContainsFunc(r.Spec.ParentRefs, func(p gatewayv1.ParentReference) bool { return p.Kind != nil && *p.Kind == "Service" }) {
		return
	}
	for _, p := range doctor.ProxylessRouteProblems(r) {
		if p.Breaks {
			f.add(o, p.Field, "%s", p.What)
		}
	}
}

// checkXDSGreeter: a greeter with an xds:/// target names a Service of the render by the
// full name istiod gives its listener, on a port istiod routes, and carries a bootstrap
// that points at deploy/istiod and expands only variables defined before it.
func checkXDSGreeter(f *findings, o object, c container, services map[string]*corev1.Service) {
	field := c.path + ".args[-target]"
	target := ""
	for _, a := range c.c.Args {
		if v, ok := strings.CutPrefix(a, "-target="); ok {
			target = v
		}
	}
	host, portStr, err := dialer.XDSHostPort(target)
	if err != nil {
		f.add(o, field, "%v", err)
		return
	}
	if !strings.HasSuffix(host, ".svc.cluster.local") {
		f.add(o, field, "%s: istiod names listeners <svc>.<namespace>.svc.cluster.local:<port>; a short name gets no listener", target)
		return
	}
	ns, name, err := serviceOf(host, o.Namespace)
	if err != nil {
		f.add(o, field, "%v", err)
		return
	}
	s, ok := services[ns+"/"+name]
	if !ok {
		f.add(o, field, "%s: Service %s/%s is not in this render", target, ns, name)
		return
	}
	port, _ := strconv.Atoi(portStr)
	i := slices.IndexFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return int(p.Port) == port })
	if i < 0 {
		f.add(o, field, "%s: Service %s/%s has no port %d", target, ns, name, port)
		return
	}
	if proto, ok := doctor.IstioPortProtocol(s.Spec.Ports[i]); !ok {
		f.add(o, field, "%s: istiod sees port %d of Service %s/%s as %s and sends no route for it", target, port, ns, name, proto)
	}
	checkBootstrapEnv(f, o, c)
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkBootstrapEnv: GRPC_XDS_BOOTSTRAP_CONFIG is JSON once Kubernetes has expanded it,
// every $(VAR) in it is defined earlier in the env (or Kubernetes leaves it verbatim), and
// its server is deploy/istiod's xDS port.
func checkBootstrapEnv(f *findings, o object, c container) {
	field := c.path + ".env[" + dialer.BootstrapConfigEnv + "]"
	i := slices.IndexFunc(c.c.Env, func(e corev1.EnvVar) bool { return e.Name == dialer.BootstrapConfigEnv })
	if i < 0 {
		f.add(o, field, "missing: an xds:/// client needs its bootstrap (overlays/proxyless-xds/xds-bootstrap.yaml)")
		return
	}
	defined := map[string]bool{}
	for _, e := range c.c.Env[:i] {
		defined[e.Name] = true
	}
	value := envRef.ReplaceAllStringFunc(c.c.Env[i].Value, func(ref string) string {
		v := envRef.FindStringSubmatch(ref)[1]
		if !defined[v] {
			f.add(o, field, "uses $(%s), which is not defined before it in env: Kubernetes would leave it verbatim", v)
		}
		return "x" // any value: only the shape is checked here
	})
	var b struct {
		XDSServers []struct {
			ServerURI string `json:"server_uri"`
		} `json:"xds_servers"`
		Node struct {
			ID       string            `json:"id"`
			Metadata map[string]string `json:"metadata"`
		} `json:"node"`
	}
	if err := json.Unmarshal([]byte(value), &b); err != nil {
		f.add(o, field, "is not JSON: %v", err)
		return
	}
	want, err := istiodXDSAddress()
	if err != nil {
		f.add(o, field, "%v", err)
		return
	}
	if len(b.XDSServers) != 1 || b.XDSServers[0].ServerURI != want {
		f.add(o, field, "xds_servers %+v, want the one server %s (deploy/istiod)", b.XDSServers, want)
	}
	if b.Node.Metadata["GENERATOR"] != "grpc" {
		f.add(o, field, "node.metadata.GENERATOR %q: istiod answers proxyless clients only with \"grpc\"", b.Node.Metadata["GENERATOR"])
	}
	if parts := strings.Split(b.Node.ID, "~"); len(parts) != 4 || parts[0] != "sidecar" {
		f.add(o, field, "node.id %q is not istiod's sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local", b.Node.ID)
	}
}

// TestProxylessContract: what the e2e lane relies on: the GAMMA route of
// components/mesh-gamma applied in grpc-kit-xds with the 90/10 weights and the canary
// header, and every greeter Job a proxyless client with the bootstrap.
func TestProxylessContract(t *testing.T) {
	objs, err := render("overlays/proxyless-xds")
	if err != nil {
		t.Fatal(err)
	}
	r := find(t, objs, "GRPCRoute", xdsNS, "hello-mesh").Obj.(*gatewayv1.GRPCRoute)
	if p := r.Spec.ParentRefs; len(p) != 1 || p[0].Kind == nil || *p[0].Kind != "Service" || p[0].Name != "hello-grpc" {
		t.Errorf("hello-mesh parents %+v, want the Service hello-grpc", p)
	}
	weights := map[string]int32{}
	for _, b := range r.Spec.Rules[1].BackendRefs {
		weights[string(b.Name)] = *b.Weight
	}
	if weights["hello-v1"] != 90 || weights["hello-v2"] != 10 {
		t.Errorf("rule 1 weights %v, want hello-v1 90, hello-v2 10", weights)
	}
	for j, m := range r.Spec.Rules[0].Matches {
		if h := m.Headers; len(h) != 1 || h[0].Name != "x-experiment-group" || h[0].Value != "canary" {
			t.Errorf("rule 0 match %d: header match %+v, want x-experiment-group: canary", j, h)
		}
	}
	// Every method of helloworld.Hello (the catalog), unary and streaming, in every rule,
	// each by an exact service + method match (a service-only match breaks the clients).
	hello := catalog.Hello()
	var methods []string
	for _, m := range hello.Methods {
		methods = append(methods, m.Name)
	}
	for _, m := range hello.Streams {
		methods = append(methods, m.Name)
	}
	for i, rule := range r.Spec.Rules {
		for _, m := range methods {
			if !slices.ContainsFunc(rule.Matches, func(x gatewayv1.GRPCRouteMatch) bool {
				return x.Method != nil && x.Method.Method != nil && grpcMatches(x, hello.Name(), m)
			}) {
				t.Errorf("GRPCRoute hello-mesh rule %d has no exact match for %s/%s", i, hello.Name(), m)
			}
		}
	}
	jobs := names(objs, "Job")
	if !slices.Equal(jobs, []string{xdsNS + "/greeter-canary", xdsNS + "/greeter-goodbye", xdsNS + "/greeter-hello"}) {
		t.Errorf("Jobs %v", jobs)
	}
	for _, o := range objs {
		if spec, _, path := podTemplate(o); spec != nil && o.GVK.Kind == "Job" {
			for _, c := range containers(spec, path) {
				cfg, ok, err := greeterConfig(c.c)
				if !ok || err != nil || !dialer.IsXDS(cfg.Dial.Target) {
					t.Errorf("%s: %s: want a greeter with an xds:/// target (err %v)", o, c.path, err)
				}
			}
		}
	}
}

// TestXDSGreeterChecksCatch: the bootstrap and target rules fire on the faults they are for.
func TestXDSGreeterChecksCatch(t *testing.T) {
	greeterOf := func(objs []object, name string) *corev1.Container {
		for _, o := range objs {
			if spec, _, _ := podTemplate(o); spec != nil && o.Name == name {
				return &spec.Containers[0]
			}
		}
		t.Fatalf("no %s", name)
		return nil
	}
	setEnv := func(c *corev1.Container, name string, edit func(string) string) {
		for i := range c.Env {
			if c.Env[i].Name == name {
				c.Env[i].Value = edit(c.Env[i].Value)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		mutate func(c *corev1.Container)
		want   string
	}{
		{"bootstrap before the pod's variables", func(c *corev1.Container) {
			c.Env = append(c.Env[len(c.Env)-1:], c.Env[:len(c.Env)-1]...)
		}, "uses $(POD_IP), which is not defined before it"},
		{"wrong control plane", func(c *corev1.Container) {
			setEnv(c, dialer.BootstrapConfigEnv, func(v string) string { return strings.Replace(v, ":15010", ":15012", 1) })
		}, "want the one server istiod.istio-system.svc.cluster.local:15010"},
		{"no bootstrap", func(c *corev1.Container) {
			c.Env = c.Env[:len(c.Env)-1]
		}, "missing: an xds:/// client needs its bootstrap"},
		{"short name", func(c *corev1.Container) {
			for i, a := range c.Args {
				if strings.HasPrefix(a, "-target=") {
					c.Args[i] = "-target=xds:///hello-grpc:50051"
				}
			}
		}, "a short name gets no listener"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := render("overlays/proxyless-xds")
			if err != nil {
				t.Fatal(err)
			}
			tc.mutate(greeterOf(objs, "greeter-hello"))
			fs := check(objs, true)
			if !slices.ContainsFunc(fs, func(f string) bool { return strings.Contains(f, tc.want) && strings.Contains(f, "greeter-hello") }) {
				t.Errorf("want a finding on greeter-hello containing %q, got %q", tc.want, fs)
			}
		})
	}
}

// TestServiceOnlyMeshMatchIsCaught: trap 1 in the kit's own GAMMA route fails the render.
func TestServiceOnlyMeshMatchIsCaught(t *testing.T) {
	objs, err := render("overlays/proxyless-xds")
	if err != nil {
		t.Fatal(err)
	}
	r := find(t, objs, "GRPCRoute", xdsNS, "hello-mesh").Obj.(*gatewayv1.GRPCRoute)
	r.Spec.Rules[1].Matches = r.Spec.Rules[1].Matches[:1]
	r.Spec.Rules[1].Matches[0].Method.Method = nil
	fs := check(objs, true)
	if len(fs) != 1 || !strings.Contains(fs[0], "spec.rules[1].matches[0].method") || !strings.Contains(fs[0], "path_separated_prefix") {
		t.Errorf("want exactly the service-only match, got %q", fs)
	}
}

// TestLeastRequestRule: components/xds-least-request, as the e2e applies it beside the
// proxyless-xds overlay, names a Service of that overlay (a short host is taken in the
// rule's namespace) with the one policy besides round robin that istiod sends to a
// proxyless client.
func TestLeastRequestRule(t *testing.T) {
	overlay, err := render("overlays/proxyless-xds")
	if err != nil {
		t.Fatal(err)
	}
	lr, err := render("../e2e/overlays/proxyless-xds-least-request")
	if err != nil {
		t.Fatal(err)
	}
	if len(lr) != 1 {
		t.Fatalf("want one DestinationRule, got %d objects", len(lr))
	}
	dr, ok := lr[0].Obj.(*istionetworkingv1.DestinationRule)
	if !ok || dr.Namespace != xdsNS {
		t.Fatalf("want a DestinationRule in %s, got %s", xdsNS, lr[0])
	}
	find(t, overlay, "Service", xdsNS, dr.Spec.Host)
	if lb := dr.Spec.GetTrafficPolicy().GetLoadBalancer(); lb.GetSimple() != networkingapiv1.LoadBalancerSettings_LEAST_REQUEST {
		t.Errorf("DestinationRule %s: load balancer %v, want simple LEAST_REQUEST", dr.Name, lb)
	}
}
