package doctor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	gatewayfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"
	"sigs.k8s.io/yaml"
)

// The kit's own Gateway, GRPCRoutes, ReferenceGrant and Ingress (kustomize/overlays), read
// from the manifests and placed in the fixture's namespace, with the status Traefik gives
// them; the Services they send calls to are served by the fixture's real servers. Each
// test is the healthy topology or one of its faults.

const kitOverlays = "../../kustomize/overlays"

// routesNS is the namespace of the Gateway and the cross-namespace route, as in the kit;
// the backends (the fixture's Services) are in ns.
const routesNS = "grpc-kit-gateway"

func readManifest(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(kitOverlays, path))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// kitGateway is gateway-api's Gateway in namespace, both listeners Programmed with the
// routes attached.
func kitGateway(t *testing.T, namespace string) *gatewayv1.Gateway {
	t.Helper()
	var gw gatewayv1.Gateway
	readManifest(t, "gateway-api/gateway/gateway.yaml", &gw)
	gw.TypeMeta, gw.Namespace = metav1.TypeMeta{}, namespace
	gw.Status.Conditions = []metav1.Condition{cond("Accepted", true, "Accepted", ""), cond("Programmed", true, "Programmed", "")}
	for _, l := range gw.Spec.Listeners {
		gw.Status.Listeners = append(gw.Status.Listeners, gatewayv1.ListenerStatus{Name: l.Name, AttachedRoutes: 3,
			Conditions: []metav1.Condition{cond("Accepted", true, "Accepted", ""), cond("ResolvedRefs", true, "ResolvedRefs", ""), cond("Programmed", true, "Programmed", "")}})
	}
	return &gw
}

// kitGRPCRoute is gateway-api's route file in namespace, Accepted and ResolvedRefs on
// every parent, as Traefik reports it.
func kitGRPCRoute(t *testing.T, file, namespace string) *gatewayv1.GRPCRoute {
	t.Helper()
	var r gatewayv1.GRPCRoute
	readManifest(t, "gateway-api/gateway/"+file, &r)
	r.TypeMeta, r.Namespace, r.Generation = metav1.TypeMeta{}, namespace, 1
	for _, p := range r.Spec.ParentRefs {
		r.Status.Parents = append(r.Status.Parents, gatewayv1.RouteParentStatus{ParentRef: p, ControllerName: "traefik.io/gateway-controller",
			Conditions: []metav1.Condition{cond("Accepted", true, "Accepted", ""), cond("ResolvedRefs", true, "ResolvedRefs", "")}})
	}
	return &r
}

// crossNamespaceGoodbye is the kit's goodbye route in routesNS, sending calls to the
// Service goodbye-grpc of the fixture's namespace.
func crossNamespaceGoodbye(t *testing.T) *gatewayv1.GRPCRoute {
	t.Helper()
	r := kitGRPCRoute(t, "grpcroute-goodbye.yaml", routesNS)
	target := gatewayv1.Namespace(ns)
	r.Spec.Rules[0].BackendRefs[0].Namespace = &target
	return r
}

// kitGrant is gateway-api's ReferenceGrant, in the backends' namespace (the fixture's).
func kitGrant(t *testing.T) *gatewayv1.ReferenceGrant {
	t.Helper()
	var g gatewayv1.ReferenceGrant
	readManifest(t, "gateway-api/reference-grant/referencegrant.yaml", &g)
	g.TypeMeta, g.Namespace = metav1.TypeMeta{}, ns
	return &g
}

func kitIngress(t *testing.T) *netv1.Ingress {
	t.Helper()
	var ing netv1.Ingress
	readManifest(t, "nginx-ingress/ingress.yaml", &ing)
	ing.TypeMeta, ing.Namespace = metav1.TypeMeta{}, ns
	return &ing
}

// ingressClass is deploy/traefik's class: name and controller.
func ingressClass(name, controller string) *netv1.IngressClass {
	return &netv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: netv1.IngressClassSpec{Controller: controller}}
}

