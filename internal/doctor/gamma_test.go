package doctor

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"
)

// The GAMMA checks on real servers (the fixture) and GRPCRoutes served by the Gateway API
// clientset's fake: the traps of proxyless xDS clients (components/mesh-gamma/README.md).

// exact is an Exact method match of helloworld.Hello (method "" = the service alone).
func exact(method string) gatewayv1.GRPCRouteMatch {
	t := gatewayv1.GRPCMethodMatchExact
	svc := "helloworld.Hello"
	m := &gatewayv1.GRPCMethodMatch{Type: &t, Service: &svc}
	if method != "" {
		m.Method = &method
	}
	return gatewayv1.GRPCRouteMatch{Method: m}
}

// meshRoute is a GRPCRoute of the fixture's namespace whose parent is Service parent.
func meshRoute(name, parent string, rules ...gatewayv1.GRPCRouteRule) *gatewayv1.GRPCRoute {
	group, kind := gatewayv1.Group(""), gatewayv1.Kind("Service")
	port := gatewayv1.PortNumber(50051)
	return &gatewayv1.GRPCRoute{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: gatewayv1.GRPCRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Group: &group, Kind: &kind, Name: gatewayv1.ObjectName(parent), Port: &port}}},
			Rules:           rules,
		},
	}
}

func backend(name string, weight int32) gatewayv1.GRPCBackendRef {
	port := gatewayv1.PortNumber(50051)
	return gatewayv1.GRPCBackendRef{BackendRef: gatewayv1.BackendRef{Weight: &weight,
		BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(name), Port: &port}}}
}

// kitRoute is components/mesh-gamma's route in substance: every method matched exactly,
// with the canary header to v2, and 90/10 without it.
func kitRoute(parent string) *gatewayv1.GRPCRoute {
	var canary, all []gatewayv1.GRPCRouteMatch
	for _, m := range []string{"SayHello", "StreamHellos", "ChatHello"} {
		c := exact(m)
		c.Headers = []gatewayv1.GRPCHeaderMatch{{Name: "x-experiment-group", Value: "canary"}}
		canary, all = append(canary, c), append(all, exact(m))
	}
	return meshRoute("hello-mesh", parent,
		gatewayv1.GRPCRouteRule{Matches: canary, BackendRefs: []gatewayv1.GRPCBackendRef{backend("hello-v2", 1)}},
		gatewayv1.GRPCRouteRule{Matches: all, BackendRefs: []gatewayv1.GRPCBackendRef{backend("hello-v1", 90), backend("hello-v2", 10)}})
}

// xdsDoctor diagnoses the ClusterIP Service hello-grpc over the fixture's pods for a
// client with policy lb, with routes in the Gateway API fake.
func xdsDoctor(t *testing.T, f *fixture, svc *corev1.Service, lb string, routes ...runtime.Object) Report {
	t.Helper()
	f.records[fqdn(svc.Name)] = []string{svc.Spec.ClusterIP}
	d := f.doctor(svc.Name, Config{LB: lb}, svc, slice(svc.Name, f.pods...))
	d.Gateway = gatewayfake.NewClientset(routes...)
	return diagnose(t, d)
}

func TestProxylessKitRoute(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("hello-grpc")
	// A route on another Service is not this one's business.
	other := meshRoute("goodbye-mesh", "goodbye-grpc", gatewayv1.GRPCRouteRule{Matches: []gatewayv1.GRPCRouteMatch{exact("")}})
	rep := xdsDoctor(t, f, svc, "xds", kitRoute(svc.Name), other)
	noErrors(t, rep)
	if rep.Warnings != 0 {
		t.Errorf("the kit's route for a proxyless client has warnings:\n%s", dump(rep))
	}
	if w := worst(rep, CheckMeshRoute); w == nil || w.Severity != OK || !strings.Contains(w.Message, "1 GRPCRoute(s)") {
		t.Errorf("meshRoute: want ok for 1 route, got %+v", w)
	}
	if w := worst(rep, CheckBalancing); w == nil || w.Severity != OK || !strings.Contains(w.Message, "proxyless") {
		t.Errorf("a ClusterIP Service is fine for an xds client: %+v", w)
	}
}

func TestProxylessServiceOnlyMatch(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("hello-grpc")
	r := kitRoute(svc.Name)
	r.Spec.Rules[1].Matches = []gatewayv1.GRPCRouteMatch{exact("")} // "all of helloworld.Hello"
	rep := xdsDoctor(t, f, svc, "xds", r)
	e := onlyError(t, rep, CheckMeshRoute, "matches a service without a method")
	if ev := strings.Join(e.Evidence, "\n"); !strings.Contains(ev, "spec.rules[1].matches[0].method") || !strings.Contains(ev, "path_separated_prefix") {
		t.Errorf("evidence should point at the match and name the translation:\n%s", dump(rep))
	}
	if !strings.Contains(e.Fix, "method: SayHello") {
		t.Errorf("fix should show an exact method match: %s", e.Fix)
	}

	// A regular expression on the service is sent as a regex, which grpc-go takes.
	re := gatewayv1.GRPCMethodMatchRegularExpression
	r.Spec.Rules[1].Matches[0].Method.Type = &re
	noErrors(t, xdsDoctor(t, f, svc, "xds", r))

	// A client that is not proxyless (a sidecar mesh applies the route): a warning.
	r.Spec.Rules[1].Matches = []gatewayv1.GRPCRouteMatch{exact("")}
	rep = xdsDoctor(t, f, svc, "pick_first", r)
	noErrors(t, rep)
	if w := worst(rep, CheckMeshRoute); w == nil || w.Severity != Warning {
		t.Errorf("pick_first client: want a warning, got:\n%s", dump(rep))
	}
}

