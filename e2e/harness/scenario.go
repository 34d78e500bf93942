//go:build e2e

package harness

import (
	"cmp"
	"slices"
	"testing"
)

// Scenario is one test of a topology under load, as data: what it needs of a topology and
// how it runs. The scenarios of one deployment run one after the other, in Order (they act
// on the same Deployment); the deployments run theirs at the same time.
type Scenario struct {
	Name  string
	Order int
	// Needs: a deployment without this feature skips the scenario, saying why.
	Needs Feature
	// Run runs the scenario; Beside, when set instead, starts it before the others and
	// returns the check to run once they are over (a long stream through a proxy).
	Run    func(t *testing.T, s *Suite, tp Topology)
	Beside func(t *testing.T, s *Suite, tp Topology) (check func(t *testing.T))
}

// RunScenarios runs every scenario tp supports, in order, each as a subtest, and the others
// as skipped subtests that say what tp lacks. Scenarios change hello's settings; with Keep,
// the overlay's are put back at the end (RestoreAfter).
func (s *Suite) RunScenarios(t *testing.T, tp Topology, scenarios []Scenario) {
	s.CheckRestricted(t, tp.Namespace)
	s.Ready(t, tp)
	s.RestoreAfter(t, tp)
	scenarios = slices.SortedStableFunc(slices.Values(scenarios), func(a, b Scenario) int { return cmp.Compare(a.Order, b.Order) })
	var steps []Scenario
	var checks []func(t *testing.T)
	var checkNames []string
	for _, sc := range scenarios {
		if !tp.Supports(sc.Needs) {
			t.Run(sc.Name, func(t *testing.T) { t.Skipf("%s does not run %q scenarios", tp.Where(), sc.Needs) })
			continue
		}
		if sc.Beside != nil {
			checks = append(checks, sc.Beside(t, s, tp))
			checkNames = append(checkNames, sc.Name)
			continue
		}
		steps = append(steps, sc)
	}
	for i, sc := range steps {
		s.Progressf(tp.Where(), "scenario %d of %d: %s", i+1, len(steps), sc.Name)
		t.Run(sc.Name, func(t *testing.T) { sc.Run(t, s, tp) })
	}
	for i, check := range checks {
		t.Run(checkNames[i], check)
	}
	s.Progressf(tp.Where(), "scenarios done")
}

// RestoreAfter: scenarios change hello's settings; with Keep, put the overlay's back when
// they are done (re-applying its hello v1 Deployment), as pod churn like any other (the
// rollout must not run beside a timed failover). Without, Close deletes the overlay.
func (s *Suite) RestoreAfter(t testing.TB, tp Topology) {
	t.Cleanup(func() {
		if !s.Keep {
			return
		}
		s.churn.RLock()
		defer s.churn.RUnlock()
		s.Kube.Cleanup(t, "apply", "-k", s.OverlayDir(tp.Overlay), "-l", HelloV1)
		s.Kube.Cleanup(t, "-n", tp.Namespace, "rollout", "status", "deploy/hello", "--timeout=2m")
	})
}
