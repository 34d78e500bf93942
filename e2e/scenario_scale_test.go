//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	h "github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

func init() {
	// Through a proxy and proxyless, streams opened before this scale-out are the negative
	// control of "streams: rebalance"; a headless client (DNS) has it beside the scale-out
	// with MAX_CONNECTION_AGE=5s, where it knows the new pods within seconds.
	register(h.Scenario{Name: "scale out and in", Order: 40, Needs: h.FeatureResilience, Run: func(t *testing.T, s *h.Suite, tp h.Topology) {
		scaleOutIn(t, s, tp, "", tp.Discovery != h.DiscoveryDNS)
	}})
	// A client that only learns of new pods when a connection closes (a headless Service's)
	// meets them after MAX_CONNECTION_AGE: with 5m not during the run, with 5s within
	// seconds. hello starts with the overlay's 5m: one rollout, to 5s, not one per age.
	for i, age := range []string{"5m", "5s"} {
		register(h.Scenario{Name: "scale out with MAX_CONNECTION_AGE=" + age, Order: 75 + i, Needs: h.FeatureConnectionAge,
			Run: func(t *testing.T, s *h.Suite, tp h.Topology) { scaleOutWithAge(t, s, tp, age) }})
	}
}

// scaleOutWithAge sets hello's MAX_CONNECTION_AGE (a rollout), then scales out and in.
func scaleOutWithAge(t *testing.T, s *h.Suite, tp h.Topology, age string) {
	release := s.Churning(t)
	s.Kube.Run(t, "-n", tp.Namespace, "scale", "deploy/hello", "--replicas=3") // whatever a failed step left
	s.Kube.Run(t, "-n", tp.Namespace, "set", "env", "deploy/hello", "MAX_CONNECTION_AGE="+age)
	s.Kube.Rollout(t, tp.Namespace, "hello")
	s.WaitPodsReady(t, tp.Namespace, 3)
	release()
	scaleOutIn(t, s, tp, age, age == "5s")
}

// scaleOutIn: 3 → 5 under load (time until every new pod served a call), then 5 → 3
// under load (no call may fail). With streams, a stream load runs beside the scale-out:
// streamsStay, the negative control of streamsRebalance.
func scaleOutIn(t *testing.T, s *h.Suite, tp h.Topology, age string, streams bool) {
	suffix := ""
	if age != "" {
		suffix = " (MAX_CONNECTION_AGE=" + age + ")"
	}
	// How long to wait for the new pods to be served: a headless client with the default
	// 30 s age recycles its connections 27–33 s after opening them, re-resolves (at most
	// every 2 s: -dns-min-resolve) and connects to the new pods if they are Ready by then
	// (they took 11–27 s on the shared node); with 5 minutes it does not during the run
	// (the negative control: 20 s is 4 × the 5 s age's figure).
	window := 40 * time.Second
	if age == "5m" {
		window = 20 * time.Second
	}
	sc := s.NewEvents(tp.Name)
	before := s.HelloPods(t, tp.Namespace)
	var sl *h.Load
	if streams {
		sl = s.StartLoad(t, tp, "scale out: streams"+suffix, streamArgs()...)
		sl.WaitCalls(t, 20*streamCount) // 2 s of messages: every stream is open
	}
	l := s.StartLoad(t, tp, "scale out"+suffix, h.LoadArgs()...)
	l.WaitCalls(t, h.BaselineCalls)
	release := s.Churning(t)
	scaled := sc.Mark("scale to 5")
	s.Kube.Run(t, "-n", tp.Namespace, "scale", "deploy/hello", "--replicas=5")
	served := map[string]time.Duration{}
	var newPods []string
	for time.Since(scaled) < window {
		newPods = newPods[:0]
		for _, p := range s.HelloPods(t, tp.Namespace) {
			if !slices.Contains(before, p) {
				newPods = append(newPods, p)
			}
		}
		for _, p := range newPods {
			if _, ok := served[p]; ok {
				continue
			}
			if n, err := s.Handled(tp.Namespace, p); err == nil && n > 0 {
				served[p] = time.Since(scaled)
			}
		}
		if len(newPods) == 2 && len(served) == 2 {
			break
		}
		time.Sleep(500 * time.Millisecond) // the sampling period of the measurement
	}
	var worst time.Duration
	for _, d := range served {
		worst = max(worst, d)
	}
	release()
	if len(served) == 2 {
		sc.MarkAt(scaled.Add(worst), "every new pod served")
	}
	sum := h.Tail(t, l)[0]
	if sl != nil {
		var live time.Duration // when both new pods served: streamsStay's window starts there
		if len(served) == 2 {
			live = worst
		}
		streamsStay(t, s, tp, sl, before, scaled, live)
	}
	label := "scale out 3 → 5: every new pod served" + suffix
	note := fmt.Sprintf("%d of 2 new pods served within %s", len(served), window)
	if tp.ReadyGoal > 0 {
		note += sinceReady(t, s, tp, sum, served)
	}
	sc.Record(t, label, sum, worst, note)
	t.Logf("%s: %s", label, note)
	if sum.Failed != 0 {
		t.Errorf("scale out: %d calls failed", sum.Failed)
	}
	// Through a proxy or from a control plane new pods get calls once Ready; a client that
	// resolves DNS only after its connections are recycled, so only the short
	// MAX_CONNECTION_AGE has a deadline here.
	if (tp.Discovery != h.DiscoveryDNS || age == "5s") && len(served) != 2 {
		t.Errorf("%s: only %d of 2 new pods got calls within %s", label, len(served), window)
	}

	sc = s.NewEvents(tp.Name)
	l = s.StartLoad(t, tp, "scale in"+suffix, h.LoadArgs()...)
	l.WaitCalls(t, h.BaselineCalls)
	release = s.Churning(t)
	sc.Mark("scale to 3")
	s.Kube.Run(t, "-n", tp.Namespace, "scale", "deploy/hello", "--replicas=3")
	s.WaitPodsReady(t, tp.Namespace, 3)
	sc.Mark("removed pods gone")
	release()
	sum = h.Tail(t, l)[0]
	label = "scale in 5 → 3" + suffix
	sc.Record(t, label, sum, 0, fmt.Sprintf("%d calls", sum.Calls))
	h.NoFailures(t, "scale in", sum)
}

// sinceReady measures, for each new pod that served, how long after it became Ready it
// answered its first call (the load's timeline, 500 ms buckets, against the pod's Ready
// condition, to the second), checks it against the topology's goal, and says it for the
// table's note.
func sinceReady(t *testing.T, s *h.Suite, tp h.Topology, sum report.Summary, served map[string]time.Duration) string {
	t.Helper()
	var worst time.Duration
	for p := range served {
		ready := s.PodReadyAt(t, tp.Namespace, p)
		first, ok := h.FirstServed(sum, p)
		if !ok {
			t.Errorf("%s: the load's timeline has no call of %s, which served calls", tp.Name, p)
			continue
		}
		worst = max(worst, first.Sub(ready))
	}
	t.Logf("%s: new pods served %.1f s after Ready at worst (goal ≤ %s)", tp.Name, worst.Seconds(), tp.ReadyGoal)
	if worst > tp.ReadyGoal {
		t.Errorf("%s: a new pod served its first call %.1f s after it was Ready, goal ≤ %s", tp.Name, worst.Seconds(), tp.ReadyGoal)
	}
	return fmt.Sprintf("; each served ≤ %.1f s after Ready (goal ≤ %s)", worst.Seconds(), tp.ReadyGoal)
}
