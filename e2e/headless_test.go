//go:build e2e

package e2e

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	headlessNS = "grpc-kit-headless"
	// headlessCapacityNS holds e2e/overlays/headless-capacity: the headless topology
	// again, for TestHeadlessCapacity.
	headlessCapacityNS = "grpc-kit-headless-capacity"
)

// Every overlay is accepted by the cluster's API server (server-side dry-run: admission,
// Pod Security "restricted", CRD schemas), before anything is applied for real.
func TestServerSideDryRun(t *testing.T) {
	for _, overlay := range topologyNames() {
		t.Run(overlay, func(t *testing.T) {
			dir := filepath.Join(e.root, "kustomize", "overlays", overlay)
			// Namespaced objects need their namespace to exist even in a dry run: create the
			// overlay's (restricted) namespaces first.
			rendered := e.k.run(t, "kustomize", dir)
			var nsDocs []string
			for _, doc := range strings.Split(rendered, "\n---\n") {
				if strings.Contains(doc, "kind: Namespace\n") {
					nsDocs = append(nsDocs, doc)
				}
			}
			if len(nsDocs) == 0 {
				t.Fatalf("overlay %s creates no Namespace", overlay)
			}
			e.k.runStdin(t, strings.Join(nsDocs, "\n---\n"), "apply", "-f", "-")
			out := e.k.run(t, "apply", "--dry-run=server", "-k", dir)
			t.Logf("%s: %d objects accepted by server-side dry-run", overlay, strings.Count(out, "(server dry run)"))
		})
	}
}

// Client-side round robin over the headless Service, in the cluster: the overlay's greeter
// Jobs assert an exact split and the pick_first negative control asserts one pod.
//
// Then the resilience scenarios, under load, while the other topologies run theirs.
func TestHeadless(t *testing.T) {
	t.Parallel()
	node.enter(t)
	dir := overlayDir("headless")
	// Jobs are immutable: delete the previous run's before applying.
	e.k.exec("-n", headlessNS, "delete", "job", "greeter-hello", "greeter-goodbye", "greeter-pick-first", "--ignore-not-found", "--wait=true")
	// Everything but the greeter Jobs first, then the Jobs once the servers are rolled out:
	// a Job's greeter resolves the headless name once, and one that resolved while 2 of the
	// 3 pods were Ready kept those 2 (2026-12-02, the node busy with the other tests).
	e.k.run(t, "apply", "-k", dir, "-l", "app.kubernetes.io/name!=greeter")
	e.k.rollout(t, headlessNS, "hello", "goodbye")
	waitPodsReady(t, headlessNS, 3)
	e.k.run(t, "apply", "-k", dir)

	for _, tc := range []struct {
		job, topology, service, pods string
		wantBackends                 int
		exact                        bool
	}{
		{"greeter-hello", "headless round_robin (in-cluster): Hello", "helloworld.Hello", "hello-", 3, true},
		{"greeter-goodbye", "headless round_robin (in-cluster): Goodbye", "helloworld.Goodbye", "goodbye-", 3, true},
		{"greeter-pick-first", "ClusterIP + pick_first (negative control)", "helloworld.Hello", "hello-", 1, false},
	} {
		t.Run(tc.job, func(t *testing.T) {
			s := jobReport(t, headlessNS, tc.job, tc.topology)
			if s.OK < 300 {
				t.Errorf("%s: %d ok calls, want ≥ 300", tc.job, s.OK)
			}
			checkRouting(t, tc.job, s, tc.service, tc.pods)
			if tc.exact {
				checkSpread(t, tc.job, s, tc.wantBackends, 0) // round robin: exactly even
			} else if len(s.Backends) != 1 {
				t.Errorf("pick_first through a ClusterIP Service reached %d pods, want 1 (one connection)", len(s.Backends))
			}
		})
	}

	// grpcurl straight at a pod through kubectl port-forward: list, describe, a call.
	t.Run("grpcurl direct", func(t *testing.T) {
		addr := e.k.portForward(t, headlessNS, "deploy/hello", 50051)
		grpcurlSession(t, "direct (port-forward)", addr, "-plaintext")
	})
	progressf("headless", "routing checks done")
	t.Run("resilience", func(t *testing.T) { runResilience(t, headlessTopo(headlessNS, "headless")) })
}

// The headless scenarios that keep hello's settings changed for minutes (slow pod,
// MAX_CONNECTION_AGE 5s and 5m), in a second copy of the topology beside TestHeadless:
// one after the other, they made headless alone most of the suite's time.
func TestHeadlessCapacity(t *testing.T) {
	t.Parallel()
	node.enter(t)
	tp := headlessTopo(headlessCapacityNS, "headless-capacity")
	e.k.run(t, "apply", "-k", overlayDir(tp.overlay))
	e.k.rollout(t, tp.ns, "hello", "goodbye")
	runHeadlessCapacity(t, tp)
}

// grpcurlSession runs list, describe and a call with grpcurl at addr; flags choose the
// transport (-plaintext, or -cacert and -authority for TLS entry points).
func grpcurlSession(t *testing.T, where, addr string, flags ...string) {
	t.Helper()
	// grpcurl [flags] ADDRESS [verb or method] [symbol]
	run := func(extraFlags []string, rest ...string) string {
		t.Helper()
		args := append(append(append([]string{}, flags...), extraFlags...), addr)
		args = append(args, rest...)
		out, err := exec.Command(e.grpcurl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: grpcurl %s: %v\n%s", where, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := run(nil, "list"); !strings.Contains(out, "helloworld.Hello") || !strings.Contains(out, "grpc.reflection.v1.ServerReflection") {
		t.Errorf("%s: grpcurl list:\n%s", where, out)
	}
	if out := run(nil, "describe", "helloworld.Hello"); !strings.Contains(out, "helloworld.Hello is a service") {
		t.Errorf("%s: grpcurl describe helloworld.Hello:\n%s", where, out)
	}
	if out := run(nil, "describe", "helloworld.Goodbye"); !strings.Contains(out, "rpc SayGoodbye") {
		t.Errorf("%s: grpcurl describe helloworld.Goodbye:\n%s", where, out)
	}
	var reply struct {
		Message string
		Backend struct{ Pod string }
	}
	out := run([]string{"-d", `{"name":"Ryo"}`}, "helloworld.Hello/SayHello")
	if err := json.Unmarshal([]byte(out), &reply); err != nil || reply.Message != "Hello, Ryo!" || reply.Backend.Pod == "" {
		t.Errorf("%s: grpcurl call: %v\n%s", where, err, out)
	}
	t.Logf("%s: grpcurl list, describe and a call ok (served by %s)", where, reply.Backend.Pod)
}
