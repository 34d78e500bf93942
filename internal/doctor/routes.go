package doctor

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// A ClusterIP Service is what a proxy should reference: a Gateway (GRPCRoute) or an
// Ingress controller reads the Service's EndpointSlices and balances each call over the
// pods itself, so the virtual IP that pins a direct client's connection to one pod plays
// no part. The doctor finds the routes and Ingresses that send calls to the Service,
// judges the Service as their backend, and reads what people otherwise read with
// `kubectl describe`: each route's parent status, the Gateway's listeners and their TLS
// Secret, ReferenceGrants for cross-namespace backends, an Ingress's class and the
// annotation that makes its controller speak gRPC to the pods.

// frontends are the proxies that send calls to the Service, found by scanFrontends.
type frontends struct {
	routes    []routeUse
	ingresses []ingressUse
	// elsewhere: in the Service's namespace, the other Services that routes and Ingresses
	// send calls to ("hello-v1 (GRPCRoute hello)"): when the Service is not a backend,
	// the one a proxy uses is probably among them.
	elsewhere map[string][]string
	grants    []grant // ReferenceGrants of the Service's namespace
	grantsErr error   // they could not be read: the controller's status is all there is
	notes     []Finding
}

// routeUse is a GRPCRoute with the backendRefs that name the Service.
type routeUse struct {
	route *gatewayv1.GRPCRoute
	refs  []routeBackend
}

type routeBackend struct {
	field string // spec.rules[i].backendRefs[j]
	port  int32  // 0: no port
	ns    string // the backend's namespace (the route's unless written)
}

// ingressUse is an Ingress with the backends that name the Service.
type ingressUse struct {
	ing      *netv1.Ingress
	backends []ingressBackend
}

type ingressBackend struct {
	field string // spec.rules[i].http.paths[j].backend or spec.defaultBackend
	host  string // "" for every host
	path  string
	port  netv1.ServiceBackendPort
}

// grant is a ReferenceGrant of either served version, reduced to what the check needs.
type grant struct {
	name string
	from []gatewayv1.ReferenceGrantFrom
	to   []gatewayv1.ReferenceGrantTo
}

func (f *frontends) any() bool { return f != nil && (len(f.routes) > 0 || len(f.ingresses) > 0) }

// scanFrontends finds the GRPCRoutes (any namespace: a route may send calls across
// namespaces, with a ReferenceGrant) and the Ingresses (the Service's namespace: an
// Ingress cannot reference another's) whose backends name the Service. No findings of
// its own but notes on what could not be read; balancing and the route checks read it.
func (d *Doctor) scanFrontends(ctx context.Context, st *state) error {
	svc := st.svc
	fe := &frontends{elsewhere: map[string][]string{}}
	st.front = fe
	if d.Gateway != nil {
		routes, err := d.Gateway.GatewayV1().GRPCRoutes(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		if apierrors.IsForbidden(err) {
			// Many roles are namespaced: the Service's own namespace is better than nothing.
			routes, err = d.Gateway.GatewayV1().GRPCRoutes(svc.Namespace).List(ctx, metav1.ListOptions{})
			if err == nil {
				fe.notes = append(fe.notes, Finding{Severity: Info, Check: CheckRoute,
					Message: fmt.Sprintf("GRPCRoutes read in %s only (no list across namespaces): a route in another namespace that sends calls to %s is not seen", svc.Namespace, svc.Name)})
			}
		}
		switch {
		case apierrors.IsNotFound(err):
			// No GRPCRoute CRD: no route can exist.
		case err != nil:
			// Not fatal: the rest of the diagnosis stands without the routes.
			fe.notes = append(fe.notes, Finding{Severity: Warning, Check: CheckRoute, Message: fmt.Sprintf("GRPCRoutes not checked: %v", err),
				Fix: "the doctor needs list on gateway.networking.k8s.io grpcroutes (cluster-wide, or at least in the Service's namespace)"})
		default:
			items := routes.Items
			slices.SortFunc(items, func(a, b gatewayv1.GRPCRoute) int {
				return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
			})
			for i := range items {
				fe.addRoute(&items[i], svc)
			}
		}
		if slices.ContainsFunc(fe.routes, func(u routeUse) bool { return u.crossNamespace() }) {
			fe.grants, fe.grantsErr = d.referenceGrants(ctx, svc.Namespace)
		}
	}
	ings, err := d.Kube.NetworkingV1().Ingresses(svc.Namespace).List(ctx, metav1.ListOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		fe.notes = append(fe.notes, Finding{Severity: Warning, Check: CheckIngress, Message: fmt.Sprintf("Ingresses in %s not checked: %v", svc.Namespace, err),
			Fix: "the doctor needs list on networking.k8s.io ingresses in the Service's namespace"})
	default:
		items := ings.Items
		slices.SortFunc(items, func(a, b netv1.Ingress) int { return cmp.Compare(a.Name, b.Name) })
		for i := range items {
			fe.addIngress(&items[i], svc)
		}
	}
	return nil
}

func (f *frontends) addRoute(r *gatewayv1.GRPCRoute, svc *corev1.Service) {
	u := routeUse{route: r}
	for i, rule := range r.Spec.Rules {
		for j, b := range rule.BackendRefs {
			ref := b.BackendObjectReference
			if ref.Group != nil && *ref.Group != "" || ref.Kind != nil && *ref.Kind != "Service" {
				continue
			}
			ns := r.Namespace
			if ref.Namespace != nil && *ref.Namespace != "" {
				ns = string(*ref.Namespace)
			}
			if ns != svc.Namespace {
				continue
			}
			if string(ref.Name) != svc.Name {
				f.elsewhere[string(ref.Name)] = appendNew(f.elsewhere[string(ref.Name)], "GRPCRoute "+qualified(r.Namespace, r.Name, svc.Namespace))
				continue
			}
			var port int32
			if ref.Port != nil {
				port = *ref.Port
			}
			u.refs = append(u.refs, routeBackend{field: fmt.Sprintf("spec.rules[%d].backendRefs[%d]", i, j), port: port, ns: ns})
		}
	}
	if len(u.refs) > 0 {
		f.routes = append(f.routes, u)
	}
}

func (f *frontends) addIngress(ing *netv1.Ingress, svc *corev1.Service) {
	u := ingressUse{ing: ing}
	add := func(field, host, path string, b *netv1.IngressBackend) {
		if b == nil || b.Service == nil {
			return
		}
		if b.Service.Name != svc.Name {
			f.elsewhere[b.Service.Name] = appendNew(f.elsewhere[b.Service.Name], "Ingress "+ing.Name)
			return
		}
		u.backends = append(u.backends, ingressBackend{field: field, host: host, path: path, port: b.Service.Port})
	}
	add("spec.defaultBackend", "", "", ing.Spec.DefaultBackend)
	for i, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for j := range rule.HTTP.Paths {
			p := &rule.HTTP.Paths[j]
			add(fmt.Sprintf("spec.rules[%d].http.paths[%d].backend", i, j), rule.Host, p.Path, &p.Backend)
		}
	}
	if len(u.backends) > 0 {
		f.ingresses = append(f.ingresses, u)
	}
}

