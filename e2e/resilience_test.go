//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

// Load used by every scenario: ≥ 30 s and ≥ 5 000 calls.
const (
	loadRate    = "250" // calls per second
	loadConc    = "4"
	loadSeconds = 32
)

// topo is one way in to the hello pods, under load.
type topo struct {
	name string
	ns   string // namespace of deploy/hello
	// setup deploys the topology and waits until calls flow.
	setup func(t *testing.T)
	// start begins a load of d and returns its report when it ends.
	start func(t *testing.T, d time.Duration, extra ...string) <-chan loadResult
	// failover target: the stop-receiving time the issue asks for.
	failoverTarget time.Duration
}

type loadResult struct {
	s   report.Summary
	err error
}

func topologies() []topo {
	return []topo{
		{name: "headless", ns: headlessNS, setup: setupHeadless, start: inClusterLoad, failoverTarget: time.Second},
		{name: "nginx-ingress", ns: ingressNS, setup: setupIngress, failoverTarget: 6 * time.Second,
			start: hostLoad("-target", websecureAddr, "-authority", ingressHost, "-cacert")},
		{name: "gateway-api", ns: gatewayNS, setup: setupGateway, failoverTarget: 6 * time.Second,
			start: hostLoad("-target", webAddr, "-authority", gatewayHost)},
	}
}

// TestResilience runs every scenario in every topology under load and prints the table.
func TestResilience(t *testing.T) {
	for _, tp := range topologies() {
		t.Run(tp.name, func(t *testing.T) {
			// One topology at a time: a 2-core kind node cannot hold the requests of all three
			// plus the scale-out pods.
			for _, other := range topologies() {
				if other.name != tp.name {
					e.k.run(t, "delete", "-k", filepath.Join(e.root, "kustomize", "overlays", other.name), "--ignore-not-found", "--wait=true", "--timeout=180s")
				}
			}
			tp.setup(t)
			checkRestricted(t, tp.ns)
			t.Run("bad input", func(t *testing.T) { badInput(t, tp) })
			t.Run("rolling restart", func(t *testing.T) { rollingRestart(t, tp) })
			t.Run("pod killed", func(t *testing.T) { podKilled(t, tp) })
			t.Run("failover", func(t *testing.T) { failover(t, tp) })
			t.Run("scale out and in", func(t *testing.T) { scaleOutIn(t, tp, "") })
			if tp.name == "headless" {
				// Clients only re-resolve when a connection closes: MaxConnectionAge decides
				// how soon new pods get traffic.
				for _, age := range []string{"5s", "5m"} {
					t.Run("scale out with MAX_CONNECTION_AGE="+age, func(t *testing.T) {
						e.k.run(t, "-n", tp.ns, "set", "env", "deploy/hello", "MAX_CONNECTION_AGE="+age)
						e.k.rollout(t, tp.ns, "hello")
						scaleOutIn(t, tp, age)
					})
				}
				e.k.run(t, "-n", tp.ns, "set", "env", "deploy/hello", "MAX_CONNECTION_AGE-")
				e.k.rollout(t, tp.ns, "hello")
			}
		})
	}
}

func setupHeadless(t *testing.T) {
	e.k.run(t, "apply", "-k", filepath.Join(e.root, "kustomize", "overlays", "headless"))
	e.k.rollout(t, headlessNS, "hello", "goodbye")
}

func setupIngress(t *testing.T) {
	e.k.run(t, "apply", "-k", filepath.Join(e.root, "kustomize", "overlays", "nginx-ingress"))
	createTLSSecret(t, ingressNS)
	e.k.rollout(t, ingressNS, "hello", "goodbye")
	waitBackends(t, "ingress", 3, "-target", websecureAddr, "-authority", ingressHost, "-cacert", e.caCert, "-health-check=false")
}

