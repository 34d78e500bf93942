//go:build e2e

package e2e

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	h "github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/doctor"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

// The kit's alerts (kustomize/components/prometheus-rule) as the kit's Prometheus
// evaluates them on the e2e overlays (e2e/components/fast-alerts' short windows).
const (
	alertImbalance = "GrpcServerCallsImbalanced"
	alertErrors    = "GrpcServerErrorRateHigh"
	// loadGRPCService is the gRPC service the greeter's loads call (SayHello).
	loadGRPCService = "helloworld.Hello"
	// metricsRate: calls per second of the metrics scenarios' loads; at 100/s each of three
	// pods takes about 2 000 calls in the rate window, so the rate is steady to well under
	// a percent, and the canary (10 %) still takes 10 calls/s, over the rule's 1 call/s.
	metricsRate = 100
	// rateTolerance bounds the gap between the rate Prometheus records for a pod and the
	// greeter's calls per second to that pod: the greeter averages its whole load, the rule
	// the last minute of it, and a proxy's weighted split and the greeter's pacing vary a
	// little over time. 10 % and 1 call/s cover that with a margin (the runs' worst gap is in
	// docs/results/e2e.md); a miscount (a pod's series under another pod's name, calls of
	// another client, the wrong window) is far outside it.
	rateTolerance = 0.1
	rateSlack     = 1.0
	// knobFraction: the share of its calls the error knob fails on one pod of three, 13 % of
	// all calls, well over the error alert's 5 %. Under the 50 % at which the load's outlier
	// detection ejects a pod (dialer.DefaultOutlier): a pod failing more would leave the
	// client's rotation within a second, its errors with it, and no alert would have a
	// reason to fire (which is what outlier detection is for).
	knobFraction = 0.4
	// knobShare: the share of all calls that fail, one pod of three.
	knobShare = knobFraction / 3
)

// errorPendingWithin bounds how long the error alert takes to go pending once the pod
// fails: the rule's window is full of calls that did not fail, so the window's error share
// crosses the alert's threshold once the failures fill threshold / knobShare of it (22.5 s
// of the minute: 5 % / 13.3 %), then the alert lag.
func errorPendingWithin() time.Duration {
	return time.Duration(float64(h.RateWindow)*doctor.KitErrorRate().Ratio/knobShare) + h.AlertLag
}

func init() {
	register(h.Scenario{Name: "metrics: scraped, rates agree, no imbalance alert", Order: 5, Needs: h.FeatureResilience, Run: metricsAgree})
	register(h.Scenario{Name: "alerts: imbalance under pick_first, error rate", Order: 5, Needs: h.FeatureAlerts, Run: alertsFire})
}

// metricsAgree: first in every topology's namespace, before any scenario breaks the
// spread. Every server pod is an up target; under the topology's own balancing at a steady
// rate the imbalance alert stays quiet (alertsFire is its negative control: pick_first
// makes it pending within AlertLag); and the per-pod rates the rules record agree with what
// the greeter counted per pod.
func metricsAgree(t *testing.T, s *h.Suite, tp h.Topology) {
	nss := tp.Namespaces()
	scraped := s.WaitScraped(t, nss...)
	load := s.StartLoad(t, tp, "metrics: steady load", append(h.LoadArgs(), fmt.Sprintf("-rate=%d", metricsRate))...)
	load.WaitCalls(t, 1)
	start := time.Now()
	// What happened before the load (the deploy's pick_first Job in headless) leaves the
	// rules' view after AlertLag at the latest: the steady load then makes every share even.
	time.Sleep(h.AlertLag)
	// Until the rate window lies inside the load.
	// The load's service only: the overlay's own Jobs (headless) called Goodbye too, and
	// their pick_first Job left it as imbalanced as the alert says, until the window forgets.
	loadService := func(m model.Metric) bool { return m["grpc_service"] == loadGRPCService }
	s.QuietAlert(t, alertImbalance, h.RateWindow+h.EvalInterval+h.ScrapeInterval-time.Since(start), loadService, nss...)
	recorded := map[string]float64{}
	for _, ns := range nss {
		maps.Copy(recorded, h.ByPod(s.Prometheus.Query(t, fmt.Sprintf("sum by (pod) (%s{namespace=%q, grpc_service=%q})", h.RecordedRate, ns, loadGRPCService))))
	}
	load.StopNow()
	sum := load.Result(t)
	h.NoFailures(t, "metrics: steady load", sum)
	worst, rows := compareRates(t, sum, recorded)
	s.Metrics.Add(tp.Name, "server pods scraped (up)", int64(len(scraped)), 0, strings.Join(scraped, ", "))
	s.Metrics.Add(tp.Name, "recorded rate vs greeter, worst gap", int64(len(rows)), 0,
		fmt.Sprintf("%.1f%% (bound %g%% + %g call/s): %s", 100*worst, 100*rateTolerance, rateSlack, strings.Join(rows, "; ")))
	t.Logf("recorded rates vs the greeter's over %s: %s", time.Since(start).Round(time.Second), strings.Join(rows, "; "))
}

