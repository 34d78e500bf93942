//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	h "github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/doctor"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

// TestNodes is the node lane (E2E_LANE=nodes make e2e runs it on its own, never beside the
// other tests: scripts/e2e.sh): a worker is drained, frozen and cut off while every topology runs loads
// with pods on it. One event serves the four topologies at once, each measured with the
// kit's settings and with the defaults beside them (the negative control).
func TestNodes(t *testing.T) {
	s := suite
	workers := s.Kube.Workers(t)
	if len(workers) < 2 {
		t.Fatalf("the node lane needs a cluster with 2 or more workers, this one has %d (%v): make kind-up (KIND_WORKERS defaults to 2)", len(workers), workers)
	}
	tps := nodeTopologies()
	var nss []string
	for _, tp := range tps {
		nss = append(nss, tp.Namespaces()...)
	}
	defer s.DumpIfFailed(t, nss...)
	for _, w := range workers {
		t.Cleanup(func() { s.RestoreNode(t, w) })
	}
	deployForNodes(t, s, tps)

	t.Run("drain", func(t *testing.T) { nodeDrain(t, s, tps, workers) })
	for _, ev := range silentEvents {
		t.Run(ev.name, func(t *testing.T) {
			victim := spreadOverWorkers(t, s, tps, workers)
			nodeSilent(t, s, tps, ev, victim)
		})
	}
}

// nodeTopologies: each topology once, its first deployment in the registry.
func nodeTopologies() []h.Topology {
	var out []h.Topology
	seen := map[string]bool{}
	for _, tp := range topologies() {
		if !seen[tp.Name] {
			seen[tp.Name] = true
			out = append(out, tp)
		}
	}
	return out
}

// deployForNodes applies every topology's overlay at once and waits until each serves
// from all its backends, the canary with two pods (below).
func deployForNodes(t *testing.T, s *h.Suite, tps []h.Topology) {
	// The canary, hello-v2, is one pod in the templates: a drain evicts it before its
	// replacement is Ready, and the route's 10 % has no endpoint meanwhile (measured: 13
	// calls failed through xDS, "no targets to pick from"). No budget can help a single
	// replica. Here it runs two, spread over the workers like the others.
	deployTopologies(t, s, tps, 2)
}

// deployTopologies applies every topology's overlay at once (kubectl apply flags in
// extra), scales the canary where there is one to canaries pods (0: as the overlay has
// it), and waits until each topology serves from all its backends.
func deployTopologies(t *testing.T, s *h.Suite, tps []h.Topology, canaries int, extra ...string) {
	for _, tp := range tps {
		s.Apply(t, tp.Overlay, extra...)
		if tp.Balancer == h.BalancerProxy {
			// The proxies' TLS listeners read the suite's certificate from this Secret.
			createTLSSecret(t, s, tp.Namespace)
		}
	}
	more := 0
	if canaries > 0 {
		for _, tp := range tps {
			if hasCanary(t, s, tp) {
				s.Kube.Run(t, "-n", tp.Namespace, "scale", "deployment/hello-v2", fmt.Sprintf("--replicas=%d", canaries))
			}
		}
		more = canaries - 1 // Backends counts the overlay's one canary pod
	}
	var wg sync.WaitGroup
	for _, tp := range tps {
		wg.Go(func() { nodeReady(t, s, tp, more) })
	}
	wg.Wait()
}

// hasCanary: the topology runs hello-v2 beside hello.
func hasCanary(t *testing.T, s *h.Suite, tp h.Topology) bool {
	ctx, cancel := context.WithTimeout(context.Background(), h.APIRequest)
	defer cancel()
	_, err := s.Kube.API.AppsV1().Deployments(tp.Namespace).Get(ctx, "hello-v2", metav1.GetOptions{})
	return err == nil
}

// nodeReady is Suite.Ready with extra canary pods beyond the overlay's one (the node
// lane's second).
func nodeReady(t *testing.T, s *h.Suite, tp h.Topology, extra int) {
	s.WaitPodsReady(t, tp.Namespace, 3)
	n := tp.Backends
	if hasCanary(t, s, tp) {
		s.Kube.Rollout(t, tp.Namespace, "hello-v2")
		n += extra
	}
	if !tp.Entry.InCluster {
		s.WaitBackends(t, tp.Name, n, s.HostArgs(tp.Entry)...)
	}
}