func (u routeUse) crossNamespace() bool {
	return slices.ContainsFunc(u.refs, func(b routeBackend) bool { return b.ns != u.route.Namespace })
}

// names lists the proxies for a message: "GRPCRoute grpc-kit-gateway/hello, Ingress grpc-kit".
func (f *frontends) names(ns string) string {
	var out []string
	for _, u := range f.routes {
		out = append(out, "GRPCRoute "+qualified(u.route.Namespace, u.route.Name, ns))
	}
	for _, u := range f.ingresses {
		out = append(out, "Ingress "+u.ing.Name)
	}
	return strings.Join(out, ", ")
}

// elsewhereEvidence says which Services the namespace's proxies send calls to, when the
// diagnosed one is not among them ("" when they send none).
func (f *frontends) elsewhereEvidence(svc string) string {
	if f == nil || len(f.elsewhere) == 0 {
		return ""
	}
	var out []string
	for _, name := range slices.Sorted(maps.Keys(f.elsewhere)) {
		out = append(out, fmt.Sprintf("%s (%s)", name, strings.Join(f.elsewhere[name], ", ")))
	}
	return fmt.Sprintf("no GRPCRoute or Ingress sends calls to %s; in its namespace they send them to %s: diagnose that Service for the proxy's side", svc, strings.Join(out, ", "))
}

// proxyBackendBalancing is the balancing finding for a ClusterIP Service that proxies
// send calls to: fine for them, and what a direct client should dial instead.
func (d *Doctor) proxyBackendBalancing(ctx context.Context, st *state) Finding {
	svc, fe := st.svc, st.front
	direct := "a headless Service (clusterIP: None) with the same selector and ports"
	target := ""
	if alt := d.headlessTwin(ctx, svc); alt != "" {
		direct = "the headless Service " + alt
		target = fmt.Sprintf(" (target dns:///%s.%s.svc.%s:%d)", alt, svc.Namespace, d.Cfg.ClusterDomain, st.port.Port)
	}
	var ev []string
	for _, u := range fe.routes {
		for _, b := range u.refs {
			ev = append(ev, fmt.Sprintf("GRPCRoute %s/%s %s -> %s:%d (parent %s)", u.route.Namespace, u.route.Name, b.field, svc.Name, b.port, parentNames(u.route)))
		}
	}
	for _, u := range fe.ingresses {
		for _, b := range u.backends {
			ev = append(ev, fmt.Sprintf("Ingress %s %s: %s -> %s:%s", u.ing.Name, b.field, hostPath(b.host, b.path), svc.Name, backendPort(b.port)))
		}
	}
	ev = append(ev, fmt.Sprintf("spec.clusterIP: %s; the client LB policy (%s) matters only to clients that dial the Service directly", svc.Spec.ClusterIP, d.Cfg.LB))
	return Finding{Severity: Info, Check: CheckBalancing,
		Message: fmt.Sprintf("ClusterIP Service as a proxy backend: %s %s calls to it, and the proxy (Gateway, Ingress controller or mesh) balances each call over its endpoints, not over the virtual IP; a client that dials %s directly still sends every call to one pod: direct clients need %s with round_robin",
			fe.names(svc.Namespace), plural(len(fe.routes)+len(fe.ingresses), "sends", "send"), svc.Name, direct),
		Evidence: ev,
		Fix:      fmt.Sprintf("nothing for the proxy; point direct clients at %s%s with round_robin", direct, target)}
}

// checkRoutes judges the Service as the backend of each GRPCRoute and Ingress that sends
// calls to it, and the Gateways those routes attach to.
func (d *Doctor) checkRoutes(ctx context.Context, st *state) error {
	fe := st.front
	if fe == nil {
		return nil
	}
	for _, n := range fe.notes {
		st.add(n)
	}
	gws := &gatewayCache{d: d, got: map[string]*gatewayv1.Gateway{}, err: map[string]error{}}
	for _, u := range fe.routes {
		if err := d.judgeRoute(ctx, st, gws, u); err != nil {
			return err
		}
	}
	if err := d.checkGateways(ctx, st, gws); err != nil {
		return err
	}
	for _, u := range fe.ingresses {
		if err := d.judgeIngress(ctx, st, u); err != nil {
			return err
		}
	}
	return nil
}

