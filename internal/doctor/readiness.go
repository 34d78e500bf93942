package doctor

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// checkReadinessProbes: a native gRPC probe (probe.grpc) on a port that speaks TLS can
// never pass. The kubelet's gRPC prober dials without TLS (Kubernetes has no TLS option
// for it), so the handshake fails at every period: readiness keeps the pod out of the
// endpoints forever, a startup or liveness probe restarts it. It runs after the probes of
// probePods (which found what each port speaks) and before checkEndpoints, which it tells
// when it is the reason no pod is Ready.
func (d *Doctor) checkReadinessProbes(_ context.Context, st *state) error {
	var evidence []string
	affected, unready, port := 0, 0, 0
	for i := range st.pods {
		pod := &st.pods[i]
		p := st.probes[pod.Name]
		if p == nil || p.serverMode != modeTLS {
			continue
		}
		var lines []string
		readiness := false
		for _, c := range pod.Spec.Containers {
			for _, pr := range []struct {
				kind  string
				probe *corev1.Probe
			}{{"readinessProbe", c.ReadinessProbe}, {"startupProbe", c.StartupProbe}, {"livenessProbe", c.LivenessProbe}} {
				// Only the port doctor dialled is known to speak TLS.
				if pr.probe == nil || pr.probe.GRPC == nil || int(pr.probe.GRPC.Port) != p.port {
					continue
				}
				readiness = readiness || pr.kind == "readinessProbe"
				lines = append(lines, fmt.Sprintf("%s.%s: %s", c.Name, pr.kind, describeProbe(pr.probe)))
			}
		}
		if !readiness {
			continue
		}
		affected, port = affected+1, p.port
		state := "Ready"
		if !podReady(pod) {
			unready++
			state = "not Ready"
		}
		evidence = append(evidence, fmt.Sprintf("%s (%s): port %d speaks TLS; %s", pod.Name, state, p.port, strings.Join(lines, "; ")))
	}
	if affected == 0 {
		return nil
	}
	f := Finding{Severity: Warning, Check: CheckReadiness,
		Message:  fmt.Sprintf("%d pod(s) serve TLS on port %d and their readiness probe is a native gRPC probe: the kubelet's gRPC probe cannot speak TLS, so it fails at every period and these pods never become Ready", affected, port),
		Evidence: append(evidence, "the kubelet dials gRPC probes in plaintext: the TLS server closes the connection (kubelet event: Readiness probe failed)"),
		Fix:      `probe in a way that speaks TLS: an exec probe (the kit's servers: exec: command: ["/app", "probe"], see kustomize/components/backend-tls), or httpGet /readyz on the plaintext HTTP port (8080); or serve plaintext on the probed port`}
	if unready == len(st.pods) {
		// Every pod is out because of it: the cause of the endpoints finding, not a warning.
		f.Severity = Error
		st.causes[causeProbeTLS] = true
	}
	st.add(f)
	return nil
}
