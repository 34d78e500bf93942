//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	h "github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/doctor"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// probesNS is e2e/overlays/probes' namespace: one small hello Deployment per probe style.
const probesNS = "grpc-kit-probes"

// probeStyles are the Deployments of e2e/overlays/probes: hello-<style>, with the
// headless Service hello-grpc-headless-<style> and pods labelled probe-style=<style>.
// native-tls is a TLS server (components/backend-tls) behind native gRPC probes in
// grpc.mode: TLS.
var probeStyles = []string{"native", "exec", "http", "native-tls"}

// probeTLSGate is the alpha feature gate of grpc.mode (Kubernetes 1.37), which the
// native-tls style needs on in the API server and the kubelet (deploy/kind/cluster.yaml).
const probeTLSGate = "GRPCContainerProbeTLS"

// probes: for each readiness-probe style (native gRPC, exec probe mode, HTTP /readyz,
// native gRPC in mode TLS against a TLS server), a pod flipped to NOT_SERVING leaves its
// Service's endpoints within the probe's period × failure threshold + 2 s, and the other,
// healthy pod stays Ready the whole time (the negative control: the probe fails the
// flipped pod, not every pod). Then the pod is flipped back and must return. Times go to
// the log and e2e/out/probes.txt. Everything is in grpc-kit-probes, so it runs beside the
// rest of the suite. The native TLS style's pods becoming Ready at all is the proof that
// the kubelet speaks TLS: in plaintext, the probe of a TLS server never passes (the
// broken case of TestBackendTLS, and scripts/airgap/k8s/apicheck, which also shows what an
// API server without the gate does with the field: it drops it).
func probes(t *testing.T, s *h.Suite) {
	gates := s.FeatureGate(t, probeTLSGate)
	t.Logf("feature gate %s: %v", probeTLSGate, gates)
	for who, on := range gates {
		if !on {
			t.Fatalf("%s has the feature gate %s off, which the native-tls probe style needs on in the API server and every kubelet: "+
				"make kind-up from this tree recreates the cluster with the featureGates of deploy/kind/cluster.yaml", who, probeTLSGate)
		}
	}
	// A previous run's namespace may still be terminating (its cleanup does not wait for
	// the pods' grace periods), and nothing can be created in it until it is gone.
	h.Eventually(t, 3*time.Minute, h.Poll, probesNS+" not terminating", func() bool {
		out, err := s.Kube.Exec("get", "namespace", probesNS, "--ignore-not-found", "-o", "jsonpath={.status.phase}")
		return err == nil && string(out) != "Terminating"
	})
	// The namespace first: the native-tls pods mount the backend Secret, which must exist
	// before they start.
	s.Kube.Run(t, "apply", "-f", filepath.Join(s.OverlayDir("probes"), "namespace.yaml"))
	if !s.Keep {
		t.Cleanup(func() { s.Kube.Cleanup(t, "delete", "namespace", probesNS, "--ignore-not-found", "--wait=false") })
	}
	createBackendCerts(t, s, probesNS)
	s.Apply(t, "probes")
	s.CheckRestricted(t, probesNS)
	for _, style := range probeStyles {
		s.Kube.Rollout(t, probesNS, "hello-"+style)
	}
	probeModeKept(t, s)
	t.Run("doctor on native-tls", func(t *testing.T) {
		// The port really speaks TLS (doctor dials it in both modes), and the doctor's
		// readiness check calls the probe what the port needs.
		args := []string{"-n", probesNS, "-service", "hello-grpc-headless-native-tls", "-tls"}
		rep, code, _ := runDoctor(t, s, args...)
		text, _, _ := runDoctorText(t, s, append(args, "-v")...)
		t.Logf("greeter doctor %s -v\n%s", strings.Join(args, " "), text)
		if code != 0 || rep.Errors != 0 {
			t.Errorf("native probes in mode TLS on TLS servers: exit %d, %d error(s)", code, rep.Errors)
		}
		if f := find(rep, doctor.CheckReadiness); f == nil || f.Severity != doctor.OK || !strings.Contains(f.Message, "grpc.mode: TLS") {
			t.Errorf("want an ok readiness finding naming grpc.mode: TLS, got %+v", f)
		}
	})

	var mu sync.Mutex
	var lines []string
	t.Cleanup(func() {
		slices.Sort(lines)
		text := "| probe style | NOT_SERVING pod out of the endpoints | target | back in after SERVING |\n|---|---:|---:|---:|\n" + strings.Join(lines, "\n") + "\n"
		t.Logf("probe styles:\n%s", text)
		if err := os.WriteFile(filepath.Join(s.Out, "probes.txt"), []byte(text), 0o644); err != nil {
			t.Errorf("write probes.txt: %v", err)
		}
	})
	for _, style := range probeStyles {
		t.Run(style, func(t *testing.T) {
			t.Parallel()
			out, back, bound := flipAndTime(t, s, style)
			mu.Lock()
			lines = append(lines, fmt.Sprintf("| %s | %.1f s | ≤ %s | %.1f s |", style, out.Seconds(), bound, back.Seconds()))
			mu.Unlock()
		})
	}
}

