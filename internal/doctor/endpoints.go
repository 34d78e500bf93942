package doctor

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// checkEndpoints counts ready and not-ready endpoints in the Service's EndpointSlices and
// says, for each pod that is not ready, why: the pod's state, the failing probe and the
// kubelet's last probe event, and what the server's health service says right now.
func (d *Doctor) checkEndpoints(ctx context.Context, st *state) error {
	ns, name := d.Cfg.Namespace, st.svc.Name
	list, err := d.Kube.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + name})
	if err != nil {
		return fmt.Errorf("list EndpointSlices of %s/%s: %w", ns, name, err)
	}
	seen := map[string]bool{}
	for _, s := range list.Items {
		for _, ep := range s.Endpoints {
			for _, ip := range ep.Addresses {
				if seen[ip] {
					continue // one address may appear in an IPv4 and a dual-stack slice
				}
				seen[ip] = true
				e := endpoint{ip: ip, ready: ep.Conditions.Ready == nil || *ep.Conditions.Ready,
					terminating: ep.Conditions.Terminating != nil && *ep.Conditions.Terminating}
				if ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" {
					e.pod = ep.TargetRef.Name
				}
				st.eps = append(st.eps, e)
			}
		}
	}
	ready := 0
	for _, e := range st.eps {
		if e.ready {
			ready++
		}
	}
	switch {
	case st.causes[causeSelector]:
		st.add(Finding{Severity: Info, Check: CheckEndpoints, Message: fmt.Sprintf("%d endpoint(s): the selector matches no pod (see selector)", len(st.eps))})
		return nil
	case len(st.eps) == 0 && len(st.pods) > 0:
		f := Finding{Severity: Warning, Check: CheckEndpoints,
			Message: fmt.Sprintf("no endpoints although %d pod(s) match: the EndpointSlice controller has not caught up, or targetPort names no port of the pods", len(st.pods))}
		if st.causes[causePorts] {
			f.Severity, f.Message = Info, "no endpoints: targetPort names no port of the pods (see ports)"
		}
		st.add(f)
		return nil
	}

	var unready []*corev1.Pod
	for i := range st.pods {
		if !podReady(&st.pods[i]) {
			unready = append(unready, &st.pods[i])
		}
	}
	var evidence []string
	allNotServing, allProbe := len(unready) > 0, len(unready) > 0
	for _, pod := range unready {
		reasons, notServing, probeFailing := d.notReadyReasons(ctx, st, pod)
		allNotServing = allNotServing && notServing
		allProbe = allProbe && probeFailing
		evidence = append(evidence, pod.Name+": "+strings.Join(reasons, "; "))
	}
	why, fix := "see why per pod below", "kubectl describe pod POD: events and container states say the rest"
	switch {
	case allNotServing:
		why = "every one of them reports NOT_SERVING on grpc.health.v1, so its readiness probe fails"
		fix = "the servers say they cannot serve: find out why in their logs (draining? a dependency down?); the kit's servers go back with POST /admin/health?status=SERVING on their HTTP port, and the liveness probe restarts them after a minute"
	case allProbe:
		why = "their readiness probe fails"
		fix = "make the readiness probe check what the server really serves (port, gRPC service name), or fix the server"
	}
	switch {
	case ready == 0 && st.causes[causeProbeTLS]:
		st.add(Finding{Severity: Info, Check: CheckEndpoints,
			Message:  fmt.Sprintf("no ready endpoint: 0 of %d pod(s) Ready, %s (see readiness)", len(st.eps), st.probeTLSWhy),
			Evidence: evidence})
		st.causes[causeNoReady] = true
	case ready == 0:
		st.add(Finding{Severity: Error, Check: CheckEndpoints,
			Message:  fmt.Sprintf("no ready endpoint: 0 of %d pod(s) Ready, %s; the Service routes nowhere and calls fail with UNAVAILABLE", len(st.eps), why),
			Evidence: evidence, Fix: fix})
		st.causes[causeNoReady] = true
	case len(unready) > 0 || ready < len(st.eps):
		st.add(Finding{Severity: Warning, Check: CheckEndpoints,
			Message:  fmt.Sprintf("%d of %d endpoint(s) ready: the others get no traffic (%s)", ready, len(st.eps), why),
			Evidence: evidence, Fix: fix})
	default:
		st.add(Finding{Severity: OK, Check: CheckEndpoints, Message: fmt.Sprintf("%d of %d endpoint(s) ready", ready, len(st.eps))})
	}
	return nil
}