// compareRates checks each pod's recorded rate against the greeter's calls per second to
// it, and returns the worst relative gap and a line per pod.
func compareRates(t *testing.T, sum report.Summary, recorded map[string]float64) (float64, []string) {
	t.Helper()
	greeter := map[string]float64{}
	for _, b := range sum.Backends {
		greeter[b.Pod] = float64(b.Calls) / sum.ElapsedS
	}
	worst := 0.0
	var rows []string
	for _, pod := range slices.Sorted(maps.Keys(greeter)) {
		g := greeter[pod]
		r, ok := recorded[pod]
		if !ok {
			t.Errorf("pod %s served %.1f calls/s, Prometheus recorded no rate for it (%s)", pod, g, h.RecordedRate)
			continue
		}
		gap := math.Abs(r - g)
		worst = max(worst, gap/g)
		rows = append(rows, fmt.Sprintf("%s %.1f/%.1f", pod, r, g))
		if gap > rateTolerance*g+rateSlack {
			t.Errorf("pod %s: Prometheus recorded %.2f calls/s, the greeter made %.2f to it: off by more than %g%% + %g", pod, r, g, 100*rateTolerance, rateSlack)
		}
	}
	for pod, r := range recorded {
		if _, ok := greeter[pod]; !ok && r > rateSlack {
			t.Errorf("pod %s: Prometheus recorded %.2f calls/s, the greeter made none to it", pod, r)
		}
	}
	return worst, rows
}