// nodeLoadRate: calls per second of each node load. Eight call loads and four stream
// loads share the 2-core machine with three nodes; at 50/s each of 3 pods still gets a
// call every 60 ms, finer than every figure measured here (250 ms samples, seconds of
// windows).
//
// The kit's loads run at 100: outlier detection judges a pod only once it finished
// -outlier-request-volume (10) calls in an interval (0.5 s), 20 calls/s per pod; at 50/s
// over 3 pods (17 each) it never acted and the frozen pod kept its calls until keepalive
// closed the connection (11.1 s).
const nodeLoadRate = 50

const nodeKitRate = 100

// nodeDeadline is the per-call deadline of every node load, the kit's recommendation for
// a call like Hello whose p99 is milliseconds (docs/resilience.md): a call to a lost pod
// fails at it, and outlier detection ejects the pod on those failures.
const nodeDeadline = time.Second

// nodeLoadCallers: the greeter's callers each wait for their call, and a call to a lost
// pod holds one until its deadline: a third of 100 calls/s for 1 s holds about 33. With
// fewer the whole load slows to the lost pod's pace and outlier detection, which judges
// calls per interval, sees too few to act on.
const nodeLoadCallers = 64

// nodeLoadArgs: a paced load long enough for any node event (loss, NotReady, restore,
// Ready, traffic back), with its timeline for the plots.
func nodeLoadArgs(deadline time.Duration, extra ...string) []string {
	return append([]string{"-duration=6m", "-c=" + strconv.Itoa(nodeLoadCallers), "-rate=" + strconv.Itoa(nodeLoadRate),
		"-timeout=" + deadline.String(), "-warmup=3s", "-json", "-progress=500ms", "-timeline=-",
		"-timeline-bucket=250ms"}, extra...)
}

// nodeLoads are one topology's loads through a node event.
type nodeLoads struct {
	tp                     h.Topology
	kit, defaults, streams *h.Load
}

// startNodeLoads starts, in every topology, a load with the kit's settings, one with the
// defaults where the topology has a control for them (withDefaults), and a stream load,
// and waits until all flow.
func startNodeLoads(t *testing.T, s *h.Suite, tps []h.Topology, event string, deadline time.Duration, withDefaults bool) []*nodeLoads {
	var out []*nodeLoads
	for _, tp := range tps {
		nl := &nodeLoads{tp: tp}
		nl.kit = nodeLoad(t, s, tp, tp.Entry, event+", kit settings", nodeLoadArgs(deadline, append(tp.Retry(true), "-rate="+strconv.Itoa(nodeKitRate))...))
		if entry, args, ok := defaultsLoad(tp, deadline); ok && withDefaults {
			nl.defaults = nodeLoad(t, s, tp, entry, event+", defaults", args)
		}
		nl.streams = nodeLoad(t, s, tp, tp.Entry, event+", streams", streamArgs("-duration=6m"))
		out = append(out, nl)
	}
	for _, nl := range out {
		nl.kit.WaitCalls(t, nodeLoadRate*3)
		if nl.defaults != nil {
			nl.defaults.WaitCalls(t, nodeLoadRate*3)
		}
		nl.streams.WaitCalls(t, 20*streamCount)
	}
	return out
}

// defaultsLoad is the negative control of a topology: where its clients go, and how.
//   - A client that balances itself (headless, proxyless), with gRPC's defaults: no
//     keepalive, no outlier detection (the same deadline, so that only those differ).
//   - Through Traefik the client's settings never meet the lost pod, Traefik's do: the
//     nginx-ingress overlay has an Ingress with Traefik's default connect timeout beside
//     the kit's (e2e/components/silent-backend; cleartext only). The Gateway has no such
//     twin: all its routes share Traefik's one default transport.
func defaultsLoad(tp h.Topology, deadline time.Duration) (h.Entry, []string, bool) {
	switch {
	case tp.Discovery == h.DiscoveryXDS:
		// The control plane sends the policy (istiod sends no outlier detection, and the
		// greeter refuses the flag for xds:///): keepalive is the client's only setting.
		return tp.Entry, nodeLoadArgs(deadline, append(tp.Retry(true), "-keepalive=0")...), true
	case tp.Balancer != h.BalancerProxy:
		return tp.Entry, nodeLoadArgs(deadline, append(tp.Retry(true), "-keepalive=0", "-outlier-detection=false")...), true
	case tp.Name == "nginx-ingress":
		e := tp.Entry.Via(webAddr, false)
		e.Authority = stockDialHost
		return e, nodeLoadArgs(deadline, tp.Retry(true)...), true
	}
	return h.Entry{}, nil, false
}

