//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	h "github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"
	"google.golang.org/grpc/codes"
)

func init() {
	register(h.Scenario{Name: "control plane lost", Order: 70, Needs: h.FeatureControlPlane, Run: controlPlaneLost})
}

// controlPlaneLost: istiod scaled to 0 under load. The running clients keep the last
// configuration they received, so no call fails; a client that starts meanwhile fails
// every call, with an error that names the control plane; a hello pod added meanwhile gets no
// call (the negative control: nothing tells the clients), and once istiod is back, the
// time until the running clients send it calls is the recovery.
func controlPlaneLost(t *testing.T, s *h.Suite, tp h.Topology) {
	sc := s.NewEvents(tp.Name)
	before := s.HelloPods(t, tp.Namespace)
	l := s.StartLoad(t, tp, "control plane lost", h.LoadArgs()...)
	l.WaitCalls(t, h.BaselineCalls)
	release := s.Churning(t)
	defer release()
	// Whatever happens below, istiod comes back: the other tests of this run, and the
	// user's next one, need it.
	t.Cleanup(func() {
		s.Kube.Cleanup(t, "-n", istiodNS, "scale", "deploy/istiod", "--replicas=1")
		s.Kube.Cleanup(t, "-n", istiodNS, "rollout", "status", "deploy/istiod", "--timeout=3m")
	})
	sc.Mark("istiod scaled to 0")
	s.Kube.Run(t, "-n", istiodNS, "scale", "deploy/istiod", "--replicas=0")
	h.Eventually(t, 2*time.Minute, h.Poll, "istiod's pod gone", func() bool {
		return len(s.Kube.Pods(t, istiodNS, "app.kubernetes.io/name=istiod")) == 0
	})
	sc.Mark("istiod gone")

	// The fresh client learns that istiod is unreachable when its first connection attempt
	// to it fails: at once where the node refuses a connection to a Service with no
	// endpoints (the kit's cluster does), after gRPC's minimum connect timeout (20 s) where
	// the packets go nowhere. Until then its calls wait for a configuration and end with
	// DEADLINE_EXCEEDED, whose hint names istiod too. freshCalls × freshTimeout holds the
	// 20 s with a margin of 25 s, so the UNAVAILABLE is seen either way.
	const freshCalls, freshTimeout = 3, 15 * time.Second
	fresh := s.JobLoad(t, tp, "a client started without istiod", fmt.Sprintf("-n=%d", freshCalls), fmt.Sprintf("-timeout=%s", freshTimeout), "-json", "-quiet").Result(t)
	var freshNotes []string
	for _, e := range fresh.Errors {
		freshNotes = append(freshNotes, fmt.Sprintf("%d %s", e.Count, e.Code))
		if (e.Code != codes.Unavailable && e.Code != codes.DeadlineExceeded) || !strings.Contains(e.Hint, "istiod") {
			t.Errorf("a client started without a control plane: %d calls %s (%s), want UNAVAILABLE or DEADLINE_EXCEEDED with a hint that names istiod, got the hint %q", e.Count, e.Code, e.Example, e.Hint)
		}
	}
	freshNote := fmt.Sprintf("%s in %.1f s", strings.Join(freshNotes, ", "), fresh.ElapsedS)
	t.Logf("a client started while istiod was away: %d of %d calls failed: %s", fresh.Failed, fresh.Calls, freshNote)
	if unavailable := fresh.Count(codes.Unavailable); fresh.Failed != fresh.Calls || unavailable == 0 {
		t.Errorf("a client started without a control plane: want every call to fail and the last ones UNAVAILABLE, got %d of %d failed, %d UNAVAILABLE", fresh.Failed, fresh.Calls, unavailable)
	}

	sc.Mark("scale hello to 4")
	s.Kube.Run(t, "-n", tp.Namespace, "scale", "deploy/hello", "--replicas=4")
	s.WaitPodsReady(t, tp.Namespace, 4)
	var added string
	for _, p := range s.HelloPods(t, tp.Namespace) {
		if !slices.Contains(before, p) {
			added = p
		}
	}
	sc.Mark("new pod Ready: " + added)
	// The negative control's window: long enough for a push to have reached the clients
	// had there been a control plane (twice the goal for a new pod after Ready).
	time.Sleep(2 * tp.ReadyGoal)
	if n, err := s.Handled(tp.Namespace, added); err != nil || n != 0 {
		t.Errorf("%s served %d calls (%v) while istiod was away: something else told the clients", added, n, err)
	}
	sc.Mark("istiod scaled to 1")
	s.Kube.Run(t, "-n", istiodNS, "scale", "deploy/istiod", "--replicas=1")
	s.Kube.Run(t, "-n", istiodNS, "rollout", "status", "deploy/istiod", "--timeout=3m")
	back := sc.Mark("istiod Ready")
	h.Eventually(t, 3*time.Minute, h.Poll, added+" serving the running clients", func() bool {
		n, err := s.Handled(tp.Namespace, added)
		return err == nil && n > 0
	})
	sum := h.Tail(t, l)[0]
	recovery := time.Since(back)
	if first, ok := h.FirstServed(sum, added); ok {
		recovery = first.Sub(back)
		sc.MarkAt(first, "new pod served")
	}
	note := fmt.Sprintf("%d calls; the clients sent the pod added meanwhile calls %.1f s after istiod was Ready again; a client started meanwhile: %d of %d failed (%s)",
		sum.Calls, recovery.Seconds(), fresh.Failed, fresh.Calls, freshNote)
	sc.Record(t, "control plane lost: istiod scaled to 0 under load", sum, recovery, note)
	h.NoFailures(t, "control plane lost", sum)

	s.Kube.Run(t, "-n", tp.Namespace, "scale", "deploy/hello", "--replicas=3")
	s.WaitPodsReady(t, tp.Namespace, 3)
}