func tlsSecret(namespace string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "grpc-kit-tls", Namespace: namespace}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: []byte("cert"), corev1.TLSPrivateKeyKey: []byte("key")}}
}

func cond(typ string, ok bool, reason, msg string) metav1.Condition {
	s := metav1.ConditionFalse
	if ok {
		s = metav1.ConditionTrue
	}
	return metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: 1}
}

// setRouteCondition replaces condition typ on every parent of r.
func setRouteCondition(r *gatewayv1.GRPCRoute, c metav1.Condition) {
	for i := range r.Status.Parents {
		for j := range r.Status.Parents[i].Conditions {
			if r.Status.Parents[i].Conditions[j].Type == c.Type {
				r.Status.Parents[i].Conditions[j] = c
			}
		}
	}
}

// routeDoctor diagnoses svc (ClusterIP, served by the fixture's pods) with the kit's
// headless twin beside it, kube objects and Gateway API objects.
func routeDoctor(t *testing.T, f *fixture, svc *corev1.Service, cfg Config, kube []runtime.Object, gw ...runtime.Object) Report {
	t.Helper()
	return diagnose(t, routeDoctorOf(t, f, svc, cfg, kube, gw...))
}

func routeDoctorOf(t *testing.T, f *fixture, svc *corev1.Service, cfg Config, kube []runtime.Object, gw ...runtime.Object) *Doctor {
	t.Helper()
	f.records[fqdn(svc.Name)] = []string{svc.Spec.ClusterIP}
	objs := append([]runtime.Object{svc, headlessService("hello-grpc-headless"), slice(svc.Name, f.pods...)}, kube...)
	d := f.doctor(svc.Name, cfg, objs...)
	d.Gateway = gatewayClientset(t, gw...)
	return d
}

// gatewayClientset is the Gateway API fake with objs. Gateways are served by a reactor:
// the fake's tracker files objects under a resource guessed from the kind, "gatewaies"
// for Gateway, where no Get finds them.
func gatewayClientset(t *testing.T, objs ...runtime.Object) *gatewayfake.Clientset {
	t.Helper()
	var rest []runtime.Object
	gws := map[string]*gatewayv1.Gateway{}
	for _, o := range objs {
		if gw, ok := o.(*gatewayv1.Gateway); ok {
			gws[gw.Namespace+"/"+gw.Name] = gw
			continue
		}
		rest = append(rest, o)
	}
	c := gatewayfake.NewClientset(rest...)
	c.PrependReactor("get", "gateways", func(a k8stesting.Action) (bool, runtime.Object, error) {
		g := a.(k8stesting.GetAction)
		if gw, ok := gws[g.GetNamespace()+"/"+g.GetName()]; ok {
			return true, gw.DeepCopy(), nil
		}
		return true, nil, apierrors.NewNotFound(gatewayv1.Resource("gateways"), g.GetName())
	})
	return c
}