// stockDialHost is the negative control's Ingress (e2e/components/silent-backend).
const stockDialHost = "grpc-ingress-stock-dial.kit.local"

func nodeLoad(t *testing.T, s *h.Suite, tp h.Topology, entry h.Entry, name string, args []string) *h.Load {
	if entry.InCluster {
		return s.JobLoad(t, tp, name, args...)
	}
	return s.HostLoad(t, name, append(s.HostArgs(entry), args...)...)
}

// readyWatch samples the fewest hello v1 pods of ns that are Ready and not being deleted:
// what the clients could use. kept counts instead the pods the drain has not taken: not
// being deleted, and Ready at some sample since the watch began. A pod whose probe times out
// on a starved node is NotReady for a moment without any eviction: an involuntary
// disruption, which no PodDisruptionBudget prevents (the disruption controller would only
// stop evicting meanwhile). kept is what the budget governs; ready is reported beside it.
func readyWatch(s *h.Suite, ns string) (ready, kept *h.Watch) {
	seen := map[types.UID]bool{} // only the kept watch's goroutine touches it
	count := func(kept bool) func() (int, bool, error) {
		return func() (int, bool, error) {
			ctx, cancel := context.WithTimeout(context.Background(), h.APIRequest)
			defer cancel()
			l, err := s.Kube.API.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: h.HelloV1})
			if err != nil {
				return 0, false, err
			}
			n := 0
			for i := range l.Items {
				p := &l.Items[i]
				// As the disruption controller counts: a deleted pod keeps serving through
				// its drain, but the budget no longer counts it.
				if p.DeletionTimestamp != nil {
					continue
				}
				if kept && h.PodReady(p) {
					seen[p.UID] = true
				}
				if (kept && seen[p.UID]) || (!kept && h.PodReady(p)) {
					n++
				}
			}
			return n, false, nil
		}
	}
	return h.WatchCount(count(false)), h.WatchCount(count(true))
}

// helloBudgetFloor is how many hello pods of ns the PodDisruptionBudget keeps.
func helloBudgetFloor(t *testing.T, s *h.Suite, ns string) int {
	ctx, cancel := context.WithTimeout(context.Background(), h.APIRequest)
	defer cancel()
	b, err := s.Kube.API.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "hello", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("PodDisruptionBudget %s/hello: %v", ns, err)
	}
	_, floor := doctor.BudgetFloor(b, 3)
	return floor
}

// nodeDrain drains a worker that holds servers under load: no call fails, no stream
// message is lost, and no Deployment falls below its budget. Then the negative control:
// the other worker, now holding every server, drained with --disable-eviction (what a
// forced drain does: deletes the pods without asking the budgets), which takes them all
// at once.
func nodeDrain(t *testing.T, s *h.Suite, tps []h.Topology, workers []string) {
	victim := spreadOverWorkers(t, s, tps, workers)
	other := workers[0]
	if other == victim {
		other = workers[1]
	}
	for _, forced := range []bool{false, true} {
		node, label := victim, "drain"
		if forced {
			node, label = other, "drain --disable-eviction (negative control)"
		}
		// A drain is no silent peer: the greeter's own deadline (5 s), which a call on the
		// busy machine never nears unless something is wrong.
		loads := startNodeLoads(t, s, tps, label, 5*time.Second, false)
		floors, ready, kept := map[string]int{}, map[string]*h.Watch{}, map[string]*h.Watch{}
		for _, tp := range tps {
			floors[tp.Namespace] = helloBudgetFloor(t, s, tp.Namespace)
			ready[tp.Namespace], kept[tp.Namespace] = readyWatch(s, tp.Namespace)
		}
		evs := map[string]*h.Events{}
		for _, tp := range tps {
			evs[tp.Name] = s.NewNodeEvents(tp.Name)
		}
		args := []string{"drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=5m"}
		if forced {
			args = append(args, "--disable-eviction")
		}
		start := time.Now()
		for _, ev := range evs {
			ev.MarkAt(start, label+" "+node)
		}
		s.Kube.Run(t, args...)
		took := time.Since(start)
		for _, ev := range evs {
			ev.Mark(fmt.Sprintf("drained (%.0f s)", took.Seconds()))
		}
		s.Kube.Run(t, "uncordon", node)
		for _, nl := range loads {
			s.WaitPodsReady(t, nl.tp.Namespace, 3)
		}
		for _, nl := range loads {
			kit := h.Tail(t, nl.kit)[0]
			nl.streams.StopNow()
			ss := nl.streams.StreamResult(t)
			minReady := ready[nl.tp.Namespace].Stop(t, nl.tp.Name+": Ready pods")
			minKept := kept[nl.tp.Namespace].Stop(t, nl.tp.Name+": pods the drain kept")
			floor := floors[nl.tp.Namespace]
			note := fmt.Sprintf("fewest kept %d, Ready %d (budget keeps %d); streams: %s%s", minKept, minReady, floor, streamNote(ss), h.FailedCodes(kit))
			evs[nl.tp.Name].Record(t, label+", kit settings", kit, took, note)
			if !forced {
				if kit.Failed != 0 {
					t.Errorf("%s: %s: %d of %d calls failed: %+v", nl.tp.Name, label, kit.Failed, kit.Calls, kit.Errors)
				}
				if ss.Lost != 0 || ss.Duplicated != 0 {
					t.Errorf("%s: %s: streams lost %d, duplicated %d messages", nl.tp.Name, label, ss.Lost, ss.Duplicated)
				}
				if minKept < floor {
					t.Errorf("%s: %s: the drain left %d hello pods at the fewest, the budget keeps %d", nl.tp.Name, label, minKept, floor)
				}
			} else if minKept >= floor {
				// The control shows the budget check can fail: a forced drain of every pod.
				t.Errorf("%s: %s: still %d kept at the fewest, want fewer than the budget's %d (the negative control did not take the pods at once)", nl.tp.Name, label, minKept, floor)
			}
		}
	}
}