// notReadyReasons explains why pod is not Ready.
func (d *Doctor) notReadyReasons(ctx context.Context, st *state, pod *corev1.Pod) (reasons []string, notServing, probeFailing bool) {
	if pod.DeletionTimestamp != nil {
		reasons = append(reasons, "terminating")
	}
	if pod.Status.Phase == corev1.PodPending {
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status != corev1.ConditionTrue {
				reasons = append(reasons, fmt.Sprintf("not scheduled: %s %s", c.Reason, c.Message))
			}
		}
	}
	for _, cs := range append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
		switch {
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
			reasons = append(reasons, fmt.Sprintf("container %s waiting: %s %s", cs.Name, cs.State.Waiting.Reason, cs.State.Waiting.Message))
		case cs.State.Terminated != nil:
			reasons = append(reasons, fmt.Sprintf("container %s terminated: %s (exit %d)", cs.Name, cs.State.Terminated.Reason, cs.State.Terminated.ExitCode))
		}
		if cs.RestartCount > 0 && cs.LastTerminationState.Terminated != nil {
			reasons = append(reasons, fmt.Sprintf("container %s restarted %d time(s), last %s (exit %d)", cs.Name, cs.RestartCount,
				cs.LastTerminationState.Terminated.Reason, cs.LastTerminationState.Terminated.ExitCode))
		}
	}
	running := pod.Status.Phase == corev1.PodRunning && pod.DeletionTimestamp == nil
	for _, c := range pod.Spec.Containers {
		if c.ReadinessProbe != nil && running {
			probeFailing = true
			reasons = append(reasons, "readiness probe not passing: "+describeProbe(c.ReadinessProbe))
		}
	}
	if ev := d.lastProbeEvent(ctx, pod); ev != "" {
		reasons = append(reasons, "kubelet: "+ev)
	}
	if p := st.probes[pod.Name]; p != nil && p.transportOK() {
		reasons = append(reasons, "gRPC health now: "+p.healthLine(false))
		notServing = p.notServing()
	}
	if len(reasons) == 0 {
		reasons = append(reasons, "not Ready (no reason recorded)")
	}
	return reasons, notServing, probeFailing
}

// lastProbeEvent is the message of the kubelet's latest readiness-probe failure event.
func (d *Doctor) lastProbeEvent(ctx context.Context, pod *corev1.Pod) string {
	list, err := d.Kube.CoreV1().Events(pod.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod.Name})
	if err != nil {
		return ""
	}
	var best *corev1.Event
	for i := range list.Items {
		e := &list.Items[i]
		if e.InvolvedObject.Name != pod.Name || e.Reason != "Unhealthy" || !strings.HasPrefix(e.Message, "Readiness probe") {
			continue
		}
		if best == nil || eventTime(e).After(eventTime(best).Time) {
			best = e
		}
	}
	if best == nil {
		return ""
	}
	return best.Message
}

func eventTime(e *corev1.Event) metav1.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp
	case !e.EventTime.IsZero():
		return metav1.NewTime(e.EventTime.Time)
	default:
		return e.FirstTimestamp
	}
}

func describeProbe(p *corev1.Probe) string {
	switch {
	case p.GRPC != nil:
		svc := `""`
		if p.GRPC.Service != nil && *p.GRPC.Service != "" {
			svc = *p.GRPC.Service
		}
		mode := ""
		if p.GRPC.Mode != nil {
			mode = ", mode " + string(*p.GRPC.Mode)
		}
		return fmt.Sprintf("gRPC health on port %d, service %s%s", p.GRPC.Port, svc, mode)
	case p.HTTPGet != nil:
		return fmt.Sprintf("HTTP GET %s on port %s", p.HTTPGet.Path, p.HTTPGet.Port.String())
	case p.TCPSocket != nil:
		return "TCP connect to port " + p.TCPSocket.Port.String()
	case p.Exec != nil:
		return "exec " + strings.Join(p.Exec.Command, " ")
	}
	return "probe"
}
