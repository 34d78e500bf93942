package doctor

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Each test is one fault of the e2e suite (or a neighbour of it) on real servers: the
// doctor must name that cause as its only error.

func TestHealthyKit(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := "hello-grpc-headless"
	f.records[fqdn(svc)] = f.readyIPs()
	pods := f.pods
	rep := diagnose(t, f.doctor(svc, Config{}, headlessService(svc), slice(svc, pods...)))
	noErrors(t, rep)
	if rep.Warnings != 0 {
		t.Errorf("healthy kit has warnings:\n%s", dump(rep))
	}
	for _, c := range []string{CheckService, CheckSelector, CheckBalancing, CheckPorts, CheckAppProtocol, CheckEndpoints, CheckTLS, CheckHealth, CheckReflection, CheckDNS, CheckNetworkPolicy} {
		if w := worst(rep, c); w == nil || w.Severity != OK {
			t.Errorf("check %s: want ok, got %+v", c, w)
		}
	}
	if w := worst(rep, CheckReadiness); w != nil {
		t.Errorf("native gRPC probes on plaintext servers are fine, want no readiness finding: %+v", w)
	}
	if w := worst(rep, CheckHealth); !strings.Contains(w.Message, "helloworld.Hello") || !strings.Contains(w.Message, "3 of 3") {
		t.Errorf("health should name the per-service status on all pods: %s", w.Message)
	}
	if w := worst(rep, CheckReflection); !strings.Contains(w.Message, "helloworld.Hello") {
		t.Errorf("reflection should list helloworld.Hello: %s", w.Message)
	}
	if rep.Subject.Port != 50051 {
		t.Errorf("subject port %d, want 50051", rep.Subject.Port)
	}
}

func TestWrongTargetPort(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := headlessService("hello-grpc-headless")
	svc.Spec.Ports[0].TargetPort = intstr.FromInt(f.port + 1) // nothing listens there
	f.records[fqdn(svc.Name)] = f.readyIPs()
	rep := diagnose(t, f.doctor(svc.Name, Config{}, svc, slice(svc.Name, f.pods...)))
	e := onlyError(t, rep, CheckPorts, "is not a containerPort of the pods and nothing listens there")
	if !strings.Contains(strings.Join(e.Evidence, "\n"), "connection refused") || !strings.Contains(e.Fix, "readiness probe") {
		t.Errorf("evidence should show the refusal and the fix the probe's port:\n%s", dump(rep))
	}
	if w := worst(rep, CheckTLS); w != nil {
		t.Errorf("a refused port is not a TLS question: %+v", w)
	}
}

func TestNamedTargetPortNotInPods(t *testing.T) {
	f := newFixture(t, 1, false)
	svc := headlessService("hello-grpc-headless")
	svc.Spec.Ports[0].TargetPort = intstr.FromString("gprc")
	rep := diagnose(t, f.doctor(svc.Name, Config{}, svc)) // no EndpointSlice: the controller skips such pods
	onlyError(t, rep, CheckPorts, "targetPort gprc is not a port name")
	if w := worst(rep, CheckEndpoints); w == nil || w.Severity != Info {
		t.Errorf("no endpoints should be explained by ports: %+v", w)
	}
}

func TestDeclaredPortNotListening(t *testing.T) {
	f := newFixture(t, 1, false)
	pod := f.pods[0]
	pod.Spec.Containers[0].Ports[0].ContainerPort = int32(f.port + 1) // manifest and PORT disagree
	svc := headlessService("hello-grpc-headless")
	f.records[fqdn(svc.Name)] = f.readyIPs()
	rep := diagnose(t, f.doctor(svc.Name, Config{}, svc, slice(svc.Name, pod)))
	onlyError(t, rep, CheckPorts, "the server does not listen on it")
}

func TestSelectorTypo(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := headlessService("hello-grpc-headless")
	svc.Spec.Selector["app.kubernetes.io/name"] = "helo"
	rep := diagnose(t, f.doctor(svc.Name, Config{}, svc, slice(svc.Name))) // NXDOMAIN: no records
	e := onlyError(t, rep, CheckSelector, "matches no pod")
	if ev := strings.Join(e.Evidence, "\n"); !strings.Contains(ev, "pods in kit have app.kubernetes.io/name=") || !strings.Contains(ev, "hello (3)") {
		t.Errorf("evidence should show the labels the pods carry: %v", e.Evidence)
	}
	if w := worst(rep, CheckDNS); w == nil || w.Severity != Info || !strings.Contains(w.Message, "NXDOMAIN") {
		t.Errorf("DNS NXDOMAIN is explained upstream, want info: %+v", w)
	}
}