// spreadOverWorkers makes every hello Deployment of every topology (hello, and the canary
// hello-v2 where there is one) have pods on each worker (after a drain they all sit on
// one) and returns the worker a node event then takes: every Deployment has servers
// there and elsewhere. Checked per Deployment: the canary's two pods together on the
// victim would take the route's 10 % with them, a failure no client setting can help.
func spreadOverWorkers(t *testing.T, s *h.Suite, tps []h.Topology, workers []string) string {
	deps := map[string][]string{} // each topology's hello Deployments, asked once
	for _, tp := range tps {
		deps[tp.Name] = []string{"hello"}
		if hasCanary(t, s, tp) {
			deps[tp.Name] = append(deps[tp.Name], "hello-v2")
		}
	}
	deployments := func(tp h.Topology) []string { return deps[tp.Name] }
	unspread := func() []string {
		var missing []string
		for _, tp := range tps {
			for _, d := range deployments(tp) {
				for _, w := range workers {
					if len(s.DeploymentPodsOn(t, tp.Namespace, d, w)) == 0 {
						missing = append(missing, fmt.Sprintf("%s: %s on %s", tp.Name, d, w))
					}
				}
			}
		}
		return missing
	}
	if len(unspread()) > 0 {
		// The scheduler spreads pods only when it places them (topologySpreadConstraints):
		// a restart places them again.
		for _, tp := range tps {
			for _, d := range deployments(tp) {
				s.Kube.Run(t, "-n", tp.Namespace, "rollout", "restart", "deployment/"+d)
			}
		}
		for _, tp := range tps {
			s.Kube.Rollout(t, tp.Namespace, "hello")
			nodeReady(t, s, tp, 1)
		}
		if missing := unspread(); len(missing) > 0 {
			t.Fatalf("after a restart these hello Deployments still have no pod on a worker: %s", strings.Join(missing, "; "))
		}
	}
	return workers[len(workers)-1]
}

// silentEvent is a node that stops answering: it is lost, the suite waits for Kubernetes
// to mark it NotReady and take its pods out of the endpoints, then it is restored.
type silentEvent struct {
	name          string
	lose, restore func(t *testing.T, s *h.Suite, node string)
}

var silentEvents = []silentEvent{
	// docker pause: the cgroup freezer stops every process of the node (kubelet, the
	// servers); its kernel still ACKs TCP, so peers see open connections with no answers.
	{"frozen", func(t *testing.T, s *h.Suite, node string) { s.Pause(t, node) },
		func(t *testing.T, s *h.Suite, node string) { s.NodeDocker(t, "unpause", node) }},
	// Every packet of the node dropped in its network namespace: a partition.
	{"cut off", func(t *testing.T, s *h.Suite, node string) { s.CutOff(t, node, false) },
		func(t *testing.T, s *h.Suite, node string) { s.CutOff(t, node, true) }},
}

