package doctor

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
)

// checkService finds the Service and the port the client dials.
func (d *Doctor) checkService(ctx context.Context, st *state) error {
	ns, name := d.Cfg.Namespace, d.Cfg.Service
	svc, err := d.Kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		f := Finding{Severity: Error, Check: CheckService, Message: fmt.Sprintf("Service %s/%s does not exist", ns, name),
			Fix: "check -service and -namespace (the client's target is dns:///NAME.NAMESPACE.svc.cluster.local:PORT)"}
		if _, err := d.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			f.Evidence = append(f.Evidence, fmt.Sprintf("namespace %s does not exist", ns))
		} else if list, err := d.Kube.CoreV1().Services(ns).List(ctx, metav1.ListOptions{}); err == nil {
			var names []string
			for _, s := range list.Items {
				names = append(names, s.Name)
			}
			f.Evidence = append(f.Evidence, fmt.Sprintf("Services in %s: %s", ns, orNone(names)))
		}
		st.add(f)
		return nil
	}
	if err != nil {
		return fmt.Errorf("get Service %s/%s: %w", ns, name, err)
	}
	st.svc = svc

	var ports []string
	for _, p := range svc.Spec.Ports {
		ports = append(ports, fmt.Sprintf("%s %d->%s", orDash(p.Name), p.Port, p.TargetPort.String()))
	}
	if d.Cfg.Port != 0 {
		for i := range svc.Spec.Ports {
			if int(svc.Spec.Ports[i].Port) == d.Cfg.Port {
				st.port = &svc.Spec.Ports[i]
			}
		}
		if st.port == nil {
			st.add(Finding{Severity: Error, Check: CheckPorts,
				Message:  fmt.Sprintf("Service %s has no port %d: a client dialling it gets connection refused or a timeout", name, d.Cfg.Port),
				Evidence: []string{"Service ports: " + strings.Join(ports, ", ")},
				Fix:      "dial one of the Service's ports, or add this port to the Service"})
			return nil
		}
	} else {
		switch {
		case len(svc.Spec.Ports) == 0:
			st.add(Finding{Severity: Error, Check: CheckPorts, Message: fmt.Sprintf("Service %s has no ports", name),
				Fix: "add the gRPC port to spec.ports"})
			return nil
		case len(svc.Spec.Ports) == 1:
			st.port = &svc.Spec.Ports[0]
		default:
			for i, p := range svc.Spec.Ports {
				if p.Name == "grpc" || strings.HasPrefix(p.Name, "grpc-") {
					st.port = &svc.Spec.Ports[i]
					break
				}
			}
			if st.port == nil {
				st.port = &svc.Spec.Ports[0]
				st.add(Finding{Severity: Info, Check: CheckPorts,
					Message:  fmt.Sprintf("no -port and no port named grpc: diagnosing port %d", st.port.Port),
					Evidence: []string{"Service ports: " + strings.Join(ports, ", ")}})
			}
		}
	}
	kind := "ClusterIP " + svc.Spec.ClusterIP
	if headless(svc) {
		kind = "headless"
	}
	st.add(Finding{Severity: OK, Check: CheckService, Message: fmt.Sprintf("Service %s/%s exists (%s, port %d)", ns, name, kind, st.port.Port)})
	return nil
}

// checkSelector lists the pods the Service selects.
func (d *Doctor) checkSelector(ctx context.Context, st *state) error {
	ns, svc := d.Cfg.Namespace, st.svc
	if len(svc.Spec.Selector) == 0 {
		st.add(Finding{Severity: Info, Check: CheckSelector,
			Message: "the Service has no selector: its endpoints are managed by hand (or by another controller); pod checks are skipped"})
		return nil
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	list, err := d.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return fmt.Errorf("list pods of Service %s/%s: %w", ns, svc.Name, err)
	}
	for _, p := range list.Items {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		st.pods = append(st.pods, p)
	}
	sort.Slice(st.pods, func(i, j int) bool { return st.pods[i].Name < st.pods[j].Name })
	if len(st.pods) > 0 {
		ready := 0
		for i := range st.pods {
			if podReady(&st.pods[i]) {
				ready++
			}
		}
		st.add(Finding{Severity: OK, Check: CheckSelector,
			Message: fmt.Sprintf("selector %s matches %d pod(s), %d Ready", sel, len(st.pods), ready)})
		return nil
	}

	// Nothing matches: show, for every key of the selector, which values the namespace's
	// pods carry, which is where a typo shows.
	all, err := d.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list pods in %s: %w", ns, err)
	}
	var evidence []string
	for _, k := range slices.Sorted(maps.Keys(svc.Spec.Selector)) {
		values := map[string]int{}
		for _, p := range all.Items {
			if v, ok := p.Labels[k]; ok {
				values[v]++
			}
		}
		var vs []string
		for _, v := range slices.Sorted(maps.Keys(values)) {
			vs = append(vs, fmt.Sprintf("%s (%d)", v, values[v]))
		}
		evidence = append(evidence, fmt.Sprintf("selector wants %s=%s; pods in %s have %s=%s", k, svc.Spec.Selector[k], ns, k, orNone(vs)))
	}
	st.add(Finding{Severity: Error, Check: CheckSelector,
		Message:  fmt.Sprintf("selector %s matches no pod in %s: the Service has no endpoints, calls fail with UNAVAILABLE", sel, ns),
		Evidence: evidence,
		Fix:      "make spec.selector match the pod template's labels (kubectl get pods --show-labels)"})
	st.causes[causeSelector] = true
	return nil
}

