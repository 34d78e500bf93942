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
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// probesNS is e2e/overlays/probes' namespace: one small hello Deployment per probe style.
const probesNS = "grpc-kit-probes"

// probeStyles are the Deployments of e2e/overlays/probes: hello-<style>, with the
// headless Service hello-grpc-headless-<style> and pods labelled probe-style=<style>.
var probeStyles = []string{"native", "exec", "http"}

// probes: for each readiness-probe style (native gRPC, exec probe mode, HTTP /readyz), a
// pod flipped to NOT_SERVING leaves its Service's endpoints within the probe's period ×
// failure threshold + 2 s, and the other, healthy pod stays Ready the whole time (the
// negative control: the probe fails the flipped pod, not every pod). Then the pod is
// flipped back and must return. Times go to the log and e2e/out/probes.txt. Everything is
// in grpc-kit-probes, so it runs beside the rest of the suite.
func probes(t *testing.T, s *h.Suite) {
	s.Apply(t, "probes")
	if !s.Keep {
		t.Cleanup(func() { s.Kube.Cleanup(t, "delete", "namespace", probesNS, "--ignore-not-found", "--wait=false") })
	}
	s.CheckRestricted(t, probesNS)
	for _, style := range probeStyles {
		s.Kube.Rollout(t, probesNS, "hello-"+style)
	}

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

// TestProbes runs the probe styles (native gRPC, exec probe mode, HTTP /readyz) before the
// parallel tests start: it does not call t.Parallel, so Go runs it while TestTopologies and
// the others wait at theirs. Its figures are the probes' own timing, so they are measured
// on a node that is not also running the topologies' loads, where an exec probe (a process
// the container runtime starts every period) can miss its bound.
func TestProbes(t *testing.T) {
	s := suite
	defer s.DumpIfFailed(t, probesNS)
	probes(t, s)
}