// judgeRoute gives one finding for a GRPCRoute: what is wrong with its references to the
// Service (port, ReferenceGrant), then with its parents' status (Accepted, ResolvedRefs,
// as the controller reports them). The worst cause leads; the rest is evidence.
func (d *Doctor) judgeRoute(ctx context.Context, st *state, gws *gatewayCache, u routeUse) error {
	svc, r := st.svc, u.route
	name := fmt.Sprintf("GRPCRoute %s/%s", r.Namespace, r.Name)
	type cause struct {
		sev      Severity
		msg, fix string
		evidence []string
		// ourRef: the fault is in this route's reference to the Service (port,
		// ReferenceGrant); echo: the controller's ResolvedRefs=False on that reference,
		// which such a fault explains.
		ourRef, echo bool
	}
	var causes []cause
	var evidence []string
	for _, b := range u.refs {
		ref := fmt.Sprintf("%s %s -> %s/%s:%d", name, b.field, b.ns, svc.Name, b.port)
		evidence = append(evidence, ref)
		switch {
		case b.port == 0:
			causes = append(causes, cause{sev: Error, ourRef: true,
				msg: fmt.Sprintf("%s names %s without a port: a Service backend needs one, the Gateway refuses it and the route's calls to it fail with UNAVAILABLE", name, svc.Name),
				fix: fmt.Sprintf("set port: %d (the Service's gRPC port) in %s", st.port.Port, b.field)})
		case servicePort(svc, b.port) == nil:
			causes = append(causes, cause{sev: Error, ourRef: true,
				msg:      fmt.Sprintf("%s sends calls to %s port %d, which is not a port of the Service: the Gateway has no backend for it (ResolvedRefs=False, BackendNotFound) and those calls fail with UNAVAILABLE", name, svc.Name, b.port),
				evidence: []string{"Service ports: " + servicePorts(svc)},
				fix:      fmt.Sprintf("set port: %d (the Service's gRPC port, not the container's targetPort) in %s", st.port.Port, b.field)})
		case b.port != st.port.Port:
			evidence = append(evidence, fmt.Sprintf("the route uses port %d, this diagnosis checked port %d: rerun with -port %d", b.port, st.port.Port, b.port))
		}
	}
	if u.crossNamespace() {
		// Every reference to the Service crosses from the route's namespace to the
		// Service's: one grant allows them all.
		switch allowing, grants := st.front.granted(r.Namespace, svc.Name); {
		case st.front.grantsErr != nil:
			evidence = append(evidence, fmt.Sprintf("ReferenceGrants in %s not read (%v): the controller's ResolvedRefs says whether one allows the reference", svc.Namespace, st.front.grantsErr))
		case len(allowing) == 0:
			causes = append(causes, cause{sev: Error, ourRef: true,
				msg:      fmt.Sprintf("%s sends calls to %s in another namespace and no ReferenceGrant in %s allows it: the Gateway refuses the backend (ResolvedRefs=False, RefNotPermitted) and those calls fail with UNAVAILABLE", name, svc.Name, svc.Namespace),
				evidence: []string{fmt.Sprintf("ReferenceGrants in %s: %s", svc.Namespace, orNone(grants))},
				fix:      referenceGrantFix(r.Namespace, svc.Namespace, svc.Name)})
		default:
			evidence = append(evidence, "cross-namespace reference allowed by ReferenceGrant "+strings.Join(allowing, ", "))
		}
	}

	// The parents, as the controllers report them.
	for _, p := range r.Spec.ParentRefs {
		pname := parentName(p, r.Namespace)
		ps := parentStatus(r, p)
		gatewayParent := isGatewayParent(p)
		if ps == nil {
			switch {
			case !gatewayParent:
				causes = append(causes, cause{sev: Warning,
					msg: fmt.Sprintf("no mesh controller reports on %s for its parent %s: the route may not be in effect", name, pname),
					fix: "check that the mesh (istiod) runs and watches this namespace: kubectl describe grpcroute"})
			default:
				gw, err := gws.get(ctx, parentNamespace(p, r.Namespace), string(p.Name))
				switch {
				case err != nil:
					evidence = append(evidence, fmt.Sprintf("parent %s: no status, and the Gateway could not be read: %v", pname, err))
				case gw == nil:
					causes = append(causes, cause{sev: Error,
						msg: fmt.Sprintf("%s's parent %s does not exist: the route is attached to nothing and no call reaches %s through it", name, pname, svc.Name),
						fix: "fix parentRefs (name, namespace) to name the Gateway, or create it (kubectl get gateways -A)"})
				case meta.FindStatusCondition(gw.Status.Conditions, string(gatewayv1.GatewayConditionAccepted)) == nil:
					// The Gateway itself is not served: the gateway check names that.
					evidence = append(evidence, fmt.Sprintf("parent %s: no status, and no controller reports on the Gateway either (see gateway)", pname))
				default:
					causes = append(causes, cause{sev: Error,
						msg: fmt.Sprintf("the controller of %s does not report on %s: it does not take the route (parentRef names no listener, or the controller has not caught up), and no call reaches %s through it", pname, name, svc.Name),
						fix: "check parentRefs (name, sectionName, port) against the Gateway's listeners: kubectl describe grpcroute " + r.Name})
				}
			}
			continue
		}
		accepted := meta.FindStatusCondition(ps.Conditions, string(gatewayv1.RouteConditionAccepted))
		resolved := meta.FindStatusCondition(ps.Conditions, string(gatewayv1.RouteConditionResolvedRefs))
		line := fmt.Sprintf("parent %s (%s): %s; %s", pname, ps.ControllerName, condText(accepted, "Accepted"), condText(resolved, "ResolvedRefs"))
		if accepted != nil && accepted.ObservedGeneration != 0 && accepted.ObservedGeneration < r.Generation {
			line += fmt.Sprintf(" (status of generation %d, the route is at %d: the controller has not caught up)", accepted.ObservedGeneration, r.Generation)
		}
		evidence = append(evidence, line)
		if accepted != nil && accepted.Status == metav1.ConditionFalse {
			causes = append(causes, cause{sev: Error,
				msg: fmt.Sprintf("%s is not accepted by %s (%s): no call reaches %s through it", name, pname, reasonOf(accepted), svc.Name),
				fix: acceptedFix(accepted.Reason, r, p)})
		}
		if resolved != nil && resolved.Status == metav1.ConditionFalse {
			ours := strings.Contains(resolved.Message, svc.Namespace+"/"+svc.Name) ||
				resolved.Reason == string(gatewayv1.RouteReasonRefNotPermitted) && u.crossNamespace()
			c := cause{sev: Warning,
				msg: fmt.Sprintf("%s has ResolvedRefs=False on %s (%s), about another of its backends: the calls of that rule that go there fail, calls to %s are not affected", name, pname, reasonOf(resolved), svc.Name),
				fix: "kubectl describe grpcroute " + r.Name + " names the backend; see that Service"}
			if ours {
				c = cause{sev: Error, echo: true,
					msg: fmt.Sprintf("%s cannot use %s as a backend (ResolvedRefs=False on %s, %s): those calls fail with UNAVAILABLE", name, svc.Name, pname, reasonOf(resolved)),
					fix: resolvedRefsFix(resolved.Reason, r.Namespace, svc.Namespace, svc.Name, st.port.Port)}
			}
			causes = append(causes, c)
		}
	}

	// The worst cause leads, a fault in this Service's reference before the rest; the
	// controller's ResolvedRefs=False that such a fault explains is no second cause.
	ourFault := slices.ContainsFunc(causes, func(c cause) bool { return c.ourRef })
	causes = slices.DeleteFunc(causes, func(c cause) bool { return c.echo && ourFault })
	slices.SortStableFunc(causes, func(a, b cause) int {
		return cmp.Or(cmp.Compare(b.sev, a.sev), boolOrder(b.ourRef, a.ourRef))
	})
	if len(causes) == 0 {
		st.add(Finding{Severity: OK, Check: CheckRoute,
			Message:  fmt.Sprintf("%s sends calls to %s: accepted by its parent(s), backends resolved", name, svc.Name),
			Evidence: evidence})
		return nil
	}
	lead := causes[0]
	f := Finding{Severity: lead.sev, Check: CheckRoute, Message: lead.msg, Fix: lead.fix, Evidence: append(lead.evidence, evidence...)}
	for _, c := range causes[1:] {
		f.Evidence = append(f.Evidence, "also: "+c.msg)
	}
	st.add(f)
	return nil
}

