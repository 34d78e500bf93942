//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	h "github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

func init() {
	register(h.Scenario{Name: "control plane lost", Order: 70, Needs: h.FeatureControlPlane, Run: controlPlaneLost})
}

// controlPlaneLost: istiod scaled to 0 under load. The running clients keep the last
// configuration they received, so no call fails; a client that starts meanwhile fails
// every call, with an error that names the control plane; a hello pod added meanwhile gets no
// call (the negative control: nothing tells the clients), and once istiod is back, the
// time until the running clients send it calls is the recovery.
func controlPlaneLost(t *testing.T, s *h.Suite, tp h.Topology) {
	sc := s.NewEvents(tp.Name)
	before := s.HelloPods(t, tp.Namespace)
	l := s.StartLoad(t, tp, "control plane lost", h.LoadArgs()...)
	l.WaitCalls(t, h.BaselineCalls)
	release := s.Churning(t)
	defer release()
	// Whatever happens below, istiod comes back: the other tests of this run, and the
	// user's next one, need it.
	t.Cleanup(func() {
		s.Kube.Cleanup(t, "-n", istiodNS, "scale", "deploy/istiod", "--replicas=1")
		s.Kube.Cleanup(t, "-n", istiodNS, "rollout", "status", "deploy/istiod", "--timeout=3m")
	})
	sc.Mark("istiod scaled to 0")
	s.Kube.Run(t, "-n", istiodNS, "scale", "deploy/istiod", "--replicas=0")
	h.Eventually(t, 2*time.Minute, h.Poll, "istiod's pod gone", func() bool {
		return len(s.Kube.Pods(t, istiodNS, "app.kubernetes.io/name=istiod")) == 0
	})
	sc.Mark("istiod gone")

	// The node refuses the connection: its calls fail at once, as a rule (the time is in
	// the note; the bound is freshClient's).
	_, freshNote := freshClient(t, s, tp, "a client started without istiod")
	// The control: where a connection to istiod's address goes nowhere (a blackhole route
	// on every node, for that address only), the same client waits out its first
	// connection attempt, longer than a call's deadline.
	sc.Mark("istiod's address blackholed")
	var silent report.Summary
	var silentNote string
	withIstiodBlackholed(t, s, func() {
		silent, silentNote = freshClient(t, s, tp, "a client started without istiod, nothing answering")
	})
	if silent.Count(codes.DeadlineExceeded) == 0 {
		t.Errorf("a client started without a control plane, nothing answering: want DEADLINE_EXCEEDED until its connection attempt times out, got %s", silentNote)
	}
	freshNote += "; nothing answering: " + silentNote

	sc.Mark("scale hello to 4")
	s.Kube.Run(t, "-n", tp.Namespace, "scale", "deploy/hello", "--replicas=4")
	s.WaitPodsReady(t, tp.Namespace, 4)
	var added string
	for _, p := range s.HelloPods(t, tp.Namespace) {
		if !slices.Contains(before, p) {
			added = p
		}
	}
	sc.Mark("new pod Ready: " + added)
	// The negative control's window: long enough for a push to have reached the clients
	// had there been a control plane (twice the goal for a new pod after Ready).
	time.Sleep(2 * tp.ReadyGoal)
	if n, err := s.Handled(tp.Namespace, added); err != nil || n != 0 {
		t.Errorf("%s served %d calls (%v) while istiod was away: something else told the clients", added, n, err)
	}
	sc.Mark("istiod scaled to 1")
	s.Kube.Run(t, "-n", istiodNS, "scale", "deploy/istiod", "--replicas=1")
	s.Kube.Run(t, "-n", istiodNS, "rollout", "status", "deploy/istiod", "--timeout=3m")
	back := sc.Mark("istiod Ready")
	h.Eventually(t, 3*time.Minute, h.Poll, added+" serving the running clients", func() bool {
		n, err := s.Handled(tp.Namespace, added)
		return err == nil && n > 0
	})
	sum := h.Tail(t, l)[0]
	recovery := time.Since(back)
	if first, ok := h.FirstServed(sum, added); ok {
		recovery = first.Sub(back)
		sc.MarkAt(first, "new pod served")
	}
	note := fmt.Sprintf("%d calls; the clients sent the pod added meanwhile calls %.1f s after istiod was Ready again; a client started meanwhile: %s",
		sum.Calls, recovery.Seconds(), freshNote)
	sc.Record(t, "control plane lost: istiod scaled to 0 under load", sum, recovery, note)
	h.NoFailures(t, "control plane lost", sum)

	s.Kube.Run(t, "-n", tp.Namespace, "scale", "deploy/hello", "--replicas=3")
	s.WaitPodsReady(t, tp.Namespace, 3)
}

