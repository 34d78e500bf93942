//go:build e2e

package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

// Load of the resilience scenarios: 4 callers at 200 calls/s in all. A load runs until its
// scenario has happened and stopped (load.stop), not for a fixed time, and makes at least
// minCalls. The rate is what the suite's CPU goes to (the calls cost about 800 CPU-s of a
// run at 400 calls/s, on a node where the suite is CPU-bound), and most scenarios last
// longer than minCalls takes at 200/s; at 200/s each of 3 pods still gets a call every
// 15 ms, far finer than the timings asserted (failover, first call of a new pod).
const (
	LoadRate  = 200
	LoadConc  = 4
	MinCalls  = 5000
	MinWindow = MinCalls / LoadRate * time.Second // 25 s; Stop waits for MinCalls too
	// MaxWindow bounds a load that nobody stops (a scenario that failed before Stop).
	MaxWindow = 3 * time.Minute
	// BaselineCalls: a load makes them before a scenario acts (so the picture shows the
	// steady state first); TailCalls after its last event (so what the event caused is
	// inside the load).
	BaselineCalls = LoadRate * 5 / 2 // 2.5 s
	TailCalls     = LoadRate * 2     // 2 s
)

// LoadArgs are the greeter flags every resilience load shares: paced, progress on stderr
// every 500 ms as JSON lines (the suite reads them to know the load is flowing), and the run's timeline
// in the JSON report (the plots).
func LoadArgs() []string {
	return []string{"-duration=" + MaxWindow.String(), "-c=" + strconv.Itoa(LoadConc), "-rate=" + strconv.Itoa(LoadRate),
		"-timeout=5s", "-json", "-progress=500ms", "-timeline=-", "-timeline-bucket=500ms"}
}

// goLogLine is the start of a line of Go's log package (grpc-go's logger): 2026/12/01 22:48:11.
var goLogLine = regexp.MustCompile(`^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}`)

// Load is a greeter run in progress: on the host (through a proxy) or as a Job in the
// cluster. Its progress records (report.Progress) say how many calls or messages it has
// made.
type Load struct {
	name    string
	started time.Time
	// StopNow asks the greeter to end now and print its report (SIGINT, or its Job
	// deleted).
	StopNow func()

	// Pod is the load Job's pod (empty for a load on the host): its container's metrics
	// are the client's.
	Pod string

	mu    sync.Mutex
	calls int64         // from the latest progress line
	more  chan struct{} // closed and replaced on every progress line
	ended error         // why the load ended without a report, once it has
	done  chan loadResult
	res   *loadResult
	// reported receives the report of a Job's greeter as soon as its log holds it whole,
	// before the container exits (-linger keeps it up after the report).
	reported chan []byte
}

// loadResult is the greeter's JSON report, parsed by result (a call load) or
// streamResult (a stream load).
type loadResult struct {
	raw []byte
	err error
}

func newLoad(name string) *Load {
	return &Load{name: name, started: time.Now(), more: make(chan struct{}), done: make(chan loadResult, 1),
		reported: make(chan []byte, 1)}
}

// read consumes the greeter's output: progress lines update the call count, everything
// else is the report (stdout) or a message (stderr). When r ends, the report is parsed.
// report is where the stdout part is read from; when it is nil, r carries both (a Job's log).
func (l *Load) read(r io.Reader, reportOut *bytes.Buffer, wait func() error) {
	var rest bytes.Buffer
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Text()
		// A call load counts calls, a stream load messages.
		if p, ok := report.ParseProgress(line); ok {
			l.mu.Lock()
			l.calls = p.Count()
			close(l.more)
			l.more = make(chan struct{})
			l.mu.Unlock()
			continue
		}
		// stderr's other lines: the warm-up line, the greeter's own error line and grpc-go's
		// log lines. In a Job's log they come between stdout's lines.
		if reportOut == nil && (strings.HasPrefix(line, "warmup: ") || strings.HasPrefix(line, "greeter: ") || goLogLine.MatchString(line)) {
			continue
		}
		rest.WriteString(line)
		rest.WriteByte('\n')
		if reportOut == nil && (line == "}" || strings.HasPrefix(line, "{") && strings.HasSuffix(line, "}")) {
			l.offerReport(rest.Bytes())
		}
	}
	werr := wait()
	out := rest.Bytes()
	if reportOut != nil {
		out = reportOut.Bytes()
	}
	res := loadResult{}
	start, end := bytes.IndexByte(out, '{'), bytes.LastIndexByte(out, '}')
	if start < 0 || end < start {
		res.err = fmt.Errorf("load %s: no report (%v): %s", l.name, werr, rest.String())
	} else {
		res.raw = out[start : end+1]
	}
	l.mu.Lock()
	l.ended = res.err
	close(l.more) // wake waiters: the load is over
	l.more = nil
	l.mu.Unlock()
	l.done <- res
}

