//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/plot"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/statuscode"
)

// A load makes baselineCalls before a scenario acts (so the picture shows the steady state
// first) and tailCalls after its last event (so what the event caused is inside the load).
const (
	baselineCalls = loadRate * 5 / 2 // 2.5 s
	tailCalls     = loadRate * 2     // 2 s
)

// topo is one way in to the hello pods, under load.
type topo struct {
	name string
	ns   string // namespace of deploy/hello
	// overlay is the e2e overlay that deployed ns, when it is not e2e/overlays/<name>.
	overlay string
	// start begins a load (flags appended to the topology's own) and returns it running.
	start func(t *testing.T, name string, extra ...string) *load
	// jobs: the topology's loads run in the cluster (nil: on the host, through a proxy).
	jobs *clientJobs
	// proxy: calls go through Traefik, whose timeouts apply to streams.
	proxy bool
	// retry are the greeter flags of a load with retries on and off: the kit's retry
	// policy, or for a proxyless client the one its control plane sends, and
	// -retry=false, which turns either off.
	retry func(on bool) []string
	// failover target: the stop-receiving time the issue asks for.
	failoverTarget time.Duration
	// readyGoal: how soon after a new pod is Ready it must serve calls (0: no goal; a
	// headless client only learns of it when a connection closes).
	readyGoal time.Duration
	// ready waits until every hello pod behind the entry point answers.
	ready func(t *testing.T)
}

// headlessTopo is the headless topology in ns, deployed by overlay: headlessNS by
// "headless", or headlessCapacityNS by "headless-capacity" (the same topology again, for
// the scenarios that change hello's settings for minutes).
func headlessTopo(ns, overlay string) topo {
	jobs := &clientJobs{ns: ns, overlay: "headless",
		args: []string{"-target=dns:///hello-grpc-headless." + ns + ".svc.cluster.local:50051", "-dns-min-resolve=2s"}}
	return topo{name: "headless", ns: ns, overlay: overlay, jobs: jobs, retry: kitRetry, failoverTarget: time.Second,
		start: func(t *testing.T, name string, extra ...string) *load {
			return jobs.start(t, name, append([]string{"-warmup=60s", "-expect-backends=3"}, extra...)...)
		},
		ready: func(t *testing.T) { waitPodsReady(t, ns, 3) }}
}

// kitRetry: the greeter's own retry policy (the service config), on or off.
func kitRetry(on bool) []string { return []string{"-retry=" + strconv.FormatBool(on)} }

func ingressTopo() topo {
	return topo{name: "nginx-ingress", ns: ingressNS, proxy: true, retry: kitRetry, failoverTarget: 6 * time.Second,
		start: hostLoad("-target", websecureAddr, "-authority", ingressHost, "-cacert"),
		ready: func(t *testing.T) {
			waitPodsReady(t, ingressNS, 3)
			waitBackends(t, "ingress", 3, "-target", websecureAddr, "-authority", ingressHost, "-cacert", e.caCert, "-health-check=false")
		}}
}

func gatewayTopo() topo {
	return topo{name: "gateway-api", ns: gatewayNS, proxy: true, retry: kitRetry, failoverTarget: 6 * time.Second,
		start: hostLoad("-target", webAddr, "-authority", gatewayHost),
		ready: func(t *testing.T) {
			waitPodsReady(t, gatewayNS, 3)
			// 3 hello pods behind the 90 % weight and hello-v2 behind the 10 %.
			waitBackends(t, "gateway", 4, "-target", webAddr, "-authority", gatewayHost, "-health-check=false")
		}}
}

// step is one scenario of a topology.
type step struct {
	name string
	run  func(t *testing.T)
}

