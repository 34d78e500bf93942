package doctor

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

// setProbeMode sets grpc.mode on the fixture's readiness probes (after setReady, which
// rebuilds the pods).
func (f *fixture) setProbeMode(m corev1.GRPCProbeMode) {
	for _, p := range f.pods {
		p.Spec.Containers[0].ReadinessProbe.GRPC.Mode = ptr.To(m)
	}
}

// apiServerGate makes the fake API server answer pod creates as a real one does with the
// feature gate GRPCContainerProbeTLS on (grpc.mode kept) or off (dropped), persisting
// nothing (the doctor only creates with dry run).
func apiServerGate(t *testing.T, d *Doctor, on bool) {
	t.Helper()
	d.Kube.(*fake.Clientset).PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ca := a.(k8stesting.CreateActionImpl)
		if dr := ca.GetCreateOptions().DryRun; len(dr) != 1 || dr[0] != "All" {
			t.Errorf("the doctor created a pod without dry run: %+v", ca.GetCreateOptions())
		}
		pod := ca.GetObject().(*corev1.Pod).DeepCopy()
		if !on {
			for i := range pod.Spec.Containers {
				if rp := pod.Spec.Containers[i].ReadinessProbe; rp != nil && rp.GRPC != nil {
					rp.GRPC.Mode = nil
				}
			}
		}
		return true, pod, nil
	})
}

// A native gRPC probe in plaintext on TLS servers: the readiness error says whether this
// cluster's API server would keep grpc.mode: TLS, read from a server-side dry run, so a
// user whose manifest has mode: TLS learns that the API server removed it.
func TestNativeGRPCProbeOnTLSServerSaysWhetherTheAPIServerKeepsTheMode(t *testing.T) {
	for _, on := range []bool{true, false} {
		f := newFixture(t, 2, true)
		f.setReady(false)
		svc := headlessService("hello-grpc-headless")
		d := f.doctor(svc.Name, Config{TLS: true}, svc, slice(svc.Name, f.pods...))
		apiServerGate(t, d, on)
		e := onlyError(t, diagnose(t, d), CheckReadiness, "cannot speak TLS")
		want := map[bool]string{true: "API server keeps grpc.mode: TLS", false: "API server drops grpc.mode: TLS"}[on]
		if ev := strings.Join(e.Evidence, "\n"); !strings.Contains(ev, want) {
			t.Errorf("gate %t: evidence should say %q:\n%s", on, want, ev)
		}
		if !strings.Contains(e.Fix, "grpc.mode: TLS") || !strings.Contains(e.Fix, "GRPCContainerProbeTLS") || !strings.Contains(e.Fix, "not for production") {
			t.Errorf("the fix should name grpc.mode: TLS, its gate and that it is alpha: %s", e.Fix)
		}
	}
}

// TLS servers probed natively in grpc.mode: TLS and Ready: the style the port needs, so no
// error and no warning, only an ok that names the mode.
func TestNativeGRPCProbeTLSModeOnTLSServer(t *testing.T) {
	f := newFixture(t, 3, true)
	f.setProbeMode(corev1.GRPCProbeModeTLS)
	svc := headlessService("hello-grpc-headless")
	ap := "https"
	svc.Spec.Ports[0].AppProtocol = &ap
	f.records[fqdn(svc.Name)] = f.readyIPs()
	rep := diagnose(t, f.doctor(svc.Name, Config{TLS: true}, svc, slice(svc.Name, f.pods...)))
	noErrors(t, rep)
	w := worst(rep, CheckReadiness)
	if w == nil || w.Severity != OK || !strings.Contains(w.Message, "3 pod(s)") || !strings.Contains(w.Message, "grpc.mode: TLS") {
		t.Errorf("want an ok readiness finding for 3 pods in mode TLS, got:\n%s", dump(rep))
	}
	if ev := strings.Join(w.Evidence, "\n"); !strings.Contains(ev, "service helloworld.Hello, mode TLS") {
		t.Errorf("evidence should show the probe's mode:\n%s", ev)
	}
}