// The case: the kit's healthy Gateway API topology, its ClusterIP backend
// diagnosed with the doctor's default client (round_robin). No error: the Gateway
// balances per call; an info that says so and what direct clients need.
func TestGatewayBackendHealthy(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("hello-v1")
	rep := routeDoctor(t, f, svc, Config{}, []runtime.Object{tlsSecret(ns)},
		kitGateway(t, ns), kitGRPCRoute(t, "grpcroute-hello.yaml", ns), kitGRPCRoute(t, "grpcroute-reflection.yaml", ns))
	noErrors(t, rep)
	if rep.Warnings != 0 {
		t.Errorf("healthy gateway backend has warnings:\n%s", dump(rep))
	}
	b := worst(rep, CheckBalancing)
	if b == nil || b.Severity != Info || !strings.Contains(b.Message, "proxy backend") || !strings.Contains(b.Message, "GRPCRoute hello, GRPCRoute reflection") ||
		!strings.Contains(b.Message, "direct clients need the headless Service hello-grpc-headless") {
		t.Errorf("balancing: want the proxy-backend info naming both routes and the headless twin, got:\n%s", dump(rep))
	}
	if !strings.Contains(strings.Join(b.Evidence, "\n"), "spec.rules[1].backendRefs[0] -> hello-v1:50051") {
		t.Errorf("balancing evidence should name the backendRef: %v", b.Evidence)
	}
	var routes int
	for _, fd := range rep.Findings {
		if fd.Check == CheckRoute {
			routes++
			if fd.Severity != OK {
				t.Errorf("route: %+v", fd)
			}
		}
	}
	if routes != 2 {
		t.Errorf("want one route finding per route (2), got %d:\n%s", routes, dump(rep))
	}
	g := worst(rep, CheckGateway)
	if g == nil || g.Severity != OK || !strings.Contains(strings.Join(g.Evidence, "\n"), "TLS Secret kit/grpc-kit-tls present") {
		t.Errorf("gateway: want ok with the TLS Secret present, got:\n%s", dump(rep))
	}
	if w := worst(rep, CheckIngress); w != nil {
		t.Errorf("no Ingress, want no ingress finding: %+v", w)
	}
}

// The negative control: the same Gateway and routes, and the ClusterIP Service that none
// of them sends calls to (hello-grpc, in the kit's gateway namespace). The old error
// stands, and its evidence names the Services the routes use.
func TestClusterIPThatNoRouteUses(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("hello-grpc")
	rep := routeDoctor(t, f, svc, Config{}, []runtime.Object{tlsSecret(ns)},
		kitGateway(t, ns), kitGRPCRoute(t, "grpcroute-hello.yaml", ns), kitGRPCRoute(t, "grpcroute-reflection.yaml", ns))
	e := onlyError(t, rep, CheckBalancing, "round_robin over a ClusterIP Service")
	if ev := strings.Join(e.Evidence, "\n"); !strings.Contains(ev, "hello-v1 (GRPCRoute hello, GRPCRoute reflection)") || !strings.Contains(ev, "hello-v2 (GRPCRoute hello)") {
		t.Errorf("evidence should name the Services the routes send calls to:\n%s", ev)
	}
	if !strings.Contains(e.Fix, "hello-grpc-headless") {
		t.Errorf("fix should name the headless twin: %s", e.Fix)
	}
	for _, c := range []string{CheckRoute, CheckGateway} {
		if w := worst(rep, c); w != nil {
			t.Errorf("no route sends calls to hello-grpc, want no %s finding: %+v", c, w)
		}
	}
}

func TestCrossNamespaceBackendWithGrant(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("goodbye-grpc")
	rep := routeDoctor(t, f, svc, Config{}, []runtime.Object{tlsSecret(routesNS)},
		kitGateway(t, routesNS), crossNamespaceGoodbye(t), kitGrant(t))
	noErrors(t, rep)
	if rep.Warnings != 0 {
		t.Errorf("warnings:\n%s", dump(rep))
	}
	r := worst(rep, CheckRoute)
	if r == nil || r.Severity != OK || !strings.Contains(strings.Join(r.Evidence, "\n"), "allowed by ReferenceGrant grpc-kit-gateway-routes") {
		t.Errorf("route: want ok naming the grant, got:\n%s", dump(rep))
	}
	if b := worst(rep, CheckBalancing); b == nil || b.Severity != Info || !strings.Contains(b.Message, "GRPCRoute grpc-kit-gateway/goodbye") {
		t.Errorf("balancing: %+v", b)
	}
}