func setupGateway(t *testing.T) {
	e.k.run(t, "apply", "-k", filepath.Join(e.root, "kustomize", "overlays", "gateway-api"))
	createTLSSecret(t, gatewayNS)
	e.k.rollout(t, gatewayNS, "hello", "hello-v2")
	e.k.rollout(t, backendsNS, "goodbye")
	// 3 hello pods behind the 90 % weight and hello-v2 behind the 10 %.
	waitBackends(t, "gateway", 4, "-target", webAddr, "-authority", gatewayHost, "-health-check=false")
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

// hostLoad runs the greeter on the host through a proxy entry point. A "-cacert" at the end
// of base gets the suite's CA appended.
func hostLoad(base ...string) func(t *testing.T, d time.Duration, extra ...string) <-chan loadResult {
	return func(t *testing.T, d time.Duration, extra ...string) <-chan loadResult {
		t.Helper()
		args := append([]string{}, base...)
		if args[len(args)-1] == "-cacert" {
			args = append(args, e.caCert)
		}
		args = append(args, "-health-check=false", "-duration", d.String(), "-c", loadConc, "-rate", loadRate,
			"-timeout", "5s", "-json", "-quiet")
		args = append(args, extra...)
		ch := make(chan loadResult, 1)
		cmd := exec.Command(e.greeter, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			err := cmd.Wait()
			var s report.Summary
			if jerr := json.Unmarshal(stdout.Bytes(), &s); jerr != nil {
				ch <- loadResult{err: fmt.Errorf("greeter %v: %v, no report: %v: %s", args, err, jerr, stderr.String())}
				return
			}
			ch <- loadResult{s: s}
		}()
		time.Sleep(time.Second) // connections up
		return ch
	}
}

var loadSeq struct {
	sync.Mutex
	n int
}

// inClusterLoad runs the greeter as a Job against the headless Service (client-side round
// robin needs pod IPs, which only the cluster network reaches).
func inClusterLoad(t *testing.T, d time.Duration, extra ...string) <-chan loadResult {
	t.Helper()
	loadSeq.Lock()
	loadSeq.n++
	name := fmt.Sprintf("load-%d-%d", time.Now().Unix()%100000, loadSeq.n)
	loadSeq.Unlock()
	args := []string{"-target=dns:///hello-grpc-headless." + headlessNS + ".svc.cluster.local:50051",
		"-duration=" + d.String(), "-c=" + loadConc, "-rate=" + loadRate, "-timeout=5s",
		"-warmup=5s", "-dns-min-resolve=2s", "-json", "-quiet"}
	args = append(args, extra...)
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = strconv.Quote(a)
	}
	job := fmt.Sprintf(loadJobTemplate, name, headlessNS, strings.Join(quoted, ", "))
	e.k.runStdin(t, job, "apply", "-f", "-")
	// Wait for the pod to run; the counted calls start after its 5 s warm-up, so a scenario
	// that acts a few seconds after this returns acts during the load.
	eventually(t, 2*time.Minute, "load pod "+name+" running", func() bool {
		out, _ := e.k.exec("-n", headlessNS, "get", "pods", "-l", "job-name="+name, "-o", "jsonpath={.items[*].status.phase}")
		return strings.Contains(string(out), "Running")
	})
	time.Sleep(3 * time.Second)
	ch := make(chan loadResult, 1)
	go func() {
		deadline := time.Now().Add(d + 2*time.Minute)
		for time.Now().Before(deadline) {
			var j struct {
				Status struct{ Succeeded, Failed int }
			}
			out, err := e.k.exec("-n", headlessNS, "get", "job/"+name, "-o", "json")
			if err == nil && json.Unmarshal(out, &j) == nil && (j.Status.Succeeded > 0 || j.Status.Failed > 0) {
				log, _ := e.k.exec("-n", headlessNS, "logs", "job/"+name)
				e.k.exec("-n", headlessNS, "delete", "job/"+name, "--wait=false")
				start, end := bytes.IndexByte(log, '{'), bytes.LastIndexByte(log, '}')
				var s report.Summary
				if start < 0 || end < start || json.Unmarshal(log[start:end+1], &s) != nil {
					ch <- loadResult{err: fmt.Errorf("load job %s: no report in its log: %s", name, log)}
					return
				}
				ch <- loadResult{s: s}
				return
			}
			time.Sleep(2 * time.Second)
		}
		ch <- loadResult{err: fmt.Errorf("load job %s did not finish", name)}
	}()
	return ch
}

// loadJobTemplate: name, namespace, quoted args. Restricted like every pod of the kit.
const loadJobTemplate = `apiVersion: batch/v1
kind: Job
metadata:
  name: %[1]s
  namespace: %[2]s
  labels: {app.kubernetes.io/name: greeter, app.kubernetes.io/part-of: grpc-k8s-kit}
spec:
  backoffLimit: 0
  template:
    metadata:
      labels: {app.kubernetes.io/name: greeter, app.kubernetes.io/part-of: grpc-k8s-kit, app.kubernetes.io/component: client}
    spec:
      restartPolicy: Never
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: greeter
        image: grpc-k8s-kit/greeter:dev
        imagePullPolicy: IfNotPresent
        args: [%[3]s]
        resources: {requests: {cpu: 20m, memory: 32Mi}, limits: {cpu: "1", memory: 128Mi}}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
`

