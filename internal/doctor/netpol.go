package doctor

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"

	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// staticCaveat is said with every NetworkPolicy verdict: the doctor reads the policies, it
// does not send traffic from the caller (it reaches pods through port-forward, which no
// policy filters), and whether they are enforced is up to the CNI.
const staticCaveat = "evaluated from the NetworkPolicy objects, not by sending traffic; only a CNI that implements NetworkPolicy enforces them"

// peerPod is one side of a connection, as NetworkPolicy sees it.
type peerPod struct {
	name, namespace string
	labels          map[string]string
	nsLabels        map[string]string
	ip              string
	pod             *corev1.Pod
}

// checkNetworkPolicy evaluates the NetworkPolicies that select the server pods (ingress)
// and, with -from-pod, those that select the caller (egress), for a connection from the
// caller to the targetPort.
func (d *Doctor) checkNetworkPolicy(ctx context.Context, st *state) error {
	if len(st.pods) == 0 {
		return nil
	}
	server, err := d.peer(ctx, &st.pods[0])
	if err != nil {
		return err
	}
	port := st.targets[st.pods[0].Name].port
	ingress, err := d.policiesSelecting(ctx, server, netv1.PolicyTypeIngress)
	if err != nil {
		st.add(Finding{Severity: Warning, Check: CheckNetworkPolicy, Message: "NetworkPolicies not checked: " + err.Error()})
		return nil
	}
	if d.Cfg.FromPod == "" {
		if len(ingress) == 0 {
			st.add(Finding{Severity: OK, Check: CheckNetworkPolicy, Message: "no NetworkPolicy selects the pods: every caller may connect (-from-pod also checks the caller's egress)"})
			return nil
		}
		f := Finding{Severity: Info, Check: CheckNetworkPolicy,
			Message: fmt.Sprintf("NetworkPolicy %s select(s) the pods: only these callers may connect (pass -from-pod to check one)", policyNames(ingress))}
		f.Evidence = append(ruleEvidence(ingress, netv1.PolicyTypeIngress), staticCaveat)
		st.add(f)
		return nil
	}

	caller, err := d.callerPod(ctx)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("%w: -from-pod %s: %w", exitcode.ErrUsage, d.Cfg.FromPod, err)
		}
		return err
	}
	callerDesc := fmt.Sprintf("pod %s/%s (%s)", caller.namespace, caller.name, labels.Set(caller.labels))
	var denials []Finding
	if len(ingress) > 0 {
		if rule := allowedBy(ingress, server, caller, port, netv1.PolicyTypeIngress); rule == "" {
			f := Finding{Severity: Error, Check: CheckNetworkPolicy,
				Message: fmt.Sprintf("NetworkPolicy %s select(s) the server pods and no ingress rule allows %s on port %d: its connections are dropped (timeouts, UNAVAILABLE)", policyNames(ingress), callerDesc, port),
				Fix:     "label the caller to match a rule's podSelector (and namespaceSelector), or add an ingress rule that selects it on this port"}
			f.Evidence = append(ruleEvidence(ingress, netv1.PolicyTypeIngress), staticCaveat)
			denials = append(denials, f)
		} else {
			st.add(Finding{Severity: OK, Check: CheckNetworkPolicy, Message: fmt.Sprintf("ingress from %s on port %d allowed by %s", callerDesc, port, rule), Evidence: []string{staticCaveat}})
		}
	}
	egress, err := d.policiesSelecting(ctx, caller, netv1.PolicyTypeEgress)
	if err != nil {
		return err
	}
	if len(egress) > 0 {
		if rule := allowedBy(egress, caller, server, port, netv1.PolicyTypeEgress); rule == "" {
			f := Finding{Severity: Error, Check: CheckNetworkPolicy,
				Message: fmt.Sprintf("NetworkPolicy %s select(s) the caller %s for egress and no rule allows it to reach the server pods on port %d", policyNames(egress), callerDesc, port),
				Fix:     "add an egress rule to the server pods on this port (and one to kube-dns on 53 for name resolution)"}
			f.Evidence = append(ruleEvidence(egress, netv1.PolicyTypeEgress), staticCaveat)
			denials = append(denials, f)
		} else {
			st.add(Finding{Severity: OK, Check: CheckNetworkPolicy, Message: fmt.Sprintf("egress from the caller allowed by %s", rule)})
		}
	}
	for _, f := range denials {
		st.add(f)
	}
	if len(ingress) == 0 && len(egress) == 0 {
		st.add(Finding{Severity: OK, Check: CheckNetworkPolicy, Message: fmt.Sprintf("no NetworkPolicy selects the server pods or %s: the connection is allowed", callerDesc)})
	}
	return nil
}

