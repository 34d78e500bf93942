//go:build e2e

package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	h "github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"
)

// scenarios are the scenarios under load that every deployment of a topology runs if it
// supports them; each scenario_*_test.go file registers its own. Adding a scenario is one
// file.
var scenarios []h.Scenario

func register(sc h.Scenario) { scenarios = append(scenarios, sc) }

// Every topology's overlay is accepted by the cluster's API server (server-side dry-run:
// admission, Pod Security "restricted", CRD schemas), before anything is applied for real.
func TestServerSideDryRun(t *testing.T) {
	s := suite
	for _, name := range topologyOrder() {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(s.Root, "kustomize", "overlays", name)
			// Namespaced objects need their namespace to exist even in a dry run: create the
			// overlay's (restricted) namespaces first.
			rendered := s.Kube.Run(t, "kustomize", dir)
			var nsDocs []string
			for _, doc := range strings.Split(rendered, "\n---\n") {
				if strings.Contains(doc, "kind: Namespace\n") {
					nsDocs = append(nsDocs, doc)
				}
			}
			if len(nsDocs) == 0 {
				t.Fatalf("overlay %s creates no Namespace", name)
			}
			s.Kube.RunStdin(t, strings.Join(nsDocs, "\n---\n"), "apply", "-f", "-")
			out := s.Kube.Run(t, "apply", "--dry-run=server", "-k", dir)
			t.Logf("%s: %d objects accepted by server-side dry-run", name, strings.Count(out, "(server dry run)"))
		})
	}
}

// TestTopologies deploys every topology of the registry at once (as the node gate lets
// them on), runs the checks only it has, then the scenarios under load it supports. Run
// one with E2E_RUN=TestTopologies/<overlay>.
func TestTopologies(t *testing.T) {
	t.Parallel()
	s := suite
	for _, tp := range topologies() {
		t.Run(tp.Overlay, func(t *testing.T) {
			t.Parallel()
			s.Gate.Enter(t)
			defer s.DumpIfFailed(t, tp.Namespaces()...)
			// Its pods start: churn, which no timed failover of another topology may overlap.
			release := s.Churning(t)
			tp.Deploy(t, s, tp)
			release()
			s.RunScenarios(t, tp, scenarios)
		})
	}
}
