//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	h "github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/doctor"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

// doctorNS is the doctor's own copy of the kit: faults are injected there only, so no other
// test's topology is ever broken.
const doctorNS = "grpc-kit-doctor"

// TestDoctor deploys the kit, breaks it one fault at a time, and asserts that
// `greeter doctor` names that exact cause as its only error; on the healthy kit it reports
// no error. What doctor said for each fault is logged and written to e2e/out/doctor.txt.
func TestDoctor(t *testing.T) {
	s := suite
	defer s.DumpIfFailed(t, doctorNS)
	t.Parallel()
	s.Gate.Enter(t)
	deployDoctorKit(t, s)
	transcript := &bytes.Buffer{}
	t.Cleanup(func() {
		if err := os.WriteFile(filepath.Join(s.Out, "doctor.txt"), transcript.Bytes(), 0o644); err != nil {
			t.Errorf("write doctor.txt: %v", err)
		}
	})
	headless := []string{"-service", "hello-grpc-headless"}
	healthy := func(t *testing.T) {
		t.Helper()
		awaitDoctor(t, s, transcript, "healthy kit", "", "", headless...)
	}

	t.Run("healthy", func(t *testing.T) {
		rep := awaitDoctor(t, s, transcript, "healthy hello", "", "", headless...)
		if rep.Warnings != 0 {
			t.Errorf("healthy hello: %d warning(s): %+v", rep.Warnings, rep.Findings)
		}
		for _, want := range []string{doctor.CheckPorts, doctor.CheckEndpoints, doctor.CheckTLS, doctor.CheckHealth, doctor.CheckDNS} {
			if f := find(rep, want); f == nil || f.Severity != doctor.OK {
				t.Errorf("healthy hello: check %s is not ok: %+v", want, f)
			}
		}
		// The node checks found the Deployment behind the pods and its budget: on the kit's
		// one-node cluster, nodes says so as info; pdb is ok (info while its status catches up).
		for _, want := range []string{doctor.CheckNodes, doctor.CheckPDB} {
			if f := find(rep, want); f == nil || f.Severity > doctor.Info {
				t.Errorf("healthy hello: check %s: want ok or info, got %+v", want, f)
			}
		}
		awaitDoctor(t, s, transcript, "healthy goodbye", "", "", "-service", "goodbye-grpc-headless")
	})

	t.Run("wrong targetPort", func(t *testing.T) {
		patchService(t, s, "hello-grpc-headless", `[{"op":"replace","path":"/spec/ports/0/targetPort","value":50052}]`)
		awaitDoctor(t, s, transcript, "wrong targetPort", doctor.CheckPorts, "targetPort 50052", headless...)
		patchService(t, s, "hello-grpc-headless", `[{"op":"replace","path":"/spec/ports/0/targetPort","value":"grpc"}]`)
		healthy(t)
	})

	t.Run("selector typo", func(t *testing.T) {
		patchService(t, s, "hello-grpc-headless", `[{"op":"replace","path":"/spec/selector/app.kubernetes.io~1name","value":"helo"}]`)
		awaitDoctor(t, s, transcript, "selector typo", doctor.CheckSelector, "matches no pod", headless...)
		patchService(t, s, "hello-grpc-headless", `[{"op":"replace","path":"/spec/selector/app.kubernetes.io~1name","value":"hello"}]`)
		healthy(t)
	})

	t.Run("all pods NOT_SERVING", func(t *testing.T) {
		pods := s.HelloPods(t, doctorNS)
		// The liveness probe restarts a pod stuck NOT_SERVING after a minute; the doctor
		// sees the fault within seconds of the readiness probe failing.
		for _, p := range pods {
			s.SetHealth(t, doctorNS, p, "NOT_SERVING")
		}
		awaitDoctor(t, s, transcript, "all pods NOT_SERVING", doctor.CheckEndpoints, "NOT_SERVING", headless...)
		for _, p := range s.HelloPods(t, doctorNS) {
			s.SetHealth(t, doctorNS, p, "SERVING")
		}
		healthy(t)
	})

	t.Run("ClusterIP with round_robin", func(t *testing.T) {
		rep := awaitDoctor(t, s, transcript, "ClusterIP Service with round_robin", doctor.CheckBalancing, "over a ClusterIP Service", "-service", "hello-grpc", "-lb", "round_robin")
		if f := find(rep, doctor.CheckBalancing); f == nil || !strings.Contains(f.Fix, "hello-grpc-headless") {
			t.Errorf("the fix should name the headless twin: %+v", f)
		}
	})

	// The ClusterIP Services as backends of the proxy topologies' Gateway and Ingress, and
	// those objects' own faults (doctor_routes_test.go).
	// Each rewrites Traefik's routes (and deploys a namespace's pods): churn for the
	// proxies' timed failovers, held until its objects are deleted.
	t.Run("gateway-api", func(t *testing.T) {
		s.Churning(t)
		doctorGatewayAPI(t, s, transcript)
	})
	t.Run("nginx-ingress", func(t *testing.T) {
		s.Churning(t)
		doctorNginxIngress(t, s, transcript)
	})

	t.Run("TLS client against plaintext server", func(t *testing.T) {
		awaitDoctor(t, s, transcript, "TLS client against a plaintext server", doctor.CheckTLS, "TLS client against a plaintext", append(headless, "-tls")...)
	})

	t.Run("NetworkPolicy denies the client", func(t *testing.T) {
		// Two pods start and the policy makes kube-router rewrite every node's rules:
		// churn, held until the subtest's cleanup has deleted them.
		s.Churning(t)
		clientPod(t, s, "doctor-client", "doctor-client")
		clientPod(t, s, "greeter-client", "greeter")
		// The negative control of the traffic: before the policy, both callers get through.
		for _, pod := range []string{"doctor-client", "greeter-client"} {
			if sum, err := callsFrom(t, s, pod); err != nil || sum.Failed != 0 {
				t.Fatalf("%s, no policy yet: want every call answered: %v %+v", pod, err, sum)
			}
		}
		policy := filepath.Join(s.Root, "kustomize", "components", "network-policies", "networkpolicy.yaml")
		s.Kube.Run(t, "-n", doctorNS, "apply", "-f", policy)
		t.Cleanup(func() { s.Kube.Cleanup(t, "-n", doctorNS, "delete", "-f", policy, "--ignore-not-found") })
		awaitDoctor(t, s, transcript, "NetworkPolicy denies the client", doctor.CheckNetworkPolicy, "no ingress rule allows pod "+doctorNS+"/doctor-client",
			append(headless, "-from-pod", "doctor-client")...)
		// The kit's own client is allowed by the same policy.
		rep := awaitDoctor(t, s, transcript, "NetworkPolicy allows the greeter", "", "", append(headless, "-from-pod", doctorNS+"/greeter-client")...)
		if f := find(rep, doctor.CheckNetworkPolicy); f == nil || f.Severity != doctor.OK || !strings.Contains(f.Message, "grpc-servers ingress[0]") {
			t.Errorf("greeter-client should be allowed by grpc-servers ingress[0]: %+v", f)
		}
		// What the traffic does agrees with the doctor: the cluster's network daemon
		// (kube-router) enforces the policy, so the caller it denies gets no answer at all
		// (its packets are dropped: calls end at their deadline) and the greeter is answered.
		h.Eventually(t, 30*time.Second, 2*time.Second, "doctor-client's calls dropped by the policy", func() bool {
			sum, _ := callsFrom(t, s, "doctor-client")
			return sum.Calls > 0 && len(sum.Backends) == 0
		})
		if sum, err := callsFrom(t, s, "greeter-client"); err != nil || sum.Failed != 0 {
			t.Errorf("greeter-client, allowed by the policy: want every call answered: %v %+v", err, sum)
		}
		s.Kube.Run(t, "-n", doctorNS, "delete", "-f", policy)
		healthy(t)
	})

	t.Run("bad flags", func(t *testing.T) {
		_, code, stderr := runDoctor(t, s, "-service", "hello-grpc-headless", "-lb", "random")
		if code != 2 || !strings.Contains(stderr, "-lb") {
			t.Errorf("bad -lb: exit %d, stderr %q; want exit 2 naming -lb", code, stderr)
		}
		_, code, stderr = runDoctorKubeconfig(t, s, filepath.Join(t.TempDir(), "missing"), "-service", "hello-grpc-headless")
		if code != 2 || !strings.Contains(stderr, "kubeconfig") {
			t.Errorf("missing kubeconfig: exit %d, stderr %q; want exit 2 naming the kubeconfig", code, stderr)
		}
	})
}

