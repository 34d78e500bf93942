//go:build e2e

// Package e2e proves the kit in a live kind cluster (make kind-up): each topology is
// deployed from kustomize/, driven with real traffic by the greeter (from the host through
// the published Traefik ports, and in-cluster for the headless Service and the proxyless
// clients), and its spread, routing, canary split and resilience under load are asserted.
// The topologies are data (topologies_test.go), each scenario is a file (scenario_*.go)
// and the helpers live in e2e/harness. Run with `make e2e`; docs/e2e.md says how to add a
// topology or a scenario.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"
)

var keep = flag.Bool("keep", false, "leave the deployed topologies in the cluster after the run")

// suite is the one value every test gets from TestMain: Go's testing package offers no
// other way to hand a test its fixture.
var suite *harness.Suite

// nodeSlots: how many of the parallel tests (the topologies' deployments, the doctor) run
// at once on the one 2-core kind node. The node is CPU-bound: four at once made exec
// probes time out and pods leave their Services; at three, with loads at
// harness.LoadRate, every timed figure stays inside its target (docs/results/e2e.md has
// the runs that set it).
const nodeSlots = 3

func TestMain(m *testing.M) {
	flag.Parse()
	var gate []string
	for _, tp := range topologies() {
		gate = append(gate, "TestTopologies/"+tp.Overlay)
	}
	s, err := harness.Setup(harness.Config{Keep: *keep, Order: topologyOrder(), Slots: nodeSlots,
		// The longest first: the test that starts last decides when the suite ends.
		GateOrder: append(gate, "TestDoctor")})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e setup: %v\n", err)
		os.Exit(1)
	}
	suite = s
	code := m.Run()
	for _, err := range s.Close() {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
	}
	os.Exit(code)
}
