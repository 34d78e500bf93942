//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	h "github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/xdsdump"
)

func init() {
	register(h.Scenario{Name: "slow pod", Order: 60, Needs: h.FeatureSlowPod, Run: func(t *testing.T, s *h.Suite, tp h.Topology) {
		if tp.Balancer == h.BalancerControlPlane {
			xdsSlowPod(t, s, tp)
			return
		}
		slowPod(t, s, tp)
	}})
}

// The slow-pod scenario: one hello pod of three answers every call slowLatency
// later (the server's slowdown knob, POST /admin/slow: this kernel has no netem), under a
// closed load of capacityConc callers capped at capacityRate calls/s, so a policy that
// keeps callers waiting on the slow pod shows as lost throughput.
const (
	slowLatency  = "50ms" // about 10× a call's latency on the busy node (2–6 ms)
	capacityConc = 8
	capacityRate = 600
	capacityRun  = 10 * time.Second
	// weighted_round_robin's knobs for these short runs: weights count after 1 s of
	// reports (default 10 s) and are recomputed every 200 ms (default 1 s).
	wrrBlackout = "1s"
	wrrUpdate   = "200ms"
	// recoverBound: once the latency is removed, the pod must be back to a quarter of the
	// calls (an even share is a third) within this long under weighted_round_robin.
	recoverBound = 10 * time.Second
)

// evenShareRatio is pod's share over the mean share of the other v1 pods: about 1 when
// the balancer ignores how slow pod is.
func evenShareRatio(sum report.Summary, pod string) float64 {
	var others []float64
	for _, b := range sum.Backends {
		if b.Pod != pod && b.Version == "v1" {
			others = append(others, h.BackendShare(sum, b.Pod))
		}
	}
	if len(others) == 0 {
		return 0
	}
	var total float64
	for _, o := range others {
		total += o
	}
	return h.BackendShare(sum, pod) / (total / float64(len(others)))
}

func capacityArgs() []string {
	return []string{"-c=" + fmt.Sprint(capacityConc), "-rate=" + fmt.Sprint(capacityRate), "-timeout=5s", "-json", "-quiet"}
}

