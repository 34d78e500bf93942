package doctor

import (
	"context"
	"strings"
	"testing"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"

	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
)

// kitPolicy mirrors kustomize/components/network-policies: the greeter of the namespace
// and the proxies' namespaces may reach the grpc port, monitoring the http port.
func kitPolicy() *netv1.NetworkPolicy {
	tcp := corev1.ProtocolTCP
	grpcPort, httpPort := intstr.FromString("grpc"), intstr.FromString("http")
	return &netv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "grpc-servers", Namespace: ns},
		Spec: netv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/part-of": "grpc-k8s-kit", "app.kubernetes.io/component": "server"}},
			PolicyTypes: []netv1.PolicyType{netv1.PolicyTypeIngress},
			Ingress: []netv1.NetworkPolicyIngressRule{
				{From: []netv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "greeter"}}}},
					Ports: []netv1.NetworkPolicyPort{{Protocol: &tcp, Port: &grpcPort}}},
				{From: []netv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: []string{"traefik", "ingress-nginx"}}}}}},
					Ports: []netv1.NetworkPolicyPort{{Protocol: &tcp, Port: &grpcPort}}},
				{From: []netv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}}},
					Ports: []netv1.NetworkPolicyPort{{Protocol: &tcp, Port: &httpPort}}},
			},
		},
	}
}

func callerPodIn(namespace, name, app, ip string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"app.kubernetes.io/name": app}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip}}
}

func nsObj(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/metadata.name": name}}}
}

// netpolDoctor runs only the NetworkPolicy check, on one server pod listening on 50051:
// the check reads objects only, so no server is needed.
func netpolDoctor(t *testing.T, fromPod string, objs ...runtime.Object) Report {
	t.Helper()
	server := helloPod("hello-1", "10.244.0.10", 50051, true)
	objs = append(objs, server, nsObj(ns), nsObj("traefik"), nsObj("other"))
	d := &Doctor{Kube: fake.NewClientset(objs...), Cfg: Config{Namespace: ns, Service: "hello-grpc-headless", FromPod: fromPod}}
	rep := Report{}
	st := &state{rep: &rep, pods: []corev1.Pod{*server}, targets: map[string]target{"hello-1": {port: 50051, name: "grpc", declared: true}}, causes: map[string]bool{}}
	if err := d.checkNetworkPolicy(context.Background(), st); err != nil {
		t.Fatalf("checkNetworkPolicy: %v", err)
	}
	return rep
}

func TestNetworkPolicy(t *testing.T) {
	ipBlock := kitPolicy()
	ipBlock.Name = "by-ip"
	ipBlock.Spec.Ingress = []netv1.NetworkPolicyIngressRule{{From: []netv1.NetworkPolicyPeer{{IPBlock: &netv1.IPBlock{CIDR: "10.1.0.0/16", Except: []string{"10.1.9.0/24"}}}}}}
	portRange := kitPolicy()
	portRange.Name = "range"
	end := int32(50060)
	from := intstr.FromInt(50050)
	portRange.Spec.Ingress = []netv1.NetworkPolicyIngressRule{{Ports: []netv1.NetworkPolicyPort{{Port: &from, EndPort: &end}}}}
	denyAll := kitPolicy()
	denyAll.Name = "deny-all"
	denyAll.Spec.Ingress = nil
	denyEgress := &netv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "no-egress", Namespace: "other"},
		Spec: netv1.NetworkPolicySpec{PolicyTypes: []netv1.PolicyType{netv1.PolicyTypeEgress}}}

	for _, tc := range []struct {
		name    string
		fromPod string
		objs    []runtime.Object
		sev     Severity
		want    string
	}{
		{"no policy", "", nil, OK, "no NetworkPolicy selects the pods"},
		{"no caller: lists who may connect", "", []runtime.Object{kitPolicy()}, Info, "grpc-servers"},
		{"the kit's policy denies another app", "client", []runtime.Object{kitPolicy(), callerPodIn(ns, "client", "doctor-client", "10.244.0.20")}, Error, "no ingress rule allows pod kit/client"},
		{"the kit's policy allows the greeter", "client", []runtime.Object{kitPolicy(), callerPodIn(ns, "client", "greeter", "10.244.0.20")}, OK, "grpc-servers ingress[0]"},
		{"a greeter of another namespace is not selected by a bare podSelector", "other/client", []runtime.Object{kitPolicy(), callerPodIn("other", "client", "greeter", "10.244.0.20")}, Error, "no ingress rule allows"},
		{"a proxy namespace is allowed on the grpc port", "traefik/proxy", []runtime.Object{kitPolicy(), callerPodIn("traefik", "proxy", "traefik", "10.244.0.30")}, OK, "grpc-servers ingress[1]"},
		{"ipBlock contains the caller", "client", []runtime.Object{ipBlock, callerPodIn(ns, "client", "x", "10.1.2.3")}, OK, "by-ip ingress[0]"},
		{"ipBlock except excludes the caller", "client", []runtime.Object{ipBlock, callerPodIn(ns, "client", "x", "10.1.9.3")}, Error, "no ingress rule allows"},
		{"port range covers the port", "client", []runtime.Object{portRange, callerPodIn(ns, "client", "x", "10.1.2.3")}, OK, "range ingress[0]"},
		{"a policy with no ingress rule denies all", "client", []runtime.Object{denyAll, callerPodIn(ns, "client", "greeter", "10.1.2.3")}, Error, "deny-all"},
		{"the caller's egress is denied", "other/client", []runtime.Object{denyEgress, callerPodIn("other", "client", "greeter", "10.1.2.3")}, Error, "for egress"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := netpolDoctor(t, tc.fromPod, tc.objs...)
			w := worst(rep, CheckNetworkPolicy)
			if w == nil || w.Severity != tc.sev || !strings.Contains(w.Message, tc.want) {
				t.Fatalf("want %s containing %q, got:\n%s", tc.sev, tc.want, dump(rep))
			}
			if tc.sev >= Info && tc.want != "" && !strings.Contains(strings.Join(w.Evidence, "\n"), "not by sending traffic") {
				t.Errorf("a verdict must say it is static: %v", w.Evidence)
			}
			if rep.Errors > 1 {
				t.Errorf("one denial, one error:\n%s", dump(rep))
			}
		})
	}
}

func TestNetworkPolicyUnknownCallerIsUsage(t *testing.T) {
	d := &Doctor{Kube: fake.NewClientset(kitPolicy()), Cfg: Config{Namespace: ns, FromPod: "nope"}}
	server := helloPod("hello-1", "10.244.0.10", 50051, true)
	st := &state{rep: &Report{}, pods: []corev1.Pod{*server}, targets: map[string]target{"hello-1": {port: 50051}}, causes: map[string]bool{}}
	err := d.checkNetworkPolicy(context.Background(), st)
	if err == nil || exitcode.Of(err) != 2 || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown -from-pod: %v (exit %d), want a usage error naming it", err, exitcode.Of(err))
	}
}
