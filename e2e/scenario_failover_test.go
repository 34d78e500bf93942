//go:build e2e

package e2e

import (
	"fmt"
	"testing"
	"time"

	h "github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"
)

func init() {
	register(h.Scenario{Name: "failover", Order: 30, Needs: h.FeatureResilience, Run: failover})
}

// failover flips one pod to NOT_SERVING and measures, from its own metrics, how long it
// kept receiving calls.
func failover(t *testing.T, s *h.Suite, tp h.Topology) {
	sc := s.NewEvents(tp.Name)
	pods := s.HelloPods(t, tp.Namespace)
	victim := pods[0]
	l := s.StartLoad(t, tp, "failover", append(h.LoadArgs(), "-timeline-bucket=100ms")...)
	l.WaitCalls(t, h.BaselineCalls)
	last, err := s.Handled(tp.Namespace, victim)
	if err != nil {
		t.Fatal(err)
	}
	release := s.Timing(t) // no pod starts or stops anywhere while this is timed
	sc.Mark("NOT_SERVING: " + victim)
	s.SetHealth(t, tp.Namespace, victim, "NOT_SERVING")
	// Timed from when the pod's admin endpoint answered: it has flipped by then. The call
	// through the API server's pod proxy that carries the POST takes up to a second on the
	// shared node; timed from its start, that second would be charged to the clients,
	// against a 1 s target.
	flipped := time.Now()
	lastIncrease, scrapeErrs := flipped, 0
	for time.Since(lastIncrease) < 6*time.Second && time.Since(flipped) < 20*time.Second {
		time.Sleep(200 * time.Millisecond) // the sampling period of the measurement
		n, err := s.Handled(tp.Namespace, victim)
		if err != nil {
			// A scrape goes through the API server's pod proxy; one that fails leaves a gap
			// of 200 ms in the samples, three in a row end the test.
			if scrapeErrs++; scrapeErrs == 3 {
				t.Fatal(err)
			}
			t.Logf("failover sample skipped: %v", err)
			continue
		}
		scrapeErrs = 0
		if n > last {
			last, lastIncrease = n, time.Now()
		}
	}
	back := sc.Mark("SERVING again")
	s.SetHealth(t, tp.Namespace, victim, "SERVING")
	release()
	s.WaitPodsReady(t, tp.Namespace, 3)
	sum := h.Tail(t, l)[0]
	// The figure comes from the load's own timeline (100 ms buckets): the end of the last
	// bucket before SERVING again in which the victim answered a call (it had 6 s without
	// one by then). The metrics polled above only decide when to stop waiting: each sample
	// is a kubectl call through the API server, late by as long as that call takes on a
	// busy node (up to a second).
	stopped := lastIncrease.Sub(flipped)
	if end, ok := h.LastServed(sum, victim, back); ok {
		stopped = max(end.Sub(flipped), 0)
	} else {
		t.Errorf("failover: the load's timeline has no call of %s: cannot time it", victim)
	}
	sc.MarkAt(flipped.Add(stopped), "last call served")
	sc.Record(t, "failover: NOT_SERVING pod stops getting calls", sum, stopped, fmt.Sprintf("target ≤ %s", tp.FailoverTarget))
	t.Logf("%s: %s stopped receiving calls %s after NOT_SERVING (target ≤ %s)", tp.Name, victim, stopped.Round(100*time.Millisecond), tp.FailoverTarget)
	if stopped > tp.FailoverTarget {
		t.Errorf("NOT_SERVING pod kept receiving calls for %s, target ≤ %s", stopped, tp.FailoverTarget)
	}
	if sum.Failed != 0 {
		t.Errorf("failover: %d calls failed", sum.Failed)
	}
}
