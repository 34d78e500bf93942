package doctor

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
)

// A GRPCRoute whose parent is a Service (GAMMA) is turned by istiod into the xDS routes of
// proxyless gRPC clients (xds:/// targets). Two of its translations hurt those clients
// (found in the kit's cluster; kustomize/components/mesh-gamma/README.md):
//   - a method match on the service alone becomes path_separated_prefix, which grpc-go
//     rejects with the WHOLE route configuration: every call of the client fails;
//   - header-modifying and mirroring filters are dropped: nothing reaches the server,
//     while the route reports Accepted.
// And istiod gives routes only to Service ports it knows speak HTTP/2 or gRPC.

// droppedFilters are the GRPCRoute filters a proxyless grpc-go client does not apply.
var droppedFilters = map[gatewayv1.GRPCRouteFilterType]string{
	gatewayv1.GRPCRouteFilterRequestHeaderModifier:  "the added/set/removed request metadata never reaches the server",
	gatewayv1.GRPCRouteFilterResponseHeaderModifier: "the response metadata is not changed",
	gatewayv1.GRPCRouteFilterRequestMirror:          "no call is mirrored",
}

// RouteProblem is one thing a proxyless client does wrong with a GAMMA route.
type RouteProblem struct {
	Breaks bool   // true: every call of the client fails (trap 1); false: silently ignored
	Field  string // where in the route, e.g. spec.rules[1].matches[0].method
	What   string
}

// ProxylessRouteProblems lists what proxyless grpc-go clients reject or drop in r, in
// the order of its rules. The render tests of kustomize/ run it on the kit's own routes.
func ProxylessRouteProblems(r *gatewayv1.GRPCRoute) []RouteProblem {
	var out []RouteProblem
	filters := func(field string, fs []gatewayv1.GRPCRouteFilter) {
		for k, f := range fs {
			if why, ok := droppedFilters[f.Type]; ok {
				out = append(out, RouteProblem{Field: fmt.Sprintf("%s.filters[%d]", field, k),
					What: fmt.Sprintf("%s filter is dropped by proxyless clients: %s (the route still reports Accepted)", f.Type, why)})
			}
		}
	}
	for i, rule := range r.Spec.Rules {
		for j, m := range rule.Matches {
			if serviceOnly(m.Method) {
				out = append(out, RouteProblem{Breaks: true, Field: fmt.Sprintf("spec.rules[%d].matches[%d].method", i, j),
					What: fmt.Sprintf("matches the service %s without a method: istiod sends it as path_separated_prefix, which grpc-go rejects together with the whole route configuration, so every call of a proxyless client fails with UNAVAILABLE", *m.Method.Service)})
			}
		}
		filters(fmt.Sprintf("spec.rules[%d]", i), rule.Filters)
		for j, b := range rule.BackendRefs {
			filters(fmt.Sprintf("spec.rules[%d].backendRefs[%d]", i, j), b.Filters)
		}
	}
	return out
}

// serviceOnly: an Exact method match (Exact is the default type) naming a service and no
// method. A RegularExpression match is sent as a regex, which grpc-go accepts.
func serviceOnly(m *gatewayv1.GRPCMethodMatch) bool {
	if m == nil || m.Type != nil && *m.Type != gatewayv1.GRPCMethodMatchExact {
		return false
	}
	return m.Service != nil && *m.Service != "" && (m.Method == nil || *m.Method == "")
}

// IstioPortProtocol is the protocol istiod gives a Service port, as istiod decides it
// (pkg/config/kube ConvertProtocol): appProtocol if set, else the port name's prefix
// before "-". ok is whether istiod builds HTTP routes (and so xDS routes for proxyless
// clients) for it: grpc, grpc-web, http, http2 (kubernetes.io/h2c) and http_proxy.
func IstioPortProtocol(p corev1.ServicePort) (proto string, ok bool) {
	if p.Protocol == corev1.ProtocolUDP {
		return "UDP", false
	}
	name := p.Name
	if p.AppProtocol != nil {
		switch *p.AppProtocol {
		case "kubernetes.io/h2c":
			return "HTTP2", true
		case "kubernetes.io/ws":
			return "HTTP", true
		case "kubernetes.io/wss":
			return "HTTPS", false
		}
		name = *p.AppProtocol
	}
	if len(name) >= len("grpc-web") && strings.EqualFold(name[:len("grpc-web")], "grpc-web") {
		return "GRPC-Web", true
	}
	if i := strings.IndexByte(name, '-'); i >= 0 {
		name = name[:i]
	}
	switch strings.ToLower(name) {
	case "grpc", "http", "http2", "http_proxy":
		return strings.ToUpper(name), true
	case "tcp", "udp", "https", "tls", "mongo", "redis", "mysql":
		return strings.ToUpper(name), false
	}
	return "unknown (TCP)", false
}

// gammaParent: r has the Service ns/name (and port, when the parentRef names one) as a
// parent.
func gammaParent(r *gatewayv1.GRPCRoute, name string, port int32) bool {
	for _, p := range r.Spec.ParentRefs {
		if p.Kind == nil || *p.Kind != "Service" || p.Group == nil || *p.Group != "" {
			continue
		}
		if p.Namespace != nil && string(*p.Namespace) != r.Namespace {
			continue // a route in another namespace: only its own namespace's clients use it
		}
		if string(p.Name) == name && (p.Port == nil || int32(*p.Port) == port) {
			return true
		}
	}
	return false
}

