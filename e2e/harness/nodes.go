//go:build e2e

package harness

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Workers are the cluster's nodes without the control-plane label, sorted: the nodes the
// kit's servers run on when the cluster has any (deploy/kind/cluster.yaml).
func (k *Kube) Workers(t testing.TB) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), APIRequest)
	defer cancel()
	l, err := k.API.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "!" + ControlPlaneLabel})
	if err != nil {
		t.Fatalf("list worker nodes: %v", err)
	}
	var names []string
	for _, n := range l.Items {
		names = append(names, n.Name)
	}
	slices.Sort(names)
	return names
}

// NodeReady is the node's Ready condition (false when it cannot be read: the API server
// answers for the node, so an error is the test's, reported on the next sample).
func (k *Kube) NodeReady(name string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), APIRequest)
	defer cancel()
	n, err := k.API.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue, nil
		}
	}
	return false, nil
}

// PodsOn are the hello pods (all versions) of ns that run on node, sorted.
func (s *Suite) PodsOn(t testing.TB, ns, node string) []string {
	t.Helper()
	return s.podsOn(t, ns, "app.kubernetes.io/name=hello", node)
}

// podsOn is the names of the pods of ns matching selector that run on node and are not
// being deleted, sorted.
func (s *Suite) podsOn(t testing.TB, ns, selector, node string) []string {
	t.Helper()
	var names []string
	for _, p := range s.Kube.Pods(t, ns, selector) {
		if p.Spec.NodeName == node && p.DeletionTimestamp == nil {
			names = append(names, p.Name)
		}
	}
	slices.Sort(names)
	return names
}

// DeploymentPodsOn is PodsOn for the pods of Deployment deploy (by its own selector).
func (s *Suite) DeploymentPodsOn(t testing.TB, ns, deploy, node string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), APIRequest)
	defer cancel()
	d, err := s.Kube.API.AppsV1().Deployments(ns).Get(ctx, deploy, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get deployment %s/%s: %v", ns, deploy, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		t.Fatalf("deployment %s/%s: selector: %v", ns, deploy, err)
	}
	return s.podsOn(t, ns, sel.String(), node)
}

// ServingEndpoints is, over ns's EndpointSlices, the set of pods whose endpoint
// is ready, by pod name.
func (k *Kube) ServingEndpoints(ns string) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), APIRequest)
	defer cancel()
	l, err := k.API.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	ready := map[string]bool{}
	for _, es := range l.Items {
		for _, ep := range es.Endpoints {
			if ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" && endpointReady(ep) {
				ready[ep.TargetRef.Name] = true
			}
		}
	}
	return ready, nil
}

func endpointReady(ep discoveryv1.Endpoint) bool {
	return ep.Conditions.Ready == nil || *ep.Conditions.Ready
}

// Watch samples f every interval from now until its stop is called, and records when
// its answer first turned true (Since) and the lowest value it returned (Min). It measures
// what the API server says during a node event: node NotReady, endpoints removed, the
// fewest Ready pods of a Deployment.
type Watch struct {
	mu     sync.Mutex
	since  time.Time
	min    int
	errs   int
	lastEr error
	stop   chan struct{}
	done   chan struct{}
}