// offerReport hands the report on to Report once the log read so far holds a whole JSON
// object: the greeter writes its report indented, so only a line "}" (or a report on one
// line) can end it, and only those lines are tried.
func (l *Load) offerReport(out []byte) {
	start, end := bytes.IndexByte(out, '{'), bytes.LastIndexByte(out, '}')
	if start < 0 || end < start || !json.Valid(out[start:end+1]) {
		return
	}
	select {
	case l.reported <- bytes.Clone(out[start : end+1]):
	default: // offered already
	}
}

// Report waits for a Job load's report and returns it as soon as the greeter has printed
// it, while the greeter may still linger (-linger): the cost lane keeps the client's
// container up after its load until Prometheus has scraped its last figures. A load that
// ends without a report fails the test, as Result does.
func (l *Load) Report(t testing.TB) report.Summary {
	t.Helper()
	var raw []byte
	select {
	case raw = <-l.reported:
	case r := <-l.done:
		l.res = &r
		if r.err != nil {
			t.Fatal(r.err)
		}
		raw = r.raw
	}
	var s report.Summary
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("load %s: report: %v: %s", l.name, err, raw)
	}
	return s
}

// WaitCalls blocks until the load has made n calls. A load that ends first fails the test.
func (l *Load) WaitCalls(t testing.TB, n int64) {
	t.Helper()
	for {
		l.mu.Lock()
		calls, more := l.calls, l.more
		l.mu.Unlock()
		if calls >= n {
			return
		}
		if more == nil {
			t.Fatalf("load %s ended after %d calls, before reaching %d: %v", l.name, calls, n, l.endErr())
		}
		select {
		case <-more:
		case <-time.After(LoadSilence):
			t.Fatalf("load %s: no progress for %s (at %d calls, waiting for %d)", l.name, LoadSilence, calls, n)
		}
	}
}

// Stop ends the load once it has made MinCalls and run MinWindow, and returns its report.
func (l *Load) Stop(t testing.TB) report.Summary {
	t.Helper()
	if d := MinWindow - time.Since(l.started); d > 0 {
		// A floor on the window, not synchronisation: the scenario has already happened.
		time.Sleep(d)
	}
	l.WaitCalls(t, MinCalls)
	l.StopNow()
	return l.Result(t)
}

// Result waits for the load to end by itself (a -n run) and returns its report.
func (l *Load) Result(t testing.TB) report.Summary {
	t.Helper()
	var s report.Summary
	l.Decode(t, &s)
	return s
}

// StreamResult waits for a stream load (-stream) to end and returns its report.
func (l *Load) StreamResult(t testing.TB) report.StreamSummary {
	t.Helper()
	var s report.StreamSummary
	l.Decode(t, &s)
	return s
}

// Decode waits for the load to end and decodes its JSON report into v.
func (l *Load) Decode(t testing.TB, v any) {
	t.Helper()
	if l.res == nil {
		r := <-l.done
		l.res = &r
	}
	if l.res.err != nil {
		t.Fatal(l.res.err)
	}
	if err := json.Unmarshal(l.res.raw, v); err != nil {
		t.Fatalf("load %s: report: %v: %s", l.name, err, l.res.raw)
	}
}

