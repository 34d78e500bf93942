package doctor

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// resolveTarget says where the Service port's targetPort lands in pod, as kube-proxy and
// the EndpointSlice controller resolve it: a number is used as is (containerPorts are
// informational), a name must be a containerPort name.
func resolveTarget(sp *corev1.ServicePort, pod *corev1.Pod) target {
	tp := sp.TargetPort
	if tp.Type == intstr.Int && tp.IntVal == 0 || tp.Type == intstr.String && tp.StrVal == "" {
		tp = intstr.FromInt32(sp.Port) // unset targetPort means "same as port"
	}
	for _, c := range pod.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Protocol != "" && cp.Protocol != corev1.ProtocolTCP {
				continue
			}
			if tp.Type == intstr.String && cp.Name == tp.StrVal || tp.Type == intstr.Int && cp.ContainerPort == tp.IntVal {
				return target{port: int(cp.ContainerPort), name: cp.Name, declared: true}
			}
		}
	}
	if tp.Type == intstr.String {
		return target{}
	}
	return target{port: int(tp.IntVal)}
}

// containerPorts lists pod's ports as name=number.
func containerPorts(pod *corev1.Pod) string {
	var ps []string
	for _, c := range pod.Spec.Containers {
		for _, cp := range c.Ports {
			ps = append(ps, fmt.Sprintf("%s=%d", orDash(cp.Name), cp.ContainerPort))
		}
	}
	return orNone(ps)
}

// grpcPortHint is the port the server most likely listens on: the readiness probe's gRPC
// port (the kubelet proves it every few seconds), else a containerPort named grpc.
func grpcPortHint(pod *corev1.Pod) string {
	for _, c := range pod.Spec.Containers {
		if p := c.ReadinessProbe; p != nil && p.GRPC != nil {
			return fmt.Sprintf("%d (the readiness probe's gRPC port)", p.GRPC.Port)
		}
	}
	for _, c := range pod.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == "grpc" || strings.HasPrefix(cp.Name, "grpc-") {
				return fmt.Sprintf("%s (containerPort %d)", cp.Name, cp.ContainerPort)
			}
		}
	}
	return ""
}

// checkPorts follows port -> targetPort -> containerPort in every pod, and uses the probe
// (a real connection through port-forward) to say whether the server listens there.
func (d *Doctor) checkPorts(_ context.Context, st *state) error {
	if len(st.pods) == 0 {
		return nil
	}
	sp := st.port
	var broken, undeclared, fine []string
	var first *corev1.Pod
	var msg string
	for i := range st.pods {
		pod := &st.pods[i]
		t := st.targets[pod.Name]
		chain := fmt.Sprintf("%s: port %d -> targetPort %s -> ", pod.Name, sp.Port, sp.TargetPort.String())
		p := st.probes[pod.Name]
		switch {
		case t.port == 0:
			broken = append(broken, chain+"no containerPort named so (containerPorts "+containerPorts(pod)+")")
			if first == nil {
				first, msg = pod, fmt.Sprintf("targetPort %s is not a port name of the pods: the Service has no endpoint port to send to", sp.TargetPort.String())
			}
		case p != nil && p.refused:
			what := fmt.Sprintf("%d, nothing listens there: %s", t.port, cause(p.clientErr))
			broken = append(broken, chain+what+" (containerPorts "+containerPorts(pod)+")")
			if first == nil {
				first = pod
				if t.declared {
					msg = fmt.Sprintf("the pods declare containerPort %d but the server does not listen on it (connection refused): the server's port and the manifest disagree", t.port)
				} else {
					msg = fmt.Sprintf("targetPort %d is not a containerPort of the pods and nothing listens there (connection refused): calls fail with UNAVAILABLE", t.port)
				}
			}
		case !t.declared:
			undeclared = append(undeclared, fmt.Sprintf("%s%d (listening, but not a declared containerPort; containerPorts %s)", chain, t.port, containerPorts(pod)))
		default:
			fine = append(fine, fmt.Sprintf("%s%s=%d", chain, orDash(t.name), t.port))
		}
	}
	switch {
	case len(broken) > 0:
		fix := "point targetPort at the port the server listens on"
		if h := grpcPortHint(first); h != "" {
			fix += ": " + h
		}
		fix += ", or make the server listen on the containerPort (PORT)"
		st.add(Finding{Severity: Error, Check: CheckPorts, Message: msg, Evidence: broken, Fix: fix})
		st.causes[causePorts] = true
	case len(undeclared) > 0:
		st.add(Finding{Severity: Warning, Check: CheckPorts,
			Message:  "targetPort is a number no container declares: it works, but a named port (targetPort: grpc) survives a port change",
			Evidence: undeclared, Fix: "declare the containerPort with a name and use the name as targetPort"})
	default:
		st.add(Finding{Severity: OK, Check: CheckPorts,
			Message:  fmt.Sprintf("port %d -> targetPort %s -> containerPort %d in %d pod(s)%s", sp.Port, sp.TargetPort.String(), st.targets[st.pods[0].Name].port, len(st.pods), listeningNote(st)),
			Evidence: fine})
	}
	return nil
}

func listeningNote(st *state) string {
	for _, p := range st.probes {
		if p.transportOK() {
			return "; the server listens there"
		}
	}
	return ""
}

// checkAppProtocol: proxies (Gateway API implementations, some ingresses) pick the
// protocol towards the pods from appProtocol; unset, many speak HTTP/1.1 to a gRPC server.
func (d *Doctor) checkAppProtocol(_ context.Context, st *state) error {
	ap := ""
	if st.port.AppProtocol != nil {
		ap = *st.port.AppProtocol
	}
	serverTLS := false
	for _, p := range st.probes {
		if p.serverMode == modeTLS {
			serverTLS = true
		}
	}
	switch {
	case ap == "":
		st.add(Finding{Severity: Warning, Check: CheckAppProtocol,
			Message: fmt.Sprintf("port %d has no appProtocol: a Gateway or ingress in front may speak HTTP/1.1 to the gRPC server", st.port.Port),
			Fix:     "set appProtocol: kubernetes.io/h2c (plaintext gRPC) or https (TLS backends) on the Service port"})
	case ap == "kubernetes.io/h2c" && serverTLS:
		st.add(Finding{Severity: Warning, Check: CheckAppProtocol,
			Message: "appProtocol kubernetes.io/h2c (plaintext) but the server speaks TLS: proxies will send plaintext HTTP/2 to a TLS port",
			Fix:     "set appProtocol to https (and configure backend TLS in the proxy), or serve plaintext"})
	case ap == "grpc" || ap == "h2c" || ap == "http2":
		st.add(Finding{Severity: Info, Check: CheckAppProtocol,
			Message: fmt.Sprintf("appProtocol %q is not a standard value: some proxies ignore or reject it (Traefik rejects grpc)", ap),
			Fix:     "use kubernetes.io/h2c for plaintext gRPC"})
	default:
		st.add(Finding{Severity: OK, Check: CheckAppProtocol, Message: "appProtocol " + ap})
	}
	return nil
}
