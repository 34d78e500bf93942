//go:build e2e

package e2e

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	h "github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

// clients are the kit's clients in other languages (clients/), each a command in the
// clients image. A new language is one entry here and one directory there.
var clients = []h.Client{
	{Language: "python", Command: "greeter-python"},
	// grpc-js has no client-side health checking (docs/clients.md).
	{Language: "node", Command: "greeter-node"},
	{Language: "cpp", Command: "greeter-cpp"},
	// Debian's grpc-java has no grpc-services: no client-side health checking either.
	{Language: "java", Command: "greeter-java", CPURequest: "50m"},
}

const (
	// clientCalls at clientRate: the spread's runs, 3 s each.
	clientCalls = 300
	clientRate  = 100
	// clientLoadRate: each client's rate under the rolling restart and the scale-out; the
	// node runs up to 8 of them beside the Go loads.
	clientLoadRate = 25
	// clientSkew bounds the round-robin spread once every subchannel is READY: 0.1 is 10
	// calls of a pod's 100. Before that a stack's round_robin sends calls to those that
	// are; startAllowance adds what that window can cost, measured from the run itself
	// (connecting took 0.37 s on the busy node once, 36 calls at 100 calls/s).
	clientSkew = 0.1
	// dnsMinResolve: the shortest interval between two DNS re-resolutions the clients are
	// given, as the suite's Go loads are (-dns-min-resolve=2s). Every stack here defaults to
	// 30 s (docs/clients.md cites the sources, and what that cost in a rolling restart).
	dnsMinResolve = 2 * time.Second
	// maxConnectionAge is the overlay's MAX_CONNECTION_AGE (kustomize/base/hello), with
	// grpc-go's +10% jitter: when the servers close each connection, and the clients
	// re-resolve.
	maxConnectionAge = 33 * time.Second
	// newPodBound: a client reaches a new pod at most one connection age after it is
	// Ready (its next GOAWAY asks for a re-resolution) plus one minimum resolution
	// interval (C-core and grpc-js postpone a re-resolution inside it; grpc-java drops it,
	// and the next GOAWAY asks again, which the age covers), plus a margin for connecting
	// and the DNS record's update on the busy node.
	newPodMargin = 10 * time.Second
	newPodBound  = maxConnectionAge + dnsMinResolve + newPodMargin
)

// clientDeadline: each call's deadline in the cluster. The contract's default is 2 s; on the
// suite's shared 2-core node a JVM's first calls (class loading, JIT, Netty's start) took
// up to 1.7 s before a connection was even tried, and no figure here is about latency.
const clientDeadline = "--deadline=5"

var dnsFlag = fmt.Sprintf("--dns-min-resolve=%g", dnsMinResolve.Seconds())

func init() {
	register(h.Scenario{Name: "clients in other languages: spread", Order: 12, Needs: h.FeatureClients, Run: clientsSpread})
	register(h.Scenario{Name: "clients in other languages: from the host", Order: 12, Needs: h.FeatureClientsFromHost, Run: clientsFromHost})
	register(h.Scenario{Name: "clients in other languages: scale out", Order: 45, Needs: h.FeatureClients, Run: clientsScaleOut})
}

// clientsSpread: in the cluster, each language's client over the headless Service with
// round_robin (every pod within clientSkew of an even share) beside the same client with
// its stack's default policy (the negative control: pick_first pins one pod).
func clientsSpread(t *testing.T, s *h.Suite, tp h.Topology) {
	type run struct {
		c      h.Client
		policy string
		load   *h.Load
	}
	var runs []run
	for _, c := range clients {
		for _, policy := range []string{"round_robin", "default"} {
			args := []string{fmt.Sprintf("--calls=%d", clientCalls), fmt.Sprintf("--rate=%d", clientRate), "--policy=" + policy, dnsFlag, clientDeadline}
			runs = append(runs, run{c, policy, s.ClientJobLoad(t, tp, c, "spread "+policy, args...)})
		}
	}
	for _, r := range runs {
		sum := r.load.Result(t)
		what := fmt.Sprintf("%s, policy %s", r.c.Language, r.policy)
		s.Clients.Add(tp.Name, r.c.Language+": spread, "+r.policy, sum.Failed, 0, perPod(sum))
		if r.policy == "default" {
			// The negative control: the stack's default (pick_first) sends every call to one pod.
			if len(sum.Backends) != 1 || sum.Failed != 0 {
				t.Errorf("%s: want every call on one pod, got %s, %d failed", what, perPod(sum), sum.Failed)
			}
			continue
		}
		start := startAllowance(sum, clientRate)
		t.Logf("%s: skew %.3f, bound %.3f + %.3f for the pods' first answers %.0f ms apart", what, sum.Skew(), clientSkew, start, 1000*firstAnswers(sum))
		h.CheckSpread(t, what, sum, tp.Backends, clientSkew+start)
	}
}