// probeModeKept: the API server kept grpc.mode: TLS on the native-tls Deployment and on
// its pods, as it does with the feature gate on (with it off it drops the field, which
// scripts/airgap/k8s/apicheck shows with the API server's own code).
func probeModeKept(t *testing.T, s *h.Suite) {
	t.Helper()
	modes := func(c corev1.Container) string {
		var m []string
		for _, p := range []*corev1.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
			switch {
			case p == nil || p.GRPC == nil:
				m = append(m, "-")
			case p.GRPC.Mode == nil:
				m = append(m, "<none>")
			default:
				m = append(m, string(*p.GRPC.Mode))
			}
		}
		return strings.Join(m, ",")
	}
	const want = "TLS,TLS,TLS" // startup, readiness, liveness
	d := s.Kube.Deployment(t, probesNS, "hello-native-tls")
	if got := modes(d.Spec.Template.Spec.Containers[0]); got != want {
		t.Fatalf("Deployment hello-native-tls as stored: probe modes %s, want %s (the API server dropped grpc.mode: is %s off?)", got, want, probeTLSGate)
	}
	for _, p := range s.Kube.Pods(t, probesNS, "probe-style=native-tls") {
		if got := modes(p.Spec.Containers[0]); got != want {
			t.Errorf("pod %s: probe modes %s, want %s", p.Name, got, want)
		}
	}
	t.Logf("the API server kept grpc.mode: TLS on hello-native-tls and its pods (startup, readiness, liveness)")
}

// flipAndTime flips one pod of hello-<style> to NOT_SERVING and returns how long until its
// endpoint was not ready, how long until it was ready again after SERVING, and the bound.
func flipAndTime(t *testing.T, s *h.Suite, style string) (out, back, bound time.Duration) {
	t.Helper()
	var d struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						ReadinessProbe struct{ PeriodSeconds, FailureThreshold int }
					}
				}
			}
		}
	}
	s.Kube.GetJSON(t, &d, "-n", probesNS, "get", "deploy/hello-"+style)
	rp := d.Spec.Template.Spec.Containers[0].ReadinessProbe
	bound = time.Duration(rp.PeriodSeconds*rp.FailureThreshold)*time.Second + 2*time.Second

	svc := "hello-grpc-headless-" + style
	var pods []string
	h.Eventually(t, 2*time.Minute, h.Poll, svc+": 2 ready endpoints", func() bool {
		pods = readyEndpointPods(t, s, svc)
		return len(pods) == 2
	})
	victim, healthy := pods[0], pods[1]

	s.SetHealth(t, probesNS, victim, "NOT_SERVING")
	start := time.Now()
	for {
		ready := readyEndpointPods(t, s, svc)
		if !slices.Contains(ready, healthy) {
			t.Errorf("%s: the healthy pod %s left the ready endpoints %s after the flip of %s", style, healthy, time.Since(start).Round(100*time.Millisecond), victim)
		}
		if !slices.Contains(ready, victim) {
			out = time.Since(start)
			break
		}
		if time.Since(start) > bound+30*time.Second {
			t.Fatalf("%s: %s still a ready endpoint %s after NOT_SERVING", style, victim, time.Since(start).Round(time.Second))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%s: NOT_SERVING pod %s out of the endpoints after %.1f s (target ≤ %s)", style, victim, out.Seconds(), bound)
	if out > bound {
		t.Errorf("%s: %s left the endpoints after %.1f s, want ≤ %s (period %ds × threshold %d + 2 s)", style, victim, out.Seconds(), bound, rp.PeriodSeconds, rp.FailureThreshold)
	}
	// The healthy pod stays Ready for another full window.
	until := time.Now().Add(bound)
	for time.Now().Before(until) {
		if ready := readyEndpointPods(t, s, svc); !slices.Contains(ready, healthy) {
			t.Errorf("%s: the healthy pod %s left the ready endpoints", style, healthy)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}

	s.SetHealth(t, probesNS, victim, "SERVING")
	back = h.Eventually(t, time.Minute, h.Poll, style+": "+victim+" ready again after SERVING", func() bool {
		return slices.Contains(readyEndpointPods(t, s, svc), victim)
	})
	return out, back, bound
}

// readyEndpointPods are the pods behind the Service's EndpointSlices whose endpoint is
// ready, sorted.
func readyEndpointPods(t *testing.T, s *h.Suite, svc string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h.APIRequest)
	defer cancel()
	l, err := s.Kube.API.DiscoveryV1().EndpointSlices(probesNS).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		t.Fatalf("EndpointSlices of %s/%s: %v", probesNS, svc, err)
	}
	var pods []string
	for _, s := range l.Items {
		for _, ep := range s.Endpoints {
			if ep.TargetRef != nil && (ep.Conditions.Ready == nil || *ep.Conditions.Ready) && !slices.Contains(pods, ep.TargetRef.Name) {
				pods = append(pods, ep.TargetRef.Name)
			}
		}
	}
	slices.Sort(pods)
	return pods
}

// TestProbes runs the probe styles (native gRPC, exec probe mode, HTTP /readyz, native gRPC
// in mode TLS) before the parallel tests start: it does not call t.Parallel, so Go runs it
// while TestTopologies and the others wait at theirs. Its figures are the probes' own
// timing, so they are measured on a node that is not also running the topologies' loads,
// where an exec probe (a process the container runtime starts every period) can miss its
// bound.
func TestProbes(t *testing.T) {
	s := suite
	defer s.DumpIfFailed(t, probesNS)
	probes(t, s)
}