// deployDoctorKit renders the base into doctorNS (Pod Security restricted) through a
// temporary kustomization, and deletes the namespace at the end unless -keep.
func deployDoctorKit(t *testing.T, s *h.Suite) {
	t.Helper()
	dir := t.TempDir()
	base, err := filepath.Rel(dir, filepath.Join(s.Root, "kustomize", "base"))
	if err != nil {
		t.Fatal(err)
	}
	// The NOT_SERVING fault is injected through the servers' admin endpoint, which only
	// the tests' component turns on.
	admin, err := filepath.Rel(dir, filepath.Join(s.Root, "kustomize", "components", "admin-endpoint-for-tests"))
	if err != nil {
		t.Fatal(err)
	}
	shared, err := filepath.Rel(dir, filepath.Join(s.Root, "e2e", "components", "shared-node"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"kustomization.yaml": fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: %s\n"+
			"resources:\n- namespace.yaml\n- %s\ncomponents:\n- %s\n- %s\n", doctorNS, base, admin, shared),
		"namespace.yaml": fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels:\n"+
			"    pod-security.kubernetes.io/enforce: restricted\n    pod-security.kubernetes.io/warn: restricted\n", doctorNS),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	release := s.Churning(t) // its pods start: no failover is timed meanwhile
	defer release()
	s.Kube.Run(t, "apply", "-k", dir)
	if !s.Keep {
		t.Cleanup(func() { s.Kube.Cleanup(t, "delete", "namespace", doctorNS, "--ignore-not-found", "--wait=false") })
	}
	s.Kube.Rollout(t, doctorNS, "hello", "goodbye")
	s.CheckRestricted(t, doctorNS)
}