// ruleEvidence lists every rule of the policies in one direction, a line each; a policy
// with none denies that direction entirely.
func ruleEvidence(policies []netv1.NetworkPolicy, dir netv1.PolicyType) []string {
	var ev []string
	for _, p := range policies {
		n := 0
		if dir == netv1.PolicyTypeIngress {
			for i, r := range p.Spec.Ingress {
				ev = append(ev, fmt.Sprintf("%s ingress[%d]: from %s on %s", p.Name, i, describePeers(r.From), describePorts(r.Ports)))
			}
			n = len(p.Spec.Ingress)
		} else {
			for i, r := range p.Spec.Egress {
				ev = append(ev, fmt.Sprintf("%s egress[%d]: to %s on %s", p.Name, i, describePeers(r.To), describePorts(r.Ports)))
			}
			n = len(p.Spec.Egress)
		}
		if n == 0 {
			d := strings.ToLower(string(dir))
			ev = append(ev, fmt.Sprintf("%s: no %s rule (denies all %s traffic of the pods it selects)", p.Name, d, d))
		}
	}
	return ev
}

func (d *Doctor) callerPod(ctx context.Context) (peerPod, error) {
	ns, name, ok := strings.Cut(d.Cfg.FromPod, "/")
	if !ok {
		ns, name = d.Cfg.Namespace, d.Cfg.FromPod
	}
	pod, err := d.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return peerPod{}, fmt.Errorf("get caller pod %s/%s: %w", ns, name, err)
	}
	return d.peer(ctx, pod)
}

func (d *Doctor) peer(ctx context.Context, pod *corev1.Pod) (peerPod, error) {
	p := peerPod{name: pod.Name, namespace: pod.Namespace, labels: pod.Labels, ip: pod.Status.PodIP, pod: pod}
	ns, err := d.Kube.CoreV1().Namespaces().Get(ctx, pod.Namespace, metav1.GetOptions{})
	switch {
	case err == nil:
		p.nsLabels = ns.Labels
	case apierrors.IsNotFound(err) || apierrors.IsForbidden(err):
		// Every namespace carries this label (Kubernetes >= 1.21); it is all a
		// namespaceSelector usually needs.
		p.nsLabels = map[string]string{"kubernetes.io/metadata.name": pod.Namespace}
	default:
		return p, fmt.Errorf("get namespace %s: %w", pod.Namespace, err)
	}
	return p, nil
}

// policiesSelecting lists the policies in p's namespace that select p for typ.
func (d *Doctor) policiesSelecting(ctx context.Context, p peerPod, typ netv1.PolicyType) ([]netv1.NetworkPolicy, error) {
	list, err := d.Kube.NetworkingV1().NetworkPolicies(p.namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list NetworkPolicies in %s: %w", p.namespace, err)
	}
	var out []netv1.NetworkPolicy
	for _, np := range list.Items {
		if !hasType(&np, typ) {
			continue
		}
		if sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector); err == nil && sel.Matches(labels.Set(p.labels)) {
			out = append(out, np)
		}
	}
	return out, nil
}

// hasType: policyTypes defaults to Ingress, plus Egress when egress rules exist.
func hasType(np *netv1.NetworkPolicy, typ netv1.PolicyType) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return typ == netv1.PolicyTypeIngress || len(np.Spec.Egress) > 0
	}
	for _, t := range np.Spec.PolicyTypes {
		if t == typ {
			return true
		}
	}
	return false
}

// allowedBy returns "policy rule[i]" for the first rule of pols that lets traffic from src
// to dst (a pod of the policies' namespace for ingress, the remote side for egress) on
// TCP port, or "" when none does. Policies are additive: one allowing rule is enough.
func allowedBy(pols []netv1.NetworkPolicy, self, remote peerPod, port int, typ netv1.PolicyType) string {
	dst := self
	if typ == netv1.PolicyTypeEgress {
		dst = remote
	}
	for _, np := range pols {
		if typ == netv1.PolicyTypeIngress {
			for i, r := range np.Spec.Ingress {
				if peersMatch(r.From, np.Namespace, remote) && portsMatch(r.Ports, dst.pod, port) {
					return fmt.Sprintf("%s ingress[%d]", np.Name, i)
				}
			}
		} else {
			for i, r := range np.Spec.Egress {
				if peersMatch(r.To, np.Namespace, remote) && portsMatch(r.Ports, dst.pod, port) {
					return fmt.Sprintf("%s egress[%d]", np.Name, i)
				}
			}
		}
	}
	return ""
}