// Node-loss bounds, from the mechanisms (docs/resilience.md, "A node lost").
const (
	// NotReady: node-monitor-grace-period 50 s after the kubelet's last lease renewal
	// (every 10 s), then the node lifecycle controller's 5 s monitor period; 90 s leaves
	// the busy machine 25 s.
	notReadyWithin = 90 * time.Second
	// After NotReady the endpoints controller marks the node's pods not ready: seconds.
	endpointsGoneWithin = 30 * time.Second
	// A restored node: its kubelet's next status update, then the pods' probes.
	nodeBackWithin = 2 * time.Minute
	// headlessGoal: a client-side balancer with the kit's settings sends no new call to
	// the lost pods later than this after the loss (issue goal; the mechanism: the
	// per-call deadline, 1 s, then outlier detection's next interval, 0.5 s).
	headlessGoal = 3 * time.Second
	// trafficBackWithin: MAX_CONNECTION_AGE 30 s + 10 % + the DNS floor 2 s + 10 s.
	trafficBackWithin = 45 * time.Second
	// Through Traefik: its Kubernetes providers batch changes for up to 2 s.
	traefikThrottle = 2 * time.Second
	proxyMargin     = 5 * time.Second
	// The greeter's keepalive (its defaults are the kit's settings).
	greeterKeepalive        = dialer.DefaultKeepalive
	greeterKeepaliveTimeout = dialer.DefaultKeepaliveTimeout
	// xdsBound: a proxyless client learns of the loss from its own keepalive (no outlier
	// detection comes from istiod by default): Time 10 s + Timeout + 2 s of margin.
	xdsMargin = 2 * time.Second
)

// nodeSilent: the victim stops answering under load in every topology; then it is
// restored and traffic returns.
func nodeSilent(t *testing.T, s *h.Suite, tps []h.Topology, ev silentEvent, victim string) {
	lost := map[string][]string{}
	for _, tp := range tps {
		lost[tp.Namespace] = s.PodsOn(t, tp.Namespace, victim)
	}
	loads := startNodeLoads(t, s, tps, ev.name, nodeDeadline, true)
	evs := map[string]*h.Events{}
	for _, tp := range tps {
		evs[tp.Name] = s.NewNodeEvents(tp.Name)
	}
	notReady := h.WatchCount(func() (int, bool, error) {
		ok, err := s.Kube.NodeReady(victim)
		return 0, !ok, err
	})
	gone := map[string]*h.Watch{}
	for _, tp := range tps {
		ns, pods := tp.Namespace, lost[tp.Namespace]
		gone[ns] = h.WatchCount(func() (int, bool, error) {
			ready, err := s.Kube.ServingEndpoints(ns)
			if err != nil {
				return 0, false, err
			}
			n := 0
			for _, p := range pods {
				if ready[p] {
					n++
				}
			}
			return n, n == 0, nil
		})
	}
	release := s.Timing(t)
	loss := time.Now()
	ev.lose(t, s, victim)
	for _, e := range evs {
		e.MarkAt(loss, ev.name+": "+victim)
	}
	nr := notReady.WaitFor(t, notReadyWithin, "node "+victim+" NotReady")
	for _, e := range evs {
		e.MarkAt(nr, "NotReady")
	}
	epGone := map[string]time.Time{}
	for _, tp := range tps {
		epGone[tp.Namespace] = gone[tp.Namespace].WaitFor(t, endpointsGoneWithin+notReadyWithin, tp.Name+": lost pods out of the endpoints")
		evs[tp.Name].MarkAt(epGone[tp.Namespace], "endpoints removed")
	}
	notReady.Stop(t, "node Ready")
	for _, w := range gone {
		w.Stop(t, "endpoints")
	}
	// A few seconds more without the node, so the negative control's picture shows the
	// calls still going to it after Kubernetes has removed it.
	time.Sleep(5 * time.Second)
	restored := time.Now()
	ev.restore(t, s, victim)
	for _, e := range evs {
		e.MarkAt(restored, "restored")
	}
	back := s.WaitNodeReady(t, victim, nodeBackWithin)
	for _, e := range evs {
		e.MarkAt(back, "Ready again")
	}
	for _, tp := range tps {
		s.WaitPodsReady(t, tp.Namespace, 3)
	}
	release()

	// Let the loads run until every client has had its chance to come back to the node's
	// pods: a headless client learns of them at its next re-resolution, which the
	// servers' MAX_CONNECTION_AGE (30 s, +10 % jitter) triggers at the latest.
	time.Sleep(trafficBackWithin)
	for _, nl := range loads {
		tp := nl.tp
		pods := lost[tp.Namespace]
		sums := h.Tail(t, nl.kit)
		kit := figures(sums[0], pods, loss, restored)
		where := fmt.Sprintf("NotReady +%.0f s, endpoints removed +%.0f s, restored +%.0f s",
			nr.Sub(loss).Seconds(), epGone[tp.Namespace].Sub(loss).Seconds(), restored.Sub(loss).Seconds())
		evs[tp.Name].Record(t, ev.name+", kit settings", sums[0], kit.stopped(tp), kit.note(tp)+"; "+where+h.FailedCodes(sums[0]))
		var def lostFigures
		if nl.defaults != nil {
			dsum := h.Tail(t, nl.defaults)[0]
			def = figures(dsum, pods, loss, restored)
			evs[tp.Name].Record(t, ev.name+", defaults", dsum, def.stopped(tp), def.note(tp)+"; "+where+h.FailedCodes(dsum))
		}
		// What the failures said, one example per code: the table has only the counts.
		for _, er := range sums[0].Errors {
			t.Logf("%s: %s, kit settings: %d %s, e.g. %q", tp.Name, ev.name, er.Count, er.Code, er.Example)
		}
		nl.streams.StopNow()
		ss := nl.streams.StreamResult(t)
		s.Nodes.Add(tp.Name, ev.name+", streams (kit settings)", ss.Lost, streamGapSeconds(ss), streamNote(ss))
		checkNodeLoss(t, tp, ev.name, kit, def, nl.defaults != nil, epGone[tp.Namespace].Sub(loss), restored.Sub(loss))
	}
}