func patchService(t *testing.T, s *h.Suite, svc, patch string) {
	t.Helper()
	s.Kube.Run(t, "-n", doctorNS, "patch", "service", svc, "--type=json", "-p", patch)
}

// clientPod runs a greeter in doctorNS labelled app.kubernetes.io/name=app: a real caller
// whose labels the NetworkPolicy check evaluates. The caller holds the churn lock.
func clientPod(t *testing.T, s *h.Suite, name, app string) {
	t.Helper()
	pod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %[1]s
  namespace: %[2]s
  labels:
    app.kubernetes.io/name: %[3]s
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    seccompProfile: {type: RuntimeDefault}
  containers:
  - name: greeter
    image: grpc-k8s-kit/greeter:dev
    imagePullPolicy: IfNotPresent
    args: ["-target", "dns:///hello-grpc-headless.%[2]s.svc.cluster.local:50051", "-duration", "30m", "-rate", "1", "-quiet"]
    resources: {requests: {cpu: 5m, memory: 16Mi, ephemeral-storage: 16Mi}, limits: {cpu: 100m, memory: 64Mi, ephemeral-storage: 64Mi}}
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {drop: [ALL]}
`, name, doctorNS, app)
	s.Kube.RunStdin(t, pod, "apply", "-f", "-")
	t.Cleanup(func() { s.Kube.Cleanup(t, "-n", doctorNS, "delete", "pod", name, "--ignore-not-found", "--wait=false") })
	s.Kube.Run(t, "-n", doctorNS, "wait", "--for=condition=Ready", "pod/"+name, "--timeout=120s")
}

// callsFrom makes 3 calls to the doctor namespace's hello from inside pod (the greeter
// image's binary, /app), each with a 2 s deadline, and returns the greeter's report.
func callsFrom(t *testing.T, s *h.Suite, pod string) (report.Summary, error) {
	t.Helper()
	out, err := s.Kube.Exec("-n", doctorNS, "exec", pod, "--", "/app",
		"-target", "dns:///hello-grpc-headless."+doctorNS+".svc.cluster.local:50051",
		"-n", "3", "-timeout", "2s", "-retry=false", "-json", "-quiet")
	var sum report.Summary
	start := bytes.IndexByte(out, '{')
	if start < 0 {
		return sum, fmt.Errorf("no report from %s: %v: %s", pod, err, out)
	}
	if jerr := json.NewDecoder(bytes.NewReader(out[start:])).Decode(&sum); jerr != nil {
		return sum, fmt.Errorf("report from %s: %v: %s", pod, jerr, out)
	}
	return sum, nil
}

// awaitDoctor runs the doctor until its report shows the expected state, then asserts it:
// with check set, exactly one error finding, from that check, whose message contains
// want, and exit code 3 ("names that exact cause and nothing worse"); with check empty,
// no error finding and exit 0. Retrying covers the cluster converging after a change
// (EndpointSlices, readiness probes, DNS TTL); the final report is the one asserted.
func awaitDoctor(t *testing.T, s *h.Suite, transcript *bytes.Buffer, what, check, want string, args ...string) doctor.Report {
	t.Helper()
	matches := func(r doctor.Report) bool {
		if check == "" {
			return r.Errors == 0
		}
		f := find(r, check)
		return f != nil && f.Severity == doctor.Error && strings.Contains(f.Message, want)
	}
	var rep doctor.Report
	var code int
	deadline := time.Now().Add(90 * time.Second)
	for {
		rep, code, _ = runDoctor(t, s, args...)
		if matches(rep) || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	var errs []doctor.Finding
	for _, f := range rep.Findings {
		if f.Severity == doctor.Error {
			errs = append(errs, f)
		}
	}
	switch {
	case check == "" && (len(errs) != 0 || code != 0):
		t.Errorf("%s: want no error finding and exit 0, got exit %d and %s", what, code, summarize(errs))
	case check != "" && (len(errs) != 1 || errs[0].Check != check || !strings.Contains(errs[0].Message, want) || code != 3):
		t.Errorf("%s: want exactly one error from %s containing %q and exit 3, got exit %d and %s", what, check, want, code, summarize(errs))
	}
	// Log what the doctor said, as a user sees it.
	text, _, _ := runDoctorText(t, s, args...)
	t.Logf("%s: greeter doctor %s\n%s", what, strings.Join(args, " "), text)
	fmt.Fprintf(transcript, "### %s\n$ greeter doctor -n %s %s\n%s\n", what, doctorNS, strings.Join(args, " "), text)
	return rep
}

func find(r doctor.Report, check string) *doctor.Finding {
	var found *doctor.Finding
	for i, f := range r.Findings {
		// The worst finding of the check.
		if f.Check == check && (found == nil || f.Severity > found.Severity) {
			found = &r.Findings[i]
		}
	}
	return found
}

func summarize(fs []doctor.Finding) string {
	if len(fs) == 0 {
		return "no error"
	}
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "\n  %s %s: %s", f.Severity, f.Check, f.Message)
	}
	return b.String()
}

// runDoctor runs `greeter doctor -json` against doctorNS and returns its report, exit code
// and stderr.
func runDoctor(t *testing.T, s *h.Suite, args ...string) (doctor.Report, int, string) {
	t.Helper()
	return runDoctorKubeconfig(t, s, s.Kube.Kubeconfig, args...)
}

func runDoctorKubeconfig(t *testing.T, s *h.Suite, kubeconfig string, args ...string) (doctor.Report, int, string) {
	t.Helper()
	stdout, code, stderr := doctorExec(t, s, kubeconfig, append(args, "-json")...)
	var rep doctor.Report
	if code == 0 || code == 3 {
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatalf("greeter doctor %v: exit %d, not a JSON report: %v\n%s\n%s", args, code, err, stdout, stderr)
		}
	}
	return rep, code, stderr
}

func runDoctorText(t *testing.T, s *h.Suite, args ...string) (string, int, string) {
	t.Helper()
	return doctorExec(t, s, s.Kube.Kubeconfig, args...)
}

func doctorExec(t *testing.T, s *h.Suite, kubeconfig string, args ...string) (stdout string, code int, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append([]string{"doctor", "-kubeconfig", kubeconfig, "-n", doctorNS}, args...)
	c := exec.CommandContext(ctx, s.Greeter, full...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("greeter %v: %v", full, err)
	}
	return out.String(), code, errb.String()
}
