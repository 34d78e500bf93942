//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	h "github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/certgen"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/doctor"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

// The TLS topology (e2e/overlays/headless-tls, kustomize/components/backend-tls) and the
// broken combination doctor must name, each in a namespace of its own.
const (
	tlsNS         = "grpc-kit-tls"
	tlsBrokenNS   = "grpc-kit-tls-broken"
	tlsHost       = "grpc-tls.kit.local" // the Ingress's host (Secret grpc-kit-tls covers *.kit.local)
	backendSecret = "grpc-kit-backend-tls"
	backendCA     = "grpc-kit-backend-ca"
)

// backendTLS deploys the TLS overlay end to end: the servers serve TLS and become Ready
// with their exec probes; the greeter Jobs see exact round robin over TLS through the
// headless Services; calls through the Ingress reach the TLS backends (GRPCS, verified),
// and an Ingress verifying a name the certificate does not carry fails every call (the
// verification is real); greeter doctor finds nothing wrong. Then the broken combination,
// TLS servers behind native gRPC probes in grpc-kit-tls-broken: the pods never become
// Ready, and doctor names the probe as the only error. Cleanup at the end unless -keep.
func backendTLS(t *testing.T, s *h.Suite) {
	// The namespace first: the Secrets must exist before the pods that mount them start.
	s.Kube.Run(t, "apply", "-f", filepath.Join(s.OverlayDir("headless-tls"), "namespace.yaml"))
	if !s.Keep {
		t.Cleanup(func() {
			s.Kube.Cleanup(t, "delete", "namespace", tlsNS, tlsBrokenNS, "--ignore-not-found", "--wait=false")
		})
	}
	createBackendCerts(t, s, tlsNS)
	createTLSSecret(t, s, tlsNS) // the Ingress's own certificate
	// Jobs are immutable: delete a previous run's before applying.
	s.Kube.Cleanup(t, "-n", tlsNS, "delete", "job", "greeter-hello", "greeter-goodbye", "--ignore-not-found", "--wait=true")
	// Everything but the greeter Jobs first: a Job whose DNS lookup finds 2 of the 3 pods
	// Ready keeps those 2 (nothing makes grpc-go resolve again while they answer), and
	// exec probes on a busy node bring pods to Ready further apart than native ones.
	s.Apply(t, "headless-tls", "-l", "app.kubernetes.io/name!=greeter")
	s.CheckRestricted(t, tlsNS)
	s.Kube.Rollout(t, tlsNS, "hello", "goodbye") // Ready: the exec probes pass over TLS
	s.WaitPodsReady(t, tlsNS, 3)
	s.Apply(t, "headless-tls")

	t.Run("headless round robin over TLS", func(t *testing.T) {
		for _, tc := range []struct{ job, topology, service, pods string }{
			{"greeter-hello", "headless round_robin over TLS (in-cluster): Hello", "helloworld.Hello", "hello-"},
			{"greeter-goodbye", "headless round_robin over TLS (in-cluster): Goodbye", "helloworld.Goodbye", "goodbye-"},
		} {
			log, ok := s.Kube.WaitJob(t, tlsNS, tc.job, 5*time.Minute)
			sum := h.ParseJobReport(t, log)
			s.Distribution.Add(tc.topology, sum)
			if !ok {
				t.Errorf("job %s failed (its own assertions): %+v", tc.job, sum.Assertions)
			}
			if sum.OK < 300 {
				t.Errorf("%s: %d ok calls, want ≥ 300", tc.job, sum.OK)
			}
			h.CheckRouting(t, tc.job, sum, tc.service, tc.pods)
			h.CheckSpread(t, tc.job, sum, 3, 0) // exact
		}
	})

	t.Run("ingress to TLS backends", func(t *testing.T) {
		for _, ep := range []struct{ what, addr string }{
			{"TLS :8443", websecureAddr},
			{"h2c :8000", webAddr},
		} {
			args := []string{"-target", ep.addr, "-authority", tlsHost}
			if ep.addr == websecureAddr {
				args = append(args, "-cacert", s.CACert)
			}
			for _, svc := range []struct{ key, name, pods string }{
				{"hello", "helloworld.Hello", "hello-"},
				{"goodbye", "helloworld.Goodbye", "goodbye-"},
			} {
				a := append(append([]string{}, args...), "-service", svc.key)
				s.WaitBackends(t, "headless-tls ingress "+ep.what+" "+svc.key, 3, a...)
				sum, code := s.Greet(t, append(a, "-n", "300", "-c", "3", "-max-errors", "0")...)
				what := fmt.Sprintf("nginx-ingress to TLS backends (Traefik, %s): %s", ep.what, svc.key)
				s.Distribution.Add(what, sum)
				if code != 0 {
					t.Errorf("%s: greeter exit %d", what, code)
				}
				h.CheckRouting(t, what, sum, svc.name, svc.pods)
				h.CheckSpread(t, what, sum, 3, 0.2)
			}
		}
	})

	t.Run("ingress verifies the backend certificate", func(t *testing.T) {
		// Negative control: the same routes with a name the certificate does not carry.
		// Were the backend not verified, these calls would succeed.
		const badHost = "grpc-tls-badname.kit.local"
		src, err := os.ReadFile(filepath.Join(s.OverlayDir("headless-tls"), "ingress.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		bad := strings.NewReplacer(
			"  name: grpc-kit\n", "  name: grpc-kit-badname\n",
			tlsHost, badHost,
			"proxy-ssl-name: hello-grpc", "proxy-ssl-name: not-in-the-certificate",
		).Replace(string(src))
		if !strings.Contains(bad, "not-in-the-certificate") || !strings.Contains(bad, "grpc-kit-badname") {
			t.Fatalf("the overlay's ingress.yaml changed: cannot derive the negative control from it:\n%s", bad)
		}
		s.Kube.RunStdin(t, bad, "-n", tlsNS, "apply", "-f", "-")
		defer s.Kube.Cleanup(t, "-n", tlsNS, "delete", "ingress", "grpc-kit-badname", "--ignore-not-found")
		args := []string{"-target", websecureAddr, "-authority", badHost, "-cacert", s.CACert, "-timeout", "3s", "-retry=false", "-n", "20"}
		// Until the proxy has loaded the route the answer is 404 (Unimplemented); after
		// that every call must fail on the backend's certificate instead.
		var sum report.Summary
		took := h.Eventually(t, 2*time.Minute, h.Poll, "calls through the unverifiable Ingress fail at the backend, not for want of a route", func() bool {
			sum, _ = s.Greet(t, args...)
			return sum.OK == 0 && sum.Failed == 20 && countCode(sum, "Unimplemented") == 0
		})
		t.Logf("unverifiable backend name: every call fails after %s: %+v", took.Round(time.Second), sum.Errors)
	})

	t.Run("doctor on the TLS kit", func(t *testing.T) {
		rep, code, _ := runDoctor(t, s, "-n", tlsNS, "-service", "hello-grpc-headless", "-tls")
		text, _, _ := runDoctorText(t, s, "-n", tlsNS, "-service", "hello-grpc-headless", "-tls")
		t.Logf("greeter doctor -n %s -service hello-grpc-headless -tls\n%s", tlsNS, text)
		if code != 0 || rep.Errors != 0 {
			t.Errorf("healthy TLS kit: exit %d, %d error(s)", code, rep.Errors)
		}
		if f := find(rep, doctor.CheckReadiness); f != nil {
			t.Errorf("exec probes on TLS servers: want no readiness finding, got %+v", f)
		}
		if f := find(rep, doctor.CheckAppProtocol); f == nil || f.Severity != doctor.OK {
			t.Errorf("appProtocol https on TLS servers: want ok, got %+v", f)
		}
	})

	t.Run("native gRPC probe on a TLS server", func(t *testing.T) {
		deployBrokenTLS(t, s)
		args := []string{"-n", tlsBrokenNS, "-service", "hello-grpc-headless", "-tls"}
		var rep doctor.Report
		var code int
		h.Eventually(t, 3*time.Minute, h.Poll, "doctor names the native probe on the TLS server", func() bool {
			rep, code, _ = runDoctor(t, s, args...)
			f := find(rep, doctor.CheckReadiness)
			return f != nil && f.Severity == doctor.Error
		})
		text, _, _ := runDoctorText(t, s, args...)
		t.Logf("greeter doctor %s\n%s", strings.Join(args, " "), text)
		var errs []doctor.Finding
		for _, f := range rep.Findings {
			if f.Severity == doctor.Error {
				errs = append(errs, f)
			}
		}
		if len(errs) != 1 || errs[0].Check != doctor.CheckReadiness || !strings.Contains(errs[0].Message, "cannot speak TLS") || code != 3 {
			t.Errorf("want exactly one error, from readiness, and exit 3; got exit %d and %s", code, summarize(errs))
		}
		// The pods are running and stay out: never Ready.
		var l struct {
			Items []struct {
				Status struct {
					Phase      string
					Conditions []struct{ Type, Status string }
				}
			}
		}
		s.Kube.GetJSON(t, &l, "-n", tlsBrokenNS, "get", "pods", "-l", "app.kubernetes.io/name=hello")
		for _, p := range l.Items {
			for _, c := range p.Status.Conditions {
				if c.Type == "Ready" && c.Status == "True" {
					t.Errorf("a TLS server behind a native gRPC probe became Ready: the kubelet's probe spoke TLS?")
				}
			}
		}
	})
}

// createBackendCerts makes the backend certificate for ns (the Service names of the kit,
// certgen.ServiceNames, what make backend-certs writes) and stores it as
// components/backend-tls reads it: Secret grpc-kit-backend-tls, ConfigMap and Secret
// grpc-kit-backend-ca.
func createBackendCerts(t *testing.T, s *h.Suite, ns string) {
	t.Helper()
	b, err := certgen.Generate(certgen.ServiceNames(ns, "cluster.local", certgen.BackendServices...), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(s.Out, "backend-certs", ns)
	if err := b.Write(dir); err != nil {
		t.Fatal(err)
	}
	ca := "--from-file=ca.crt=" + filepath.Join(dir, "ca.crt")
	for _, args := range [][]string{
		{"create", "secret", "tls", backendSecret, "--cert", filepath.Join(dir, "tls.crt"), "--key", filepath.Join(dir, "tls.key")},
		{"create", "configmap", backendCA, ca},
		{"create", "secret", "generic", backendCA, ca},
	} {
		y := s.Kube.Run(t, append(append([]string{"-n", ns}, args...), "--dry-run=client", "-o", "yaml")...)
		s.Kube.RunStdin(t, y, "apply", "-f", "-")
	}
}

// deployBrokenTLS applies hello with components/backend-tls and the native gRPC probes of
// the base put back, in tlsBrokenNS: the mistake the doctor's readiness check is for.
func deployBrokenTLS(t *testing.T, s *h.Suite) {
	t.Helper()
	dir := t.TempDir()
	rel := func(p ...string) string {
		r, err := filepath.Rel(dir, filepath.Join(append([]string{s.Root}, p...)...))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	files := map[string]string{
		"kustomization.yaml": fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: %s\n"+
			"resources:\n- namespace.yaml\n- %s\ncomponents:\n- %s\n- %s\npatches:\n- path: native-probes.yaml\n",
			tlsBrokenNS, rel("kustomize", "base", "hello"), rel("kustomize", "components", "backend-tls"), rel("e2e", "components", "shared-node")),
		"namespace.yaml": fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels:\n"+
			"    pod-security.kubernetes.io/enforce: restricted\n    pod-security.kubernetes.io/warn: restricted\n", tlsBrokenNS),
		// Readiness back to the base's native probe; startup and liveness too, but with
		// long thresholds, so the pods keep running (not restarting) while doctor looks.
		"native-probes.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
spec:
  template:
    spec:
      containers:
      - name: hello
        startupProbe: null
        readinessProbe:
          exec: null
          grpc:
            port: 50051
            service: helloworld.Hello
        livenessProbe:
          exec: null
          grpc:
            port: 50051
            service: helloworld.Hello
          initialDelaySeconds: 600
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.Kube.Run(t, "apply", "-f", filepath.Join(dir, "namespace.yaml"))
	createBackendCerts(t, s, tlsBrokenNS)
	s.Kube.Run(t, "apply", "-k", dir)
	s.CheckRestricted(t, tlsBrokenNS)
	h.Eventually(t, 2*time.Minute, h.Poll, "3 hello pods running in "+tlsBrokenNS, func() bool {
		return len(s.HelloPods(t, tlsBrokenNS)) == 3
	})
}

// The backend-tls component end to end (headless over TLS, the ingress to TLS backends, the
// doctor on a native probe in front of a TLS server), in its own namespaces. It runs beside
// the topologies, outside the node gate (it is mostly waits for its pods and Jobs), as
// churn for all of its run: deploying nine pods whose probes are processes stalls the node
// for a second or two, which a failover timed meanwhile would measure (against a 6 s
// target), so no failover is timed until it is done. Run before the topologies instead, it
// would keep the node half idle for its 50 s.
func TestBackendTLS(t *testing.T) {
	s := suite
	defer s.DumpIfFailed(t, tlsNS, tlsBrokenNS)
	t.Parallel()
	s.Churning(t) // released when the test ends
	backendTLS(t, s)
}
