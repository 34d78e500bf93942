//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// kube runs the kubectl built by kind-up against the kind cluster. Tests use kubectl, as a
// user of the kit would, so every step here can be pasted into a terminal.
type kube struct{ kubectl, kubeconfig string }

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
		var j struct {
			Status struct {
				Succeeded, Failed int
			}
		}
		k.getJSON(t, &j, "-n", ns, "get", "job/"+job)
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