// peersMatch: an empty list matches everyone; otherwise any peer must match p.
func peersMatch(peers []netv1.NetworkPolicyPeer, policyNS string, p peerPod) bool {
	if len(peers) == 0 {
		return true
	}
	for _, peer := range peers {
		if peerMatches(peer, policyNS, p) {
			return true
		}
	}
	return false
}

func peerMatches(peer netv1.NetworkPolicyPeer, policyNS string, p peerPod) bool {
	if peer.IPBlock != nil {
		_, cidr, err := net.ParseCIDR(peer.IPBlock.CIDR)
		ip := net.ParseIP(p.ip)
		if err != nil || ip == nil || !cidr.Contains(ip) {
			return false
		}
		for _, ex := range peer.IPBlock.Except {
			if _, e, err := net.ParseCIDR(ex); err == nil && e.Contains(ip) {
				return false
			}
		}
		return true
	}
	if peer.NamespaceSelector == nil {
		if p.namespace != policyNS {
			return false // a bare podSelector means pods of the policy's own namespace
		}
	} else if !selects(peer.NamespaceSelector, p.nsLabels) {
		return false
	}
	return peer.PodSelector == nil || selects(peer.PodSelector, p.labels)
}

func selects(ls *metav1.LabelSelector, set map[string]string) bool {
	sel, err := metav1.LabelSelectorAsSelector(ls)
	return err == nil && sel.Matches(labels.Set(set))
}

// portsMatch: an empty list matches every port; a named port is looked up in the
// destination pod's containerPorts.
func portsMatch(ports []netv1.NetworkPolicyPort, dst *corev1.Pod, port int) bool {
	if len(ports) == 0 {
		return true
	}
	for _, pp := range ports {
		if pp.Protocol != nil && *pp.Protocol != corev1.ProtocolTCP {
			continue
		}
		if pp.Port == nil {
			return true
		}
		if pp.Port.Type == intstr.String {
			if dst != nil && namedPort(dst, pp.Port.StrVal) == port {
				return true
			}
			continue
		}
		lo, hi := int(pp.Port.IntVal), int(pp.Port.IntVal)
		if pp.EndPort != nil {
			hi = int(*pp.EndPort)
		}
		if port >= lo && port <= hi {
			return true
		}
	}
	return false
}

func namedPort(pod *corev1.Pod, name string) int {
	for _, c := range pod.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == name {
				return int(cp.ContainerPort)
			}
		}
	}
	return -1
}

func policyNames(pols []netv1.NetworkPolicy) string {
	var n []string
	for _, p := range pols {
		n = append(n, p.Name)
	}
	return strings.Join(n, ", ")
}

func describePeers(peers []netv1.NetworkPolicyPeer) string {
	if len(peers) == 0 {
		return "anywhere"
	}
	var out []string
	for _, p := range peers {
		switch {
		case p.IPBlock != nil:
			out = append(out, "ipBlock "+p.IPBlock.CIDR)
		case p.NamespaceSelector == nil:
			out = append(out, fmt.Sprintf("pods {%s} of the policy's namespace", metav1.FormatLabelSelector(p.PodSelector)))
		case p.PodSelector == nil:
			out = append(out, fmt.Sprintf("namespaces {%s}", metav1.FormatLabelSelector(p.NamespaceSelector)))
		default:
			out = append(out, fmt.Sprintf("pods {%s} in namespaces {%s}", metav1.FormatLabelSelector(p.PodSelector), metav1.FormatLabelSelector(p.NamespaceSelector)))
		}
	}
	return strings.Join(out, " or ")
}

func describePorts(ports []netv1.NetworkPolicyPort) string {
	if len(ports) == 0 {
		return "every port"
	}
	var out []string
	for _, p := range ports {
		proto := "TCP"
		if p.Protocol != nil {
			proto = string(*p.Protocol)
		}
		switch {
		case p.Port == nil:
			out = append(out, "every "+proto+" port")
		case p.EndPort != nil:
			out = append(out, fmt.Sprintf("%s-%d/%s", p.Port.String(), *p.EndPort, proto))
		default:
			out = append(out, p.Port.String()+"/"+proto)
		}
	}
	return "port " + strings.Join(out, ", ")
}