func boolOrder(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// granted: the ReferenceGrants of the Service's namespace that let GRPCRoutes of routeNS
// reference the Service, and every grant there, described for the evidence.
func (f *frontends) granted(routeNS, svc string) (allowing, all []string) {
	for _, g := range f.grants {
		var from, to []string
		fromOK, toOK := false, false
		for _, fr := range g.from {
			from = append(from, fmt.Sprintf("%s in %s", fr.Kind, fr.Namespace))
			if fr.Group == gatewayv1.GroupName && fr.Kind == "GRPCRoute" && string(fr.Namespace) == routeNS {
				fromOK = true
			}
		}
		for _, t := range g.to {
			n := "(any)"
			if t.Name != nil && *t.Name != "" {
				n = string(*t.Name)
			}
			to = append(to, fmt.Sprintf("%s %s", cmp.Or(string(t.Kind), "?"), n))
			if t.Group == "" && t.Kind == "Service" && (t.Name == nil || *t.Name == "" || string(*t.Name) == svc) {
				toOK = true
			}
		}
		if fromOK && toOK {
			allowing = append(allowing, g.name)
		}
		all = append(all, fmt.Sprintf("%s (from %s; to %s)", g.name, strings.Join(from, ", "), strings.Join(to, ", ")))
	}
	return allowing, all
}

// referenceGrants reads the ReferenceGrants of ns, v1 where served, else v1beta1.
func (d *Doctor) referenceGrants(ctx context.Context, ns string) ([]grant, error) {
	var out []grant
	list, err := d.Gateway.GatewayV1().ReferenceGrants(ns).List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, g := range list.Items {
			out = append(out, grant{name: g.Name, from: g.Spec.From, to: g.Spec.To})
		}
		return out, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	old, err := d.Gateway.GatewayV1beta1().ReferenceGrants(ns).List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil // no ReferenceGrant CRD: no grant
	}
	if err != nil {
		return nil, err
	}
	for _, g := range old.Items {
		out = append(out, grant{name: g.Name, from: g.Spec.From, to: g.Spec.To})
	}
	return out, nil
}

func referenceGrantFix(routeNS, svcNS, svc string) string {
	return fmt.Sprintf("create a ReferenceGrant in %s (the Service's namespace: its owner allows the reference): "+
		"spec: {from: [{group: gateway.networking.k8s.io, kind: GRPCRoute, namespace: %s}], to: [{group: \"\", kind: Service, name: %s}]} "+
		"(the kit's: kustomize/overlays/gateway-api/reference-grant)", svcNS, routeNS, svc)
}

func acceptedFix(reason string, r *gatewayv1.GRPCRoute, p gatewayv1.ParentReference) string {
	switch gatewayv1.RouteConditionReason(reason) {
	case gatewayv1.RouteReasonNotAllowedByListeners:
		return fmt.Sprintf("the Gateway's listeners do not admit GRPCRoutes from %s: set allowedRoutes.namespaces (from: All, or a Selector) on the listener, or move the route into the Gateway's namespace", r.Namespace)
	case gatewayv1.RouteReasonNoMatchingListenerHostname:
		return fmt.Sprintf("the route's hostnames (%s) match no listener hostname of the Gateway: make them intersect (kubectl get gateway %s -o yaml)", orNone(hostnames(r)), p.Name)
	case gatewayv1.RouteReasonNoMatchingParent:
		return "parentRef's sectionName or port names no listener of the Gateway: fix it or drop it to attach to every listener"
	case gatewayv1.RouteReasonUnsupportedValue:
		return "the route uses a value the implementation does not support: kubectl describe grpcroute " + r.Name + " says which"
	}
	return "kubectl describe grpcroute " + r.Name + " (status.parents) and the Gateway controller's log say why"
}

func resolvedRefsFix(reason, routeNS, svcNS, svc string, port int32) string {
	switch gatewayv1.RouteConditionReason(reason) {
	case gatewayv1.RouteReasonRefNotPermitted:
		return referenceGrantFix(routeNS, svcNS, svc)
	case gatewayv1.RouteReasonBackendNotFound:
		return fmt.Sprintf("the controller finds no such Service, port or EndpointSlice: reference %s port %d, and check the Service's selector", svc, port)
	case gatewayv1.RouteReasonUnsupportedProtocol:
		return "set the Service port's appProtocol to kubernetes.io/h2c (plaintext gRPC) or https (TLS to the pods), protocol TCP; Traefik rejects the non-standard \"grpc\""
	case gatewayv1.RouteReasonInvalidKind:
		return "a backendRef to a Service has group \"\" and kind Service"
	}
	return "kubectl describe grpcroute and the Gateway controller's log say why"
}

