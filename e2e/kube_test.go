//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// kube is the kind cluster. Every action a user of the kit would take (apply, scale,
// rollout, delete, a finished Job's logs) runs the kubectl built by kind-up, so each step
// here can be pasted into a terminal. What the suite samples while it measures (pod lists,
// a pod's counters, EndpointSlices, the admin POSTs of a timed scenario) and the logs it
// follows while loads run go through api, one client in this process: a kubectl process
// per sample cost the shared 2-core node about 0.2 s of CPU before it reached the API
// server, and the scenarios sample several times a second in each topology at once (the
// suite's CPU by process, README "What the suite costs"); followLog says why the logs.
type kube struct {
	kubectl, kubeconfig string
	api                 kubernetes.Interface
}

func newKube(kubectl, kubeconfig string) (kube, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return kube{}, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	// Each parallel test samples a few times a second; client-go's default limit (5/s)
	// would delay the samples, and with them the measurements.
	rc.QPS, rc.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return kube{}, fmt.Errorf("kubernetes client: %w", err)
	}
	return kube{kubectl: kubectl, kubeconfig: kubeconfig, api: cs}, nil
}

// apiTimeout bounds one request of api: a sample, not a wait.
const apiTimeout = 30 * time.Second

// pods lists ns's pods that match selector (a label selector, as kubectl -l takes it).
func (k kube) pods(t *testing.T, ns, selector string) []corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	l, err := k.api.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatalf("list pods -n %s -l %s: %v", ns, selector, err)
	}
	return l.Items
}

// pod reads one pod of ns.
func (k kube) pod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	p, err := k.api.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod %s/%s: %v", ns, name, err)
	}
	return p
}

// deployment reads one Deployment of ns.
func (k kube) deployment(t *testing.T, ns, name string) *appsv1.Deployment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	d, err := k.api.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get deployment %s/%s: %v", ns, name, err)
	}
	return d
}

