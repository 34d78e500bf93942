//go:build e2e

package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

// Client is one of the kit's clients in another language (clients/README.md is the contract
// they all keep: flags, progress lines, report): its language and its command in the
// clients image.
type Client struct {
	Language string
	Command  string
	// CPURequest, when set, replaces clientResources' request: a JVM needs more CPU time
	// than the others to start and warm up, and a request is its share under contention.
	CPURequest string
}

// clientResources: the greeter Job's container is sized for a Go binary; the interpreters
// and runtimes of the other stacks need more memory (a JVM most). The CPU request is small:
// every topology shares the suite's one node, whose 2 CPUs the pods' requests must fit
// (a rolling restart runs 8 of these beside the surge pods), and a client at the suite's
// 25 calls/s needs little (Client.CPURequest for more); the limit bounds a JVM's start.
var clientResources = corev1.ResourceRequirements{
	Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("20m"),
		corev1.ResourceMemory: resource.MustParse("64Mi"), corev1.ResourceEphemeralStorage: resource.MustParse("16Mi")},
	Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"),
		corev1.ResourceMemory: resource.MustParse("256Mi"), corev1.ResourceEphemeralStorage: resource.MustParse("64Mi")},
}

// ClientJobLoad runs client c as a Job against the topology's in-cluster entry, with the
// contract's flags (--calls=300, --policy=default, ...), and follows it as a Load: the
// greeter's Job of the overlay (security context, service account) with the clients image.
func (s *Suite) ClientJobLoad(t testing.TB, tp Topology, c Client, name string, args ...string) *Load {
	t.Helper()
	flags := append([]string{"--target=" + tp.Entry.Target}, args...)
	return s.runJob(t, tp, c.Language+": "+name, func(ns, job string) *batchv1.Job {
		j := s.loadJob(t, tp.Entry.JobOverlay, ns, job, nil)
		ct := &j.Spec.Template.Spec.Containers[0]
		ct.Image, ct.Command, ct.Args = s.ClientsImage, []string{c.Command}, flags
		ct.Env = nil // the greeter's GREETER_* settings mean nothing to the other clients
		ct.Resources = *clientResources.DeepCopy()
		if c.CPURequest != "" {
			ct.Resources.Requests[corev1.ResourceCPU] = resource.MustParse(c.CPURequest)
		}
		j.Labels["kit.client"] = c.Language
		return j
	})
}

// ClientHostRun runs client c from the host's network namespace (`docker run --network
// host`, the clients image), as a user's program on the host reaches the proxies' host
// ports, and returns its report. The suite's CA certificate is mounted at /ca.crt.
func (s *Suite) ClientHostRun(t testing.TB, c Client, args ...string) report.Summary {
	t.Helper()
	// The suite writes its certificates 0600 (certgen); the client runs as the image's
	// non-root user, so it gets a readable copy of the CA certificate (public anyway).
	ca, err := os.ReadFile(s.CACert)
	if err != nil {
		t.Fatal(err)
	}
	caCopy := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caCopy, ca, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Greeter)
	defer cancel()
	argv := append([]string{"run", "--rm", "--network", "host", "-v", caCopy + ":/ca.crt:ro", s.ClientsImage, c.Command}, args...)
	cmd := exec.CommandContext(ctx, s.Docker, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", s.Docker, strings.Join(argv, " "), err, stderr.String(), stdout.String())
	}
	var sum report.Summary
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &sum); err != nil {
		t.Fatalf("%s on the host: report: %v: %s", c.Language, err, stdout.String())
	}
	return sum
}