// firstAnswers is how far apart, in seconds, the backends first answered: the window in
// which a round_robin had some of its subchannels READY and not the others.
func firstAnswers(sum report.Summary) float64 {
	first, last := math.Inf(1), math.Inf(-1)
	for _, b := range sum.Backends {
		if b.FirstUnix == 0 {
			return 0
		}
		first, last = min(first, b.FirstUnix), max(last, b.FirstUnix)
	}
	return max(last-first, 0) // 0 for one backend, and for none (-Inf - +Inf)
}

// startAllowance is the skew the start can cause, as a share of the even share: the calls
// made while only some pods answered (the window at rate) may all go to one pod, which is
// (n-1)/n of them over its even share.
func startAllowance(sum report.Summary, rate float64) float64 {
	n := len(sum.Backends)
	if n < 2 || sum.OK == 0 {
		return 0
	}
	early := firstAnswers(sum) * rate
	mean := float64(sum.OK) / float64(n)
	return early * float64(n-1) / float64(n) / mean
}

// clientsFromHost: a few calls per language through the gateway's h2c listener and its TLS
// listener (the suite's CA, the route's host name), from the host's network namespace: the
// north-south path with each stack.
func clientsFromHost(t *testing.T, s *h.Suite, tp h.Topology) {
	const calls = 3
	for _, c := range clients {
		for _, via := range []struct {
			name string
			args []string
		}{
			{"h2c", []string{"--target=" + webAddr}},
			{"TLS", []string{"--target=" + websecureAddr, "--tls=true", "--ca=/ca.crt"}},
		} {
			args := append(via.args, "--authority="+tp.Entry.Authority, fmt.Sprintf("--calls=%d", calls), "--rate=0",
				// The proxy balances; the client has one address and no health service to ask.
				"--policy=pick_first", "--health=false")
			sum := s.ClientHostRun(t, c, args...)
			s.Clients.Add(tp.Name, fmt.Sprintf("%s: from the host, %s", c.Language, via.name), sum.Failed, 0, perPod(sum))
			if sum.OK != calls || sum.Failed != 0 {
				t.Errorf("%s through the gateway (%s): %d of %d calls ok: %+v", c.Language, via.name, sum.OK, calls, sum.Errors)
			}
		}
	}
}

// clientsScaleOut: every language's client under load while hello scales 3 → 5: when each
// first calls a new pod, after the pod is Ready. A headless Service's client learns of new
// pods only by re-resolving, which these stacks do when a connection closes (the servers'
// MAX_CONNECTION_AGE) and at most once per minimum resolution interval; the window is that
// bound. Then back to 3, under the same loads: no call may fail.
func clientsScaleOut(t *testing.T, s *h.Suite, tp h.Topology) {
	sc := s.NewEvents(tp.Name)
	loads := startClientLoads(t, s, tp, "scale out", nil)
	release := s.Churning(t)
	before := s.HelloPods(t, tp.Namespace)
	s.Kube.Run(t, "-n", tp.Namespace, "scale", "deploy/hello", "--replicas=5")
	s.WaitPodsReady(t, tp.Namespace, 5)
	ready := sc.Mark("5 pods Ready")
	release()
	newPods := slices.DeleteFunc(s.HelloPods(t, tp.Namespace), func(p string) bool { return slices.Contains(before, p) })
	// The window: the bound itself. A client that has not called a new pod by then fails.
	time.Sleep(newPodBound)
	release = s.Churning(t)
	s.Kube.Run(t, "-n", tp.Namespace, "scale", "deploy/hello", "--replicas=3")
	s.WaitPodsReady(t, tp.Namespace, 3)
	sc.Mark("back to 3 pods")
	release()
	for _, r := range stopClientLoads(t, loads) {
		h.NoFailures(t, r.c.Language+": scale out and in", r.sum)
		var firsts []string
		worst := time.Duration(0)
		for _, p := range newPods {
			first, ok := firstCall(r.sum, p)
			if !ok {
				t.Errorf("%s: no call reached new pod %s within %s of its being Ready (%s)", r.c.Language, p, newPodBound, perPod(r.sum))
				continue
			}
			d := max(first.Sub(ready), 0)
			worst = max(worst, d)
			firsts = append(firsts, fmt.Sprintf("%.1fs", d.Seconds()))
		}
		s.Clients.Add(tp.Name, r.c.Language+": scale out 3 → 5, first call to each new pod after Ready", r.sum.Failed, worst,
			fmt.Sprintf("%s (bound %s: MAX_CONNECTION_AGE+10%% + %s min resolution interval + %s)", strings.Join(firsts, ", "),
				newPodBound, dnsMinResolve, newPodMargin))
	}
}