// runResilience runs every scenario in one topology under load, one after the other (they
// act on the same Deployment); the topologies run theirs at the same time, each in its
// own namespaces. The headless topology's slow pod and connection-age scale-outs run in a
// second namespace of their own (runHeadlessCapacity).
func runResilience(t *testing.T, tp topo) {
	checkRestricted(t, tp.ns)
	tp.ready(t)
	steps := []step{
		{"bad input", func(t *testing.T) { badInput(t, tp) }},
		{"pod killed", func(t *testing.T) { podKilled(t, tp) }},
		{"failover", func(t *testing.T) { failover(t, tp) }},
		// Through a proxy and proxyless, streams opened before this scale-out are the
		// negative control of "streams: rebalance" below; headless has it in
		// runHeadlessCapacity, beside the scale-out with MAX_CONNECTION_AGE=5s.
		{"scale out and in", func(t *testing.T) { scaleOutIn(t, tp, "", tp.name != "headless") }},
		{"streams: spread", func(t *testing.T) { streamSpread(t, tp) }},
	}
	switch tp.name {
	case xdsName:
		// A proxyless client's policy comes from the control plane (a DestinationRule), not
		// from the greeter's -lb.
		steps = append(steps, step{"slow pod", func(t *testing.T) { xdsSlowPod(t, tp) }},
			step{"control plane lost", func(t *testing.T) { controlPlaneLost(t, tp) }})
	case "headless":
		// Its slow pod runs in TestHeadlessCapacity's namespace (runHeadlessCapacity).
	default:
		steps = append(steps, step{"slow pod", func(t *testing.T) { slowPod(t, tp) }})
	}
	// The rolling restart is the rollout that gives hello the settings of "streams:
	// rebalance" (rebalanceEnv): a change of the pod template replaces every pod as
	// `kubectl rollout restart` does, and one rollout instead of two is a minute less of
	// pod churn in each topology. So it comes last but one: the scenarios before it run
	// with the overlay's settings.
	steps = append(steps,
		step{"rolling restart", func(t *testing.T) { rollingRestart(t, tp, rebalanceEnv(tp)) }},
		step{"streams: rebalance", func(t *testing.T) { streamsRebalance(t, tp) }})
	restoreAfter(t, tp)
	// Through a proxy, a long stream runs beside every scenario (they act on hello, it
	// on goodbye) and is checked once it is over.
	var long func(t *testing.T)
	if tp.proxy {
		long = longStreams(t, tp)
	}
	runSteps(t, tp, steps)
	if long != nil {
		t.Run("streams: long stream", long)
	}
	progressf(tp.name, "resilience done")
}

// runHeadlessCapacity: the headless scenarios that keep hello's settings changed for
// minutes, in their own namespace: the slow pod, and scale-outs with a long and a short
// MAX_CONNECTION_AGE (a headless client only re-resolves when a connection closes, so
// the age decides how soon new pods get calls). Its overlay starts hello with the long
// age (5m), which the slow pod does not mind (its weights and counts live on long
// connections): one rollout, to 5s, instead of one per age.
func runHeadlessCapacity(t *testing.T, tp topo) {
	checkRestricted(t, tp.ns)
	tp.ready(t)
	scaleOut := func(age string) step {
		return step{"scale out with MAX_CONNECTION_AGE=" + age, func(t *testing.T) {
			release := churning(t)
			e.k.run(t, "-n", tp.ns, "scale", "deploy/hello", "--replicas=3") // whatever a failed step left
			e.k.run(t, "-n", tp.ns, "set", "env", "deploy/hello", "MAX_CONNECTION_AGE="+age)
			e.k.rollout(t, tp.ns, "hello")
			waitPodsReady(t, tp.ns, 3)
			release()
			scaleOutIn(t, tp, age, age == "5s")
		}}
	}
	steps := []step{{"slow pod", func(t *testing.T) { slowPod(t, tp) }}, scaleOut("5m"), scaleOut("5s")}
	restoreAfter(t, tp)
	runSteps(t, tp, steps)
	progressf(tp.name, "capacity scenarios done (%s)", tp.ns)
}

func runSteps(t *testing.T, tp topo, steps []step) {
	where := tp.name
	if tp.overlay != "" && tp.overlay != tp.name {
		where += " (" + tp.ns + ")" // TestHeadless prints "headless" too
	}
	for i, s := range steps {
		progressf(where, "scenario %d of %d: %s", i+1, len(steps), s.name)
		t.Run(s.name, s.run)
	}
}

// restoreAfter: scenarios change hello's settings; with -keep, put the overlay's back
// when they are done (re-applying its hello v1 Deployment), as pod churn like any other
// (the rollout must not run beside a timed failover). Without, the suite deletes it.
func restoreAfter(t *testing.T, tp topo) {
	overlay := cmp.Or(tp.overlay, tp.name)
	t.Cleanup(func() {
		if !*keep {
			return
		}
		churn.RLock()
		defer churn.RUnlock()
		e.k.exec("apply", "-k", overlayDir(overlay), "-l", helloV1)
		e.k.exec("-n", tp.ns, "rollout", "status", "deploy/hello", "--timeout=2m")
	})
}