func TestAllPodsNotServing(t *testing.T) {
	f := newFixture(t, 3, false)
	for _, s := range f.servers {
		s.SetServing(false)
	}
	f.setReady(false)
	svc := headlessService("hello-grpc-headless")
	ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "hello-1.probe", Namespace: ns},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "hello-1", Namespace: ns},
		Reason:         "Unhealthy", Message: `Readiness probe failed: service unhealthy (responded with "NOT_SERVING")`}
	rep := diagnose(t, f.doctor(svc.Name, Config{}, svc, slice(svc.Name, f.pods...), ev))
	e := onlyError(t, rep, CheckEndpoints, "reports NOT_SERVING")
	evidence := strings.Join(e.Evidence, "\n")
	for _, want := range []string{`responded with "NOT_SERVING"`, "gRPC health on port", "helloworld.Hello NOT_SERVING"} {
		if !strings.Contains(evidence, want) {
			t.Errorf("evidence lacks %q:\n%s", want, evidence)
		}
	}
	if w := worst(rep, CheckHealth); w == nil || w.Severity != Info {
		t.Errorf("NOT_SERVING health is the endpoints finding's cause, want info: %+v", w)
	}
}

func TestSomePodsNotReady(t *testing.T) {
	f := newFixture(t, 3, false)
	f.servers["hello-2"].SetServing(false)
	f.pods[1] = helloPod("hello-2", f.pods[1].Status.PodIP, f.port, false)
	svc := headlessService("hello-grpc-headless")
	f.records[fqdn(svc.Name)] = f.readyIPs()
	rep := diagnose(t, f.doctor(svc.Name, Config{}, svc, slice(svc.Name, f.pods...)))
	noErrors(t, rep)
	if w := worst(rep, CheckEndpoints); w == nil || w.Severity != Warning || !strings.Contains(w.Message, "2 of 3") {
		t.Errorf("want a warning for 2 of 3 ready: %+v", w)
	}
}

func TestClusterIPWithRoundRobin(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := clusterIPService("hello-grpc")
	twin := headlessService("hello-grpc-headless")
	f.records[fqdn(svc.Name)] = []string{svc.Spec.ClusterIP}
	rep := diagnose(t, f.doctor(svc.Name, Config{LB: "round_robin"}, svc, twin, slice(svc.Name, f.pods...)))
	e := onlyError(t, rep, CheckBalancing, "round_robin over a ClusterIP Service")
	if !strings.Contains(e.Fix, "hello-grpc-headless") {
		t.Errorf("the fix should name the headless twin: %s", e.Fix)
	}
	if w := worst(rep, CheckDNS); w == nil || w.Severity != OK || !strings.Contains(w.Message, "ClusterIP") {
		t.Errorf("DNS should resolve to the ClusterIP: %+v", w)
	}

	// pick_first over a ClusterIP is what proxies do: a warning, not an error.
	rep = diagnose(t, f.doctor(svc.Name, Config{LB: "pick_first"}, svc, slice(svc.Name, f.pods...)))
	noErrors(t, rep)
	if w := worst(rep, CheckBalancing); w == nil || w.Severity != Warning {
		t.Errorf("pick_first over ClusterIP: want a warning, got %+v", w)
	}
}

func TestPickFirstOverHeadless(t *testing.T) {
	f := newFixture(t, 2, false)
	svc := headlessService("hello-grpc-headless")
	f.records[fqdn(svc.Name)] = f.readyIPs()
	rep := diagnose(t, f.doctor(svc.Name, Config{LB: "pick_first"}, svc, slice(svc.Name, f.pods...)))
	noErrors(t, rep)
	if w := worst(rep, CheckBalancing); w == nil || w.Severity != Warning || !strings.Contains(w.Fix, "round_robin") {
		t.Errorf("pick_first over headless: want a warning suggesting round_robin, got %+v", w)
	}
}

func TestTLSClientPlaintextServer(t *testing.T) {
	f := newFixture(t, 2, false)
	svc := headlessService("hello-grpc-headless")
	f.records[fqdn(svc.Name)] = f.readyIPs()
	rep := diagnose(t, f.doctor(svc.Name, Config{TLS: true}, svc, slice(svc.Name, f.pods...)))
	e := onlyError(t, rep, CheckTLS, "TLS client against a plaintext (h2c) server")
	if !strings.Contains(strings.Join(e.Evidence, "\n"), "first record does not look like a TLS handshake") || !strings.Contains(e.Fix, "drop -tls") {
		t.Errorf("evidence and fix:\n%s", dump(rep))
	}
	if w := worst(rep, CheckHealth); w == nil || w.Severity != OK {
		t.Errorf("health is checked in the server's own mode and is fine: %+v", w)
	}
}

