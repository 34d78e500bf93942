//go:build e2e

package e2e

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	h "github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"
)

func init() {
	register(h.Scenario{Name: "pod killed", Order: 20, Needs: h.FeatureResilience, Run: podKilled})
}

// podKilled takes a pod away abruptly, two ways, with two loads at once: the retry policy
// on, and off (the negative control, under the same kill):
//   - deleted with --grace-period=0 --force: the API object goes at once,
//     so every balancer drops the pod while the kubelet still runs its preStop sleep, and
//     even retries off usually lose nothing. The kubelet SIGKILLs the server about 3 s
//     later: a proxy that has not dropped the pod by then cuts a call in flight, which
//     Traefik answers with HTTP 500 (UNKNOWN; the retry policy retries it).
//   - its server process SIGKILLed (an OOM kill or a crash looks like this): no preStop, no
//     drain, no GOAWAY; the kernel resets every connection and calls in flight fail with
//     UNAVAILABLE. This is the case the retry policy exists for.
func podKilled(t *testing.T, s *h.Suite, tp h.Topology) {
	kills := []struct {
		label, event string
		kill         func(t *testing.T, ns, pod string)
		streams      bool // a stream load beside the call loads
	}{
		{"pod deleted (grace 0, --force)", "pod deleted", func(t *testing.T, ns, pod string) {
			s.Kube.Run(t, "-n", ns, "delete", "pod", pod, "--grace-period=0", "--force")
		}, false},
		{"process SIGKILLed", "server SIGKILLed", func(t *testing.T, ns, pod string) { killProcess(t, s, ns, pod) }, true},
	}
	for _, k := range kills {
		sc := s.NewEvents(tp.Name)
		pods := s.HelloPods(t, tp.Namespace)
		if len(pods) == 0 {
			t.Fatal("no hello pods")
		}
		on := s.StartLoad(t, tp, k.label+", retry on", append(h.LoadArgs(), tp.Retry(true)...)...)
		off := s.StartLoad(t, tp, k.label+", retry off", append(h.LoadArgs(), tp.Retry(false)...)...)
		var streams *h.Load
		if k.streams {
			streams = s.StartLoad(t, tp, k.label+": streams", streamArgs()...)
			streams.WaitCalls(t, 20*streamCount)
		}
		on.WaitCalls(t, h.BaselineCalls)
		off.WaitCalls(t, h.BaselineCalls)
		release := s.Churning(t)
		sc.Mark(k.event + ": " + pods[0])
		k.kill(t, tp.Namespace, pods[0])
		s.WaitPodsReady(t, tp.Namespace, 3)
		sc.Mark("3 pods Ready again")
		release()
		sums := h.Tail(t, on, off)
		if streams != nil {
			streams.StopNow()
			ss := streams.StreamResult(t)
			s.Streams.Add(tp.Name, "server SIGKILLed: its streams reopened on live pods, longest gap", ss.Lost, streamGapSeconds(ss), streamNote(ss))
			checkStreamsSurvived(t, k.label+": streams", ss, killMaxGap)
			if ss.Reconnects == 0 {
				t.Errorf("%s: no stream ended, yet the killed pod had some: %s", k.label, streamNote(ss))
			}
		}
		for i, retry := range []bool{true, false} {
			sum := sums[i]
			label := k.label + ", retry on"
			if !retry {
				label = k.label + ", retry off"
			}
			sc.Record(t, label, sum, 0, fmt.Sprintf("%d calls%s", sum.Calls, h.FailedCodes(sum)))
			if retry && sum.Failed != 0 {
				t.Errorf("%s: %d of %d calls failed: %+v", label, sum.Failed, sum.Calls, sum.Errors)
			}
			if !retry {
				t.Logf("%s: %d of %d calls failed (why the retry policy exists): %+v", label, sum.Failed, sum.Calls, sum.Errors)
			}
		}
	}
}

// killProcess SIGKILLs a pod's server process from its kind node (the node is a container
// of this machine's engine; crictl names the process). The kubelet restarts the container
// in place, so the pod keeps its name and IP.
func killProcess(t *testing.T, s *h.Suite, ns, pod string) {
	t.Helper()
	p := s.Kube.Pod(t, ns, pod)
	if len(p.Status.ContainerStatuses) != 1 || !strings.HasPrefix(p.Status.ContainerStatuses[0].ContainerID, "containerd://") {
		t.Fatalf("pod %s: want one containerd container, have %+v", pod, p.Status.ContainerStatuses)
	}
	id := strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, "containerd://")
	// crictl's default 2 s CRI timeout is too short on a node busy with three topologies.
	script := fmt.Sprintf("kill -9 \"$(crictl --timeout=30s inspect --output go-template --template '{{.info.pid}}' %s)\"", id)
	docker := cmp.Or(os.Getenv("DOCKER"), "docker") // the CLI scripts/e2e.sh found talks to the engine
	if out, err := exec.Command(docker, "exec", p.Spec.NodeName, "sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("SIGKILL the server of %s on node %s: %v: %s", pod, p.Spec.NodeName, err, out)
	}
}