// churning holds churn for pod churn (any number at once) and timing holds it alone, for
// a measurement; each returns its release, which the end of the test also calls (a
// scenario that fails half-way must not leave the other topologies waiting).
func churning(t *testing.T) (release func()) { return hold(t, churn.RLock, churn.RUnlock) }
func timing(t *testing.T) (release func())   { return hold(t, churn.Lock, churn.Unlock) }

func hold(t *testing.T, lock, unlock func()) func() {
	lock()
	var once sync.Once
	release := func() { once.Do(unlock) }
	t.Cleanup(release)
	return release
}

// scen is one scenario in one topology: the events it caused, for its pictures.
type scen struct {
	tp     topo
	events []mark
}

type mark struct {
	at    time.Time
	label string
}

func newScen(tp topo) *scen { return &scen{tp: tp} }

// mark records an event now and returns its time.
func (sc *scen) mark(label string) time.Time {
	now := time.Now()
	sc.markAt(now, label)
	return now
}

func (sc *scen) markAt(at time.Time, label string) {
	sc.events = append(sc.events, mark{at, label})
	progressf(sc.tp.name, "%s", label)
}

// record adds a row to the resilience table and, when the load carries a timeline, draws
// its picture with the scenario's events.
func (sc *scen) record(t *testing.T, row string, s report.Summary, d time.Duration, note string) {
	t.Helper()
	resilience.add(sc.tp.name, row, s.Failed, d, note)
	if s.Timeline == nil {
		t.Errorf("%s: the load's report has no timeline", row)
		return
	}
	tl := *s.Timeline
	for _, m := range sc.events {
		tl.AddEvent(m.at, m.label)
	}
	rel := filepath.Join(slug(sc.tp.name), slug(row)+".svg")
	if err := os.MkdirAll(filepath.Join(e.out, "plots", slug(sc.tp.name)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := plot.Render(tl, sc.tp.name+": "+row, filepath.Join(e.out, "plots", rel)); err != nil {
		t.Errorf("plot %s: %v", row, err)
		return
	}
	caption := fmt.Sprintf("%d calls, %d failed%s", s.Calls, s.Failed, failedCodes(s))
	if d > 0 {
		caption += fmt.Sprintf("; %.1f s", d.Seconds())
	}
	if note != "" {
		caption += "; " + note
	}
	plots.add(plot.IndexEntry{Topology: sc.tp.name, Scenario: row, File: rel, Caption: caption})
}

var nonWord = regexp.MustCompile(`[^a-z0-9]+`)

func slug(s string) string {
	return strings.Trim(nonWord.ReplaceAllString(strings.ToLower(s), "-"), "-")
}

// plotIndex collects the pictures for e2e/out/plots/index.html.
type plotIndex struct {
	mu      sync.Mutex
	entries []plot.IndexEntry
}

func (p *plotIndex) add(x plot.IndexEntry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.entries = append(p.entries, x)
}

// write writes the index page, topologies in the suite's order.
func (p *plotIndex) write(dir string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.entries) == 0 {
		return nil
	}
	slices.SortStableFunc(p.entries, func(a, b plot.IndexEntry) int { return byTopology(a.Topology, b.Topology) })
	return plot.Index(dir, p.entries)
}

// progressf prints one line of progress, so `make e2e` never sits silent for minutes.
func progressf(topology, format string, args ...any) {
	el := time.Since(suiteStart).Round(time.Second)
	fmt.Printf("[e2e %02d:%02d] %s: %s\n", int(el.Minutes()), int(el.Seconds())%60, topology, fmt.Sprintf(format, args...))
}

// helloV1 selects the hello v1 pods, the ones the scenarios act on.
const helloV1 = "app.kubernetes.io/name=hello,version=v1"

// waitPodsReady waits until ns has exactly n Ready hello v1 pods and none terminating.
func waitPodsReady(t *testing.T, ns string, n int) {
	t.Helper()
	eventually(t, 3*time.Minute, fmt.Sprintf("%d Ready hello pods in %s and none terminating", n, ns), func() bool {
		pods := e.k.pods(t, ns, helloV1)
		ready := 0
		for i := range pods {
			if pods[i].DeletionTimestamp != nil {
				return false
			}
			if podReady(&pods[i]) {
				ready++
			}
		}
		return ready == n && len(pods) == n
	})
}

// helloPods lists the running hello v1 pods of ns.
func helloPods(t *testing.T, ns string) []string {
	t.Helper()
	var names []string
	for _, p := range e.k.pods(t, ns, helloV1) {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			names = append(names, p.Name)
		}
	}
	slices.Sort(names)
	return names
}