// The e2e's fault: the ReferenceGrant deleted. The route's reference is refused
// (ResolvedRefs=False, RefNotPermitted, as Traefik reports it): one error, naming the
// ReferenceGrant to create.
func TestReferenceGrantMissing(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("goodbye-grpc")
	refused := func() *gatewayv1.GRPCRoute {
		r := crossNamespaceGoodbye(t)
		setRouteCondition(r, cond("ResolvedRefs", false, "RefNotPermitted",
			"Cannot load GRPCBackendRef /Service/kit/goodbye-grpc: missing ReferenceGrant"))
		return r
	}
	for _, tc := range []struct {
		name   string
		grants []runtime.Object
		route  *gatewayv1.GRPCRoute
	}{
		{"no grant, refused", nil, refused()},
		{"no grant, before the controller noticed", nil, crossNamespaceGoodbye(t)},
		{"a grant for another Service", []runtime.Object{func() runtime.Object {
			g := kitGrant(t)
			other := gatewayv1.ObjectName("hello-grpc")
			g.Spec.To[0].Name = &other
			return g
		}()}, refused()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := append([]runtime.Object{kitGateway(t, routesNS), tc.route}, tc.grants...)
			rep := routeDoctor(t, f, svc, Config{}, []runtime.Object{tlsSecret(routesNS)}, gw...)
			e := onlyError(t, rep, CheckRoute, "no ReferenceGrant in kit allows it")
			for _, want := range []string{"create a ReferenceGrant in kit", "kind: GRPCRoute, namespace: grpc-kit-gateway", "kind: Service, name: goodbye-grpc"} {
				if !strings.Contains(e.Fix, want) {
					t.Errorf("fix lacks %q: %s", want, e.Fix)
				}
			}
			if !strings.Contains(strings.Join(e.Evidence, "\n"), "ReferenceGrants in kit: ") {
				t.Errorf("evidence should list the namespace's grants: %v", e.Evidence)
			}
			if b := worst(rep, CheckBalancing); b == nil || b.Severity != Info {
				t.Errorf("still a proxy backend, want the balancing info: %+v", b)
			}
		})
	}
}

// Clusters whose Gateway API CRDs serve ReferenceGrant as v1beta1 only.
func TestReferenceGrantV1beta1(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("goodbye-grpc")
	var g gatewayv1.ReferenceGrant
	readManifest(t, "gateway-api/reference-grant/referencegrant.yaml", &g)
	old := &gatewayv1beta1.ReferenceGrant{ObjectMeta: metav1.ObjectMeta{Name: g.Name, Namespace: ns}, Spec: g.Spec}
	d := routeDoctorOf(t, f, svc, Config{}, []runtime.Object{tlsSecret(routesNS)}, kitGateway(t, routesNS), crossNamespaceGoodbye(t), old)
	d.Gateway.(*gatewayfake.Clientset).PrependReactor("list", "referencegrants", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetResource().Version == "v1" {
			return true, nil, apierrors.NewNotFound(schema.GroupResource{Group: gatewayv1.GroupName, Resource: "referencegrants"}, "")
		}
		return false, nil, nil
	})
	rep := diagnose(t, d)
	noErrors(t, rep)
	if r := worst(rep, CheckRoute); r == nil || !strings.Contains(strings.Join(r.Evidence, "\n"), "allowed by ReferenceGrant grpc-kit-gateway-routes") {
		t.Errorf("the v1beta1 grant should be found:\n%s", dump(rep))
	}
}

// The e2e's other fault: the backendRef's port is not a port of the Service.
func TestRouteBackendPortWrong(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("hello-v1")
	r := kitGRPCRoute(t, "grpcroute-hello.yaml", ns)
	wrong := gatewayv1.PortNumber(50052)
	r.Spec.Rules[1].BackendRefs[0].Port = &wrong
	setRouteCondition(r, cond("ResolvedRefs", false, "BackendNotFound", "Cannot load GRPCBackendRef kit/hello-v1: service port 50052 not found"))
	rep := routeDoctor(t, f, svc, Config{}, []runtime.Object{tlsSecret(ns)}, kitGateway(t, ns), r)
	e := onlyError(t, rep, CheckRoute, "port 50052, which is not a port of the Service")
	if !strings.Contains(e.Fix, "set port: 50051") || !strings.Contains(e.Fix, "spec.rules[1].backendRefs[0]") {
		t.Errorf("fix should give the port and the field: %s", e.Fix)
	}
	if ev := strings.Join(e.Evidence, "\n"); !strings.Contains(ev, "Service ports: grpc 50051") || !strings.Contains(ev, "BackendNotFound") || strings.Count(ev, "-> kit/hello-v1:50052") != 1 {
		t.Errorf("evidence should show the Service's ports and the controller's condition:\n%s", ev)
	}
}