func finish(t *testing.T, ch <-chan loadResult) report.Summary {
	t.Helper()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.s.Calls < 5000 {
		t.Errorf("load made %d calls, want ≥ 5000", r.s.Calls)
	}
	return r.s
}

// helloPods lists the running hello v1 pods of ns.
func helloPods(t *testing.T, ns string) []string {
	t.Helper()
	var l struct {
		Items []struct {
			Metadata struct {
				Name              string
				DeletionTimestamp *string
			}
			Status struct{ Phase string }
		}
	}
	e.k.getJSON(t, &l, "-n", ns, "get", "pods", "-l", "app.kubernetes.io/name=hello,version=v1")
	var names []string
	for _, p := range l.Items {
		if p.Status.Phase == "Running" && p.Metadata.DeletionTimestamp == nil {
			names = append(names, p.Metadata.Name)
		}
	}
	slices.Sort(names)
	return names
}

// handled is how many SayHello calls a pod has answered, from its own /metrics through the
// API server's pod proxy (no port-forward needed).
func handled(ns, pod string) (int64, error) {
	out, err := e.k.exec("get", "--raw", fmt.Sprintf("/api/v1/namespaces/%s/pods/%s:8080/proxy/metrics", ns, pod))
	if err != nil {
		return 0, fmt.Errorf("metrics of %s: %v: %s", pod, err, out)
	}
	var n int64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "grpc_server_handled_total{") || !strings.Contains(l, `grpc_method="SayHello"`) {
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
	e.k.runStdin(t, "", "create", "--raw", fmt.Sprintf("/api/v1/namespaces/%s/pods/%s:8080/proxy/admin/health?status=%s", ns, pod, status), "-f", "-")
}

func badInput(t *testing.T, tp topo) {
	before := restarts(t, tp.ns)
	for _, c := range []struct {
		name string
		args []string
		code string
	}{
		{"empty name", []string{"-name="}, "InvalidArgument"},
		{"over-long name", []string{"-name-bytes=300"}, "InvalidArgument"},
		{"oversized message", []string{"-name-bytes=5000"}, "ResourceExhausted"},
		{"expired deadline", []string{"-timeout=1us"}, "DeadlineExceeded"},
	} {
		var s report.Summary
		if tp.name == "headless" {
			s = finish0(t, inClusterLoadN(t, 20, append(c.args, "-expect-code="+c.code)...))
		} else {
			var code int
			s, code = greet(t, append(proxyArgs(tp), append(c.args, "-n", "20", "-expect-code", c.code)...)...)
			if code != 0 {
				t.Errorf("%s: exit %d", c.name, code)
			}
		}
		if !report.Passed(s.Assertions) || s.Calls != 20 {
			t.Errorf("%s through %s: want 20 × %s, got %+v", c.name, tp.name, c.code, s.Errors)
		}
		resilience.add(tp.name, "bad input: "+c.name+" → "+c.code, s.Calls-countCode(s, c.code), 0, "")
	}
	if after := restarts(t, tp.ns); after != before {
		t.Errorf("pods restarted after bad input: %d restarts before, %d after", before, after)
	}
	// And they still serve.
	s := finish0(t, loadN(t, tp, 30))
	if s.Failed != 0 {
		t.Errorf("after bad input: %d of 30 good calls failed", s.Failed)
	}
}

func countCode(s report.Summary, code string) int64 {
	for _, er := range s.Errors {
		if er.Code == code {
			return er.Count
		}
	}
	return 0
}

func proxyArgs(tp topo) []string {
	if tp.name == "nginx-ingress" {
		return []string{"-target", websecureAddr, "-authority", ingressHost, "-cacert", e.caCert, "-health-check=false", "-retry=false"}
	}
	return []string{"-target", webAddr, "-authority", gatewayHost, "-health-check=false", "-retry=false"}
}

// loadN makes n calls (not timed) through the topology.
func loadN(t *testing.T, tp topo, n int, extra ...string) <-chan loadResult {
	if tp.name == "headless" {
		return inClusterLoadN(t, n, extra...)
	}
	ch := make(chan loadResult, 1)
	s, _ := greet(t, append(proxyArgs(tp), append(extra, "-n", strconv.Itoa(n))...)...)
	ch <- loadResult{s: s}
	return ch
}