// slowPod: the same load with every pod fast, then with one slowed, under each policy
// the entry point allows. A headless client chooses: round_robin keeps sending the slow
// pod a third of the calls (the negative control), weighted_round_robin (the servers'
// ORCA reports) and least_request move most calls off it, and when the latency is
// removed weighted_round_robin gives the pod its share back (measured, with a picture).
// Through a proxy the client's policy does not matter: Traefik's round robin (the only
// strategy its Ingress and Gateway providers configure) gives the slow pod its full
// share, which is measured and asserted as what docs/balancing.md says.
func slowPod(t *testing.T, s *h.Suite, tp h.Topology) {
	pods := s.HelloPods(t, tp.Namespace)
	if len(pods) == 0 {
		t.Fatal("no hello pods")
	}
	victim := pods[0]
	run := func(what string, extra ...string) report.Summary {
		t.Helper()
		args := append(append(capacityArgs(), "-duration="+capacityRun.String()), extra...)
		var sum report.Summary
		if tp.Entry.InCluster {
			sum = s.StartLoad(t, tp, "slow pod: "+what, args...).Result(t)
		} else {
			var code int
			// The kit's client as the other loads run it: retries on (proxyArgs turns them
			// off for the bad-input checks). A pod of the busy node that misses a probe
			// leaves Traefik's rotation for a moment, and a call sent to it meanwhile is a
			// 503 that the retry policy sends again (14 of 1 912 once, with retries off).
			sum, code = s.Greet(t, append(append(proxyArgs(s, tp), "-retry=true"), args...)...)
			if code != 0 {
				t.Errorf("%s: greeter exit %d", what, code)
			}
		}
		if sum.Failed != 0 {
			t.Errorf("slow pod, %s: %d of %d calls failed: %+v", what, sum.Failed, sum.Calls, sum.Errors)
		}
		return sum
	}
	pods3 := "3 fast"
	slowPods := "1 of 3 +" + slowLatency

	if tp.Balancer == h.BalancerProxy {
		fast := run("all fast")
		s.Capacity.Add(tp.Name, "Traefik round robin", pods3, fast, "")
		s.SetSlow(t, tp.Namespace, victim, slowLatency)
		defer s.SetSlow(t, tp.Namespace, victim, "0")
		sum := run("one slow")
		s.Capacity.Add(tp.Name, "Traefik round robin", slowPods, sum, victim)
		r := evenShareRatio(sum, victim)
		t.Logf("%s: the slow pod's share is %.2f× the others' (%.1f%%); p99 %.1f ms against %.1f ms all fast", tp.Name, r, 100*h.BackendShare(sum, victim), h.LatencyOf(sum).P99, h.LatencyOf(fast).P99)
		if r < 0.75 {
			t.Errorf("through %s the slow pod got %.2f× the others' share: Traefik's round robin was expected to ignore its latency", tp.Name, r)
		}
		return
	}

	fast := run("all fast, round_robin", "-lb=round_robin")
	s.Capacity.Add(tp.Name, "round_robin", pods3, fast, "")
	s.SetSlow(t, tp.Namespace, victim, slowLatency)
	slowed := true
	defer func() {
		if slowed {
			s.SetSlow(t, tp.Namespace, victim, "0")
		}
	}()
	for _, p := range []struct {
		label string
		args  []string
		max   float64 // bound on the slow pod's share; 0: round robin, about a third
	}{
		{"round_robin", []string{"-lb=round_robin"}, 0},
		// 3 choices: with 2 of 3 pods sampled, each pod is picked alone 1 call in 9
		// whatever its load.
		{"least_request (3 choices)", []string{"-lb=least_request", "-lr-choices=3"}, 0.15},
		// The share counts the first second too, before the weights apply (the blackout).
		{"weighted_round_robin (ORCA)", wrrArgs(), 0.15},
	} {
		sum := run(p.label, p.args...)
		s.Capacity.Add(tp.Name, p.label, slowPods, sum, victim)
		share := h.BackendShare(sum, victim)
		t.Logf("headless %s: slow pod's share %.1f%%, p50 %.1f ms, p99 %.1f ms, %.0f calls/s", p.label, 100*share, h.LatencyOf(sum).P50, h.LatencyOf(sum).P99, sum.PerSecond)
		if p.max == 0 && (share < 0.25 || share > 0.42) {
			t.Errorf("round_robin gave the slow pod %.1f%% of the calls, want about a third (25–42%%)", 100*share)
		}
		if p.max > 0 && share >= p.max {
			t.Errorf("%s gave the slow pod %.1f%% of the calls, want under %.0f%%", p.label, 100*share, 100*p.max)
		}
	}

	// weighted_round_robin again, slow and then recovering, in one load with its picture.
	sc := s.NewEvents(tp.Name)
	l := s.StartLoad(t, tp, "slow pod recovers", append(append(h.LoadArgs(), "-c="+fmt.Sprint(capacityConc), "-rate="+fmt.Sprint(capacityRate)), wrrArgs()...)...)
	l.WaitCalls(t, capacityRate*5) // 5 s: the blackout and a few weight updates
	removed := sc.Mark("latency removed: " + victim)
	s.SetSlow(t, tp.Namespace, victim, "0")
	slowed = false
	l.WaitCalls(t, l.Count()+int64(capacityRate*recoverBound.Seconds()))
	sum := l.Stop(t)
	if sum.Failed != 0 {
		t.Errorf("slow pod recovers: %d of %d calls failed: %+v", sum.Failed, sum.Calls, sum.Errors)
	}
	// When the pod was back to a quarter of the calls, from the load's timeline (500 ms
	// buckets): the first bucket after the removal where it served ≥ 25 %.
	tl := sum.Timeline
	if tl == nil {
		t.Fatal("slow pod recovers: the load's report has no timeline")
	}
	total := make([]float64, tl.Buckets())
	for _, pod := range tl.Pods {
		for i, r := range tl.Rates(pod) {
			total[i] += r
		}
	}
	vr := tl.Rates(victim)
	back := time.Duration(-1)
	for i := int(removed.Sub(tl.Start)/tl.Bucket) + 1; i < len(total); i++ {
		if total[i] > 0 && vr[i]/total[i] >= 0.25 {
			back = tl.Start.Add(time.Duration(i+1) * tl.Bucket).Sub(removed) // the bucket's end: an upper bound
			break
		}
	}
	if back >= 0 {
		sc.MarkAt(removed.Add(back), "share back to ≥ 25%")
	}
	sc.Record(t, "slow pod recovers (weighted_round_robin)", sum, max(back, 0), fmt.Sprintf("target ≤ %s", recoverBound))
	t.Logf("headless weighted_round_robin: the pod was back to ≥ 25%% of the calls %s after its latency was removed", back.Round(100*time.Millisecond))
	if back < 0 || back > recoverBound {
		t.Errorf("weighted_round_robin: the pod was not back to a quarter of the calls within %s of the latency's removal (back after %s)", recoverBound, back)
	}
}