// ResolvedRefs=False about another backend of the route: calls to this Service are fine.
func TestResolvedRefsAboutAnotherBackend(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("hello-v1")
	r := kitGRPCRoute(t, "grpcroute-hello.yaml", ns)
	setRouteCondition(r, cond("ResolvedRefs", false, "BackendNotFound", "Cannot load GRPCBackendRef kit/hello-v2: getting service: not found"))
	rep := routeDoctor(t, f, svc, Config{}, []runtime.Object{tlsSecret(ns)}, kitGateway(t, ns), r)
	noErrors(t, rep)
	if w := worst(rep, CheckRoute); w == nil || w.Severity != Warning || !strings.Contains(w.Message, "about another of its backends") {
		t.Errorf("want a warning, got:\n%s", dump(rep))
	}
}

func TestRouteNotAccepted(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("goodbye-grpc")
	r := crossNamespaceGoodbye(t)
	setRouteCondition(r, cond("Accepted", false, "NotAllowedByListeners", ""))
	rep := routeDoctor(t, f, svc, Config{}, []runtime.Object{tlsSecret(routesNS)}, kitGateway(t, routesNS), r, kitGrant(t))
	e := onlyError(t, rep, CheckRoute, "is not accepted by Gateway grpc-kit-gateway/grpc-kit (NotAllowedByListeners)")
	if !strings.Contains(e.Fix, "allowedRoutes") {
		t.Errorf("fix should name allowedRoutes: %s", e.Fix)
	}
}

func TestRouteParentGatewayMissing(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("hello-v1")
	r := kitGRPCRoute(t, "grpcroute-hello.yaml", ns)
	r.Status.Parents = nil // nothing reports on a parent that does not exist
	rep := routeDoctor(t, f, svc, Config{}, nil, r)
	onlyError(t, rep, CheckRoute, "parent Gateway kit/grpc-kit does not exist")
}

// The Gateway's https listener without its Secret: Traefik reports ResolvedRefs=False
// (InvalidCertificateRef) and Programmed=False; the doctor names the missing Secret.
func TestListenerTLSSecretMissing(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("hello-v1")
	gw := kitGateway(t, ns)
	gw.Status.Listeners[0].Conditions = []metav1.Condition{cond("ResolvedRefs", false, "InvalidCertificateRef", "Cannot load CertificateRef kit/grpc-kit-tls: secret not found"),
		cond("Programmed", false, "Invalid", "Invalid CertificateRefs")}
	rep := routeDoctor(t, f, svc, Config{}, nil, gw, kitGRPCRoute(t, "grpcroute-hello.yaml", ns))
	e := onlyError(t, rep, CheckGateway, "the TLS Secret kit/grpc-kit-tls of listener https (HTTPS :8443, grpc-gateway.kit.local)")
	if !strings.Contains(e.Fix, "kubectl -n kit create secret tls grpc-kit-tls") {
		t.Errorf("fix: %s", e.Fix)
	}
	if r := worst(rep, CheckRoute); r == nil || r.Severity != OK {
		t.Errorf("the route is fine (the h2c listener serves it): %+v", r)
	}
}

