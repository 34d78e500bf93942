//go:build e2e

package e2e

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	h "github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"
)

// deployHeadless: client-side round robin over the headless Service, in the cluster: the
// overlay's greeter Jobs assert an exact split, and the pick_first negative control one
// pod; grpcurl reaches a pod directly.
func deployHeadless(t *testing.T, s *h.Suite, tp h.Topology) {
	ns := tp.Namespace
	// Jobs are immutable: delete the previous run's before applying.
	s.Kube.Cleanup(t, "-n", ns, "delete", "job", "greeter-hello", "greeter-goodbye", "greeter-pick-first", "--ignore-not-found", "--wait=true")
	// Everything but the greeter Jobs first, then the Jobs once the servers are rolled out:
	// a Job's greeter resolves the headless name once, and one that resolved while 2 of the
	// 3 pods were Ready keeps those 2.
	s.Apply(t, tp.Overlay, "-l", "app.kubernetes.io/name!=greeter")
	s.Kube.Rollout(t, ns, "hello", "goodbye")
	s.WaitPodsReady(t, ns, 3)
	s.Apply(t, tp.Overlay)

	for _, tc := range []struct {
		job, row, service, pods string
		wantBackends            int
		exact                   bool
	}{
		{"greeter-hello", "headless round_robin (in-cluster): Hello", "helloworld.Hello", "hello-", 3, true},
		{"greeter-goodbye", "headless round_robin (in-cluster): Goodbye", "helloworld.Goodbye", "goodbye-", 3, true},
		{"greeter-pick-first", "ClusterIP + pick_first (negative control)", "helloworld.Hello", "hello-", 1, false},
	} {
		t.Run(tc.job, func(t *testing.T) {
			sum := s.JobReport(t, ns, tc.job, tc.row)
			if sum.OK < 300 {
				t.Errorf("%s: %d ok calls, want ≥ 300", tc.job, sum.OK)
			}
			h.CheckRouting(t, tc.job, sum, tc.service, tc.pods)
			if tc.exact {
				h.CheckSpread(t, tc.job, sum, tc.wantBackends, 0) // round robin: exactly even
			} else if len(sum.Backends) != 1 {
				t.Errorf("pick_first through a ClusterIP Service reached %d pods, want 1 (one connection)", len(sum.Backends))
			}
		})
	}

	// grpcurl straight at a pod through kubectl port-forward: list, describe, a call.
	t.Run("grpcurl direct", func(t *testing.T) {
		addr := s.Kube.PortForward(t, ns, "deploy/hello", 50051)
		grpcurlSession(t, s, "direct (port-forward)", addr, "-plaintext")
	})
	s.Progressf(tp.Where(), "routing checks done")
}

// deployHeadlessCapacity: the second headless deployment needs no checks of its own.
func deployHeadlessCapacity(t *testing.T, s *h.Suite, tp h.Topology) {
	s.Apply(t, tp.Overlay)
	s.Kube.Rollout(t, tp.Namespace, "hello", "goodbye")
}

// grpcurlSession runs list, describe and a call with grpcurl at addr; flags choose the
// transport (-plaintext, or -cacert and -authority for TLS entry points).
func grpcurlSession(t *testing.T, s *h.Suite, where, addr string, flags ...string) {
	t.Helper()
	// grpcurl [flags] ADDRESS [verb or method] [symbol]
	run := func(extraFlags []string, rest ...string) string {
		t.Helper()
		args := append(append(append([]string{}, flags...), extraFlags...), addr)
		args = append(args, rest...)
		out, err := exec.Command(s.Grpcurl, args...).CombinedOutput()
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