// handled is how many SayHello calls a pod has answered.
func handled(ns, pod string) (int64, error) {
	return counter(ns, pod, "grpc_server_handled_total", "SayHello")
}

// counter is a pod's grpc_server_* counter for method (summed over its other labels), from
// its own /metrics through the API server's pod proxy (no port-forward needed).
func counter(ns, pod, metric, method string) (int64, error) {
	out, err := e.k.podProxy("GET", ns, pod, 8080, "metrics")
	if err != nil {
		return 0, fmt.Errorf("%w: %s", err, out) // err names the pod and the path
	}
	var n int64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, metric+"{") || !strings.Contains(l, `grpc_method="`+method+`"`) {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			n += int64(v)
		}
	}
	return n, nil
}

func setHealth(t *testing.T, ns, pod, status string) {
	t.Helper()
	postAdmin(t, ns, pod, "health?status="+status)
}

// postAdmin POSTs to a server pod's admin endpoint (/admin/<what>) through the API
// server's pod proxy: no port-forward needed.
func postAdmin(t *testing.T, ns, pod, what string) {
	t.Helper()
	if out, err := e.k.podProxy("POST", ns, pod, 8080, "admin/"+what); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

func badInput(t *testing.T, tp topo) {
	before := restarts(t, tp.ns)
	cases := []struct {
		name string
		args []string
		code string
	}{
		{"empty name", []string{"-name="}, "InvalidArgument"},
		{"over-long name", []string{"-name-bytes=300"}, "InvalidArgument"},
		{"oversized message", []string{"-name-bytes=5000"}, "ResourceExhausted"},
		{"expired deadline", []string{"-timeout=1us"}, "DeadlineExceeded"},
	}
	sums := make([]report.Summary, len(cases))
	if tp.jobs != nil {
		// Four Jobs at once: each pays its pod start-up, not one after the other.
		loads := make([]*load, len(cases))
		for i, c := range cases {
			loads[i] = tp.jobs.start(t, "bad input: "+c.name, append(c.args, "-n=20", "-expect-code="+c.code, "-json", "-quiet")...)
		}
		for i, l := range loads {
			sums[i] = l.result(t)
		}
	} else {
		for i, c := range cases {
			var code int
			sums[i], code = greet(t, append(proxyArgs(tp), append(c.args, "-n", "20", "-expect-code", c.code)...)...)
			if code != 0 {
				t.Errorf("%s: exit %d", c.name, code)
			}
		}
	}
	for i, c := range cases {
		s := sums[i]
		if !report.Passed(s.Assertions) || s.Calls != 20 {
			t.Errorf("%s through %s: want 20 × %s, got %+v", c.name, tp.name, c.code, s.Errors)
		}
		resilience.add(tp.name, "bad input: "+c.name+" → "+c.code, s.Calls-countCode(s, c.code), 0, "")
	}
	if after := restarts(t, tp.ns); after != before {
		t.Errorf("pods restarted after bad input: %d restarts before, %d after", before, after)
	}
	// And they still serve.
	var s report.Summary
	if tp.jobs != nil {
		s = tp.jobs.start(t, "after bad input", "-n=30", "-json", "-quiet").result(t)
	} else {
		s, _ = greet(t, append(proxyArgs(tp), "-n", "30")...)
	}
	if s.Failed != 0 || s.Calls != 30 {
		t.Errorf("after bad input: %d of %d good calls failed", s.Failed, s.Calls)
	}
}

func countCode(s report.Summary, name string) int64 {
	c, err := statuscode.Parse(name)
	if err != nil {
		return 0
	}
	return s.Count(c)
}

func proxyArgs(tp topo) []string {
	if tp.name == "nginx-ingress" {
		return []string{"-target", websecureAddr, "-authority", ingressHost, "-cacert", e.caCert, "-health-check=false", "-retry=false"}
	}
	return []string{"-target", webAddr, "-authority", gatewayHost, "-health-check=false", "-retry=false"}
}

// tail lets the load run tailCalls more calls after the scenario's last event, then stops it.
func tail(t *testing.T, ls ...*load) []report.Summary {
	t.Helper()
	for _, l := range ls {
		l.waitCalls(t, l.count()+tailCalls)
	}
	var out []report.Summary
	for _, l := range ls {
		out = append(out, l.stop(t))
	}
	return out
}

// rollingRestart replaces every hello pod, one at a time, under a call load and a stream
// load, by setting env on the Deployment (a change of the pod template, as `kubectl
// rollout restart` makes one): no call may fail and every stream must come back.
func rollingRestart(t *testing.T, tp topo, env []string) {
	sc := newScen(tp)
	before := helloPods(t, tp.ns)
	l := tp.start(t, "rolling restart", loadArgs()...)
	streams := tp.start(t, "rolling restart: streams", streamArgs()...)
	l.waitCalls(t, baselineCalls)
	streams.waitCalls(t, 20*streamCount)
	release := churning(t)
	start := sc.mark("rollout: set env " + strings.Join(env, " "))
	gen := e.k.deployment(t, tp.ns, "hello").Generation
	e.k.run(t, append([]string{"-n", tp.ns, "set", "env", "deploy/hello"}, env...)...)
	if e.k.deployment(t, tp.ns, "hello").Generation == gen {
		// hello had these settings already (a run stopped half-way, with -keep): restart
		// it the other way, so the scenario still replaces every pod.
		e.k.run(t, "-n", tp.ns, "rollout", "restart", "deploy/hello")
	}
	e.k.rollout(t, tp.ns, "hello")
	took := time.Since(start)
	sc.mark("rollout done")
	// The old pods drain for DRAIN_DELAY after the rollout reports done: calls must not
	// fail until they are gone.
	waitPodsReady(t, tp.ns, 3)
	sc.mark("old pods gone")
	release()
	if left := slices.DeleteFunc(helloPods(t, tp.ns), func(p string) bool { return !slices.Contains(before, p) }); len(left) > 0 {
		t.Errorf("rolling restart: %v were not replaced", left)
	}
	s := tail(t, l)[0]
	streams.stopFn()
	ss := streams.streamResult(t)
	sc.record(t, "rolling restart (retry on)", s, took, fmt.Sprintf("rollout took %s, %d calls", took.Round(time.Second), s.Calls))
	noFailures(t, "rolling restart", s)
	streamsTable.add(tp.name, "rolling restart: every stream reopened on a new pod, longest gap", ss.Lost, streamGapSeconds(ss), streamNote(ss))
	checkStreamsSurvived(t, "rolling restart: streams", ss, streamMaxGap)
}

// podKilled takes a pod away abruptly, two ways, with two loads at once: the retry policy
// on, and off (the negative control, under the same kill):
//   - deleted with --grace-period=0 --force, as the issue asks: the API object goes at once,
//     so every balancer drops the pod while the kubelet still runs its preStop sleep, and
//     even retries off usually lose nothing. The kubelet SIGKILLs the server about 3 s
//     later: a proxy that has not dropped the pod by then cuts a call in flight, which
//     Traefik answers with HTTP 500 (UNKNOWN; the retry policy retries it).
//   - its server process SIGKILLed (an OOM kill or a crash looks like this): no preStop, no
//     drain, no GOAWAY; the kernel resets every connection and calls in flight fail with
//     UNAVAILABLE. This is the case the retry policy exists for.
func podKilled(t *testing.T, tp topo) {
	kills := []struct {
		label, event string
		kill         func(t *testing.T, ns, pod string)
		streams      bool // a stream load beside the call loads
	}{
		{"pod deleted (grace 0, --force)", "pod deleted", func(t *testing.T, ns, pod string) {
			e.k.run(t, "-n", ns, "delete", "pod", pod, "--grace-period=0", "--force")
		}, false},
		{"process SIGKILLed", "server SIGKILLed", killProcess, true},
	}
	for _, k := range kills {
		sc := newScen(tp)
		pods := helloPods(t, tp.ns)
		if len(pods) == 0 {
			t.Fatal("no hello pods")
		}
		on := tp.start(t, k.label+", retry on", append(loadArgs(), tp.retry(true)...)...)
		off := tp.start(t, k.label+", retry off", append(loadArgs(), tp.retry(false)...)...)
		var streams *load
		if k.streams {
			streams = tp.start(t, k.label+": streams", streamArgs()...)
			streams.waitCalls(t, 20*streamCount)
		}
		on.waitCalls(t, baselineCalls)
		off.waitCalls(t, baselineCalls)
		release := churning(t)
		sc.mark(k.event + ": " + pods[0])
		k.kill(t, tp.ns, pods[0])
		waitPodsReady(t, tp.ns, 3)
		sc.mark("3 pods Ready again")
		release()
		sums := tail(t, on, off)
		if streams != nil {
			streams.stopFn()
			ss := streams.streamResult(t)
			streamsTable.add(tp.name, "server SIGKILLed: its streams reopened on live pods, longest gap", ss.Lost, streamGapSeconds(ss), streamNote(ss))
			checkStreamsSurvived(t, k.label+": streams", ss, killMaxGap)
			if ss.Reconnects == 0 {
				t.Errorf("%s: no stream ended, yet the killed pod had some: %s", k.label, streamNote(ss))
			}
		}
		for i, retry := range []bool{true, false} {
			s := sums[i]
			label := k.label + ", retry on"
			if !retry {
				label = k.label + ", retry off"
			}
			sc.record(t, label, s, 0, fmt.Sprintf("%d calls%s", s.Calls, failedCodes(s)))
			if retry && s.Failed != 0 {
				t.Errorf("%s: %d of %d calls failed: %+v", label, s.Failed, s.Calls, s.Errors)
			}
			if !retry {
				t.Logf("%s: %d of %d calls failed (why the retry policy exists): %+v", label, s.Failed, s.Calls, s.Errors)
			}
		}
	}
}

func restarts(t *testing.T, ns string) int {
	t.Helper()
	n := 0
	for _, p := range e.k.pods(t, ns, "app.kubernetes.io/component=server") {
		for _, c := range p.Status.ContainerStatuses {
			n += int(c.RestartCount)
		}
	}
	return n
}

// killProcess SIGKILLs a pod's server process from its kind node (the node is a container
// of this machine's engine; crictl names the process). The kubelet restarts the container
// in place, so the pod keeps its name and IP.
func killProcess(t *testing.T, ns, pod string) {
	t.Helper()
	p := e.k.pod(t, ns, pod)
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

// failover flips one pod to NOT_SERVING and measures, from its own metrics, how long it
// kept receiving calls.
func failover(t *testing.T, tp topo) {
	sc := newScen(tp)
	pods := helloPods(t, tp.ns)
	victim := pods[0]
	l := tp.start(t, "failover", append(loadArgs(), "-timeline-bucket=100ms")...)
	l.waitCalls(t, baselineCalls)
	last, err := handled(tp.ns, victim)
	if err != nil {
		t.Fatal(err)
	}
	release := timing(t) // no pod starts or stops anywhere while this is timed
	sc.mark("NOT_SERVING: " + victim)
	setHealth(t, tp.ns, victim, "NOT_SERVING")
	// Timed from when the pod's admin endpoint answered: it has flipped by then. A kubectl
	// call through the API server's pod proxy, which carries the POST, takes up to a
	// second on the shared node; timed from its start, that was charged to the clients (a
	// headless failover measured 1.1 s against 1 s, 2026-12-02).
	flipped := time.Now()
	lastIncrease, scrapeErrs := flipped, 0
	for time.Since(lastIncrease) < 6*time.Second && time.Since(flipped) < 20*time.Second {
		time.Sleep(200 * time.Millisecond) // the sampling period of the measurement
		n, err := handled(tp.ns, victim)
		if err != nil {
			// A scrape goes through the API server's pod proxy; one that fails leaves a gap
			// of 200 ms in the samples, three in a row end the test.
			if scrapeErrs++; scrapeErrs == 3 {
				t.Fatal(err)
			}
			t.Logf("failover sample skipped: %v", err)
			continue
		}
		scrapeErrs = 0
		if n > last {
			last, lastIncrease = n, time.Now()
		}
	}
	back := sc.mark("SERVING again")
	setHealth(t, tp.ns, victim, "SERVING")
	release()
	waitPodsReady(t, tp.ns, 3)
	s := tail(t, l)[0]
	// The figure comes from the load's own timeline (100 ms buckets): the end of the last
	// bucket before SERVING again in which the victim answered a call (it had 6 s without
	// one by then). The metrics polled above only decide when to stop waiting: each sample
	// is a kubectl call through the API server, late by as long as that call takes on a
	// busy node (up to a second).
	stopped := lastIncrease.Sub(flipped)
	if end, ok := lastServed(s, victim, back); ok {
		stopped = max(end.Sub(flipped), 0)
	} else {
		t.Errorf("failover: the load's timeline has no call of %s: cannot time it", victim)
	}
	sc.markAt(flipped.Add(stopped), "last call served")
	sc.record(t, "failover: NOT_SERVING pod stops getting calls", s, stopped, fmt.Sprintf("target ≤ %s", tp.failoverTarget))
	t.Logf("%s: %s stopped receiving calls %s after NOT_SERVING (target ≤ %s)", tp.name, victim, stopped.Round(100*time.Millisecond), tp.failoverTarget)
	if stopped > tp.failoverTarget {
		t.Errorf("NOT_SERVING pod kept receiving calls for %s, target ≤ %s", stopped, tp.failoverTarget)
	}
	if s.Failed != 0 {
		t.Errorf("failover: %d calls failed", s.Failed)
	}
}

// lastServed is the end of the last timeline bucket ending by until in which pod answered
// a call. Calls are counted when they end, so it is when the pod's last call before until
// was answered, to the bucket's width.
func lastServed(s report.Summary, pod string, until time.Time) (time.Time, bool) {
	tl := s.Timeline
	if tl == nil || tl.Bucket <= 0 {
		return time.Time{}, false
	}
	var last time.Time
	for i, r := range tl.Rates(pod) {
		if end := tl.Start.Add(time.Duration(i+1) * tl.Bucket); r > 0 && !end.After(until) {
			last = end
		}
	}
	return last, !last.IsZero()
}

// scaleOutIn: 3 → 5 under load (time until every new pod served a call), then 5 → 3
// under load (no call may fail). With streams, a stream load runs beside the scale-out:
// streamsStay, the negative control of streamsRebalance.
func scaleOutIn(t *testing.T, tp topo, age string, streams bool) {
	suffix := ""
	if age != "" {
		suffix = " (MAX_CONNECTION_AGE=" + age + ")"
	}
	// How long to wait for the new pods to be served: a headless client with the default
	// 30 s age recycles its connections 27–33 s after opening them, re-resolves (at most
	// every 2 s: -dns-min-resolve) and connects to the new pods if they are Ready by then
	// (they took 11–27 s on the shared node); with 5 minutes it does not during the run
	// (the negative control: 20 s is 4 × the 5 s age's figure).
	window := 40 * time.Second
	if age == "5m" {
		window = 20 * time.Second
	}
	sc := newScen(tp)
	before := helloPods(t, tp.ns)
	var sl *load
	if streams {
		sl = tp.start(t, "scale out: streams"+suffix, streamArgs()...)
		sl.waitCalls(t, 20*streamCount) // 2 s of messages: every stream is open
	}
	l := tp.start(t, "scale out"+suffix, loadArgs()...)
	l.waitCalls(t, baselineCalls)
	release := churning(t)
	scaled := sc.mark("scale to 5")
	e.k.run(t, "-n", tp.ns, "scale", "deploy/hello", "--replicas=5")
	served := map[string]time.Duration{}
	var newPods []string
	for time.Since(scaled) < window {
		newPods = newPods[:0]
		for _, p := range helloPods(t, tp.ns) {
			if !slices.Contains(before, p) {
				newPods = append(newPods, p)
			}
		}
		for _, p := range newPods {
			if _, ok := served[p]; ok {
				continue
			}
			if n, err := handled(tp.ns, p); err == nil && n > 0 {
				served[p] = time.Since(scaled)
			}
		}
		if len(newPods) == 2 && len(served) == 2 {
			break
		}
		time.Sleep(500 * time.Millisecond) // the sampling period of the measurement
	}
	var worst time.Duration
	for _, d := range served {
		worst = max(worst, d)
	}
	release()
	if len(served) == 2 {
		sc.markAt(scaled.Add(worst), "every new pod served")
	}
	s := tail(t, l)[0]
	if sl != nil {
		var live time.Duration // when both new pods served: streamsStay's window starts there
		if len(served) == 2 {
			live = worst
		}
		streamsStay(t, tp, sl, before, scaled, live)
	}
	label := "scale out 3 → 5: every new pod served" + suffix
	note := fmt.Sprintf("%d of 2 new pods served within %s", len(served), window)
	if tp.readyGoal > 0 {
		note += sinceReady(t, tp, s, served)
	}
	sc.record(t, label, s, worst, note)
	t.Logf("%s: %s", label, note)
	if s.Failed != 0 {
		t.Errorf("scale out: %d calls failed", s.Failed)
	}
	// Through a proxy new pods get calls once Ready; a headless client only after its
	// connections are recycled, so only the short MaxConnectionAge has a deadline here.
	if (tp.name != "headless" || age == "5s") && len(served) != 2 {
		t.Errorf("%s: only %d of 2 new pods got calls within %s", label, len(served), window)
	}

	sc = newScen(tp)
	l = tp.start(t, "scale in"+suffix, loadArgs()...)
	l.waitCalls(t, baselineCalls)
	release = churning(t)
	sc.mark("scale to 3")
	e.k.run(t, "-n", tp.ns, "scale", "deploy/hello", "--replicas=3")
	waitPodsReady(t, tp.ns, 3)
	sc.mark("removed pods gone")
	release()
	s = tail(t, l)[0]
	label = "scale in 5 → 3" + suffix
	sc.record(t, label, s, 0, fmt.Sprintf("%d calls", s.Calls))
	noFailures(t, "scale in", s)
}

// sinceReady measures, for each new pod that served, how long after it became Ready it
// answered its first call (the load's timeline, 500 ms buckets, against the pod's Ready
// condition, to the second), checks it against the topology's goal, and says it for the
// table's note.
func sinceReady(t *testing.T, tp topo, s report.Summary, served map[string]time.Duration) string {
	t.Helper()
	var worst time.Duration
	for p := range served {
		ready := podReadyAt(t, tp.ns, p)
		first, ok := firstServed(s, p)
		if !ok {
			t.Errorf("%s: the load's timeline has no call of %s, which served calls", tp.name, p)
			continue
		}
		worst = max(worst, first.Sub(ready))
	}
	t.Logf("%s: new pods served %.1f s after Ready at worst (goal ≤ %s)", tp.name, worst.Seconds(), tp.readyGoal)
	if worst > tp.readyGoal {
		t.Errorf("%s: a new pod served its first call %.1f s after it was Ready, goal ≤ %s", tp.name, worst.Seconds(), tp.readyGoal)
	}
	return fmt.Sprintf("; each served ≤ %.1f s after Ready (goal ≤ %s)", worst.Seconds(), tp.readyGoal)
}

// podReadyAt is when pod's Ready condition last turned True (the API's second precision).
func podReadyAt(t *testing.T, ns, pod string) time.Time {
	t.Helper()
	for _, c := range e.k.pod(t, ns, pod).Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	t.Fatalf("pod %s is not Ready", pod)
	return time.Time{}
}

// firstServed is the end of the first timeline bucket in which pod answered a call.
func firstServed(s report.Summary, pod string) (time.Time, bool) {
	tl := s.Timeline
	if tl == nil || tl.Bucket <= 0 {
		return time.Time{}, false
	}
	for i, r := range tl.Rates(pod) {
		if r > 0 {
			return tl.Start.Add(time.Duration(i+1) * tl.Bucket), true
		}
	}
	return time.Time{}, false
}

// failedCodes names the status codes of failed calls for the table ("; Unavailable 115,
// Unknown 1"), or "" when none failed.
func failedCodes(s report.Summary) string {
	var parts []string
	for _, er := range s.Errors {
		parts = append(parts, fmt.Sprintf("%s %d", er.Code, er.Count))
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, ", ")
}

// noFailures: a pod removal (rolling restart, scale in) costs no call.
func noFailures(t *testing.T, what string, s report.Summary) {
	t.Helper()
	if s.Failed != 0 {
		t.Errorf("%s: %d of %d calls failed: %+v", what, s.Failed, s.Calls, s.Errors)
	}
}

// resilienceTable: scenario × topology → failed calls (or lost messages), seconds.
type resilienceTable struct {
	count string // what the count column counts
	mu    sync.Mutex
	rows  []resRow
}

type resRow struct {
	topology, scenario, note string
	failed                   int64
	seconds                  time.Duration
}

func newResilienceTable(count string) *resilienceTable { return &resilienceTable{count: count} }

func (r *resilienceTable) add(topology, scenario string, failed int64, d time.Duration, note string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, resRow{topology, scenario, note, failed, d})
}

func (r *resilienceTable) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.rows) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| scenario | topology | %s | seconds | note |\n|---|---|---:|---:|---|\n", r.count)
	// The topologies run at once: rows in the suite's order, each topology's in its own.
	rows := slices.Clone(r.rows)
	slices.SortStableFunc(rows, func(a, b resRow) int { return byTopology(a.topology, b.topology) })
	for _, x := range rows {
		secs := "–"
		if x.seconds > 0 {
			secs = fmt.Sprintf("%.1f", x.seconds.Seconds())
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s |\n", x.scenario, x.topology, x.failed, secs, x.note)
	}
	return b.String()
}

// checkRestricted: the namespace enforces Pod Security "restricted", so every running pod
// in it was admitted under that profile.
func checkRestricted(t *testing.T, ns string) {
	t.Helper()
	var n struct {
		Metadata struct{ Labels map[string]string }
	}
	e.k.getJSON(t, &n, "get", "namespace", ns)
	if n.Metadata.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("namespace %s does not enforce Pod Security restricted: %v", ns, n.Metadata.Labels)
	}
}