// A client started while istiod is away learns it when its xDS client's first connection
// attempt to istiod fails: at once where the node refuses a connection to a Service with
// no endpoints (the kit's cluster does: deploy/kube-router), after gRPC's minimum connect
// timeout where nothing answers (20 s: grpc-go's clientconn.go minConnectTimeout, which
// its xDS client's channel keeps). Until then its calls wait for a configuration and
// end with DEADLINE_EXCEEDED, whose hint names istiod too. freshCalls × freshTimeout
// holds the 20 s with a margin of 25 s, so the UNAVAILABLE comes within the client's run
// either way.
const (
	freshCalls   = 3
	freshTimeout = 15 * time.Second
)

// freshClient runs a proxyless client Job while istiod is away and checks that every call
// fails, each UNAVAILABLE or DEADLINE_EXCEEDED with a hint that names istiod, and at least
// one UNAVAILABLE. It returns the client's summary and a line saying what it got.
func freshClient(t *testing.T, s *h.Suite, tp h.Topology, name string) (report.Summary, string) {
	t.Helper()
	sum := s.JobLoad(t, tp, name, fmt.Sprintf("-n=%d", freshCalls), fmt.Sprintf("-timeout=%s", freshTimeout), "-json", "-quiet").Result(t)
	var got []string
	for _, e := range sum.Errors {
		got = append(got, fmt.Sprintf("%d %s", e.Count, e.Code))
		if (e.Code != codes.Unavailable && e.Code != codes.DeadlineExceeded) || !strings.Contains(e.Hint, "istiod") {
			t.Errorf("%s: %d calls %s (%s), want UNAVAILABLE or DEADLINE_EXCEEDED with a hint that names istiod, got the hint %q", name, e.Count, e.Code, e.Example, e.Hint)
		}
	}
	note := fmt.Sprintf("%d of %d failed, %s in %.1f s", sum.Failed, sum.Calls, strings.Join(got, ", "), sum.ElapsedS)
	t.Logf("%s: %s", name, note)
	if sum.Failed != sum.Calls || sum.Count(codes.Unavailable) == 0 {
		t.Errorf("%s: want every call to fail and the last ones UNAVAILABLE, got %s", name, note)
	}
	return sum, note
}

// withIstiodBlackholed runs f while every node discards what its pods send to istiod's
// Service address (an ip rule ahead of deploy/kube-router's, which makes the Service range
// unreachable): packets to it go nowhere and nothing answers, as on a network that drops
// them. Nothing leaves the node. The rules go when f returns, or fails the test.
func withIstiodBlackholed(t *testing.T, s *h.Suite, f func()) {
	t.Helper()
	ip := s.Kube.Run(t, "-n", istiodNS, "get", "service", "istiod", "-o", "jsonpath={.spec.clusterIP}")
	rule := func(node, op string) []string {
		return []string{"exec", node, "ip", "rule", op, "to", ip + "/32", "iif", "kube-bridge", "blackhole", "priority", "99"}
	}
	var added []string
	var once sync.Once
	remove := func() {
		once.Do(func() {
			for _, node := range added {
				s.NodeDockerCleanup(t, "remove the blackhole rule on "+node, rule(node, "del")...)
			}
		})
	}
	t.Cleanup(remove)
	defer remove()
	for _, node := range s.Kube.Nodes(t) {
		s.NodeDocker(t, rule(node, "add")...)
		added = append(added, node)
	}
	f()
}