func inClusterLoadN(t *testing.T, n int, extra ...string) <-chan loadResult {
	// A count instead of a duration: -n wins over the template's -duration when both are set.
	return inClusterLoad(t, time.Minute, append(extra, "-n="+strconv.Itoa(n))...)
}

func finish0(t *testing.T, ch <-chan loadResult) report.Summary {
	t.Helper()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.s
}

func restarts(t *testing.T, ns string) int {
	t.Helper()
	var l struct {
		Items []struct {
			Metadata struct{ Labels map[string]string }
			Status   struct{ ContainerStatuses []struct{ RestartCount int } }
		}
	}
	e.k.getJSON(t, &l, "-n", ns, "get", "pods", "-l", "app.kubernetes.io/component=server")
	n := 0
	for _, p := range l.Items {
		for _, c := range p.Status.ContainerStatuses {
			n += c.RestartCount
		}
	}
	return n
}

func rollingRestart(t *testing.T, tp topo) {
	ch := tp.start(t, loadSeconds*time.Second)
	time.Sleep(3 * time.Second)
	start := time.Now()
	e.k.run(t, "-n", tp.ns, "rollout", "restart", "deploy/hello")
	e.k.rollout(t, tp.ns, "hello")
	took := time.Since(start)
	s := finish(t, ch)
	resilience.add(tp.name, "rolling restart (retry on)", s.Failed, took, fmt.Sprintf("rollout took %s, %d calls", took.Round(time.Second), s.Calls))
	noFailures(t, "rolling restart", s)
}

// podKilled takes a pod away abruptly, two ways, with the retry policy on and off:
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
		label string
		kill  func(t *testing.T, ns, pod string)
	}{
		{"pod deleted (grace 0, --force)", func(t *testing.T, ns, pod string) {
			e.k.run(t, "-n", ns, "delete", "pod", pod, "--grace-period=0", "--force")
		}},
		{"process SIGKILLed", killProcess},
	}
	for _, k := range kills {
		for _, retry := range []bool{true, false} {
			pods := helloPods(t, tp.ns)
			if len(pods) == 0 {
				t.Fatal("no hello pods")
			}
			ch := tp.start(t, loadSeconds*time.Second, "-retry="+strconv.FormatBool(retry))
			time.Sleep(5 * time.Second)
			k.kill(t, tp.ns, pods[0])
			s := finish(t, ch)
			e.k.rollout(t, tp.ns, "hello")
			label := k.label + ", retry on"
			if !retry {
				label = k.label + ", retry off"
			}
			resilience.add(tp.name, label, s.Failed, 0, fmt.Sprintf("%d calls%s", s.Calls, failedCodes(s)))
			if retry && s.Failed != 0 {
				t.Errorf("%s: %d of %d calls failed: %+v", label, s.Failed, s.Calls, s.Errors)
			}
			if !retry {
				t.Logf("%s: %d of %d calls failed (why the retry policy exists): %+v", label, s.Failed, s.Calls, s.Errors)
			}
		}
	}
}

// killProcess SIGKILLs a pod's server process from its kind node (the node is a container
// of this machine's engine; crictl names the process). The kubelet restarts the container
// in place, so the pod keeps its name and IP.
func killProcess(t *testing.T, ns, pod string) {
	t.Helper()
	var p struct {
		Spec   struct{ NodeName string }
		Status struct {
			ContainerStatuses []struct{ ContainerID string }
		}
	}
	e.k.getJSON(t, &p, "-n", ns, "get", "pod", pod)
	if len(p.Status.ContainerStatuses) != 1 || !strings.HasPrefix(p.Status.ContainerStatuses[0].ContainerID, "containerd://") {
		t.Fatalf("pod %s: want one containerd container, have %+v", pod, p.Status.ContainerStatuses)
	}
	id := strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, "containerd://")
	script := fmt.Sprintf("kill -9 \"$(crictl inspect --output go-template --template '{{.info.pid}}' %s)\"", id)
	if out, err := exec.Command("docker", "exec", p.Spec.NodeName, "sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("SIGKILL the server of %s on node %s: %v: %s", pod, p.Spec.NodeName, err, out)
	}
}