// HostLoad runs the greeter on the host with args (HostArgs and the load's own flags).
func (s *Suite) HostLoad(t testing.TB, name string, args ...string) *Load {
	t.Helper()
	cmd := exec.Command(s.Greeter, args...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := newLoad(name)
	l.StopNow = func() { cmd.Process.Signal(os.Interrupt) }
	t.Cleanup(func() { cmd.Process.Kill() }) // a test that failed half-way leaves no load running
	go l.read(stderr, &stdout, cmd.Wait)
	return l
}

// StartLoad begins a load of the topology's hello, with the flags of the load appended to
// the entry's, and returns it running. An in-cluster load first warms up until it reaches
// every backend (a client that resolved while a pod was not yet Ready keeps the others).
func (s *Suite) StartLoad(t testing.TB, tp Topology, name string, extra ...string) *Load {
	t.Helper()
	if tp.Entry.InCluster {
		return s.JobLoad(t, tp, name, append([]string{"-warmup=60s", "-expect-backends=" + strconv.Itoa(tp.Backends)}, extra...)...)
	}
	return s.HostLoad(t, name, append(s.HostArgs(tp.Entry), extra...)...)
}

// JobLoad runs the greeter as a Job in the topology's namespace, aimed at its in-cluster
// entry with args, and follows its log while it runs; deleting the Job stops the greeter
// (SIGTERM), which then prints its report into that log.
func (s *Suite) JobLoad(t testing.TB, tp Topology, name string, args ...string) *Load {
	t.Helper()
	return s.JobLoadWith(t, tp, name, nil, args...)
}

// JobLoadWith is JobLoad with edit applied to the Job before it is created: what one load
// needs that the overlay's Job lacks (a volume with a CA certificate, say).
func (s *Suite) JobLoadWith(t testing.TB, tp Topology, name string, edit func(*batchv1.Job), args ...string) *Load {
	t.Helper()
	flags := append(append([]string{"-target=" + tp.Entry.Target, "-linger=" + JobLinger.String()}, tp.Entry.JobArgs...), args...)
	return s.runJob(t, tp, name, func(ns, job string) *batchv1.Job {
		j := s.loadJob(t, tp.Entry.JobOverlay, ns, job, flags)
		if edit != nil {
			edit(j)
		}
		return j
	})
}

// runJob creates the Job that makeJob returns (its container "greeter" runs the load) in
// the topology's namespace and follows its log as a Load.
func (s *Suite) runJob(t testing.TB, tp Topology, name string, makeJob func(ns, job string) *batchv1.Job) *Load {
	t.Helper()
	if !tp.Entry.InCluster {
		t.Fatalf("%s: its entry is on the host: no in-cluster load", tp.Name)
	}
	ns := tp.Namespace
	job := fmt.Sprintf("load-%d-%d", time.Now().Unix()%100000, s.nextLoad())
	jobs := s.Kube.API.BatchV1().Jobs(ns)
	ctx, cancel := context.WithTimeout(context.Background(), APIRequest)
	j := makeJob(ns, job)
	OnControlPlane(&j.Spec.Template.Spec)
	_, err := jobs.Create(ctx, j, metav1.CreateOptions{})
	cancel()
	if err != nil {
		t.Fatalf("create job %s/%s: %v", ns, job, err)
	}
	// Deleting the Job deletes its pod (background propagation), whose greeter then gets
	// SIGTERM and prints its report.
	stopJob := func() {
		ctx, cancel := context.WithTimeout(context.Background(), APIRequest)
		defer cancel()
		bg := metav1.DeletePropagationBackground
		if err := jobs.Delete(ctx, job, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
			t.Logf("delete job %s/%s: %v", ns, job, err)
		}
	}
	t.Cleanup(stopJob)
	// Follow the greeter's log once the Job has a pod (the Job controller can take seconds
	// to create it on the busy node); FollowLog waits for the container to start.
	var pod string
	Eventually(t, JobPod, Poll, "a pod of job "+job, func() bool {
		if ps := s.Kube.Pods(t, ns, "job-name="+job); len(ps) > 0 {
			pod = ps[0].Name
		}
		return pod != ""
	})
	ctx, cancel = context.WithTimeout(context.Background(), MaxWindow+3*time.Minute)
	pr, pw := io.Pipe()
	followed := make(chan error, 1)
	go func() {
		err := s.Kube.FollowLog(ctx, ns, pod, "greeter", pw)
		pw.Close()
		followed <- err
	}()
	l := newLoad(name)
	l.StopNow = stopJob
	l.Pod = pod
	go l.read(pr, nil, func() error {
		defer cancel()
		if err := <-followed; err != nil {
			return fmt.Errorf("job %s: %w", job, err)
		}
		return nil
	})
	return l
}

// loadJob is overlay's greeter-hello Job (as rendered: image, security context, resources
// and, for xDS, the bootstrap) renamed to name in ns, running the greeter with args,
// without its wait-for-backends init container (the scenario's load waits for its
// backends itself).
func (s *Suite) loadJob(t testing.TB, overlay, ns, name string, args []string) *batchv1.Job {
	t.Helper()
	out, err := s.Render(overlay)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var j batchv1.Job
		if err := sigsyaml.Unmarshal([]byte(doc), &j); err != nil || j.Kind != "Job" || j.Name != "greeter-hello" {
			continue
		}
		j.Name, j.Namespace = name, ns
		j.Spec.ActiveDeadlineSeconds = nil // the suite stops the load; MaxWindow bounds it
		j.Spec.Template.Spec.InitContainers = nil
		j.Spec.Template.Spec.Containers[0].Args = args
		return &j
	}
	t.Fatalf("the %s overlay has no greeter-hello Job to run loads with", overlay)
	return nil
}

// endErr is why an ended load has no report (nil: it has one, or it has not ended).
func (l *Load) endErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ended
}

// Count is the load's calls so far, from its latest progress record.
func (l *Load) Count() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls
}

// OnControlPlane pins a load generator's pod on the control plane, which the kit's kind
// cluster keeps tainted when it has workers (deploy/kind/cluster.yaml): the node scenarios
// stop and cut off workers, and the load that measures them must not go too. On a
// single-node cluster the control plane is the node.
func OnControlPlane(spec *corev1.PodSpec) {
	spec.NodeSelector = map[string]string{ControlPlaneLabel: ""}
	spec.Tolerations = append(spec.Tolerations, corev1.Toleration{
		Key: ControlPlaneLabel, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule,
	})
}

// ControlPlaneLabel is both the control-plane nodes' label and their taint's key (kubeadm).
const ControlPlaneLabel = "node-role.kubernetes.io/control-plane"