// TLS servers that answer SERVING over TLS, probed in grpc.mode: TLS, and still never
// Ready: the API server kept the field (its gate is on), so the kubelet is the one
// dialling plaintext. Named as the only error; endpoints follow from it.
func TestNativeGRPCProbeTLSModeIgnoredByTheKubelet(t *testing.T) {
	f := newFixture(t, 2, true)
	f.setReady(false)
	f.setProbeMode(corev1.GRPCProbeModeTLS)
	for _, p := range f.pods {
		p.Spec.NodeName = "kind-control-plane"
	}
	svc := headlessService("hello-grpc-headless")
	rep := diagnose(t, f.doctor(svc.Name, Config{TLS: true}, svc, slice(svc.Name, f.pods...)))
	e := onlyError(t, rep, CheckReadiness, "answer SERVING over TLS")
	if !strings.Contains(e.Message, "GRPCContainerProbeTLS") || !strings.Contains(e.Fix, "every kubelet") {
		t.Errorf("message and fix should name the kubelet's feature gate:\n%s", dump(rep))
	}
	if ev := strings.Join(e.Evidence, "\n"); !strings.Contains(ev, "hello-1 (not Ready, node kind-control-plane)") {
		t.Errorf("evidence should name each pod and its node:\n%s", ev)
	}
	if w := worst(rep, CheckEndpoints); w == nil || w.Severity != Info || !strings.Contains(w.Message, "ignoring grpc.mode: TLS") {
		t.Errorf("endpoints follows from the probe, want info saying so: %+v", w)
	}

	// Negative control: the same pods NOT_SERVING are out because of their health, which
	// the probe reports correctly: no readiness error, the endpoints check names it.
	for _, s := range f.servers {
		s.SetServing(false)
	}
	rep = diagnose(t, f.doctor(svc.Name, Config{TLS: true}, svc, slice(svc.Name, f.pods...)))
	if w := worst(rep, CheckReadiness); w == nil || w.Severity != OK {
		t.Errorf("NOT_SERVING pods in mode TLS: want only an ok readiness finding, got:\n%s", dump(rep))
	}
	onlyError(t, rep, CheckEndpoints, "NOT_SERVING")
}

// Plaintext servers probed in grpc.mode: TLS: the handshake fails at every period.
func TestNativeGRPCProbeTLSModeOnPlaintextServer(t *testing.T) {
	f := newFixture(t, 3, false)
	f.setReady(false)
	f.setProbeMode(corev1.GRPCProbeModeTLS)
	svc := headlessService("hello-grpc-headless")
	rep := diagnose(t, f.doctor(svc.Name, Config{}, svc, slice(svc.Name, f.pods...)))
	e := onlyError(t, rep, CheckReadiness, "3 pod(s) serve plaintext on port")
	if !strings.Contains(e.Fix, "remove grpc.mode: TLS") {
		t.Errorf("the fix should say to remove the mode: %s", e.Fix)
	}
	if w := worst(rep, CheckEndpoints); w == nil || w.Severity != Info || !strings.Contains(w.Message, "speaks TLS to a plaintext port") {
		t.Errorf("endpoints follows from the probe, want info saying so: %+v", w)
	}

	// Negative control: grpc.mode: Plaintext, said explicitly, on the same servers is the
	// default and is not reported.
	f.setReady(true)
	f.setProbeMode(corev1.GRPCProbeModePlaintext)
	f.records[fqdn(svc.Name)] = f.readyIPs()
	rep = diagnose(t, f.doctor(svc.Name, Config{}, svc, slice(svc.Name, f.pods...)))
	noErrors(t, rep)
	if w := worst(rep, CheckReadiness); w != nil {
		t.Errorf("mode Plaintext on plaintext servers: want no readiness finding, got %+v", w)
	}
}