// gatewayCache reads each parent Gateway once per diagnosis, and remembers which of
// their listeners the routes attach to.
type gatewayCache struct {
	d         *Doctor
	got       map[string]*gatewayv1.Gateway // nil: does not exist
	err       map[string]error
	order     []string
	listeners map[string]map[string]bool // gateway key -> listener names the routes select
}

func (c *gatewayCache) get(ctx context.Context, ns, name string) (*gatewayv1.Gateway, error) {
	key := ns + "/" + name
	if gw, ok := c.got[key]; ok {
		return gw, c.err[key]
	}
	gw, err := c.d.Gateway.GatewayV1().Gateways(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		gw, err = nil, nil
	case err != nil:
		// Not fatal: the route's own status stands without its Gateway.
		gw, err = nil, fmt.Errorf("get Gateway %s: %w", key, err)
	}
	c.got[key], c.err[key] = gw, err
	if err == nil {
		c.order = append(c.order, key)
	}
	return gw, err
}

// selectListeners records the listeners of gw that p attaches to: the one its sectionName
// names, those on its port, or all.
func (c *gatewayCache) selectListeners(gw *gatewayv1.Gateway, p gatewayv1.ParentReference) {
	if c.listeners == nil {
		c.listeners = map[string]map[string]bool{}
	}
	key := gw.Namespace + "/" + gw.Name
	if c.listeners[key] == nil {
		c.listeners[key] = map[string]bool{}
	}
	for _, l := range gw.Spec.Listeners {
		if p.SectionName != nil && *p.SectionName != l.Name || p.Port != nil && *p.Port != l.Port {
			continue
		}
		c.listeners[key][string(l.Name)] = true
	}
}

// checkGateways judges each Gateway the routes attach to: its class, whether a controller
// serves it, and each listener the routes use: Programmed, routes attached, and for TLS
// listeners that their certificate Secret exists. One finding per broken listener.
func (d *Doctor) checkGateways(ctx context.Context, st *state, gws *gatewayCache) error {
	// Which Gateways and listeners: every Gateway parent of the routes that exists.
	for _, u := range st.front.routes {
		for _, p := range u.route.Spec.ParentRefs {
			if !isGatewayParent(p) {
				continue
			}
			key := parentNamespace(p, u.route.Namespace) + "/" + string(p.Name)
			_, seen := gws.got[key]
			gw, err := gws.get(ctx, parentNamespace(p, u.route.Namespace), string(p.Name))
			if err != nil {
				if !seen {
					st.add(Finding{Severity: Warning, Check: CheckGateway, Message: fmt.Sprintf("Gateway not checked: %v", err),
						Fix: "the doctor needs get on gateway.networking.k8s.io gateways"})
				}
				continue
			}
			if gw != nil {
				gws.selectListeners(gw, p)
			}
		}
	}
	for _, key := range gws.order {
		gw := gws.got[key]
		if gw == nil {
			continue // the route check reported it
		}
		name := "Gateway " + key
		if meta.FindStatusCondition(gw.Status.Conditions, string(gatewayv1.GatewayConditionAccepted)) == nil {
			f := Finding{Severity: Error, Check: CheckGateway,
				Message: fmt.Sprintf("no controller reports on %s (GatewayClass %s): nothing serves it, calls through it fail", name, gw.Spec.GatewayClassName),
				Fix:     "install or fix the controller of the GatewayClass, or set gatewayClassName to an installed one (kubectl get gatewayclass)"}
			gc, err := d.Gateway.GatewayV1().GatewayClasses().Get(ctx, string(gw.Spec.GatewayClassName), metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				f.Message = fmt.Sprintf("%s has gatewayClassName %s, and no such GatewayClass exists: no controller serves the Gateway, calls through it fail", name, gw.Spec.GatewayClassName)
				var names []string
				if list, err := d.Gateway.GatewayV1().GatewayClasses().List(ctx, metav1.ListOptions{}); err == nil {
					for _, c := range list.Items {
						names = append(names, c.Name)
					}
				}
				f.Evidence = append(f.Evidence, "GatewayClasses: "+orNone(names))
			case err == nil:
				f.Evidence = append(f.Evidence, fmt.Sprintf("GatewayClass %s: controller %s, %s", gc.Name, gc.Spec.ControllerName,
					condText(meta.FindStatusCondition(gc.Status.Conditions, string(gatewayv1.GatewayClassConditionStatusAccepted)), "Accepted")))
			}
			st.add(f)
			continue
		}
		var fine []string
		broken := false
		for _, l := range gw.Spec.Listeners {
			if !gws.listeners[key][string(l.Name)] {
				continue
			}
			f, line, err := d.judgeListener(ctx, gw, l)
			if err != nil {
				return err
			}
			if f != nil {
				broken = true
				st.add(*f)
				continue
			}
			fine = append(fine, line)
		}
		if !broken {
			st.add(Finding{Severity: OK, Check: CheckGateway,
				Message:  fmt.Sprintf("%s (class %s): %s", name, gw.Spec.GatewayClassName, condText(meta.FindStatusCondition(gw.Status.Conditions, string(gatewayv1.GatewayConditionProgrammed)), "Programmed")),
				Evidence: fine})
		}
	}
	return nil
}

