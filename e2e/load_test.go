//go:build e2e

package e2e

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
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
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
	loadRate  = 200
	loadConc  = 4
	minCalls  = 5000
	minWindow = minCalls / loadRate * time.Second // 25 s; stop waits for minCalls too
	// maxWindow bounds a load that nobody stops (a scenario that failed before stop).
	maxWindow = 3 * time.Minute
)

// loadArgs are the greeter flags every resilience load shares: paced, progress on stderr
// every 500 ms (the suite reads it to know the load is flowing), and the run's timeline
// in the JSON report (the plots).
func loadArgs() []string {
	return []string{"-duration=" + maxWindow.String(), "-c=" + strconv.Itoa(loadConc), "-rate=" + strconv.Itoa(loadRate),
		"-timeout=5s", "-json", "-progress=500ms", "-timeline=-", "-timeline-bucket=500ms"}
}

// goLogLine is the start of a line of Go's log package (grpc-go's logger): 2026/12/01 22:48:11.
var goLogLine = regexp.MustCompile(`^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}`)

// load is a greeter run in progress: on the host (through a proxy) or as a Job in the
// cluster (headless). Its progress lines say how many calls it has made.
type load struct {
	name    string
	started time.Time
	stopFn  func() // asks the greeter to end now and print its report (SIGINT / Job deleted)

	mu    sync.Mutex
	calls int64         // from the latest progress line
	more  chan struct{} // closed and replaced on every progress line
	ended error         // why the load ended without a report, once it has
	done  chan loadResult
	res   *loadResult
}

// loadResult is the greeter's JSON report, parsed by result (a call load) or
// streamResult (a stream load).
type loadResult struct {
	raw []byte
	err error
}

func newLoad(name string) *load {
	return &load{name: name, started: time.Now(), more: make(chan struct{}), done: make(chan loadResult, 1)}
}

// read consumes the greeter's output: progress lines update the call count, everything
// else is the report (stdout) or a message (stderr). When r ends, the report is parsed.
// report is where the stdout part is read from; when it is nil, r carries both (a Job's log).
func (l *load) read(r io.Reader, reportOut *bytes.Buffer, wait func() error) {
	var rest bytes.Buffer
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Text()
		// A call load counts calls, a stream load messages.
		var n int64
		if _, err := fmt.Sscanf(line, "progress: %d calls", &n); err == nil || strings.HasPrefix(line, "progress: ") && scanMessages(line, &n) {
			l.mu.Lock()
			l.calls = n
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

// waitCalls blocks until the load has made n calls. A load that ends first fails the test.
func (l *load) waitCalls(t *testing.T, n int64) {
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
		case <-time.After(2 * time.Minute):
			t.Fatalf("load %s: no progress for 2 minutes (at %d calls, waiting for %d)", l.name, calls, n)
		}
	}
}

// stop ends the load once it has made minCalls and run minWindow, and returns its report.
func (l *load) stop(t *testing.T) report.Summary {
	t.Helper()
	if d := minWindow - time.Since(l.started); d > 0 {
		// A floor on the window, not synchronisation: the scenario has already happened.
		time.Sleep(d)
	}
	l.waitCalls(t, minCalls)
	l.stopFn()
	return l.result(t)
}

// result waits for the load to end by itself (a -n run) and returns its report.
func (l *load) result(t *testing.T) report.Summary {
	t.Helper()
	var s report.Summary
	l.decode(t, &s)
	return s
}

// streamResult waits for a stream load (-stream) to end and returns its report.
func (l *load) streamResult(t *testing.T) report.StreamSummary {
	t.Helper()
	var s report.StreamSummary
	l.decode(t, &s)
	return s
}

