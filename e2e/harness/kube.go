//go:build e2e

package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Kube is the kind cluster. Every action a user of the kit would take (apply, scale,
// rollout, delete, a finished Job's logs) runs the kubectl built by kind-up, so each step
// here can be pasted into a terminal. What the suite samples while it measures (pod lists,
// a pod's counters, EndpointSlices, the admin POSTs of a timed scenario) and the logs it
// follows while loads run go through API, one client in this process: a kubectl process
// per sample cost the shared 2-core node about 0.2 s of CPU before it reached the API
// server, and the scenarios sample several times a second in each topology at once (the
// suite's CPU by process is in docs/results/e2e.md); FollowLog says why the logs.
type Kube struct {
	Kubectl, Kubeconfig string
	API                 kubernetes.Interface
}

// NewKube reads kubeconfig; kubectl is the binary every user-visible action runs.
func NewKube(kubectl, kubeconfig string) (*Kube, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	// Each parallel test samples a few times a second; client-go's default limit (5/s)
	// would delay the samples, and with them the measurements.
	rc.QPS, rc.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return &Kube{Kubectl: kubectl, Kubeconfig: kubeconfig, API: cs}, nil
}

// Pods lists ns's pods that match selector (a label selector, as kubectl -l takes it).
func (k *Kube) Pods(t testing.TB, ns, selector string) []corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), APIRequest)
	defer cancel()
	l, err := k.API.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatalf("list pods -n %s -l %s: %v", ns, selector, err)
	}
	return l.Items
}

// Pod reads one pod of ns.
func (k *Kube) Pod(t testing.TB, ns, name string) *corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), APIRequest)
	defer cancel()
	p, err := k.API.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod %s/%s: %v", ns, name, err)
	}
	return p
}

// Nodes are the names of the cluster's nodes.
func (k *Kube) Nodes(t testing.TB) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), APIRequest)
	defer cancel()
	l, err := k.API.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list nodes: %v", err)
	}
	var names []string
	for _, n := range l.Items {
		names = append(names, n.Name)
	}
	return names
}

// Deployment reads one Deployment of ns.
func (k *Kube) Deployment(t testing.TB, ns, name string) *appsv1.Deployment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), APIRequest)
	defer cancel()
	d, err := k.API.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get deployment %s/%s: %v", ns, name, err)
	}
	return d
}

// PodReady: the pod's Ready condition is True.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// PodProxy sends method to path (with its query) on a pod's port through the API server's
// pod proxy (/api/v1/namespaces/NS/pods/POD:PORT/proxy/PATH), as `kubectl get --raw` and
// `kubectl create --raw` do: no port-forward needed.
func (k *Kube) PodProxy(method, ns, pod string, port int, path string) ([]byte, error) {
	u, err := url.Parse(path)
	if err != nil {
		return nil, fmt.Errorf("pod proxy path %q: %w", path, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), APIRequest)
	defer cancel()
	req := k.API.CoreV1().RESTClient().Verb(method).Namespace(ns).Resource("pods").
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

// FollowLog copies the log of a pod's container to w as it is written, until the container
// has ended. It waits for the container to start first: a follow opened while the container
// is still being created ends at once with nothing (kubectl logs -f did that on the busy
// node, exit 0, and the load looked like it had ended before its first call). A stream that
// ends while the container still runs is opened again from the start, and as many lines as
// were read are skipped: the log is one file in one order (a load's log is kilobytes, far
// from the kubelet's 10 MiB rotation). Not by timestamps: lines written at once share one,
// and stdout's and stderr's lines are not always in timestamp order.
func (k *Kube) FollowLog(ctx context.Context, ns, pod, container string, w io.Writer) error {
	pods := k.API.CoreV1().Pods(ns)
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
func (k *Kube) waitContainerStarted(ctx context.Context, ns, pod, container string) (ended bool, err error) {
	deadline := time.Now().Add(ContainerStart)
	for {
		rctx, cancel := context.WithTimeout(ctx, APIRequest)
		p, err := k.API.CoreV1().Pods(ns).Get(rctx, pod, metav1.GetOptions{})
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
			return false, fmt.Errorf("container %s of pod %s/%s did not start in %s (phase %s)", container, ns, pod, ContainerStart, p.Status.Phase)
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (k *Kube) cmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, k.Kubectl, append([]string{"--kubeconfig", k.Kubeconfig}, args...)...)
	return c
}

// Exec runs kubectl and returns its combined output.
func (k *Kube) Exec(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), Kubectl)
	defer cancel()
	var out bytes.Buffer
	c := k.cmd(ctx, args...)
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	return out.Bytes(), err
}

