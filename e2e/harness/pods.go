//go:build e2e

package harness

import (
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// HelloV1 selects the hello v1 pods, the ones the scenarios act on.
const HelloV1 = "app.kubernetes.io/name=hello,version=v1"

// AdminPort is the servers' HTTP port: metrics and the admin endpoint (HTTP_PORT).
const AdminPort = 8080

// WaitPodsReady waits until ns has exactly n Ready hello v1 pods and none terminating.
func (s *Suite) WaitPodsReady(t testing.TB, ns string, n int) {
	t.Helper()
	Eventually(t, PodsReady, Poll, fmt.Sprintf("%d Ready hello pods in %s and none terminating", n, ns), func() bool {
		pods := s.Kube.Pods(t, ns, HelloV1)
		ready := 0
		for i := range pods {
			if pods[i].DeletionTimestamp != nil {
				return false
			}
			if PodReady(&pods[i]) {
				ready++
			}
		}
		return ready == n && len(pods) == n
	})
}

// HelloPods lists the running hello v1 pods of ns, sorted.
func (s *Suite) HelloPods(t testing.TB, ns string) []string {
	t.Helper()
	var names []string
	for _, p := range s.Kube.Pods(t, ns, HelloV1) {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			names = append(names, p.Name)
		}
	}
	slices.Sort(names)
	return names
}

// PodReadyAt is when pod's Ready condition last turned True (the API's second precision).
func (s *Suite) PodReadyAt(t testing.TB, ns, pod string) time.Time {
	t.Helper()
	for _, c := range s.Kube.Pod(t, ns, pod).Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	t.Fatalf("pod %s is not Ready", pod)
	return time.Time{}
}

// Restarts is the sum of the restart counts of ns's server containers.
func (s *Suite) Restarts(t testing.TB, ns string) int {
	t.Helper()
	n := 0
	for _, p := range s.Kube.Pods(t, ns, "app.kubernetes.io/component=server") {
		for _, c := range p.Status.ContainerStatuses {
			n += int(c.RestartCount)
		}
	}
	return n
}

// PostAdmin POSTs to a server pod's admin endpoint (/admin/<what>) through the API
// server's pod proxy: no port-forward needed.
func (s *Suite) PostAdmin(t testing.TB, ns, pod, what string) {
	t.Helper()
	if out, err := s.Kube.PodProxy("POST", ns, pod, AdminPort, "admin/"+what); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

// SetHealth sets a server pod's health (SERVING, NOT_SERVING) through its admin endpoint.
func (s *Suite) SetHealth(t testing.TB, ns, pod, status string) {
	t.Helper()
	s.PostAdmin(t, ns, pod, "health?status="+status)
}

// SetSlow makes every call of a server pod latency slower ("0" turns it off).
func (s *Suite) SetSlow(t testing.TB, ns, pod, latency string) {
	t.Helper()
	s.PostAdmin(t, ns, pod, "slow?latency="+latency)
}

// CheckRestricted: the namespace enforces Pod Security "restricted", so every running pod
// in it was admitted under that profile.
func (s *Suite) CheckRestricted(t testing.TB, ns string) {
	t.Helper()
	var n struct {
		Metadata struct{ Labels map[string]string }
	}
	s.Kube.GetJSON(t, &n, "get", "namespace", ns)
	if n.Metadata.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("namespace %s does not enforce Pod Security restricted: %v", ns, n.Metadata.Labels)
	}
}