func TestPlaintextClientTLSServer(t *testing.T) {
	f := newFixture(t, 2, true)
	svc := headlessService("hello-grpc-headless")
	f.records[fqdn(svc.Name)] = f.readyIPs()
	rep := diagnose(t, f.doctor(svc.Name, Config{}, svc, slice(svc.Name, f.pods...)))
	onlyError(t, rep, CheckTLS, "plaintext (h2c) client against a TLS server")
	if w := worst(rep, CheckAppProtocol); w == nil || w.Severity != Warning {
		t.Errorf("appProtocol h2c on a TLS server: want a warning, got %+v", w)
	}
	// The same servers with a TLS client: all fine.
	rep = diagnose(t, f.doctor(svc.Name, Config{TLS: true}, svc, slice(svc.Name, f.pods...)))
	if w := worst(rep, CheckTLS); w == nil || w.Severity != OK {
		t.Errorf("TLS client, TLS server: %+v", w)
	}
}

func TestServiceMissing(t *testing.T) {
	f := newFixture(t, 1, false)
	rep := diagnose(t, f.doctor("hello-grpc-headles", Config{}, headlessService("hello-grpc-headless")))
	e := onlyError(t, rep, CheckService, "does not exist")
	if !strings.Contains(strings.Join(e.Evidence, ""), "hello-grpc-headless") {
		t.Errorf("evidence should list the Services that exist: %v", e.Evidence)
	}
	if len(rep.Findings) != 1 {
		t.Errorf("nothing else can be checked without the Service:\n%s", dump(rep))
	}

	d := f.doctor("hello-grpc-headless", Config{})
	d.Cfg.Namespace = "kti"
	e = onlyError(t, diagnose(t, d), CheckService, "does not exist")
	if !strings.Contains(strings.Join(e.Evidence, ""), "namespace kti does not exist") {
		t.Errorf("a missing namespace should be named: %v", e.Evidence)
	}
}

func TestPortNotInService(t *testing.T) {
	f := newFixture(t, 1, false)
	svc := headlessService("hello-grpc-headless")
	rep := diagnose(t, f.doctor(svc.Name, Config{Port: 9090}, svc))
	e := onlyError(t, rep, CheckPorts, "has no port 9090")
	if !strings.Contains(strings.Join(e.Evidence, ""), "grpc 50051->grpc") {
		t.Errorf("evidence should list the Service's ports: %v", e.Evidence)
	}
}

func TestMissingAppProtocol(t *testing.T) {
	f := newFixture(t, 1, false)
	svc := headlessService("hello-grpc-headless")
	svc.Spec.Ports[0].AppProtocol = nil
	f.records[fqdn(svc.Name)] = f.readyIPs()
	rep := diagnose(t, f.doctor(svc.Name, Config{}, svc, slice(svc.Name, f.pods...)))
	noErrors(t, rep)
	if w := worst(rep, CheckAppProtocol); w == nil || w.Severity != Warning || !strings.Contains(w.Fix, "kubernetes.io/h2c") {
		t.Errorf("missing appProtocol: %+v", w)
	}
}

func TestDNSDisagrees(t *testing.T) {
	f := newFixture(t, 2, false)
	svc := headlessService("hello-grpc-headless")

	f.records[fqdn(svc.Name)] = []string{"10.0.0.9"} // stale answer
	rep := diagnose(t, f.doctor(svc.Name, Config{}, svc, slice(svc.Name, f.pods...)))
	noErrors(t, rep)
	if w := worst(rep, CheckDNS); w == nil || w.Severity != Warning || !strings.Contains(w.Message, "10.0.0.9") {
		t.Errorf("a stale answer is a warning naming it: %+v", w)
	}

	delete(f.records, fqdn(svc.Name)) // NXDOMAIN with ready endpoints
	rep = diagnose(t, f.doctor(svc.Name, Config{}, svc, slice(svc.Name, f.pods...)))
	onlyError(t, rep, CheckDNS, "resolves to nothing (NXDOMAIN)")
}