// WatchCount samples count (a number, and whether the condition watched holds) every 250
// ms until Stop. 250 ms is the figures' resolution, and costs the API server little.
func WatchCount(count func() (int, bool, error)) *Watch {
	w := &Watch{min: -1, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			n, holds, err := count()
			now := time.Now()
			w.mu.Lock()
			if err != nil {
				w.errs++
				w.lastEr = err
			} else {
				if w.min < 0 || n < w.min {
					w.min = n
				}
				if holds && w.since.IsZero() {
					w.since = now
				}
			}
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// Since is when the condition first held (zero: not yet).
func (w *Watch) Since() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.since
}

// Stop ends the sampling and returns the lowest count seen; sampling errors (the API
// server unreachable for more than a moment) fail the test.
func (w *Watch) Stop(t testing.TB, what string) int {
	t.Helper()
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.errs > 4 {
		t.Errorf("%s: %d samples failed, the last: %v", what, w.errs, w.lastEr)
	}
	return w.min
}

// WaitFor waits until the watch's condition holds, at most timeout, and returns when it
// first did.
func (w *Watch) WaitFor(t testing.TB, timeout time.Duration, what string) time.Time {
	t.Helper()
	Eventually(t, timeout, 250*time.Millisecond, what, func() bool { return !w.Since().IsZero() })
	return w.Since()
}

// NodeDocker runs the container engine's CLI on a kind node's container: the node events
// (pause, unpause, iptables in the node's network namespace).
func (s *Suite) NodeDocker(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command(s.Docker, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", s.Docker, args, err, out)
	}
}

// Pause freezes node with docker pause, trying again when the freezer gives up.
//
// On cgroup v1 (this kit's CI kernel) the freezer cannot reliably freeze a cgroup while
// new processes keep appearing in it, and a kind node forks all the time (runc for each
// exec, the kubelet's helpers). runc (libcontainer/cgroups/fs/freezer.go, v1.1) writes
// FROZEN up to 1000 times, thawing every 50th, then fails with "unable to freeze" and
// thaws the cgroup back; its own comment calls the freeze "a game of chances" that only
// cgroup v2 fixes. So a failed attempt leaves the node running and another try is safe.
// pauseAttempts bounds the tries: each takes well under a second.
func (s *Suite) Pause(t testing.TB, node string) {
	t.Helper()
	const pauseAttempts = 5
	for i := 1; ; i++ {
		out, err := exec.Command(s.Docker, "pause", node).CombinedOutput()
		if err == nil {
			if i > 1 {
				t.Logf("%s frozen at attempt %d of %d", node, i, pauseAttempts)
			}
			return
		}
		if !freezeGaveUp(out) || i == pauseAttempts {
			t.Fatalf("%s pause %s (attempt %d of %d): %v: %s", s.Docker, node, i, pauseAttempts, err, out)
		}
		t.Logf("%s pause %s (attempt %d of %d): the freezer gave up, the node runs on; again: %s", s.Docker, node, i, pauseAttempts, bytes.TrimSpace(out))
		time.Sleep(time.Second)
	}
}

// freezeGaveUp tells runc's "unable to freeze" (the cgroup thawed back, safe to retry)
// from every other failure of docker pause.
func freezeGaveUp(out []byte) bool { return bytes.Contains(out, []byte("unable to freeze")) }

// NodeDockerCleanup runs docker with args as a step of a cleanup: a failure is reported
// with what the step was for, and the steps after it still run.
func (s *Suite) NodeDockerCleanup(t testing.TB, what string, args ...string) {
	t.Helper()
	if out, err := exec.Command(s.Docker, args...).CombinedOutput(); err != nil {
		t.Errorf("%s: %s %v: %v: %s", what, s.Docker, args, err, out)
	}
}

// cutOffRule is one iptables rule of CutOffRules, for the binary of its address family.
type cutOffRule struct {
	cmd          string // iptables or ip6tables
	table, chain string
	match        []string
}

// CutOffRules are the rules that drop all of a kind node's traffic on its one interface, in
// both directions, as a partition or a dead link does: nothing comes back, no RST, no ICMP.
// raw PREROUTING sees every packet in before conntrack; mangle POSTROUTING every packet out,
// after routing. Neither kube-proxy nor kube-router writes those chains. Both families:
// kind's network is dual-stack, and with IPv4 alone dropped the kubelet reconnects to the
// API server over IPv6 and the node stays Ready.
var CutOffRules = func() []cutOffRule {
	var rules []cutOffRule
	for _, cmd := range []string{"iptables", "ip6tables"} {
		rules = append(rules,
			cutOffRule{cmd, "raw", "PREROUTING", []string{"-i", "eth0", "-j", "DROP"}},
			cutOffRule{cmd, "mangle", "POSTROUTING", []string{"-o", "eth0", "-j", "DROP"}})
	}
	return rules
}()

// args is the docker exec command line that applies op (-I, -D, -C) to r on node.
func (r cutOffRule) args(node, op string) []string {
	return append([]string{"exec", node, r.cmd, "-t", r.table, op, r.chain}, r.match...)
}

// CutOff inserts (restore false) or deletes (restore true) CutOffRules on node.
func (s *Suite) CutOff(t testing.TB, node string, restore bool) {
	t.Helper()
	op := "-I"
	if restore {
		op = "-D"
	}
	for _, r := range CutOffRules {
		s.NodeDocker(t, r.args(node, op)...)
	}
}

// RestoreNode puts node back whatever was done to it (unpaused, its traffic let through,
// uncordoned) and is safe to call on a healthy node: a test that failed half-way must
// not leave the next run a broken cluster (kind-up also refuses to reuse a paused node).
func (s *Suite) RestoreNode(t testing.TB, node string) {
	t.Helper()
	if out, err := exec.Command(s.Docker, "inspect", "-f", "{{.State.Paused}}", node).Output(); err == nil && string(out) == "true\n" {
		s.NodeDockerCleanup(t, "unpause "+node, "unpause", node)
	}
	for _, r := range CutOffRules {
		if exec.Command(s.Docker, r.args(node, "-C")...).Run() == nil {
			s.NodeDockerCleanup(t, "restore "+node+"'s traffic", r.args(node, "-D")...)
		}
	}
	s.Kube.Cleanup(t, "uncordon", node)
}

// WaitNodeReady waits until node is Ready again.
func (s *Suite) WaitNodeReady(t testing.TB, node string, timeout time.Duration) time.Time {
	t.Helper()
	Eventually(t, timeout, 250*time.Millisecond, fmt.Sprintf("node %s Ready", node), func() bool {
		ok, err := s.Kube.NodeReady(node)
		return err == nil && ok
	})
	return time.Now()
}