// checkNodeLoss asserts what the mechanisms guarantee (the goals and their bounds are in
// docs/resilience.md, "A node lost", with the figures).
func checkNodeLoss(t *testing.T, tp h.Topology, event string, kit, def lostFigures, withDefaults bool, endpointsGone, restored time.Duration) {
	t.Helper()
	switch tp.Balancer {
	case h.BalancerClient:
		if !kit.attributed {
			t.Errorf("%s: %s: no failed call was attributed to a lost pod: the figures cannot say when the client stopped sending to them", tp.Name, event)
		} else if kit.lastSent > headlessGoal {
			t.Errorf("%s: %s, kit settings: a call was sent to a lost pod %.1f s after the loss, goal ≤ %s", tp.Name, event, kit.lastSent.Seconds(), headlessGoal)
		}
	case h.BalancerControlPlane:
		bound := greeterKeepalive + greeterKeepaliveTimeout + xdsMargin
		if !kit.attributed {
			t.Errorf("%s: %s: no failed call was attributed to a lost pod", tp.Name, event)
		} else if kit.lastSent > bound {
			t.Errorf("%s: %s, kit settings: a call was sent to a lost pod %.1f s after the loss, bound %s (keepalive time + timeout + %s)", tp.Name, event, kit.lastSent.Seconds(), bound, xdsMargin)
		}
	case h.BalancerProxy:
		// Traefik v3.7.13 cannot find a silent backend through the kit's providers
		// (docs/resilience.md): what bounds the failures is the EndpointSlice change, then
		// Traefik's provider throttle and the call's deadline.
		bound := endpointsGone + traefikThrottle + nodeDeadline + proxyMargin
		if kit.lastFailed > bound {
			t.Errorf("%s: %s, kit settings: a call failed %.1f s after the loss, bound %.1f s (endpoints removed + %s + deadline %s + %s)", tp.Name, event, kit.lastFailed.Seconds(), bound.Seconds(), traefikThrottle, nodeDeadline, proxyMargin)
		}
	}
	// A client that balances itself fails only calls it sent to the lost pods. The
	// allowance: calls in flight on a lost pod's connection when it closes end UNAVAILABLE
	// and are retried elsewhere, where the rest of their deadline may run out; there are
	// never more of those than the calls a load has in flight, rate × deadline. More means
	// calls failed that no lost pod explains (the canary's every pod on the lost node did
	// that: its 10 % of the calls failed for the whole loss).
	if inFlight := int(nodeKitRate * nodeDeadline.Seconds()); tp.Balancer != h.BalancerProxy && kit.elsewhere > inFlight {
		t.Errorf("%s: %s, kit settings: %d failed calls were not sent to a lost pod (allowance %d: the calls in flight)", tp.Name, event, kit.elsewhere, inFlight)
	}
	// The negative control: with the defaults, the lost pods' calls go on failing after the
	// kit's settings stopped them, for as long as the node is gone (a client without
	// keepalive never learns; Traefik's defaults wait for the endpoints).
	if withDefaults && tp.Balancer != h.BalancerProxy && def.lastSent < restored-10*time.Second {
		t.Errorf("%s: %s, defaults (negative control): the last call to a lost pod was sent %.1f s after the loss, want until the node came back (%.0f s)", tp.Name, event, def.lastSent.Seconds(), restored.Seconds())
	}
}