func TestNoCoreDNSIsAWarning(t *testing.T) {
	f := newFixture(t, 1, false)
	svc := headlessService("hello-grpc-headless")
	d := f.doctor(svc.Name, Config{}, svc, slice(svc.Name, f.pods...))
	if err := d.Kube.CoreV1().Pods("kube-system").Delete(t.Context(), "coredns-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rep := diagnose(t, d)
	noErrors(t, rep)
	if w := worst(rep, CheckDNS); w == nil || w.Severity != Warning || !strings.Contains(w.Message, "no ready CoreDNS pod") {
		t.Errorf("no CoreDNS: %+v", w)
	}
}

// TLS servers behind native gRPC readiness probes: the kubelet's gRPC probe cannot speak
// TLS, so no pod ever becomes Ready. The probe style is the cause, named as the only
// error; the empty endpoints and DNS follow from it.
func TestNativeGRPCProbeOnTLSServer(t *testing.T) {
	f := newFixture(t, 3, true)
	f.setReady(false)
	svc := headlessService("hello-grpc-headless")
	ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "hello-1.probe", Namespace: ns},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "hello-1", Namespace: ns},
		Reason:         "Unhealthy", Message: `Readiness probe failed: timeout: failed to connect service ":50051" within 1s: context deadline exceeded`}
	rep := diagnose(t, f.doctor(svc.Name, Config{TLS: true}, svc, slice(svc.Name, f.pods...), ev))
	e := onlyError(t, rep, CheckReadiness, "3 pod(s) serve TLS on port")
	if !strings.Contains(e.Message, "cannot speak TLS") || !strings.Contains(e.Fix, `["/app", "probe"]`) || !strings.Contains(e.Fix, "/readyz") {
		t.Errorf("message and fix should say why and name the exec and HTTP probes:\n%s", dump(rep))
	}
	if ev := strings.Join(e.Evidence, "\n"); !strings.Contains(ev, "hello-1 (not Ready): port") || !strings.Contains(ev, "hello.readinessProbe: gRPC health on port") || !strings.Contains(ev, "helloworld.Hello") {
		t.Errorf("evidence should name each pod and its probe:\n%s", ev)
	}
	for _, c := range []string{CheckEndpoints, CheckDNS} {
		if w := worst(rep, c); w == nil || w.Severity != Info {
			t.Errorf("%s follows from the probe, want info: %+v", c, w)
		}
	}

	// Negative control: the same TLS servers with an exec probe (the kit's probe mode) are
	// not reported, Ready or not.
	for _, p := range f.pods {
		p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
			Exec: &corev1.ExecAction{Command: []string{"/app", "probe"}}}}
	}
	rep = diagnose(t, f.doctor(svc.Name, Config{TLS: true}, svc, slice(svc.Name, f.pods...)))
	if w := worst(rep, CheckReadiness); w != nil {
		t.Errorf("exec probe on a TLS server: want no readiness finding, got %+v", w)
	}
	if w := worst(rep, CheckEndpoints); w == nil || w.Severity != Error {
		t.Errorf("with no probe to blame, no ready endpoint is the endpoints check's error: %+v", w)
	}
}

// Pods still Ready (the kubelet has not caught up, or some pods are fine): a warning, the
// Service still has endpoints.
func TestNativeGRPCProbeOnTLSServerWhileReady(t *testing.T) {
	f := newFixture(t, 2, true)
	svc := headlessService("hello-grpc-headless")
	f.records[fqdn(svc.Name)] = f.readyIPs()
	rep := diagnose(t, f.doctor(svc.Name, Config{TLS: true}, svc, slice(svc.Name, f.pods...)))
	noErrors(t, rep)
	if w := worst(rep, CheckReadiness); w == nil || w.Severity != Warning || !strings.Contains(w.Message, "2 pod(s)") {
		t.Errorf("want a readiness warning for 2 pods, got %+v", w)
	}
}

// The health check asks for the application's services only: not grpc-go's own, nor the
// ORCA service the kit's servers register for weighted_round_robin (no health status of
// its own: asking for it answers SERVICE_UNKNOWN on a healthy pod).
func TestServicesToCheckLeavesOutInfrastructure(t *testing.T) {
	listed := []string{"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "helloworld.Hello", "xds.service.orca.v3.OpenRcaService"}
	if got := servicesToCheck(&corev1.Pod{}, listed); !slices.Equal(got, []string{"helloworld.Hello"}) {
		t.Errorf("servicesToCheck(%q) = %q, want only helloworld.Hello", listed, got)
	}
}