// podReady: the pod's Ready condition is True.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podProxy sends method to path (with its query) on a pod's port through the API server's
// pod proxy (/api/v1/namespaces/NS/pods/POD:PORT/proxy/PATH), as `kubectl get --raw` and
// `kubectl create --raw` do: no port-forward needed.
func (k kube) podProxy(method, ns, pod string, port int, path string) ([]byte, error) {
	u, err := url.Parse(path)
	if err != nil {
		return nil, fmt.Errorf("pod proxy path %q: %w", path, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	req := k.api.CoreV1().RESTClient().Verb(method).Namespace(ns).Resource("pods").
		Name(fmt.Sprintf("%s:%d", pod, port)).SubResource("proxy").Suffix(u.Path)
	for key, vs := range u.Query() {
		for _, v := range vs {
			req = req.Param(key, v)
		}
	}
	out, err := req.DoRaw(ctx)
	if err != nil {
		return out, fmt.Errorf("%s %s on %s/%s:%d: %w", method, path, ns, pod, port, err)
	}
	return out, nil
}

// followLog copies the log of a pod's container to w as it is written, until the container
// has ended. It waits for the container to start first: a follow opened while the container
// is still being created ends at once with nothing (kubectl logs -f did that on the busy
// node, exit 0, and the load looked like it had ended before its first call). A stream that
// ends while the container still runs is opened again from the start, and as many lines as
// were read are skipped: the log is one file in one order (a load's log is kilobytes, far
// from the kubelet's 10 MiB rotation). Not by timestamps: lines written at once share one,
// and stdout's and stderr's lines are not always in timestamp order.
func (k kube) followLog(ctx context.Context, ns, pod, container string, w io.Writer) error {
	pods := k.api.CoreV1().Pods(ns)
	read := 0 // lines copied to w
	for {
		ended, err := k.waitContainerStarted(ctx, ns, pod, container)
		if errors.Is(err, errPodGone) && read > 0 {
			return nil // followed until the pod went (the Job deleted): nothing more to read
		}
		if err != nil {
			return err
		}
		stream, err := pods.GetLogs(pod, &corev1.PodLogOptions{Container: container, Follow: !ended}).Stream(ctx)
		if err != nil {
			return fmt.Errorf("log of %s/%s (%s): %w", ns, pod, container, err)
		}
		sc := bufio.NewScanner(stream)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for n := 0; sc.Scan(); n++ {
			if n < read {
				continue // read already, before the stream was opened again
			}
			if _, err := io.WriteString(w, sc.Text()+"\n"); err != nil {
				stream.Close()
				return err
			}
			read++
		}
		err = sc.Err()
		stream.Close()
		if err != nil {
			return fmt.Errorf("log of %s/%s (%s): %w", ns, pod, container, err)
		}
		if ended {
			return nil // that was the whole log, read after the container ended
		}
		select { // the stream ended early: open it again, not at once
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// errPodGone: the pod, and its log with it, no longer exist.
var errPodGone = errors.New("the pod is gone, and its log with it")

// waitContainerStarted waits until a pod's container has started (running, or already
// ended: ended is then true), up to two minutes, as kubectl logs --pod-running-timeout=2m.
func (k kube) waitContainerStarted(ctx context.Context, ns, pod, container string) (ended bool, err error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		rctx, cancel := context.WithTimeout(ctx, apiTimeout)
		p, err := k.api.CoreV1().Pods(ns).Get(rctx, pod, metav1.GetOptions{})
		cancel()
		switch {
		case apierrors.IsNotFound(err):
			return false, fmt.Errorf("pod %s/%s: %w", ns, pod, errPodGone)
		case err != nil:
			return false, fmt.Errorf("get pod %s/%s: %w", ns, pod, err)
		}
		for _, c := range p.Status.ContainerStatuses {
			if c.Name != container {
				continue
			}
			if c.State.Terminated != nil {
				return true, nil
			}
			if c.State.Running != nil {
				return false, nil
			}
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("container %s of pod %s/%s did not start in 2m (phase %s)", container, ns, pod, p.Status.Phase)
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (k kube) cmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, k.kubectl, append([]string{"--kubeconfig", k.kubeconfig}, args...)...)
	return c
}

// applied records the e2e/overlays/* this run applied, so TestMain deletes those
// only. Tests apply through exec (run calls it), which is where it is recorded.
var applied = struct {
	sync.Mutex
	overlays map[string]bool
}{overlays: map[string]bool{}}

func recordApply(args []string) {
	for i := 0; i+2 < len(args); i++ {
		if args[i] == "apply" && args[i+1] == "-k" {
			if dir, o := filepath.Split(filepath.Clean(args[i+2])); filepath.Base(dir) == "overlays" {
				applied.Lock()
				applied.overlays[o] = true
				applied.Unlock()
			}
		}
	}
}

// appliedOverlays are the overlays this run applied, sorted.
func appliedOverlays() []string {
	applied.Lock()
	defer applied.Unlock()
	return slices.Sorted(maps.Keys(applied.overlays))
}

func (k kube) exec(args ...string) ([]byte, error) {
	recordApply(args)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	c := k.cmd(ctx, args...)
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	return out.Bytes(), err
}

// run runs kubectl and fails the test on error.
func (k kube) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := k.exec(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// runStdin runs kubectl with stdin.
func (k kube) runStdin(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := k.cmd(ctx, args...)
	c.Stdin = strings.NewReader(stdin)
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (k kube) getJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out, err := k.exec(append(args, "-o", "json")...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
}

// rollout waits for Deployments to be fully rolled out.
func (k kube) rollout(t *testing.T, ns string, deployments ...string) {
	t.Helper()
	for _, d := range deployments {
		k.run(t, "-n", ns, "rollout", "status", "deploy/"+d, "--timeout=240s")
	}
}

// waitJob waits until a Job completes or fails and returns its greeter container's log.
func (k kube) waitJob(t *testing.T, ns, job string, timeout time.Duration) (log string, succeeded bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
		j, err := k.api.BatchV1().Jobs(ns).Get(ctx, job, metav1.GetOptions{})
		cancel()
		if err != nil {
			t.Fatalf("get job %s/%s: %v", ns, job, err)
		}
		if j.Status.Succeeded > 0 || j.Status.Failed > 0 {
			out, err := k.exec("-n", ns, "logs", "job/"+job, "-c", "greeter")
			if err != nil { // the greeter never started: show what the init container said
				out, _ = k.exec("-n", ns, "logs", "job/"+job, "--all-containers")
			}
			return string(out), j.Status.Succeeded > 0
		}
		if time.Now().After(deadline) {
			desc, _ := k.exec("-n", ns, "describe", "job/"+job)
			t.Fatalf("job %s/%s did not finish in %s:\n%s", ns, job, timeout, desc)
		}
		time.Sleep(2 * time.Second)
	}
}

var forwardingRE = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+)`)

// portForward forwards a free local port to target's remotePort until the test ends and
// returns the local address.
func (k kube) portForward(t *testing.T, ns, target string, remotePort int) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := k.cmd(ctx, "-n", ns, "port-forward", "--address", "127.0.0.1", target, fmt.Sprintf(":%d", remotePort))
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); c.Wait() })
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("port-forward %s/%s exited: %s", ns, target, stderr.String())
			}
			if m := forwardingRE.FindStringSubmatch(l); m != nil {
				go io.Copy(io.Discard, stdout)
				return "127.0.0.1:" + m[1]
			}
		case <-timeout:
			t.Fatalf("port-forward %s/%s: no local port after 30s: %s", ns, target, stderr.String())
		}
	}
}

// condition reads a status condition from a Gateway API object's JSON.
type conditions []struct{ Type, Status, Reason, Message string }

func (cs conditions) get(typ string) (status, reason string) {
	for _, c := range cs {
		if c.Type == typ {
			return c.Status, c.Reason
		}
	}
	return "", ""
}

// routeCondition is a GRPCRoute's condition for its first parent.
func (k kube) routeCondition(t *testing.T, ns, route, typ string) (status, reason string) {
	t.Helper()
	var r struct {
		Status struct {
			Parents []struct{ Conditions conditions }
		}
	}
	k.getJSON(t, &r, "-n", ns, "get", "grpcroute/"+route)
	if len(r.Status.Parents) == 0 {
		return "", "no status yet"
	}
	return r.Status.Parents[0].Conditions.get(typ)
}

// eventually polls f every interval until it returns true or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !f() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not true after %s", what, timeout)
		}
		time.Sleep(time.Second)
	}
	return time.Since(start)
}
