//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

// Traefik's entry points as kind-up publishes them on the host (deploy/kind/README.md).
const (
	webAddr       = "127.0.0.1:8000" // h2c
	websecureAddr = "127.0.0.1:8443" // TLS
	tlsSecret     = "grpc-kit-tls"
)

// createTLSSecret stores the suite's certificate as the Secret the overlays reference.
func createTLSSecret(t *testing.T, ns string) {
	t.Helper()
	y := e.k.run(t, "-n", ns, "create", "secret", "tls", tlsSecret,
		"--cert", filepath.Join(e.certDir, "tls.crt"), "--key", filepath.Join(e.certDir, "tls.key"),
		"--dry-run=client", "-o", "yaml")
	e.k.runStdin(t, y, "apply", "-f", "-")
}

// waitFirstCalls waits until calls through an entry point succeed (an Ingress has no
// readiness condition; the proxy picks routes up a moment after they are applied).
func waitFirstCalls(t *testing.T, what string, args ...string) {
	t.Helper()
	took := eventually(t, 2*time.Minute, what, func() bool {
		_, code := greet(t, append(args, "-n", "3", "-max-errors", "0", "-timeout", "3s")...)
		return code == 0
	})
	t.Logf("%s: first calls succeeded after %s", what, took.Round(time.Second))
}

// waitBackends waits until calls through an entry point reach n distinct pods and a
// following burst has no error. A first successful call is not enough behind a weighted
// split: the proxy may know the 90 % backend and still answer "no available server" for
// the 10 % one, whose endpoints it learns a moment later.
func waitBackends(t *testing.T, what string, n int, args ...string) {
	t.Helper()
	took := eventually(t, 3*time.Minute, what+": "+strconv.Itoa(n)+" backends answer", func() bool {
		_, code := greet(t, append(args, "-warmup", "60s", "-n", "40", "-c", "2", "-timeout", "3s",
			"-expect-backends", strconv.Itoa(n), "-max-errors", "0")...)
		return code == 0
	})
	t.Logf("%s: %d backends answer after %s", what, n, took.Round(time.Second))
}

// greetOne makes a single call and returns the reply as JSON fields.
func greetOne(t *testing.T, args ...string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	c := exec.CommandContext(ctx, e.greeter, append(args, "-n", "1", "-json")...)
	c.Stdout = &out
	if err := c.Run(); err != nil {
		t.Fatalf("greeter %v: %v", args, err)
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("greeter reply: %v\n%s", err, out.String())
	}
	return m
}

// checkCanary: of a run's calls, v2 served 10 % (inside the binomial 99.9 % interval),
// and the three v1 pods the rest, each within v1Skew of an even share of v1's calls.
func checkCanary(t *testing.T, s report.Summary, v1Skew float64) {
	t.Helper()
	n := s.OK
	lo, hi := binomial999(n, 0.10)
	v2 := float64(s.ByVersion["v2"])
	t.Logf("v2 served %.0f of %d calls (99.9%% interval around 10%%: %.0f–%.0f)", v2, n, lo, hi)
	if v2 < lo || v2 > hi {
		t.Errorf("canary share %.1f%% outside the 99.9%% interval [%.0f, %.0f] of %d calls", 100*v2/float64(n), lo, hi, n)
	}
	checkRouting(t, "canary", s, "helloworld.Hello", "hello-")
	var v1 report.Summary
	v1.OK = s.ByVersion["v1"]
	for _, b := range s.Backends {
		if b.Version == "v1" {
			v1.Backends = append(v1.Backends, b)
		}
	}
	checkSpread(t, "v1 pods behind the canary split", v1, 3, v1Skew)
}

// binomial999 is the two-sided 99.9% interval of a Binomial(n, p) count (normal
// approximation, z = 3.29).
func binomial999(n int64, p float64) (lo, hi float64) {
	mean, sd := float64(n)*p, math.Sqrt(float64(n)*p*(1-p))
	return mean - 3.29*sd, mean + 3.29*sd
}

const (
	ingressNS   = "grpc-kit-ingress"
	ingressHost = "grpc-ingress.kit.local"
)