// checkMeshRoutes reads the GRPCRoutes whose parent is the Service (GAMMA) and reports
// what proxyless clients reject or drop, and whether istiod gives the port routes at all.
// A proxyless client (-lb xds) makes these errors and warnings; for other clients, the
// same facts are a step lower (a sidecar mesh applies such routes fine).
func (d *Doctor) checkMeshRoutes(ctx context.Context, st *state) error {
	xds := d.Cfg.LB == dialer.FromControlPlane
	var routes []gatewayv1.GRPCRoute
	if d.Gateway != nil {
		list, err := d.Gateway.GatewayV1().GRPCRoutes(st.svc.Namespace).List(ctx, metav1.ListOptions{})
		switch {
		case apierrors.IsNotFound(err):
			// No GRPCRoute CRD: no GAMMA route can exist.
		case err != nil:
			// Not fatal: the rest of the diagnosis stands without the routes.
			st.add(Finding{Severity: Warning, Check: CheckMeshRoute, Message: fmt.Sprintf("GRPCRoutes in %s not checked: %v", st.svc.Namespace, err),
				Fix: "the doctor needs list on gateway.networking.k8s.io grpcroutes in the Service's namespace"})
			return nil
		default:
			for i := range list.Items {
				if gammaParent(&list.Items[i], st.svc.Name, st.port.Port) {
					routes = append(routes, list.Items[i])
				}
			}
		}
	}
	if !xds && len(routes) == 0 {
		return nil // nothing of the mesh to say
	}
	if proto, ok := IstioPortProtocol(*st.port); !ok {
		sev := Warning
		if xds {
			sev = Error
		}
		st.add(Finding{Severity: sev, Check: CheckMeshRoute,
			Message: fmt.Sprintf("istiod treats port %d (%s) as %s, not gRPC: it sends proxyless clients no route for it, and their calls fail (the listener %s.%s.svc.%s:%d does not exist)",
				st.port.Port, orDash(st.port.Name), proto, st.svc.Name, st.svc.Namespace, d.Cfg.ClusterDomain, st.port.Port),
			Evidence: []string{fmt.Sprintf("port name %q, appProtocol %s (appProtocol wins over the name)", st.port.Name, appProtocolOf(st.port))},
			Fix:      "name the port grpc (or grpc-<suffix>) and set appProtocol: kubernetes.io/h2c (plaintext gRPC)"})
	}
	if len(routes) == 0 {
		st.add(Finding{Severity: Info, Check: CheckMeshRoute,
			Message: fmt.Sprintf("no GRPCRoute has Service %s as parent: istiod sends its default route (every method to all Ready pods, balanced per call)", st.svc.Name)})
		return nil
	}
	var broken, dropped, fine []string
	for i := range routes {
		r := &routes[i]
		ps := ProxylessRouteProblems(r)
		for _, p := range ps {
			line := fmt.Sprintf("GRPCRoute %s %s: %s", r.Name, p.Field, p.What)
			if p.Breaks {
				broken = append(broken, line)
			} else {
				dropped = append(dropped, line)
			}
		}
		if len(ps) == 0 {
			fine = append(fine, fmt.Sprintf("GRPCRoute %s: %d rule(s), exact method matches, no dropped filter", r.Name, len(r.Spec.Rules)))
		}
	}
	if len(broken) > 0 {
		sev := Warning
		if xds {
			sev = Error
		}
		st.add(Finding{Severity: sev, Check: CheckMeshRoute,
			Message:  fmt.Sprintf("a GRPCRoute on %s matches a service without a method: proxyless clients reject the whole route configuration and every call fails with UNAVAILABLE", st.svc.Name),
			Evidence: broken,
			Fix:      "match each method exactly: method: {type: Exact, service: helloworld.Hello, method: SayHello}, one match per method (greeter -xds-dump shows the NACKed route configuration)"})
	}
	if len(dropped) > 0 {
		sev := Info
		if xds {
			sev = Warning
		}
		st.add(Finding{Severity: sev, Check: CheckMeshRoute,
			Message:  "a GRPCRoute on " + st.svc.Name + " has filters proxyless clients drop: they do nothing, while the route reports Accepted",
			Evidence: dropped,
			Fix:      "set such metadata in the client (or accept that only sidecar-meshed clients apply it); remove the filter to avoid the surprise"})
	}
	if len(broken) == 0 && len(dropped) == 0 {
		st.add(Finding{Severity: OK, Check: CheckMeshRoute, Message: fmt.Sprintf("%d GRPCRoute(s) on %s: every match and filter reaches a proxyless client", len(routes), st.svc.Name), Evidence: fine})
	}
	return nil
}

func appProtocolOf(p *corev1.ServicePort) string {
	if p.AppProtocol == nil {
		return "unset"
	}
	return fmt.Sprintf("%q", *p.AppProtocol)
}