// checkBalancing says what headless or not means for the client's LB policy. gRPC keeps
// one HTTP/2 connection per address it resolves: a ClusterIP resolves to one virtual
// address, so the client opens one connection, kube-proxy pins it to one pod, and every
// call of that client lands there, whatever the policy.
func (d *Doctor) checkBalancing(ctx context.Context, st *state) error {
	svc := st.svc
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		st.add(Finding{Severity: Info, Check: CheckBalancing,
			Message: fmt.Sprintf("ExternalName Service: DNS answers a CNAME to %s; balancing is up to what is there", svc.Spec.ExternalName)})
	case d.Cfg.LB == dialer.FromControlPlane:
		st.add(Finding{Severity: OK, Check: CheckBalancing,
			Message: "proxyless xDS client: istiod sends it the Service's Ready pod endpoints and it balances each call over them (headless or not does not matter; DNS is not used)"})
	case headless(svc) && d.Cfg.LB == dialer.RoundRobin:
		st.add(Finding{Severity: OK, Check: CheckBalancing,
			Message: "headless Service + round_robin: DNS returns every Ready pod and the client connects to each"})
	case headless(svc):
		st.add(Finding{Severity: Warning, Check: CheckBalancing,
			Message:  "pick_first over a headless Service: the client uses the first address only, every call goes to one pod",
			Evidence: []string{"spec.clusterIP: None, client LB policy " + d.Cfg.LB},
			Fix:      `use round_robin (greeter -lb round_robin, or loadBalancingConfig [{"round_robin":{}}] in the service config)`})
	case st.front.any():
		// A proxy balances per call over the endpoints: the ClusterIP is what it should reference.
		st.add(d.proxyBackendBalancing(ctx, st))
	default:
		f := Finding{Severity: Error, Check: CheckBalancing,
			Message: fmt.Sprintf("%s over a ClusterIP Service: DNS returns one virtual IP, so the client opens one connection and kube-proxy pins it to one pod: every call of a client goes to that pod", d.Cfg.LB),
			Evidence: []string{fmt.Sprintf("spec.clusterIP: %s (not None); client LB policy %s", svc.Spec.ClusterIP, d.Cfg.LB),
				"kube-proxy balances connections, not calls; gRPC sends every call over one long-lived connection"},
			Fix: "dial a headless Service (clusterIP: None) with the same selector and ports, with round_robin"}
		if d.Cfg.LB == dialer.PickFirst {
			// pick_first over a ClusterIP is what a client behind a proxy does (the proxy
			// balances per call), so it is not an error by itself.
			f.Severity = Warning
			f.Fix = "fine if a proxy (Ingress, Gateway, mesh) is the client; a direct client should use a headless Service (clusterIP: None) with round_robin"
		}
		if alt := d.headlessTwin(ctx, svc); alt != "" {
			f.Fix += fmt.Sprintf(": %s in this namespace is one (target dns:///%s.%s.svc.%s:%d)", alt, alt, svc.Namespace, d.Cfg.ClusterDomain, st.port.Port)
		}
		if e := st.front.elsewhereEvidence(svc.Name); e != "" {
			f.Evidence = append(f.Evidence, e)
		}
		if f.Severity == Error {
			st.causes[causeOnePod] = true
		}
		st.add(f)
	}
	return nil
}

// headlessTwin finds a headless Service with the same selector as svc, if any.
func (d *Doctor) headlessTwin(ctx context.Context, svc *corev1.Service) string {
	list, err := d.Kube.CoreV1().Services(svc.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil || len(svc.Spec.Selector) == 0 {
		return ""
	}
	for _, s := range list.Items {
		if s.Name != svc.Name && headless(&s) && maps.Equal(s.Spec.Selector, svc.Spec.Selector) {
			return s.Name
		}
	}
	return ""
}

func headless(svc *corev1.Service) bool { return svc.Spec.ClusterIP == corev1.ClusterIPNone }

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