// judgeListener returns an error finding for a listener that does not serve, or the
// evidence line of one that does.
func (d *Doctor) judgeListener(ctx context.Context, gw *gatewayv1.Gateway, l gatewayv1.Listener) (*Finding, string, error) {
	var ls *gatewayv1.ListenerStatus
	for i := range gw.Status.Listeners {
		if gw.Status.Listeners[i].Name == l.Name {
			ls = &gw.Status.Listeners[i]
		}
	}
	host := "any host"
	if l.Hostname != nil {
		host = string(*l.Hostname)
	}
	desc := fmt.Sprintf("listener %s (%s :%d, %s) of Gateway %s/%s", l.Name, l.Protocol, l.Port, host, gw.Namespace, gw.Name)
	var conds []metav1.Condition
	var attached int32
	if ls != nil {
		conds, attached = ls.Conditions, ls.AttachedRoutes
	}
	programmed := meta.FindStatusCondition(conds, string(gatewayv1.ListenerConditionProgrammed))
	var condLines []string
	for _, c := range conds {
		condLines = append(condLines, condText(&c, c.Type))
	}
	evidence := []string{fmt.Sprintf("%s: %s; %d route(s) attached", desc, orNone(condLines), attached)}

	// The certificate: a Secret that does not exist is the usual cause of a TLS
	// listener that is not programmed, and the one kubectl describe does not spell out.
	var tlsLines []string
	if l.TLS != nil && (l.TLS.Mode == nil || *l.TLS.Mode == gatewayv1.TLSModeTerminate) {
		for _, ref := range l.TLS.CertificateRefs {
			if ref.Group != nil && *ref.Group != "" || ref.Kind != nil && *ref.Kind != "Secret" {
				continue
			}
			ns := gw.Namespace
			if ref.Namespace != nil && *ref.Namespace != "" {
				ns = string(*ref.Namespace)
			}
			s, err := d.Kube.CoreV1().Secrets(ns).Get(ctx, string(ref.Name), metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				return &Finding{Severity: Error, Check: CheckGateway,
					Message:  fmt.Sprintf("the TLS Secret %s/%s of %s does not exist: the listener is not programmed and TLS clients of %s:%d fail", ns, ref.Name, desc, host, l.Port),
					Evidence: evidence,
					Fix:      fmt.Sprintf("create it: kubectl -n %s create secret tls %s --cert=tls.crt --key=tls.key (a certificate whose SANs include %s)", ns, ref.Name, host)}, "", nil
			case err != nil:
				tlsLines = append(tlsLines, fmt.Sprintf("TLS Secret %s/%s not checked: %v", ns, ref.Name, err))
			case len(s.Data[corev1.TLSCertKey]) == 0 || len(s.Data[corev1.TLSPrivateKeyKey]) == 0:
				return &Finding{Severity: Error, Check: CheckGateway,
					Message:  fmt.Sprintf("the TLS Secret %s/%s of %s has no %s and %s: the listener cannot serve TLS", ns, ref.Name, desc, corev1.TLSCertKey, corev1.TLSPrivateKeyKey),
					Evidence: evidence,
					Fix:      fmt.Sprintf("recreate it as type kubernetes.io/tls: kubectl -n %s create secret tls %s --cert=tls.crt --key=tls.key", ns, ref.Name)}, "", nil
			default:
				tlsLines = append(tlsLines, fmt.Sprintf("TLS Secret %s/%s present", ns, ref.Name))
			}
		}
	}
	if programmed == nil || programmed.Status != metav1.ConditionTrue {
		why := "no Programmed condition"
		reason := ""
		if programmed != nil {
			why, reason = reasonOf(programmed), programmed.Reason
		}
		// A listener that is not accepted has no Programmed condition at all (Traefik):
		// its Accepted or ResolvedRefs condition carries the reason.
		for _, t := range []gatewayv1.ListenerConditionType{gatewayv1.ListenerConditionAccepted, gatewayv1.ListenerConditionResolvedRefs} {
			if c := meta.FindStatusCondition(conds, string(t)); c != nil && c.Status == metav1.ConditionFalse {
				why, reason = fmt.Sprintf("%s=False, %s", t, reasonOf(c)), c.Reason
				break
			}
		}
		return &Finding{Severity: Error, Check: CheckGateway,
			Message:  fmt.Sprintf("%s is not programmed (%s): clients of %s:%d get no route", desc, why, host, l.Port),
			Evidence: append(evidence, tlsLines...),
			Fix:      listenerFix(reason, l)}, "", nil
	}
	line := fmt.Sprintf("listener %s (%s :%d, %s): Programmed, %d route(s) attached", l.Name, l.Protocol, l.Port, host, attached)
	if len(tlsLines) > 0 {
		line += ", " + strings.Join(tlsLines, ", ")
	}
	return nil, line, nil
}

func listenerFix(reason string, l gatewayv1.Listener) string {
	switch gatewayv1.ListenerConditionReason(reason) {
	case gatewayv1.ListenerReasonPortUnavailable:
		return fmt.Sprintf("port %d is not one the implementation can open: Traefik binds listeners to its entry point ports (the kit's: 8000 web, 8443 websecure)", l.Port)
	case gatewayv1.ListenerReasonInvalidCertificateRef:
		return "the certificateRef must name a Secret of type kubernetes.io/tls holding a valid certificate and key (kubectl describe gateway shows the controller's message)"
	case gatewayv1.ListenerReasonRefNotPermitted:
		return "a certificate Secret in another namespace needs a ReferenceGrant there: from Gateway in the Gateway's namespace, to Secret"
	case gatewayv1.ListenerReasonUnsupportedProtocol:
		return "use a protocol the implementation supports for gRPC: HTTPS (TLS terminated at the Gateway) or HTTP (h2c)"
	}
	return "kubectl describe gateway (status.listeners) and the controller's log say why"
}