// The nginx-ingress overlay, served by Traefik's ingress-nginx provider here (and by
// ingress-nginx itself on machines that can pull it).
// Then the resilience scenarios, under load, while the other topologies run theirs.
func TestNginxIngress(t *testing.T) {
	t.Parallel()
	node.enter(t)
	dir := overlayDir("nginx-ingress")
	e.k.run(t, "apply", "-k", dir)
	createTLSSecret(t, ingressNS)
	e.k.rollout(t, ingressNS, "hello", "goodbye")

	tls := []string{"-target", websecureAddr, "-authority", ingressHost, "-cacert", e.caCert, "-health-check=false"}
	waitFirstCalls(t, "nginx-ingress TLS", tls...)

	for _, tc := range []struct{ service, grpcService, pods string }{
		{"hello", "helloworld.Hello", "hello-"},
		{"goodbye", "helloworld.Goodbye", "goodbye-"},
	} {
		// -warmup: uncounted calls until the proxy routes to all 3 pods (it learns endpoints
		// a moment after the Deployment is Ready).
		s, code := greet(t, append(tls, "-service", tc.service, "-n", "300", "-c", "3", "-warmup", "60s", "-expect-backends", "3")...)
		results.add("nginx-ingress (Traefik, TLS :8443): "+tc.service, s)
		if code != 0 || s.OK != 300 {
			t.Errorf("%s through the ingress: exit %d, %d ok", tc.service, code, s.OK)
		}
		checkSpread(t, "ingress "+tc.service, s, 3, 0.2)
		checkRouting(t, "ingress "+tc.service, s, tc.grpcService, tc.pods)
	}

	t.Run("h2c :8000", func(t *testing.T) {
		s, code := greet(t, "-target", webAddr, "-authority", ingressHost, "-health-check=false", "-n", "30")
		if code != 0 || s.OK != 30 {
			t.Errorf("cleartext through the ingress: exit %d, %d ok, errors %+v", code, s.OK, s.Errors)
		}
	})
	t.Run("grpcurl", func(t *testing.T) {
		grpcurlSession(t, "nginx-ingress", websecureAddr, "-cacert", e.caCert, "-authority", ingressHost)
	})
	progressf("nginx-ingress", "routing checks done")
	t.Run("resilience", func(t *testing.T) { runResilience(t, ingressTopo()) })
}

const (
	gatewayNS   = "grpc-kit-gateway"
	backendsNS  = "grpc-kit-gateway-backends"
	gatewayHost = "grpc-gateway.kit.local"
)