func (l *load) decode(t *testing.T, v any) {
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

// scanMessages reads a stream load's progress line: "progress: 1234 messages, ...".
func scanMessages(line string, n *int64) bool {
	_, err := fmt.Sscanf(line, "progress: %d messages", n)
	return err == nil
}

// hostLoad runs the greeter on the host through a proxy entry point. A "-cacert" at the end
// of base gets the suite's CA appended.
func hostLoad(base ...string) func(t *testing.T, name string, extra ...string) *load {
	return func(t *testing.T, name string, extra ...string) *load {
		t.Helper()
		args := append([]string{}, base...)
		if args[len(args)-1] == "-cacert" {
			args = append(args, e.caCert)
		}
		args = append(append(args, "-health-check=false"), extra...)
		cmd := exec.Command(e.greeter, args...)
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
		l.stopFn = func() { cmd.Process.Signal(os.Interrupt) }
		t.Cleanup(func() { cmd.Process.Kill() }) // a test that failed half-way leaves no load running
		go l.read(stderr, &stdout, cmd.Wait)
		return l
	}
}

var loadSeq struct {
	sync.Mutex
	n int
}

// clientJobs is where a topology's in-cluster loads run (a client that needs pod IPs or
// the mesh's control plane, which only the cluster network reaches): a Job in ns that is
// the overlay's own greeter-hello Job with other args.
type clientJobs struct {
	ns      string
	overlay string   // e2e/overlays/<overlay>
	args    []string // the greeter flags that aim every load at hello
}

// start runs a load as a Job and follows its log while it runs; deleting the Job stops
// the greeter (SIGTERM), which then prints its report into that log.
func (c clientJobs) start(t *testing.T, name string, extra ...string) *load {
	t.Helper()
	loadSeq.Lock()
	loadSeq.n++
	job := fmt.Sprintf("load-%d-%d", time.Now().Unix()%100000, loadSeq.n)
	loadSeq.Unlock()
	jobs := e.k.api.BatchV1().Jobs(c.ns)
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	_, err := jobs.Create(ctx, c.job(t, job, append(slices.Clone(c.args), extra...)), metav1.CreateOptions{})
	cancel()
	if err != nil {
		t.Fatalf("create job %s/%s: %v", c.ns, job, err)
	}
	// Deleting the Job deletes its pod (background propagation), whose greeter then gets
	// SIGTERM and prints its report.
	stopJob := func() {
		ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
		defer cancel()
		bg := metav1.DeletePropagationBackground
		if err := jobs.Delete(ctx, job, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
			t.Logf("delete job %s/%s: %v", c.ns, job, err)
		}
	}
	t.Cleanup(stopJob)
	// Follow the greeter's log once the Job has a pod (the Job controller can take seconds
	// to create it on the busy node); followLog waits for the container to start.
	var pod string
	eventually(t, 2*time.Minute, "a pod of job "+job, func() bool {
		if ps := e.k.pods(t, c.ns, "job-name="+job); len(ps) > 0 {
			pod = ps[0].Name
		}
		return pod != ""
	})
	ctx, cancel = context.WithTimeout(context.Background(), maxWindow+3*time.Minute)
	pr, pw := io.Pipe()
	followed := make(chan error, 1)
	go func() {
		err := e.k.followLog(ctx, c.ns, pod, "greeter", pw)
		pw.Close()
		followed <- err
	}()
	l := newLoad(name)
	l.stopFn = stopJob
	go l.read(pr, nil, func() error {
		defer cancel()
		if err := <-followed; err != nil {
			return fmt.Errorf("job %s: %w", job, err)
		}
		return nil
	})
	return l
}

// rendered caches each e2e overlay's render: every in-cluster load copies a Job from it.
var rendered = struct {
	sync.Mutex
	m map[string]func() ([]byte, error)
}{m: map[string]func() ([]byte, error){}}

// render is the e2e overlay, rendered once.
func render(overlay string) ([]byte, error) {
	rendered.Lock()
	f, ok := rendered.m[overlay]
	if !ok {
		f = sync.OnceValues(func() ([]byte, error) {
			out, err := e.k.exec("kustomize", overlayDir(overlay))
			if err != nil {
				return nil, fmt.Errorf("kubectl kustomize %s: %v: %s", overlayDir(overlay), err, out)
			}
			return out, nil
		})
		rendered.m[overlay] = f
	}
	rendered.Unlock()
	return f()
}

// job is the overlay's greeter-hello Job (as rendered: image, security context, resources
// and, for xDS, the bootstrap) renamed to name in c.ns, running the greeter with args, without its
// wait-for-backends init container (the scenario's load waits for its backends itself).
func (c clientJobs) job(t *testing.T, name string, args []string) *batchv1.Job {
	t.Helper()
	out, err := render(c.overlay)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var j batchv1.Job
		if err := sigsyaml.Unmarshal([]byte(doc), &j); err != nil || j.Kind != "Job" || j.Name != "greeter-hello" {
			continue
		}
		j.Name, j.Namespace = name, c.ns
		j.Spec.ActiveDeadlineSeconds = nil // the suite stops the load; maxWindow bounds it
		j.Spec.Template.Spec.InitContainers = nil
		j.Spec.Template.Spec.Containers[0].Args = args
		return &j
	}
	t.Fatalf("the %s overlay has no greeter-hello Job to run loads with", c.overlay)
	return nil
}

// endErr is why an ended load has no report (nil: it has one, or it has not ended).
func (l *load) endErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ended
}

// count is the load's calls so far, from its latest progress line.
func (l *load) count() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls
}
