//go:build e2e

package e2e

import (
	"math"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	h "github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

// tlsSecret is the Secret of the TLS listeners' certificate the overlays reference.
const tlsSecret = "grpc-kit-tls"

// createTLSSecret stores the suite's certificate as the Secret the overlays reference.
func createTLSSecret(t *testing.T, s *h.Suite, ns string) {
	t.Helper()
	y := s.Kube.Run(t, "-n", ns, "create", "secret", "tls", tlsSecret,
		"--cert", filepath.Join(s.CertDir, "tls.crt"), "--key", filepath.Join(s.CertDir, "tls.key"),
		"--dry-run=client", "-o", "yaml")
	s.Kube.RunStdin(t, y, "apply", "-f", "-")
}

// checkCanary: of a run's calls, v2 served 10 % (inside the binomial 99.9 % interval),
// and the three v1 pods the rest, each within v1Skew of an even share of v1's calls.
func checkCanary(t *testing.T, sum report.Summary, v1Skew float64) {
	t.Helper()
	n := sum.OK
	lo, hi := binomial999(n, 0.10)
	v2 := float64(sum.ByVersion["v2"])
	t.Logf("v2 served %.0f of %d calls (99.9%% interval around 10%%: %.0f–%.0f)", v2, n, lo, hi)
	if v2 < lo || v2 > hi {
		t.Errorf("canary share %.1f%% outside the 99.9%% interval [%.0f, %.0f] of %d calls", 100*v2/float64(n), lo, hi, n)
	}
	h.CheckRouting(t, "canary", sum, "helloworld.Hello", "hello-")
	var v1 report.Summary
	v1.OK = sum.ByVersion["v1"]
	for _, b := range sum.Backends {
		if b.Version == "v1" {
			v1.Backends = append(v1.Backends, b)
		}
	}
	h.CheckSpread(t, "v1 pods behind the canary split", v1, 3, v1Skew)
}

// binomial999 is the two-sided 99.9% interval of a Binomial(n, p) count (normal
// approximation, z = 3.29).
func binomial999(n int64, p float64) (lo, hi float64) {
	mean, sd := float64(n)*p, math.Sqrt(float64(n)*p*(1-p))
	return mean - 3.29*sd, mean + 3.29*sd
}

// deployIngress: the nginx-ingress overlay, served by Traefik's ingress-nginx provider
// here (and by ingress-nginx itself on machines that can pull it), over TLS and h2c.
func deployIngress(t *testing.T, s *h.Suite, tp h.Topology) {
	s.Apply(t, tp.Overlay)
	createTLSSecret(t, s, ingressNS)
	s.Kube.Rollout(t, ingressNS, "hello", "goodbye")

	tls := s.HostArgs(tp.Entry)
	s.WaitFirstCalls(t, "nginx-ingress TLS", tls...)

	for _, tc := range []struct{ service, grpcService, pods string }{
		{"hello", "helloworld.Hello", "hello-"},
		{"goodbye", "helloworld.Goodbye", "goodbye-"},
	} {
		// -warmup: uncounted calls until the proxy routes to all 3 pods (it learns endpoints
		// a moment after the Deployment is Ready).
		sum, code := s.Greet(t, append(tls, "-service", tc.service, "-n", "300", "-c", "3", "-warmup", "60s", "-expect-backends", "3")...)
		s.Distribution.Add("nginx-ingress (Traefik, TLS :8443): "+tc.service, sum)
		if code != 0 || sum.OK != 300 {
			t.Errorf("%s through the ingress: exit %d, %d ok", tc.service, code, sum.OK)
		}
		h.CheckSpread(t, "ingress "+tc.service, sum, 3, 0.2)
		h.CheckRouting(t, "ingress "+tc.service, sum, tc.grpcService, tc.pods)
	}

	t.Run("h2c :8000", func(t *testing.T) {
		sum, code := s.Greet(t, append(s.HostArgs(tp.Entry.Via(webAddr, false)), "-n", "30")...)
		if code != 0 || sum.OK != 30 {
			t.Errorf("cleartext through the ingress: exit %d, %d ok, errors %+v", code, sum.OK, sum.Errors)
		}
	})
	t.Run("grpcurl", func(t *testing.T) {
		grpcurlSession(t, s, "nginx-ingress", tp.Entry.Target, "-cacert", s.CACert, "-authority", tp.Entry.Authority)
	})
	s.Progressf(tp.Where(), "routing checks done")
}

// deployGateway: the gateway-api overlay through Traefik's Gateway API provider: the
// canary split, header routing, a cross-namespace backend and its ReferenceGrant, the
// header filter, the TLS listener.
func deployGateway(t *testing.T, s *h.Suite, tp h.Topology) {
	grant := filepath.Join(s.Root, "kustomize", "overlays", "gateway-api", "reference-grant")
	s.Apply(t, tp.Overlay)
	createTLSSecret(t, s, gatewayNS)
	s.Kube.Rollout(t, gatewayNS, "hello", "hello-v2")
	s.Kube.Rollout(t, backendsNS, "goodbye")
	s.Kube.Run(t, "-n", gatewayNS, "wait", "--for=condition=Programmed", "gateway/grpc-kit", "--timeout=180s")
	for _, r := range []string{"hello", "goodbye", "reflection"} {
		h.Eventually(t, 2*time.Minute, h.Poll, "GRPCRoute "+r+" Accepted and ResolvedRefs", func() bool {
			a, _ := s.Kube.RouteCondition(t, gatewayNS, r, "Accepted")
			rr, _ := s.Kube.RouteCondition(t, gatewayNS, r, "ResolvedRefs")
			return a == "True" && rr == "True"
		})
	}
	h2c := s.HostArgs(tp.Entry)
	tls := s.HostArgs(tp.Entry.Via(websecureAddr, true))
	s.WaitFirstCalls(t, "gateway h2c", h2c...)

	t.Run("canary 90/10", func(t *testing.T) {
		const n = 2000
		sum, code := s.Greet(t, append(h2c, "-n", strconv.Itoa(n), "-c", "4", "-warmup", "60s", "-expect-backends", strconv.Itoa(tp.Backends))...)
		s.Distribution.Add("gateway-api GRPCRoute (h2c :8000): hello 90/10", sum)
		if code != 0 || sum.OK != n {
			t.Fatalf("exit %d, %d of %d ok: %+v", code, sum.OK, n, sum.Errors)
		}
		checkCanary(t, sum, 0.2)
	})

	t.Run("canary header", func(t *testing.T) {
		sum, code := s.Greet(t, append(h2c, "-H", "x-experiment-group=canary", "-n", "100")...)
		s.Distribution.Add("gateway-api GRPCRoute (h2c :8000): hello, header canary", sum)
		if code != 0 || sum.ByVersion["v2"] != 100 {
			t.Errorf("with x-experiment-group: canary, v2 served %d of 100 (exit %d), want all", sum.ByVersion["v2"], code)
		}
	})

	t.Run("goodbye in another namespace", func(t *testing.T) {
		sum, code := s.Greet(t, append(h2c, "-service", "goodbye", "-n", "300", "-c", "3", "-warmup", "60s", "-expect-backends", "3")...)
		s.Distribution.Add("gateway-api GRPCRoute (h2c :8000): goodbye (cross-namespace)", sum)
		if code != 0 {
			t.Errorf("exit %d", code)
		}
		h.CheckSpread(t, "goodbye", sum, 3, 0.2)
		h.CheckRouting(t, "goodbye", sum, "helloworld.Goodbye", "goodbye-")
		for _, b := range sum.Backends {
			if b.Namespace != backendsNS {
				t.Errorf("goodbye answered from namespace %q, want %s", b.Namespace, backendsNS)
			}
		}
	})

	t.Run("RequestHeaderModifier", func(t *testing.T) {
		reply := s.GreetOne(t, h2c...)
		md, _ := reply["requestMetadata"].(map[string]any)
		if md["x-routed-by"] != "grpc-k8s-kit" {
			t.Errorf("x-routed-by did not reach the backend: request metadata %v", md)
		}
	})

	t.Run("TLS listener", func(t *testing.T) {
		sum, code := s.Greet(t, append(tls, "-n", "300", "-c", "3")...)
		s.Distribution.Add("gateway-api GRPCRoute (TLS :8443): hello 90/10", sum)
		if code != 0 || sum.OK != 300 {
			t.Errorf("TLS listener: exit %d, %d ok: %+v", code, sum.OK, sum.Errors)
		}
	})

	t.Run("ReferenceGrant", func(t *testing.T) {
		s.Kube.Run(t, "delete", "-k", grant)
		t.Cleanup(func() { s.Kube.Cleanup(t, "apply", "-k", grant) })
		took := h.Eventually(t, time.Minute, h.Poll, "goodbye route ResolvedRefs=False without the grant", func() bool {
			st, _ := s.Kube.RouteCondition(t, gatewayNS, "goodbye", "ResolvedRefs")
			return st == "False"
		})
		_, reason := s.Kube.RouteCondition(t, gatewayNS, "goodbye", "ResolvedRefs")
		t.Logf("without the ReferenceGrant: ResolvedRefs=False (%s) after %s", reason, took.Round(time.Second))
		if reason != "RefNotPermitted" {
			t.Errorf("reason %q, want RefNotPermitted", reason)
		}
		h.Eventually(t, time.Minute, h.Poll, "goodbye calls fail without the grant", func() bool {
			sum, _ := s.Greet(t, append(h2c, "-service", "goodbye", "-n", "10", "-retry=false", "-timeout", "3s")...)
			return sum.Failed == 10
		})

		s.Kube.Run(t, "apply", "-k", grant)
		took = h.Eventually(t, time.Minute, h.Poll, "goodbye route ResolvedRefs=True with the grant", func() bool {
			st, _ := s.Kube.RouteCondition(t, gatewayNS, "goodbye", "ResolvedRefs")
			return st == "True"
		})
		t.Logf("with the ReferenceGrant: ResolvedRefs=True after %s", took.Round(time.Second))
		h.Eventually(t, time.Minute, h.Poll, "goodbye calls succeed with the grant", func() bool {
			sum, code := s.Greet(t, append(h2c, "-service", "goodbye", "-n", "10", "-timeout", "3s")...)
			return code == 0 && sum.OK == 10
		})
	})

	t.Run("grpcurl", func(t *testing.T) {
		grpcurlSession(t, s, "gateway (h2c)", tp.Entry.Target, "-plaintext", "-authority", tp.Entry.Authority)
		grpcurlSession(t, s, "gateway (TLS)", websecureAddr, "-cacert", s.CACert, "-authority", tp.Entry.Authority)
	})
	s.Progressf(tp.Where(), "routing checks done")
}