func TestListenerNotProgrammed(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("hello-v1")
	gw := kitGateway(t, ns)
	gw.Spec.Listeners[1].Port = 9000
	gw.Status.Listeners[1].Conditions = []metav1.Condition{cond("Accepted", false, "PortUnavailable", "Cannot find entryPoint for Gateway: no matching entryPoint for port 9000 and protocol \"HTTP\"")}
	rep := routeDoctor(t, f, svc, Config{}, []runtime.Object{tlsSecret(ns)}, gw, kitGRPCRoute(t, "grpcroute-hello.yaml", ns))
	e := onlyError(t, rep, CheckGateway, "listener h2c (HTTP :9000, grpc-gateway.kit.local) of Gateway kit/grpc-kit is not programmed (Accepted=False, PortUnavailable")
	if !strings.Contains(e.Fix, "entry point") {
		t.Errorf("fix should explain Traefik's entry points: %s", e.Fix)
	}
}

func TestGatewayClassMissing(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("hello-v1")
	gw := kitGateway(t, ns)
	gw.Status = gatewayv1.GatewayStatus{}
	r := kitGRPCRoute(t, "grpcroute-hello.yaml", ns)
	r.Status.Parents = nil
	rep := routeDoctor(t, f, svc, Config{}, []runtime.Object{tlsSecret(ns)}, gw, r)
	e := onlyError(t, rep, CheckGateway, "gatewayClassName traefik, and no such GatewayClass exists")
	if !strings.Contains(strings.Join(e.Evidence, ""), "GatewayClasses: (none)") {
		t.Errorf("evidence should list the classes: %v", e.Evidence)
	}
}

// The kit's nginx-ingress topology: hello-grpc is the backend of its Ingress.
func TestIngressBackendHealthy(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("hello-grpc")
	rep := routeDoctor(t, f, svc, Config{}, []runtime.Object{kitIngress(t), ingressClass("nginx", "k8s.io/ingress-nginx"), tlsSecret(ns)})
	noErrors(t, rep)
	if rep.Warnings != 0 {
		t.Errorf("warnings:\n%s", dump(rep))
	}
	if b := worst(rep, CheckBalancing); b == nil || b.Severity != Info || !strings.Contains(b.Message, "Ingress grpc-kit sends calls") {
		t.Errorf("balancing: %+v", b)
	}
	i := worst(rep, CheckIngress)
	if i == nil || i.Severity != OK || !strings.Contains(i.Message, "backend-protocol: GRPC") || !strings.Contains(i.Message, "TLS Secret grpc-kit-tls present") {
		t.Fatalf("ingress: want ok with the annotation and the Secret, got:\n%s", dump(rep))
	}
	if ev := strings.Join(i.Evidence, "\n"); !strings.Contains(ev, "grpc-ingress.kit.local/helloworld.Hello -> hello-grpc:grpc") || strings.Contains(ev, "helloworld.Goodbye") {
		t.Errorf("evidence should list hello-grpc's paths only:\n%s", ev)
	}
}

func TestIngressWithoutBackendProtocol(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("hello-grpc")
	for _, value := range []string{"", "HTTP"} {
		ing := kitIngress(t)
		if value == "" {
			delete(ing.Annotations, "nginx.ingress.kubernetes.io/backend-protocol")
		} else {
			ing.Annotations["nginx.ingress.kubernetes.io/backend-protocol"] = value
		}
		rep := routeDoctor(t, f, svc, Config{}, []runtime.Object{ing, ingressClass("nginx", "k8s.io/ingress-nginx"), tlsSecret(ns)})
		e := onlyError(t, rep, CheckIngress, "backend-protocol")
		if !strings.Contains(e.Message, "HTTP/1.1") || !strings.Contains(e.Fix, "nginx.ingress.kubernetes.io/backend-protocol: GRPC") {
			t.Errorf("%q: message and fix:\n%s", value, dump(rep))
		}
	}
}