// wrrArgs: weighted_round_robin with the knobs for these short runs.
func wrrArgs() []string {
	return []string{"-lb=weighted_round_robin", "-wrr-blackout=" + wrrBlackout, "-wrr-weight-update=" + wrrUpdate}
}

// xdsSlowPod: the slow-pod scenario for proxyless clients, whose policy is the
// control plane's. istiod's default, round robin, keeps giving the slow v1 pod a third of
// v1's calls (the negative control); with the DestinationRule of
// components/xds-least-request, istiod sends least_request (2 choices) and most of them
// move off it.
func xdsSlowPod(t *testing.T, s *h.Suite, tp h.Topology) {
	pods := s.HelloPods(t, tp.Namespace)
	if len(pods) == 0 {
		t.Fatal("no hello pods")
	}
	victim := pods[0]
	run := func(what string) report.Summary {
		t.Helper()
		sum := s.JobLoad(t, tp, "slow pod: "+what, append(capacityArgs(), "-duration="+capacityRun.String())...).Result(t)
		if sum.Failed != 0 {
			t.Errorf("slow pod, %s: %d of %d calls failed: %+v", what, sum.Failed, sum.Calls, sum.Errors)
		}
		return sum
	}
	// The share of v1's calls (the route sends 10 % to v2, whatever the policy).
	v1Share := func(sum report.Summary) float64 {
		if sum.ByVersion["v1"] == 0 {
			return 0
		}
		for _, b := range sum.Backends {
			if b.Pod == victim {
				return float64(b.Calls) / float64(sum.ByVersion["v1"])
			}
		}
		return 0
	}
	dr := s.OverlayDir("proxyless-xds-least-request")
	s.Kube.Cleanup(t, "delete", "-k", dr, "--ignore-not-found") // whatever an aborted run left
	const rr, lr = "round_robin (istiod's default)", "least_request (DestinationRule)"
	slowPods := "1 of 3 v1 +" + slowLatency
	s.Capacity.Add(tp.Name, rr, "3 fast v1, 1 v2", run("all fast, round robin"), "")
	s.SetSlow(t, tp.Namespace, victim, slowLatency)
	defer s.SetSlow(t, tp.Namespace, victim, "0")
	rrRun := run("one slow, round robin")
	s.Capacity.Add(tp.Name, rr, slowPods, rrRun, victim)

	s.Apply(t, "proxyless-xds-least-request")
	defer s.Kube.Cleanup(t, "delete", "-k", dr, "--ignore-not-found")
	took := h.Eventually(t, 2*time.Minute, h.Poll, "a proxyless client receives hello-v1 with lb LEAST_REQUEST", func() bool {
		var d xdsdump.Dump
		s.JobLoad(t, tp, "xds-dump", "-xds-dump", "-json", "-timeout=20s").Decode(t, &d)
		return slices.ContainsFunc(d.Clusters, func(c xdsdump.Cluster) bool {
			return strings.Contains(c.Name, "|hello-v1.") && c.LBPolicy == "LEAST_REQUEST"
		})
	})
	t.Logf("the DestinationRule reached a new client as lb LEAST_REQUEST within %s", took.Round(time.Second))
	lrRun := run("one slow, least_request")
	s.Capacity.Add(tp.Name, lr, slowPods, lrRun, victim)

	t.Logf("%s: the slow pod's share of v1's calls: round robin %.1f%%, least_request %.1f%%; p99 %.1f ms and %.1f ms",
		tp.Name, 100*v1Share(rrRun), 100*v1Share(lrRun), h.LatencyOf(rrRun).P99, h.LatencyOf(lrRun).P99)
	if sh := v1Share(rrRun); sh < 0.25 || sh > 0.42 {
		t.Errorf("round robin gave the slow pod %.1f%% of v1's calls, want about a third (25–42%%)", 100*sh)
	}
	// 2 choices drawn at random, with replacement: both are the slow pod 1 time in 9
	// (11 %), whatever its load; a bound of 20 % leaves room for the first moments.
	if sh := v1Share(lrRun); sh > 0.20 {
		t.Errorf("least_request gave the slow pod %.1f%% of v1's calls, want ≤ 20%%", 100*sh)
	}
}