func TestProxylessDroppedFilters(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("hello-grpc")
	r := kitRoute(svc.Name)
	r.Spec.Rules[1].Filters = []gatewayv1.GRPCRouteFilter{{Type: gatewayv1.GRPCRouteFilterRequestHeaderModifier,
		RequestHeaderModifier: &gatewayv1.HTTPHeaderFilter{Add: []gatewayv1.HTTPHeader{{Name: "x-routed-by", Value: "mesh"}}}}}
	r.Spec.Rules[1].BackendRefs[0].Filters = []gatewayv1.GRPCRouteFilter{{Type: gatewayv1.GRPCRouteFilterResponseHeaderModifier,
		ResponseHeaderModifier: &gatewayv1.HTTPHeaderFilter{Remove: []string{"x-debug"}}}}
	r.Spec.Rules[0].Filters = []gatewayv1.GRPCRouteFilter{{Type: gatewayv1.GRPCRouteFilterRequestMirror,
		RequestMirror: &gatewayv1.HTTPRequestMirrorFilter{BackendRef: gatewayv1.BackendObjectReference{Name: "hello-v2"}}}}
	rep := xdsDoctor(t, f, svc, "xds", r)
	noErrors(t, rep)
	w := worst(rep, CheckMeshRoute)
	if w == nil || w.Severity != Warning || !strings.Contains(w.Message, "filters proxyless clients drop") {
		t.Fatalf("want a warning about dropped filters, got:\n%s", dump(rep))
	}
	ev := strings.Join(w.Evidence, "\n")
	for _, want := range []string{"spec.rules[1].filters[0]: RequestHeaderModifier", "spec.rules[1].backendRefs[0].filters[0]: ResponseHeaderModifier", "spec.rules[0].filters[0]: RequestMirror"} {
		if !strings.Contains(ev, want) {
			t.Errorf("evidence lacks %q:\n%s", want, ev)
		}
	}
}

func TestProxylessPortIstiodGivesNoRoutes(t *testing.T) {
	f := newFixture(t, 3, false)
	for _, tc := range []struct {
		name, portName, appProtocol, want string
	}{
		{"unnamed port, no appProtocol", "", "", "as unknown (TCP)"},
		{"appProtocol wins over the name", "grpc", "https", "as HTTPS"},
		{"non-standard appProtocol", "grpc", "h2c", "as unknown (TCP)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := clusterIPService("hello-grpc")
			svc.Spec.Ports[0].Name, svc.Spec.Ports[0].AppProtocol = tc.portName, nil
			if tc.appProtocol != "" {
				svc.Spec.Ports[0].AppProtocol = &tc.appProtocol
			}
			rep := xdsDoctor(t, f, svc, "xds")
			e := onlyError(t, rep, CheckMeshRoute, tc.want)
			if !strings.Contains(e.Fix, "kubernetes.io/h2c") {
				t.Errorf("fix should name the appProtocol: %s", e.Fix)
			}
		})
	}
}

func TestProxylessNoRouteIsInfo(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("hello-grpc")
	rep := xdsDoctor(t, f, svc, "xds")
	noErrors(t, rep)
	if w := worst(rep, CheckMeshRoute); w == nil || w.Severity != Info || !strings.Contains(w.Message, "default route") {
		t.Errorf("no route: want the default-route info, got:\n%s", dump(rep))
	}
	// A client that is not proxyless and no GAMMA route: nothing to say.
	rep = xdsDoctor(t, f, svc, "pick_first")
	if w := worst(rep, CheckMeshRoute); w != nil {
		t.Errorf("pick_first without routes: want no meshRoute finding, got %+v", w)
	}
}

func TestIstioPortProtocol(t *testing.T) {
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		port  corev1.ServicePort
		proto string
		ok    bool
	}{
		{corev1.ServicePort{Name: "grpc", AppProtocol: str("kubernetes.io/h2c")}, "HTTP2", true}, // the kit's Services
		{corev1.ServicePort{Name: "grpc"}, "GRPC", true},
		{corev1.ServicePort{Name: "grpc-hello"}, "GRPC", true},
		{corev1.ServicePort{Name: "GRPC-Web"}, "GRPC-Web", true},
		{corev1.ServicePort{Name: "http2-api"}, "HTTP2", true},
		{corev1.ServicePort{Name: "x", AppProtocol: str("grpc")}, "GRPC", true},
		{corev1.ServicePort{Name: "grpc", AppProtocol: str("https")}, "HTTPS", false}, // backend-tls Services
		{corev1.ServicePort{Name: "grpc", Protocol: corev1.ProtocolUDP}, "UDP", false},
		{corev1.ServicePort{Name: "tcp-db"}, "TCP", false},
		{corev1.ServicePort{Name: "api"}, "unknown (TCP)", false},
	} {
		proto, ok := IstioPortProtocol(tc.port)
		if proto != tc.proto || ok != tc.ok {
			t.Errorf("IstioPortProtocol(name %q, appProtocol %v) = %q, %v; want %q, %v", tc.port.Name, tc.port.AppProtocol, proto, ok, tc.proto, tc.ok)
		}
	}
}