// judgeIngress checks an Ingress that sends calls to the Service: its class (and so its
// controller), the setting that makes that controller speak gRPC to the pods, the ports
// of its backends, and its TLS Secrets. One finding per fault.
func (d *Doctor) judgeIngress(ctx context.Context, st *state, u ingressUse) error {
	svc, ing := st.svc, u.ing
	name := "Ingress " + ing.Name
	var ev []string
	for _, b := range u.backends {
		ev = append(ev, fmt.Sprintf("%s: %s -> %s:%s", b.field, hostPath(b.host, b.path), svc.Name, backendPort(b.port)))
	}
	bad := 0
	add := func(f Finding) {
		f.Check = CheckIngress
		if f.Severity >= Warning {
			bad++
		}
		st.add(f)
	}

	// The class and its controller.
	class, classFrom := "", ""
	switch {
	case ing.Spec.IngressClassName != nil && *ing.Spec.IngressClassName != "":
		class, classFrom = *ing.Spec.IngressClassName, "spec.ingressClassName"
	case ing.Annotations["kubernetes.io/ingress.class"] != "":
		class, classFrom = ing.Annotations["kubernetes.io/ingress.class"], "annotation kubernetes.io/ingress.class (deprecated)"
	}
	controller := ""
	classes, err := d.Kube.NetworkingV1().IngressClasses().List(ctx, metav1.ListOptions{})
	switch {
	case err != nil:
		ev = append(ev, fmt.Sprintf("IngressClasses not read (%v): the controller is guessed from the class name", err))
		controller = guessController(class)
	case class == "":
		for _, c := range classes.Items {
			if c.Annotations[netv1.AnnotationIsDefaultIngressClass] == "true" {
				class, classFrom, controller = c.Name, "the default IngressClass", c.Spec.Controller
			}
		}
		if class == "" {
			add(Finding{Severity: Warning,
				Message:  fmt.Sprintf("%s has no class and the cluster has no default IngressClass: only a controller that also takes Ingresses without a class serves it", name),
				Evidence: ev,
				Fix:      fmt.Sprintf("set spec.ingressClassName (IngressClasses here: %s)", orNone(classNames(classes.Items)))})
		}
	default:
		for _, c := range classes.Items {
			if c.Name == class {
				controller = c.Spec.Controller
			}
		}
		if controller == "" && classFrom == "spec.ingressClassName" {
			add(Finding{Severity: Error,
				Message:  fmt.Sprintf("%s has ingressClassName %s and no such IngressClass exists: no controller serves it, its calls never reach %s", name, class, svc.Name),
				Evidence: append(ev, "IngressClasses: "+orNone(classNames(classes.Items))),
				Fix:      "set spec.ingressClassName to an IngressClass of an installed controller (kubectl get ingressclass)"})
			return nil
		}
		if controller == "" {
			controller = guessController(class)
		}
	}
	if class != "" {
		ev = append(ev, fmt.Sprintf("class %s (from %s), controller %s", class, classFrom, cmp.Or(controller, "unknown")))
	}

	// The protocol to the pods: without the controller's gRPC setting it proxies HTTP/1.1
	// and every call fails.
	appProto := ""
	if st.port.AppProtocol != nil {
		appProto = *st.port.AppProtocol
	}
	const nginxBP = "nginx.ingress.kubernetes.io/backend-protocol"
	const traefikScheme = "traefik.ingress.kubernetes.io/service.serversscheme"
	proto := ""
	switch controller {
	case "k8s.io/ingress-nginx":
		bp, set := ing.Annotations[nginxBP]
		switch up := strings.ToUpper(bp); {
		case up == "GRPC" || up == "GRPCS":
			proto = fmt.Sprintf("%s: %s", nginxBP, bp)
			if up == "GRPCS" && appProto == "kubernetes.io/h2c" || up == "GRPC" && appProto == "https" {
				add(Finding{Severity: Warning,
					Message:  fmt.Sprintf("%s has %s: %s and the Service port's appProtocol is %s: one of them is wrong about TLS to the pods", name, nginxBP, bp, appProto),
					Evidence: ev,
					Fix:      "GRPC for plaintext (h2c) pods, GRPCS for pods that serve TLS; the doctor's tls check says which the pods speak"})
			}
		default:
			what := "no " + nginxBP + " annotation"
			if set {
				what = fmt.Sprintf("%s: %q", nginxBP, bp)
			}
			add(Finding{Severity: Error,
				Message:  fmt.Sprintf("%s (class %s, ingress-nginx) has %s: the controller speaks HTTP/1.1 to the pods and every gRPC call through it fails", name, class, what),
				Evidence: ev,
				Fix:      fmt.Sprintf("annotate the Ingress %s: GRPC (plaintext pods; GRPCS if the pods serve TLS)", nginxBP)})
		}
	case "traefik.io/ingress-controller":
		switch s := svc.Annotations[traefikScheme]; s {
		case "h2c", "https":
			proto = fmt.Sprintf("Service annotation %s: %s", traefikScheme, s)
		default:
			add(Finding{Severity: Error,
				Message:  fmt.Sprintf("%s (class %s, Traefik) sends calls to %s, which has no %s: h2c annotation: Traefik speaks HTTP/1.1 to the pods and every gRPC call through it fails", name, class, svc.Name, traefikScheme),
				Evidence: ev,
				Fix:      fmt.Sprintf("annotate the Service %s: h2c (plaintext pods; https if they serve TLS)", traefikScheme)})
		}
	case "":
	default:
		ev = append(ev, fmt.Sprintf("controller %s: the doctor knows no gRPC setting of it; it must speak HTTP/2 to the pods", controller))
	}

	// The backends' ports: a port the Service does not have leaves the controller without
	// endpoints for the path.
	for _, b := range u.backends {
		if b.port.Name != "" && !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == b.port.Name }) ||
			b.port.Name == "" && servicePort(svc, b.port.Number) == nil {
			add(Finding{Severity: Error,
				Message:  fmt.Sprintf("%s sends %s to %s port %s, which is not a port of the Service: the controller has no endpoints for it and those calls fail", name, hostPath(b.host, b.path), svc.Name, backendPort(b.port)),
				Evidence: append([]string{fmt.Sprintf("%s; Service ports: %s", b.field, servicePorts(svc))}, ev...),
				Fix:      fmt.Sprintf("set %s.service.port to name: %s or number: %d (the Service's port, not the container's)", b.field, orDash(st.port.Name), st.port.Port)})
		}
	}

	// TLS Secrets of the hosts that lead to the Service.
	hosts := map[string]bool{}
	for _, b := range u.backends {
		hosts[b.host] = true
	}
	var tlsLines []string
	for i, t := range ing.Spec.TLS {
		if t.SecretName == "" || len(t.Hosts) > 0 && !slices.ContainsFunc(t.Hosts, func(h string) bool { return hosts[h] || hosts[""] }) {
			continue
		}
		_, err := d.Kube.CoreV1().Secrets(ing.Namespace).Get(ctx, t.SecretName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			add(Finding{Severity: Error,
				Message:  fmt.Sprintf("the TLS Secret %s of %s (spec.tls[%d], %s) does not exist: the controller serves its default certificate there and TLS clients fail to verify it", t.SecretName, name, i, orNone(t.Hosts)),
				Evidence: ev,
				Fix:      fmt.Sprintf("create it: kubectl -n %s create secret tls %s --cert=tls.crt --key=tls.key (a certificate whose SANs include %s)", ing.Namespace, t.SecretName, orNone(t.Hosts))})
		case err != nil:
			tlsLines = append(tlsLines, fmt.Sprintf("TLS Secret %s not checked: %v", t.SecretName, err))
		default:
			tlsLines = append(tlsLines, fmt.Sprintf("TLS Secret %s present", t.SecretName))
		}
	}
	if bad == 0 {
		msg := fmt.Sprintf("%s sends calls to %s", name, svc.Name)
		if class != "" {
			msg += fmt.Sprintf(" (class %s)", class)
		}
		if proto != "" {
			msg += "; " + proto
		}
		if len(tlsLines) > 0 {
			msg += "; " + strings.Join(tlsLines, ", ")
		}
		if addr := ingressAddresses(ing); addr == "" {
			ev = append(ev, "no address in status.loadBalancer yet: the controller has not published one (some never do)")
		} else {
			ev = append(ev, "address "+addr)
		}
		add(Finding{Severity: OK, Message: msg, Evidence: ev})
	}
	return nil
}