// alertsFire: in a namespace no other scenario has sent calls to yet, each alert goes
// pending for its cause and stays quiet for its look-alike.
//   - GrpcServerCallsImbalanced: a load with pick_first puts every call on one pod; the
//     alert is pending within AlertLag (metricsAgree is the quiet side, under round robin).
//     The doctor, reading the same Prometheus, names the idle pods.
//   - GrpcServerErrorRateHigh: under round robin, one pod fails knobFraction of its calls
//     with INVALID_ARGUMENT (a caller's mistake) for errorPendingWithin: quiet; then with
//     UNAVAILABLE: pending within errorPendingWithin; the knob off, it clears within the
//     rate window and AlertLag.
//     The doctor's errorRate check agrees at each step.
func alertsFire(t *testing.T, s *h.Suite, tp h.Topology) {
	ns := tp.Namespace
	s.WaitScraped(t, ns)
	doctorArgs := []string{"-n", ns, "-service", "hello-grpc-headless", "-prometheus", s.Prometheus.URL,
		"-prometheus-window", model.Duration(h.RateWindow).String()}

	pf := s.JobLoad(t, tp, "alerts: pick_first", append(h.LoadArgs(), fmt.Sprintf("-rate=%d", metricsRate), "-lb=pick_first")...)
	pf.WaitCalls(t, 1)
	took, a := s.AwaitAlert(t, alertImbalance, ns, h.AlertLag, func(m model.Metric) bool { return m["deployment"] == "hello" })
	s.Metrics.Add(tp.Name, alertImbalance+" pending under pick_first", 1, took, fmt.Sprintf("%s, %s", a.Labels["pod"], a.State))
	t.Logf("%s %s for %s %s after %s", alertImbalance, a.State, a.Labels["pod"], a.Labels["deployment"], took.Round(time.Second))
	awaitMetricsFinding(t, s, doctor.CheckTraffic, doctor.Error, "get no calls", doctorArgs...)
	pf.StopNow()
	sum := pf.Result(t)
	if len(sum.Backends) != 1 {
		t.Errorf("pick_first: want every call on one pod, got %s", perPod(sum))
	}

	hello := s.HelloPods(t, ns)
	if len(hello) == 0 {
		t.Fatal("no hello pods")
	}
	victim := hello[0]
	rr := s.StartLoad(t, tp, "alerts: round robin", append(h.LoadArgs(), fmt.Sprintf("-rate=%d", metricsRate))...)
	t.Cleanup(func() { s.PostAdmin(t, ns, victim, "errors?fraction=0") })
	s.PostAdmin(t, ns, victim, fmt.Sprintf("errors?code=INVALID_ARGUMENT&fraction=%g", knobFraction))
	rr.WaitCalls(t, 1)
	s.QuietAlert(t, alertErrors, errorPendingWithin(), func(model.Metric) bool { return true }, ns)
	s.Metrics.Add(tp.Name, alertErrors+" quiet: one pod of 3 answers INVALID_ARGUMENT", 0, errorPendingWithin(), "not pending at any poll (the control)")
	if f := metricsFinding(t, s, doctor.CheckErrorRate, doctorArgs...); f == nil || f.Severity == doctor.Error {
		t.Errorf("doctor, INVALID_ARGUMENT only: want no errorRate error, got %+v", f)
	} else {
		t.Logf("doctor %s, INVALID_ARGUMENT only: %s %v", f.Check, f.Message, f.Evidence)
	}

	s.PostAdmin(t, ns, victim, fmt.Sprintf("errors?code=UNAVAILABLE&fraction=%g", knobFraction))
	took, a = s.AwaitAlert(t, alertErrors, ns, errorPendingWithin(), func(model.Metric) bool { return true })
	s.Metrics.Add(tp.Name, alertErrors+" pending: one pod of 3 answers UNAVAILABLE", 1, took, fmt.Sprintf("%s, %s", a.Labels["grpc_service"], a.State))
	t.Logf("%s %s for %s after %s", alertErrors, a.State, a.Labels["grpc_service"], took.Round(time.Second))
	awaitMetricsFinding(t, s, doctor.CheckErrorRate, doctor.Error, "end in a server error", doctorArgs...)

	s.PostAdmin(t, ns, victim, "errors?fraction=0")
	cleared := s.AwaitNoAlert(t, alertErrors, ns, h.RateWindow+h.AlertLag)
	s.Metrics.Add(tp.Name, alertErrors+" cleared after the errors stopped", 0, cleared, "")
	t.Logf("%s cleared %s after the errors stopped", alertErrors, cleared.Round(time.Second))
	rr.StopNow()
	rr.Result(t)
}

// metricsFinding runs the doctor with args and returns its worst finding of check.
func metricsFinding(t *testing.T, s *h.Suite, check string, args ...string) *doctor.Finding {
	t.Helper()
	rep, code, stderr := runDoctor(t, s, args...)
	if code != 0 && code != 3 {
		t.Fatalf("greeter doctor %v: exit %d: %s", args, code, stderr)
	}
	return find(rep, check)
}

// awaitMetricsFinding runs the doctor until check reports sev with want in its message:
// the doctor reads the same rates as the rules, a scrape and an evaluation apart.
func awaitMetricsFinding(t *testing.T, s *h.Suite, check string, sev doctor.Severity, want string, args ...string) {
	t.Helper()
	var f *doctor.Finding
	h.Eventually(t, h.AlertLag, 2*time.Second, fmt.Sprintf("doctor %s: %s %q", check, sev, want), func() bool {
		f = metricsFinding(t, s, check, args...)
		return f != nil && f.Severity == sev && strings.Contains(f.Message, want)
	})
	t.Logf("doctor %s: %s", check, f.Message)
}