// lostFigures are what one load saw of a node loss.
type lostFigures struct {
	// lastSent: when the last call sent to a lost pod before the restore started, after
	// the loss. Only a client that balances itself knows where a failed call went (the
	// timeline attributes it by its connection's address); through a proxy every call
	// goes to the proxy.
	lastSent   time.Duration
	attributed bool
	// lastFailed: when the last failed call ended, after the loss, before the restore.
	lastFailed time.Duration
	// toLost and elsewhere: the failed calls between the loss and the restore that were
	// sent to a lost pod, and those that were not (no pod, or a pod that was not lost).
	toLost, elsewhere int
	// back: the first call a lost pod answered after the restore (0: none).
	back time.Duration
	// longest: the longest any call of the load took, failed or answered (a failed call
	// waits at most its deadline).
	longest time.Duration
}

// figures reads a load's timeline for a node lost at loss and restored at restored.
func figures(sum report.Summary, lostPods []string, loss, restored time.Time) lostFigures {
	var f lostFigures
	if sum.Latency != nil {
		f.longest = time.Duration(sum.Latency.Max * float64(time.Millisecond))
	}
	tl := sum.Timeline
	if tl == nil {
		return f
	}
	for _, x := range tl.Failures {
		f.longest = max(f.longest, x.Latency)
		end := tl.Start.Add(x.Offset)
		if end.Before(loss) || !end.Before(restored) {
			continue
		}
		f.lastFailed = max(f.lastFailed, end.Sub(loss))
		if slices.Contains(lostPods, x.Pod) {
			f.attributed = true
			f.toLost++
			f.lastSent = max(f.lastSent, end.Add(-x.Latency).Sub(loss))
		} else {
			f.elsewhere++
		}
	}
	if at := firstServedAfter(sum, lostPods, restored); !at.IsZero() {
		f.back = at.Sub(restored)
	}
	return f
}

// firstServedAfter is the end of the first timeline bucket after since in which one of
// pods answered a call (zero: none did).
func firstServedAfter(sum report.Summary, pods []string, since time.Time) time.Time {
	var first time.Time
	for _, p := range pods {
		at, ok := h.FirstServedAfter(sum, p, since)
		if ok && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first
}

// stopped is the figure a topology's row leads with: when calls stopped going to the lost
// pods (a client-side balancer), or stopped failing (through a proxy).
func (f lostFigures) stopped(tp h.Topology) time.Duration {
	if tp.Balancer == h.BalancerProxy {
		return f.lastFailed
	}
	return f.lastSent
}

func (f lostFigures) note(tp h.Topology) string {
	var parts []string
	if tp.Balancer != h.BalancerProxy {
		parts = append(parts, fmt.Sprintf("%d failed sent to lost pods, %d elsewhere", f.toLost, f.elsewhere))
		if f.attributed {
			parts = append(parts, fmt.Sprintf("last call to a lost pod sent +%.1f s", f.lastSent.Seconds()))
		} else {
			parts = append(parts, "no failed call attributed to a lost pod")
		}
	}
	parts = append(parts, fmt.Sprintf("last failure +%.1f s", f.lastFailed.Seconds()),
		fmt.Sprintf("longest call %.2f s", f.longest.Seconds()))
	if f.back > 0 {
		parts = append(parts, fmt.Sprintf("traffic back %.1f s after the restore", f.back.Seconds()))
	} else {
		parts = append(parts, "no traffic back to the lost pods")
	}
	return strings.Join(parts, ", ")
}