// Traefik's own Ingress provider reads the scheme from the Service.
func TestIngressTraefikClass(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("hello-grpc")
	ing := kitIngress(t)
	class := "traefik"
	ing.Spec.IngressClassName = &class
	kube := []runtime.Object{ing, ingressClass("traefik", "traefik.io/ingress-controller"), tlsSecret(ns)}
	rep := routeDoctor(t, f, svc, Config{}, kube)
	e := onlyError(t, rep, CheckIngress, "traefik.ingress.kubernetes.io/service.serversscheme")
	if !strings.Contains(e.Fix, "annotate the Service") {
		t.Errorf("fix: %s", e.Fix)
	}
	svc.Annotations = map[string]string{"traefik.ingress.kubernetes.io/service.serversscheme": "h2c"} // as the kit's hello-grpc
	noErrors(t, routeDoctor(t, f, svc, Config{}, kube))
}

func TestIngressBackendPortWrong(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("hello-grpc")
	ing := kitIngress(t)
	ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port.Name = "gprc"
	rep := routeDoctor(t, f, svc, Config{}, []runtime.Object{ing, ingressClass("nginx", "k8s.io/ingress-nginx"), tlsSecret(ns)})
	e := onlyError(t, rep, CheckIngress, "port gprc, which is not a port of the Service")
	if !strings.Contains(e.Fix, "name: grpc or number: 50051") {
		t.Errorf("fix: %s", e.Fix)
	}
}

func TestIngressClassMissing(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("hello-grpc")
	rep := routeDoctor(t, f, svc, Config{}, []runtime.Object{kitIngress(t), ingressClass("traefik", "traefik.io/ingress-controller"), tlsSecret(ns)})
	e := onlyError(t, rep, CheckIngress, "ingressClassName nginx and no such IngressClass exists")
	if !strings.Contains(strings.Join(e.Evidence, ""), "IngressClasses: traefik") {
		t.Errorf("evidence should list the classes: %v", e.Evidence)
	}
}

func TestIngressTLSSecretMissing(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("hello-grpc")
	rep := routeDoctor(t, f, svc, Config{}, []runtime.Object{kitIngress(t), ingressClass("nginx", "k8s.io/ingress-nginx")})
	e := onlyError(t, rep, CheckIngress, "the TLS Secret grpc-kit-tls of Ingress grpc-kit")
	if !strings.Contains(e.Fix, "create secret tls grpc-kit-tls") {
		t.Errorf("fix: %s", e.Fix)
	}
}

// A GAMMA route (parent: a Service) with the diagnosed Service as a backend: the mesh
// balances per call; istiod reports on such routes, and a route no mesh controller
// reports on is a warning (it may not be in effect).
func TestMeshRouteBackend(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("hello-v1")
	r := kitRoute("hello-grpc")
	r.Status.Parents = []gatewayv1.RouteParentStatus{{ParentRef: r.Spec.ParentRefs[0], ControllerName: "istio.io/gateway-controller",
		Conditions: []metav1.Condition{cond("Accepted", true, "Accepted", ""), cond("ResolvedRefs", true, "ResolvedRefs", "")}}}
	rep := routeDoctor(t, f, svc, Config{}, nil, r)
	noErrors(t, rep)
	if b := worst(rep, CheckBalancing); b == nil || b.Severity != Info || !strings.Contains(b.Message, "GRPCRoute hello-mesh sends calls") {
		t.Errorf("balancing:\n%s", dump(rep))
	}
	if w := worst(rep, CheckRoute); w == nil || w.Severity != OK || !strings.Contains(strings.Join(w.Evidence, "\n"), "parent Service kit/hello-grpc port 50051 (istio.io/gateway-controller)") {
		t.Errorf("route:\n%s", dump(rep))
	}
	if w := worst(rep, CheckGateway); w != nil {
		t.Errorf("a mesh parent has no Gateway to check: %+v", w)
	}
	r.Status.Parents = nil
	rep = routeDoctor(t, f, svc, Config{}, nil, r)
	noErrors(t, rep)
	if w := worst(rep, CheckRoute); w == nil || w.Severity != Warning || !strings.Contains(w.Message, "no mesh controller reports") {
		t.Errorf("route without status:\n%s", dump(rep))
	}
}