// Run runs kubectl and fails the test on error.
func (k *Kube) Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := k.Exec(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// RunStdin runs kubectl with stdin.
func (k *Kube) RunStdin(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), KubectlStdin)
	defer cancel()
	c := k.cmd(ctx, args...)
	c.Stdin = strings.NewReader(stdin)
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (k *Kube) GetJSON(t testing.TB, v any, args ...string) {
	t.Helper()
	out, err := k.Exec(append(args, "-o", "json")...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
}

// Rollout waits for Deployments to be fully rolled out.
func (k *Kube) Rollout(t testing.TB, ns string, deployments ...string) {
	t.Helper()
	for _, d := range deployments {
		k.Run(t, "-n", ns, "rollout", "status", "deploy/"+d, "--timeout="+Rollout.String())
	}
}

// WaitJob waits until a Job completes or fails and returns its greeter container's log.
func (k *Kube) WaitJob(t testing.TB, ns, job string, timeout time.Duration) (log string, succeeded bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), APIRequest)
		j, err := k.API.BatchV1().Jobs(ns).Get(ctx, job, metav1.GetOptions{})
		cancel()
		if err != nil {
			t.Fatalf("get job %s/%s: %v", ns, job, err)
		}
		if j.Status.Succeeded > 0 || j.Status.Failed > 0 {
			out, err := k.Exec("-n", ns, "logs", "job/"+job, "-c", "greeter")
			if err != nil { // the greeter never started: show what the init container said
				out, _ = k.Exec("-n", ns, "logs", "job/"+job, "--all-containers")
			}
			return string(out), j.Status.Succeeded > 0
		}
		if time.Now().After(deadline) {
			desc, _ := k.Exec("-n", ns, "describe", "job/"+job)
			t.Fatalf("job %s/%s did not finish in %s:\n%s", ns, job, timeout, desc)
		}
		time.Sleep(2 * time.Second)
	}
}

var forwardingRE = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+)`)

// PortForward forwards a free local port to target's remotePort until the test ends and
// returns the local address.
func (k *Kube) PortForward(t testing.TB, ns, target string, remotePort int) string {
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
	timeout := time.After(PortForward)
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
			t.Fatalf("port-forward %s/%s: no local port after %s: %s", ns, target, PortForward, stderr.String())
		}
	}
}

// conditions are the status conditions from a Gateway API object's JSON.
type conditions []struct{ Type, Status, Reason, Message string }

func (cs conditions) get(typ string) (status, reason string) {
	for _, c := range cs {
		if c.Type == typ {
			return c.Status, c.Reason
		}
	}
	return "", ""
}

// RouteCondition is a GRPCRoute's condition for its first parent.
func (k *Kube) RouteCondition(t testing.TB, ns, route, typ string) (status, reason string) {
	t.Helper()
	var r struct {
		Status struct {
			Parents []struct{ Conditions conditions }
		}
	}
	k.GetJSON(t, &r, "-n", ns, "get", "grpcroute/"+route)
	if len(r.Status.Parents) == 0 {
		return "", "no status yet"
	}
	return r.Status.Parents[0].Conditions.get(typ)
}

// Cleanup runs kubectl for a test's cleanup: a failure does not fail the test (what it
// cleans up may already be gone), but it is logged with kubectl's output, never dropped.
func (k *Kube) Cleanup(t testing.TB, args ...string) {
	t.Helper()
	if out, err := k.Exec(args...); err != nil {
		t.Logf("cleanup: kubectl %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
}

// waitTerminatingNamespaces waits until no namespace is being deleted: the suite deletes
// its topologies without waiting (Close), and the next run or lane applying the same
// overlay into a namespace still terminating is refused ("unable to create new content
// in namespace ... because it is being terminated").
func (k *Kube) waitTerminatingNamespaces(timeout time.Duration) error {
	start := time.Now()
	deadline := start.Add(timeout)
	var waited []string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), APIRequest)
		l, err := k.API.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		cancel()
		if err != nil {
			return fmt.Errorf("list namespaces: %w", err)
		}
		var terminating []string
		for _, ns := range l.Items {
			if ns.DeletionTimestamp != nil {
				terminating = append(terminating, ns.Name)
			}
		}
		if len(terminating) == 0 {
			if len(waited) > 0 {
				fmt.Printf("e2e setup: waited %.0f s for namespaces %v to be deleted\n", time.Since(start).Seconds(), waited)
			}
			return nil
		}
		if waited == nil {
			waited = terminating
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("namespaces %v are still being deleted after %s: see kubectl get ns and their remaining objects", terminating, timeout)
		}
		time.Sleep(time.Second)
	}
}
