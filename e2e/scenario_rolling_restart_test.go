//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	h "github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"
)

func init() {
	// The rolling restart is the rollout that gives hello the settings of "streams:
	// rebalance" (rebalanceEnv): a change of the pod template replaces every pod as
	// `kubectl rollout restart` does, and one rollout instead of two is a minute less of
	// pod churn in each topology. So it comes last but one: the scenarios before it run
	// with the overlay's settings.
	register(h.Scenario{Name: "rolling restart", Order: 80, Needs: h.FeatureResilience, Run: func(t *testing.T, s *h.Suite, tp h.Topology) {
		rollingRestart(t, s, tp, rebalanceEnv(tp))
	}})
}

// rollingRestart replaces every hello pod, one at a time, under a call load and a stream
// load, by setting env on the Deployment (a change of the pod template, as `kubectl
// rollout restart` makes one): no call may fail and every stream must come back.
func rollingRestart(t *testing.T, s *h.Suite, tp h.Topology, env []string) {
	sc := s.NewEvents(tp.Name)
	before := s.HelloPods(t, tp.Namespace)
	l := s.StartLoad(t, tp, "rolling restart", h.LoadArgs()...)
	streams := s.StartLoad(t, tp, "rolling restart: streams", streamArgs()...)
	l.WaitCalls(t, h.BaselineCalls)
	streams.WaitCalls(t, 20*streamCount)
	// One rollout serves the clients in other languages too (where the topology has them).
	clientsCheck := clientsBeside(t, s, tp)
	release := s.Churning(t)
	start := sc.Mark("rollout: set env " + strings.Join(env, " "))
	gen := s.Kube.Deployment(t, tp.Namespace, "hello").Generation
	s.Kube.Run(t, append([]string{"-n", tp.Namespace, "set", "env", "deploy/hello"}, env...)...)
	if s.Kube.Deployment(t, tp.Namespace, "hello").Generation == gen {
		// hello had these settings already (a run stopped half-way, with -keep): restart
		// it the other way, so the scenario still replaces every pod.
		s.Kube.Run(t, "-n", tp.Namespace, "rollout", "restart", "deploy/hello")
	}
	s.Kube.Rollout(t, tp.Namespace, "hello")
	took := time.Since(start)
	sc.Mark("rollout done")
	// The old pods drain for DRAIN_DELAY after the rollout reports done: calls must not
	// fail until they are gone.
	s.WaitPodsReady(t, tp.Namespace, 3)
	sc.Mark("old pods gone")
	release()
	if left := slices.DeleteFunc(s.HelloPods(t, tp.Namespace), func(p string) bool { return !slices.Contains(before, p) }); len(left) > 0 {
		t.Errorf("rolling restart: %v were not replaced", left)
	}
	sum := h.Tail(t, l)[0]
	streams.StopNow()
	ss := streams.StreamResult(t)
	sc.Record(t, "rolling restart (retry on)", sum, took, fmt.Sprintf("rollout took %s, %d calls", took.Round(time.Second), sum.Calls))
	h.NoFailures(t, "rolling restart", sum)
	s.Streams.Add(tp.Name, "rolling restart: every stream reopened on a new pod, longest gap", ss.Lost, streamGapSeconds(ss), streamNote(ss))
	checkStreamsSurvived(t, "rolling restart: streams", ss, streamMaxGap)
	clientsCheck()
}