// The gateway-api overlay through Traefik's Gateway API provider; then the resilience
// scenarios, under load, while the other topologies run theirs.
func TestGatewayAPI(t *testing.T) {
	t.Parallel()
	node.enter(t)
	dir := overlayDir("gateway-api")
	grant := filepath.Join(e.root, "kustomize", "overlays", "gateway-api", "reference-grant")
	e.k.run(t, "apply", "-k", dir)
	createTLSSecret(t, gatewayNS)
	e.k.rollout(t, gatewayNS, "hello", "hello-v2")
	e.k.rollout(t, backendsNS, "goodbye")
	e.k.run(t, "-n", gatewayNS, "wait", "--for=condition=Programmed", "gateway/grpc-kit", "--timeout=180s")
	for _, r := range []string{"hello", "goodbye", "reflection"} {
		eventually(t, 2*time.Minute, "GRPCRoute "+r+" Accepted and ResolvedRefs", func() bool {
			a, _ := e.k.routeCondition(t, gatewayNS, r, "Accepted")
			rr, _ := e.k.routeCondition(t, gatewayNS, r, "ResolvedRefs")
			return a == "True" && rr == "True"
		})
	}
	h2c := []string{"-target", webAddr, "-authority", gatewayHost, "-health-check=false"}
	tls := []string{"-target", websecureAddr, "-authority", gatewayHost, "-cacert", e.caCert, "-health-check=false"}
	waitFirstCalls(t, "gateway h2c", h2c...)

	t.Run("canary 90/10", func(t *testing.T) {
		const n = 2000
		s, code := greet(t, append(h2c, "-n", strconv.Itoa(n), "-c", "4", "-warmup", "60s", "-expect-backends", "4")...)
		results.add("gateway-api GRPCRoute (h2c :8000): hello 90/10", s)
		if code != 0 || s.OK != n {
			t.Fatalf("exit %d, %d of %d ok: %+v", code, s.OK, n, s.Errors)
		}
		checkCanary(t, s, 0.2)
	})

	t.Run("canary header", func(t *testing.T) {
		s, code := greet(t, append(h2c, "-H", "x-experiment-group=canary", "-n", "100")...)
		results.add("gateway-api GRPCRoute (h2c :8000): hello, header canary", s)
		if code != 0 || s.ByVersion["v2"] != 100 {
			t.Errorf("with x-experiment-group: canary, v2 served %d of 100 (exit %d), want all", s.ByVersion["v2"], code)
		}
	})

	t.Run("goodbye in another namespace", func(t *testing.T) {
		s, code := greet(t, append(h2c, "-service", "goodbye", "-n", "300", "-c", "3", "-warmup", "60s", "-expect-backends", "3")...)
		results.add("gateway-api GRPCRoute (h2c :8000): goodbye (cross-namespace)", s)
		if code != 0 {
			t.Errorf("exit %d", code)
		}
		checkSpread(t, "goodbye", s, 3, 0.2)
		checkRouting(t, "goodbye", s, "helloworld.Goodbye", "goodbye-")
		for _, b := range s.Backends {
			if b.Namespace != backendsNS {
				t.Errorf("goodbye answered from namespace %q, want %s", b.Namespace, backendsNS)
			}
		}
	})

	t.Run("RequestHeaderModifier", func(t *testing.T) {
		reply := greetOne(t, h2c...)
		md, _ := reply["requestMetadata"].(map[string]any)
		if md["x-routed-by"] != "grpc-k8s-kit" {
			t.Errorf("x-routed-by did not reach the backend: request metadata %v", md)
		}
	})

	t.Run("TLS listener", func(t *testing.T) {
		s, code := greet(t, append(tls, "-n", "300", "-c", "3")...)
		results.add("gateway-api GRPCRoute (TLS :8443): hello 90/10", s)
		if code != 0 || s.OK != 300 {
			t.Errorf("TLS listener: exit %d, %d ok: %+v", code, s.OK, s.Errors)
		}
	})

	t.Run("ReferenceGrant", func(t *testing.T) {
		e.k.run(t, "delete", "-k", grant)
		t.Cleanup(func() { e.k.exec("apply", "-k", grant) })
		took := eventually(t, time.Minute, "goodbye route ResolvedRefs=False without the grant", func() bool {
			st, _ := e.k.routeCondition(t, gatewayNS, "goodbye", "ResolvedRefs")
			return st == "False"
		})
		_, reason := e.k.routeCondition(t, gatewayNS, "goodbye", "ResolvedRefs")
		t.Logf("without the ReferenceGrant: ResolvedRefs=False (%s) after %s", reason, took.Round(time.Second))
		if reason != "RefNotPermitted" {
			t.Errorf("reason %q, want RefNotPermitted", reason)
		}
		eventually(t, time.Minute, "goodbye calls fail without the grant", func() bool {
			s, _ := greet(t, append(h2c, "-service", "goodbye", "-n", "10", "-retry=false", "-timeout", "3s")...)
			return s.Failed == 10
		})

		e.k.run(t, "apply", "-k", grant)
		took = eventually(t, time.Minute, "goodbye route ResolvedRefs=True with the grant", func() bool {
			st, _ := e.k.routeCondition(t, gatewayNS, "goodbye", "ResolvedRefs")
			return st == "True"
		})
		t.Logf("with the ReferenceGrant: ResolvedRefs=True after %s", took.Round(time.Second))
		eventually(t, time.Minute, "goodbye calls succeed with the grant", func() bool {
			s, code := greet(t, append(h2c, "-service", "goodbye", "-n", "10", "-timeout", "3s")...)
			return code == 0 && s.OK == 10
		})
	})

	t.Run("grpcurl", func(t *testing.T) {
		grpcurlSession(t, "gateway (h2c)", webAddr, "-plaintext", "-authority", gatewayHost)
		grpcurlSession(t, "gateway (TLS)", websecureAddr, "-cacert", e.caCert, "-authority", gatewayHost)
	})
	progressf("gateway-api", "routing checks done")
	t.Run("resilience", func(t *testing.T) { runResilience(t, gatewayTopo()) })
}