// guessController: the controller a class name usually stands for, when the IngressClasses
// cannot be read.
func guessController(class string) string {
	switch class {
	case "nginx":
		return "k8s.io/ingress-nginx"
	case "traefik":
		return "traefik.io/ingress-controller"
	}
	return ""
}

func classNames(cs []netv1.IngressClass) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func ingressAddresses(ing *netv1.Ingress) string {
	var out []string
	for _, a := range ing.Status.LoadBalancer.Ingress {
		out = append(out, cmp.Or(a.IP, a.Hostname))
	}
	return strings.Join(out, ", ")
}

func isGatewayParent(p gatewayv1.ParentReference) bool {
	return (p.Group == nil || *p.Group == gatewayv1.GroupName) && (p.Kind == nil || *p.Kind == "Gateway")
}

func parentNamespace(p gatewayv1.ParentReference, routeNS string) string {
	if p.Namespace != nil && *p.Namespace != "" {
		return string(*p.Namespace)
	}
	return routeNS
}

// parentName: "Gateway grpc-kit-gateway/grpc-kit", with the section or port it names.
func parentName(p gatewayv1.ParentReference, routeNS string) string {
	kind := "Gateway"
	if p.Kind != nil {
		kind = string(*p.Kind)
	}
	s := fmt.Sprintf("%s %s/%s", kind, parentNamespace(p, routeNS), p.Name)
	if p.SectionName != nil {
		s += " listener " + string(*p.SectionName)
	}
	if p.Port != nil {
		s += fmt.Sprintf(" port %d", *p.Port)
	}
	return s
}

func parentNames(r *gatewayv1.GRPCRoute) string {
	var out []string
	for _, p := range r.Spec.ParentRefs {
		out = append(out, parentName(p, r.Namespace))
	}
	return orNone(out)
}

// parentStatus is the route's status entry for parentRef p (nil: no controller reported).
func parentStatus(r *gatewayv1.GRPCRoute, p gatewayv1.ParentReference) *gatewayv1.RouteParentStatus {
	norm := func(q gatewayv1.ParentReference) string {
		group, kind := gatewayv1.GroupName, "Gateway"
		if q.Group != nil {
			group = string(*q.Group)
		}
		if q.Kind != nil {
			kind = string(*q.Kind)
		}
		s := fmt.Sprintf("%s/%s/%s/%s", group, kind, parentNamespace(q, r.Namespace), q.Name)
		if q.SectionName != nil {
			s += "#" + string(*q.SectionName)
		}
		if q.Port != nil {
			s += fmt.Sprintf(":%d", *q.Port)
		}
		return s
	}
	want := norm(p)
	for i := range r.Status.Parents {
		if norm(r.Status.Parents[i].ParentRef) == want {
			return &r.Status.Parents[i]
		}
	}
	return nil
}

func hostnames(r *gatewayv1.GRPCRoute) []string {
	var out []string
	for _, h := range r.Spec.Hostnames {
		out = append(out, string(h))
	}
	return out
}

// condText: "Accepted=True" or "ResolvedRefs=False (RefNotPermitted: message)".
func condText(c *metav1.Condition, typ string) string {
	if c == nil {
		return typ + " not reported"
	}
	s := fmt.Sprintf("%s=%s", c.Type, c.Status)
	if c.Status != metav1.ConditionTrue {
		s += " (" + reasonOf(c) + ")"
	}
	return s
}

func reasonOf(c *metav1.Condition) string {
	if c.Message == "" {
		return c.Reason
	}
	return c.Reason + ": " + c.Message
}

func servicePort(svc *corev1.Service, port int32) *corev1.ServicePort {
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Port == port {
			return &svc.Spec.Ports[i]
		}
	}
	return nil
}

func servicePorts(svc *corev1.Service) string {
	var out []string
	for _, p := range svc.Spec.Ports {
		out = append(out, fmt.Sprintf("%s %d", orDash(p.Name), p.Port))
	}
	return orNone(out)
}

func backendPort(p netv1.ServiceBackendPort) string {
	if p.Name != "" {
		return p.Name
	}
	return fmt.Sprint(p.Number)
}

func hostPath(host, path string) string {
	return cmp.Or(host, "*") + cmp.Or(path, "/")
}

// qualified is ns/name, or name alone in the namespace the reader is looking at.
func qualified(ns, name, here string) string {
	if ns == here {
		return name
	}
	return ns + "/" + name
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func appendNew(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}