// failover flips one pod to NOT_SERVING and measures, from its own metrics, how long it
// kept receiving calls.
func failover(t *testing.T, tp topo) {
	pods := helloPods(t, tp.ns)
	victim := pods[0]
	ch := tp.start(t, loadSeconds*time.Second)
	time.Sleep(5 * time.Second)
	last, err := handled(tp.ns, victim)
	if err != nil {
		t.Fatal(err)
	}
	flipped := time.Now()
	setHealth(t, tp.ns, victim, "NOT_SERVING")
	lastIncrease, scrapeErrs := flipped, 0
	for time.Since(lastIncrease) < 6*time.Second && time.Since(flipped) < 20*time.Second {
		time.Sleep(200 * time.Millisecond)
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
	stopped := lastIncrease.Sub(flipped)
	setHealth(t, tp.ns, victim, "SERVING")
	s := finish(t, ch)
	resilience.add(tp.name, "failover: NOT_SERVING pod stops getting calls", s.Failed, stopped,
		fmt.Sprintf("target ≤ %s", tp.failoverTarget))
	t.Logf("%s: %s stopped receiving calls %s after NOT_SERVING (target ≤ %s)", tp.name, victim, stopped.Round(100*time.Millisecond), tp.failoverTarget)
	if stopped > tp.failoverTarget {
		t.Errorf("NOT_SERVING pod kept receiving calls for %s, target ≤ %s", stopped, tp.failoverTarget)
	}
	if s.Failed != 0 {
		t.Errorf("failover: %d calls failed", s.Failed)
	}
	e.k.rollout(t, tp.ns, "hello")
}

// scaleOutIn: 3 → 5 under load (time until every new pod served a call), then 5 → 3
// under load (no call may fail).
func scaleOutIn(t *testing.T, tp topo, age string) {
	before := helloPods(t, tp.ns)
	ch := tp.start(t, 40*time.Second)
	time.Sleep(3 * time.Second)
	scaled := time.Now()
	e.k.run(t, "-n", tp.ns, "scale", "deploy/hello", "--replicas=5")
	served := map[string]time.Duration{}
	var newPods []string
	for time.Since(scaled) < 35*time.Second {
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
		time.Sleep(500 * time.Millisecond)
	}
	s := finish(t, ch)
	var worst time.Duration
	for _, d := range served {
		worst = max(worst, d)
	}
	label := "scale out 3 → 5: every new pod served"
	if age != "" {
		label += " (MAX_CONNECTION_AGE=" + age + ")"
	}
	note := fmt.Sprintf("%d of 2 new pods served within 35 s", len(served))
	resilience.add(tp.name, label, s.Failed, worst, note)
	t.Logf("%s: %s", label, note)
	if s.Failed != 0 {
		t.Errorf("scale out: %d calls failed", s.Failed)
	}
	// Through a proxy new pods get calls once Ready; a headless client only after its
	// connections are recycled, so only the short MaxConnectionAge has a deadline here.
	if (tp.name != "headless" || age == "5s") && len(served) != 2 {
		t.Errorf("%s: only %d of 2 new pods got calls within 35 s", label, len(served))
	}

	ch = tp.start(t, loadSeconds*time.Second)
	time.Sleep(3 * time.Second)
	e.k.run(t, "-n", tp.ns, "scale", "deploy/hello", "--replicas=3")
	s = finish(t, ch)
	e.k.rollout(t, tp.ns, "hello")
	label = "scale in 5 → 3"
	if age != "" {
		label += " (MAX_CONNECTION_AGE=" + age + ")"
	}
	resilience.add(tp.name, label, s.Failed, 0, fmt.Sprintf("%d calls", s.Calls))
	noFailures(t, "scale in", s)
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

// resilienceTable: scenario × topology → failed calls, seconds.
type resilienceTable struct {
	mu   sync.Mutex
	rows []resRow
}

type resRow struct {
	topology, scenario, note string
	failed                   int64
	seconds                  time.Duration
}

func newResilienceTable() *resilienceTable { return &resilienceTable{} }

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
	b.WriteString("| scenario | topology | failed calls | seconds | note |\n|---|---|---:|---:|---|\n")
	for _, x := range r.rows {
		secs := "–"
		if x.seconds > 0 {
			secs = fmt.Sprintf("%.1f", x.seconds.Seconds())
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s |\n", x.scenario, x.topology, x.failed, secs, x.note)
	}
	return b.String()
}