// clientLoad is one client's load under a scenario: its language, variant and report.
type clientLoad struct {
	c       h.Client
	variant string
	load    *h.Load
	sum     report.Summary
}

// startClientLoads starts, per language, a load of the topology's hello for each variant
// (a name and extra flags; nil: one load with the kit's settings) and waits until each
// has made calls. The loads run until stopClientLoads.
func startClientLoads(t *testing.T, s *h.Suite, tp h.Topology, scenario string, variants map[string][]string) []*clientLoad {
	if variants == nil {
		variants = map[string][]string{"": nil}
	}
	var loads []*clientLoad
	for _, c := range clients {
		for _, v := range slices.Sorted(maps.Keys(variants)) {
			args := append([]string{"--duration=600", fmt.Sprintf("--rate=%d", clientLoadRate), clientDeadline}, variants[v]...)
			if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--dns-min-resolve=") }) {
				args = append(args, dnsFlag)
			}
			loads = append(loads, &clientLoad{c: c, variant: v, load: s.ClientJobLoad(t, tp, c, strings.TrimSpace(scenario+" "+v), args...)})
		}
	}
	for _, l := range loads {
		l.load.WaitCalls(t, 2*clientLoadRate)
	}
	return loads
}

// stopClientLoads stops every load at once (their Jobs deleted: SIGTERM) and reads each
// report.
func stopClientLoads(t *testing.T, loads []*clientLoad) []*clientLoad {
	var wg sync.WaitGroup
	for _, l := range loads {
		wg.Go(l.load.StopNow)
	}
	wg.Wait()
	for _, l := range loads {
		l.sum = l.load.Result(t)
	}
	return loads
}

// clientsBeside is the rolling restart's part for the clients in other languages: their
// loads with the stack's retry policy and without, through the same rollout. Both have the
// suite's 2 s DNS re-resolution interval: with their stacks' 30 s, the old pods can all drain
// before a client learns of the new ones, which retries with their 1.5 s of backoff do not
// bridge (docs/clients.md has a run of it; not part of every run: it depends on when each
// client last resolved, and 4 more loads crowd the shared node).
func clientsBeside(t *testing.T, s *h.Suite, tp h.Topology) (check func()) {
	if !tp.Supports(h.FeatureClients) {
		return func() {}
	}
	loads := startClientLoads(t, s, tp, "rolling restart", map[string][]string{"retries on": nil, "retries off": {"--retries=false"}})
	return func() {
		for _, l := range stopClientLoads(t, loads) {
			s.Clients.Add(tp.Name, fmt.Sprintf("%s: rolling restart, %s", l.c.Language, l.variant), l.sum.Failed, 0,
				fmt.Sprintf("%d calls%s", l.sum.Calls, errorsNote(l.sum)))
			if l.variant == "retries on" {
				h.NoFailures(t, l.c.Language+": rolling restart with retries", l.sum)
			}
		}
	}
}

// firstCall is when pod first answered the client (the report's first_unix).
func firstCall(s report.Summary, pod string) (time.Time, bool) {
	for _, b := range s.Backends {
		if b.Pod == pod && b.FirstUnix > 0 {
			sec := int64(b.FirstUnix)
			return time.Unix(sec, int64((b.FirstUnix-float64(sec))*1e9)), true
		}
	}
	return time.Time{}, false
}

// perPod is "hello-a 100, hello-b 99, ..." for a table's note.
func perPod(s report.Summary) string {
	var parts []string
	for _, b := range s.Backends {
		parts = append(parts, fmt.Sprintf("%s %d", b.Pod, b.Calls))
	}
	return strings.Join(parts, ", ")
}

// errorsNote is ", 3 UNAVAILABLE" for a report with failures.
func errorsNote(s report.Summary) string {
	var b strings.Builder
	for _, e := range s.Errors {
		fmt.Fprintf(&b, ", %d %s", e.Count, e.Code)
	}
	return b.String()
}
