package doctor

import (
	"context"
	"fmt"
	"strings"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// How a pod's native gRPC readiness probe (probe.grpc) fits the port it probes, which
// probePods found to speak TLS or plaintext. The kubelet dials a gRPC probe in plaintext
// unless grpc.mode is TLS, a field Kubernetes 1.37 adds as alpha behind the feature gate
// GRPCContainerProbeTLS: an API server with the gate off drops the field from the pods it
// admits (so the pod has no mode), and a kubelet with the gate off, or older than 1.37,
// ignores it and dials in plaintext. With TLS the kubelet does not verify the certificate.
const (
	probePlainOnTLS = iota // no mode TLS, TLS port: fails at every period
	probeTLSOnPlain        // mode TLS, plaintext port: the handshake fails at every period
	probeTLSIgnored        // mode TLS, TLS port, SERVING over TLS, yet not Ready: the kubelet dials plaintext
	probeTLSOK             // mode TLS, TLS port: what the port needs
	probeKinds
)

// probeGroup is the pods of one kind above.
type probeGroup struct {
	pods     []*corev1.Pod
	unready  int
	port     int
	evidence []string
}

// checkReadinessProbes: a native gRPC readiness probe must speak what its port speaks. One
// that does not fails at every period: readiness keeps the pod out of the endpoints
// forever, a startup or liveness probe like it restarts the pod. It runs after the probes
// of probePods (which found what each port speaks) and before checkEndpoints, which it
// tells when it is the reason no pod is Ready.
func (d *Doctor) checkReadinessProbes(ctx context.Context, st *state) error {
	var groups [probeKinds]probeGroup
	for i := range st.pods {
		pod := &st.pods[i]
		p := st.probes[pod.Name]
		if p == nil || !p.transportOK() {
			continue
		}
		var lines []string
		var readiness *corev1.Probe
		for _, c := range pod.Spec.Containers {
			for _, pr := range []struct {
				kind  string
				probe *corev1.Probe
			}{{"readinessProbe", c.ReadinessProbe}, {"startupProbe", c.StartupProbe}, {"livenessProbe", c.LivenessProbe}} {
				// Only the port doctor dialled is known to speak TLS or not.
				if pr.probe == nil || pr.probe.GRPC == nil || int(pr.probe.GRPC.Port) != p.port {
					continue
				}
				if pr.kind == "readinessProbe" && readiness == nil {
					readiness = pr.probe
				}
				lines = append(lines, fmt.Sprintf("%s.%s: %s", c.Name, pr.kind, describeProbe(pr.probe)))
			}
		}
		if readiness == nil {
			continue
		}
		tlsProbe := grpcProbeTLS(readiness)
		var kind int
		switch {
		case p.serverMode == modeTLS && !tlsProbe:
			kind = probePlainOnTLS
		case p.serverMode == modePlain && tlsProbe:
			kind = probeTLSOnPlain
		case p.serverMode == modeTLS && !podReady(pod) && p.probedServing(readiness):
			kind = probeTLSIgnored
		case p.serverMode == modeTLS:
			kind = probeTLSOK
		default:
			continue
		}
		g := &groups[kind]
		g.pods, g.port = append(g.pods, pod), p.port
		state := "Ready"
		if !podReady(pod) {
			g.unready++
			state = "not Ready"
		}
		where := ""
		if kind == probeTLSIgnored && pod.Spec.NodeName != "" {
			where = ", node " + pod.Spec.NodeName
		}
		g.evidence = append(g.evidence, fmt.Sprintf("%s (%s%s): port %d speaks %s; %s", pod.Name, state, where, p.port, p.serverMode, strings.Join(lines, "; ")))
	}

	const alpha = "grpc.mode: TLS (Kubernetes 1.37, alpha: the feature gate GRPCContainerProbeTLS on in the API server and every kubelet; the kubelet does not verify the certificate; not for production clusters yet)"
	if g := groups[probePlainOnTLS]; len(g.pods) > 0 {
		f := Finding{Severity: Warning, Check: CheckReadiness,
			Message: fmt.Sprintf("%d pod(s) serve TLS on port %d and their readiness probe is a native gRPC probe in plaintext (no grpc.mode: TLS): it cannot speak TLS, so it fails at every period and these pods never become Ready", len(g.pods), g.port),
			Evidence: append(g.evidence, "the kubelet dials a gRPC probe in plaintext unless its grpc.mode is TLS: the TLS server closes the connection (kubelet event: Readiness probe failed)",
				d.apiServerProbeMode(ctx, g.pods[0])),
			Fix: `probe in a way that speaks TLS: an exec probe (the kit's servers: exec: command: ["/app", "probe"], see kustomize/components/backend-tls), or httpGet /readyz on the plaintext HTTP port (8080); or ` + alpha + `; or serve plaintext on the probed port`}
		st.addProbeFinding(f, g, "their native gRPC readiness probe cannot speak TLS")
	}
	if g := groups[probeTLSOnPlain]; len(g.pods) > 0 {
		f := Finding{Severity: Warning, Check: CheckReadiness,
			Message:  fmt.Sprintf("%d pod(s) serve plaintext on port %d and their readiness probe is a native gRPC probe with grpc.mode: TLS: its TLS handshake fails at every period, so these pods never become Ready", len(g.pods), g.port),
			Evidence: append(g.evidence, "with grpc.mode: TLS the kubelet starts a TLS handshake, which a plaintext (h2c) server does not answer"),
			Fix:      "remove grpc.mode: TLS from the probes (or set it to Plaintext), or serve TLS on the port (the kit's servers: TLS_CERT_FILE and TLS_KEY_FILE, kustomize/components/backend-tls)"}
		st.addProbeFinding(f, g, "their native gRPC readiness probe speaks TLS to a plaintext port")
	}
	if g := groups[probeTLSIgnored]; len(g.pods) > 0 {
		f := Finding{Severity: Warning, Check: CheckReadiness,
			Message:  fmt.Sprintf("%d pod(s) answer SERVING over TLS on port %d but are not Ready, and their readiness probe is a native gRPC probe with grpc.mode: TLS: their kubelet dials it in plaintext, as a kubelet with the feature gate GRPCContainerProbeTLS off (or older than Kubernetes 1.37) does", len(g.pods), g.port),
			Evidence: append(g.evidence, "the API server kept grpc.mode, so its own gate is on; the kubelet's gate is separate, and a kubelet without it ignores the field"),
			Fix:      `turn the feature gate GRPCContainerProbeTLS on in every kubelet (featureGates in the KubeletConfiguration; in kind, featureGates in the cluster config, which takes a new cluster), or probe with an exec probe (exec: command: ["/app", "probe"], kustomize/components/backend-tls) or httpGet /readyz`}
		st.addProbeFinding(f, g, "their kubelet dials the native gRPC readiness probe in plaintext, ignoring grpc.mode: TLS")
	}
	if g := groups[probeTLSOK]; len(g.pods) > 0 {
		st.add(Finding{Severity: OK, Check: CheckReadiness,
			Message:  fmt.Sprintf("%d pod(s) serve TLS on port %d and probe it with a native gRPC probe in grpc.mode: TLS, as the port needs (alpha in Kubernetes 1.37; the kubelet does not verify the certificate)", len(g.pods), g.port),
			Evidence: g.evidence})
	}
	return nil
}

// addProbeFinding adds f: an error, and the cause checkEndpoints names, when the pods of g
// are why no pod is Ready; a warning otherwise.
func (s *state) addProbeFinding(f Finding, g probeGroup, why string) {
	if g.unready == len(s.pods) {
		f.Severity = Error
		s.causes[causeProbeTLS] = true
		s.probeTLSWhy = why
	}
	s.add(f)
}

// grpcProbeTLS: the native gRPC probe's mode is TLS.
func grpcProbeTLS(p *corev1.Probe) bool {
	return p.GRPC != nil && p.GRPC.Mode != nil && *p.GRPC.Mode == corev1.GRPCProbeModeTLS
}

// probedServing: the server answered doctor SERVING for the service the probe asks about.
func (p *probe) probedServing(pr *corev1.Probe) bool {
	h := p.overall
	if pr.GRPC.Service != nil && *pr.GRPC.Service != "" {
		var ok bool
		if h, ok = p.services[*pr.GRPC.Service]; !ok {
			return false
		}
	}
	return h.is(healthpb.HealthCheckResponse_SERVING)
}

// apiServerProbeMode says whether the cluster's API server keeps grpc.mode: TLS, read from
// a server-side dry run (nothing is created) of a copy of pod whose readiness probe has
// it: the API server drops the field when its feature gate GRPCContainerProbeTLS is off,
// so a manifest's mode: TLS would be gone from the pods. Without the right to create pods
// (dry run included), it says it could not tell.
func (d *Doctor) apiServerProbeMode(ctx context.Context, pod *corev1.Pod) string {
	c := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: pod.Name + "-doctor-dry-run", Namespace: pod.Namespace}, Spec: *pod.Spec.DeepCopy()}
	c.Spec.NodeName, c.Spec.EphemeralContainers = "", nil
	for i := range c.Spec.Containers {
		if rp := c.Spec.Containers[i].ReadinessProbe; rp != nil && rp.GRPC != nil {
			rp.GRPC.Mode = ptr.To(corev1.GRPCProbeModeTLS)
		}
	}
	out, err := d.Kube.CoreV1().Pods(pod.Namespace).Create(ctx, c, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		return "whether this cluster's API server keeps grpc.mode: TLS is unknown: its server-side dry run of a pod failed: " + err.Error()
	}
	for _, oc := range out.Spec.Containers {
		if rp := oc.ReadinessProbe; rp != nil && rp.GRPC != nil {
			if grpcProbeTLS(rp) {
				return "this cluster's API server keeps grpc.mode: TLS (a server-side dry run of this pod with it): its feature gate GRPCContainerProbeTLS is on; the kubelets need it too"
			}
			return "this cluster's API server drops grpc.mode: TLS (a server-side dry run of this pod with it came back without it): its feature gate GRPCContainerProbeTLS is off, so a mode: TLS in a manifest is removed from the pods"
		}
	}
	return "whether this cluster's API server keeps grpc.mode: TLS is unknown: the dry run's pod came back without a gRPC readiness probe"
}
