//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	h "github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/doctor"
)

// The doctor against the proxy topologies: the gateway-api and nginx-ingress overlays'
// own Gateway, GRPCRoutes, ReferenceGrant and Ingress, copied into the doctor's namespaces
// in front of its copy of the kit, so that their faults never touch the topologies under
// test. Only the host name changes (grpc-doctor.kit.local): Traefik serves every Gateway
// and Ingress on the same entry points, and the topologies' hosts must keep reaching their
// own pods.
const (
	doctorBackendsNS = "grpc-kit-doctor-backends" // goodbye, "another team's" namespace, as grpc-kit-gateway-backends
	doctorHost       = "grpc-doctor.kit.local"
)

// routeCase is one diagnosis of a proxy topology: a fault to inject (and its repair), the
// doctor's arguments, and the one error it must report ("" for none).
type routeCase struct {
	name          string
	fault, repair func(t *testing.T)
	args          []string
	check, want   string
	then          func(t *testing.T, rep doctor.Report) // more assertions on the report
}

// runRouteCases runs cs in order; after a repair the same diagnosis must be clean again,
// so that a case leaves the topology as it found it.
func runRouteCases(t *testing.T, s *h.Suite, transcript *bytes.Buffer, cs []routeCase) {
	t.Helper()
	for _, c := range cs {
		t.Run(c.name, func(t *testing.T) {
			if c.fault != nil {
				c.fault(t)
			}
			rep := awaitDoctor(t, s, transcript, c.name, c.check, c.want, c.args...)
			if c.then != nil {
				c.then(t, rep)
			}
			if c.repair != nil {
				c.repair(t)
				awaitDoctor(t, s, transcript, c.name+", repaired", "", "", c.args...)
			}
		})
	}
}

// doctorGatewayAPI deploys gateway-api's Gateway and GRPCRoutes into doctorNS (with the
// canary hello-v2 and the per-version Services they route to), goodbye into
// doctorBackendsNS with the ReferenceGrant, and diagnoses the routes' backends, healthy
// and broken. Everything it deployed is deleted at the end, so the doctor's later cases
// see the kit alone.
func doctorGatewayAPI(t *testing.T, s *h.Suite, transcript *bytes.Buffer) {
	kit := filepath.Join(s.Root, "kustomize", "overlays", "gateway-api")
	shared := filepath.Join(s.Root, "e2e", "components", "shared-node")

	backends := kustomizeDir(t, map[string]string{
		"namespace.yaml": fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels:\n"+
			"    pod-security.kubernetes.io/enforce: restricted\n    pod-security.kubernetes.io/warn: restricted\n", doctorBackendsNS),
	}, "namespace: "+doctorBackendsNS, []string{"namespace.yaml", filepath.Join(s.Root, "kustomize", "base", "goodbye")}, []string{shared}, "")

	grant := kustomizeDir(t, map[string]string{
		"referencegrant.yaml": kitFile(t, kit, "reference-grant", "referencegrant.yaml"),
	}, "namespace: "+doctorBackendsNS, []string{"referencegrant.yaml"}, nil, `
- target: {kind: ReferenceGrant}
  patch: |-
    - op: test
      path: /spec/from/0/namespace
      value: grpc-kit-gateway
    - op: replace
      path: /spec/from/0/namespace
      value: `+doctorNS)

	routes := []string{"gateway.yaml", "grpcroute-hello.yaml", "grpcroute-goodbye.yaml", "grpcroute-reflection.yaml", "services-by-version.yaml"}
	files := map[string]string{}
	for _, f := range routes {
		files[f] = kitFile(t, kit, "gateway", f)
	}
	gateway := kustomizeDir(t, files, "namespace: "+doctorNS,
		append([]string{filepath.Join(s.Root, "kustomize", "base", "hello-v2")}, routes...), []string{shared}, `
- target: {kind: Gateway}
  patch: |-
    - op: replace
      path: /spec/listeners/0/hostname
      value: `+doctorHost+`
    - op: replace
      path: /spec/listeners/1/hostname
      value: `+doctorHost+`
- target: {kind: GRPCRoute}
  patch: |-
    - op: replace
      path: /spec/hostnames/0
      value: `+doctorHost+`
- target: {kind: GRPCRoute, name: goodbye}
  patch: |-
    - op: test
      path: /spec/rules/0/backendRefs/0/namespace
      value: grpc-kit-gateway-backends
    - op: replace
      path: /spec/rules/0/backendRefs/0/namespace
      value: `+doctorBackendsNS)

	s.Kube.Run(t, "apply", "-k", backends)
	if !s.Keep {
		t.Cleanup(func() {
			s.Kube.Cleanup(t, "delete", "namespace", doctorBackendsNS, "--ignore-not-found", "--wait=false")
		})
	}
	createTLSSecret(t, s, doctorNS)
	s.Kube.Run(t, "apply", "-k", gateway)
	s.Kube.Run(t, "apply", "-k", grant)
	// On a failure the objects go at once; on success, below, the test waits for them to.
	t.Cleanup(func() { s.Kube.Cleanup(t, "delete", "-k", gateway, "--ignore-not-found", "--wait=false") })
	s.Kube.Rollout(t, doctorNS, "hello-v2")
	s.Kube.Rollout(t, doctorBackendsNS, "goodbye")
	s.Kube.Run(t, "-n", doctorNS, "wait", "--for=condition=Programmed", "gateway/grpc-kit", "--timeout=180s")

	goodbye := []string{"-n", doctorBackendsNS, "-service", "goodbye-grpc"}
	patchGoodbyePort := func(t *testing.T, port int) {
		t.Helper()
		s.Kube.Run(t, "-n", doctorNS, "patch", "grpcroute", "goodbye", "--type=json",
			"-p", fmt.Sprintf(`[{"op":"replace","path":"/spec/rules/0/backendRefs/0/port","value":%d}]`, port))
	}
	runRouteCases(t, s, transcript, []routeCase{
		{name: "gateway-api: hello-v1, a GRPCRoute backend", args: []string{"-service", "hello-v1"},
			then: func(t *testing.T, rep doctor.Report) {
				if f := find(rep, doctor.CheckBalancing); f == nil || f.Severity != doctor.Info || !strings.Contains(f.Message, "proxy backend") {
					t.Errorf("balancing: want the proxy-backend info, got %+v", f)
				}
				if f := find(rep, doctor.CheckRoute); f == nil || f.Severity != doctor.OK {
					t.Errorf("route: want ok, got %+v", f)
				}
				if f := find(rep, doctor.CheckGateway); f == nil || f.Severity != doctor.OK || !strings.Contains(strings.Join(f.Evidence, "\n"), "TLS Secret "+doctorNS+"/grpc-kit-tls present") {
					t.Errorf("gateway: want ok with the TLS Secret present, got %+v", f)
				}
			}},
		{name: "gateway-api: goodbye-grpc, a backend in another namespace", args: goodbye,
			then: func(t *testing.T, rep doctor.Report) {
				if f := find(rep, doctor.CheckRoute); f == nil || f.Severity != doctor.OK || !strings.Contains(strings.Join(f.Evidence, "\n"), "allowed by ReferenceGrant grpc-kit-gateway-routes") {
					t.Errorf("route: want ok naming the ReferenceGrant, got %+v", f)
				}
			}},
		// The command: the ClusterIP Service that no route sends calls to. The
		// error stands, and names the Services the routes use.
		{name: "gateway-api: hello-grpc, which no route uses", args: []string{"-service", "hello-grpc"},
			check: doctor.CheckBalancing, want: "over a ClusterIP Service",
			then: func(t *testing.T, rep doctor.Report) {
				if f := find(rep, doctor.CheckBalancing); f == nil || !strings.Contains(strings.Join(f.Evidence, "\n"), "hello-v1 (GRPCRoute hello, GRPCRoute reflection)") {
					t.Errorf("balancing evidence should name the routes' Services: %+v", f)
				}
			}},
		{name: "gateway-api: ReferenceGrant removed", args: goodbye,
			fault:  func(t *testing.T) { s.Kube.Run(t, "delete", "-k", grant) },
			repair: func(t *testing.T) { s.Kube.Run(t, "apply", "-k", grant) },
			check:  doctor.CheckRoute, want: "no ReferenceGrant in " + doctorBackendsNS + " allows it",
			then: func(t *testing.T, rep doctor.Report) {
				if f := find(rep, doctor.CheckRoute); f == nil || !strings.Contains(f.Fix, "create a ReferenceGrant in "+doctorBackendsNS) {
					t.Errorf("the fix should name the ReferenceGrant to create: %+v", f)
				}
			}},
		{name: "gateway-api: backendRef port wrong", args: goodbye,
			fault:  func(t *testing.T) { patchGoodbyePort(t, 50052) },
			repair: func(t *testing.T) { patchGoodbyePort(t, 50051) },
			check:  doctor.CheckRoute, want: "port 50052, which is not a port of the Service"},
	})

	s.Kube.Run(t, "delete", "-k", grant, "--ignore-not-found")
	s.Kube.Run(t, "delete", "-k", gateway, "--ignore-not-found", "--timeout=120s")
	// hello-v2's pod is selected by hello-grpc-headless too: the later cases expect the
	// kit's pods alone.
	h.Eventually(t, 2*time.Minute, h.Poll, "hello-v2's pod gone", func() bool {
		return len(s.Kube.Pods(t, doctorNS, "app.kubernetes.io/name=hello,version=v2")) == 0
	})
}

// doctorNginxIngress applies nginx-ingress's Ingress in doctorNS, in front of the doctor's
// hello and goodbye, and diagnoses its backends, healthy and without the annotation that
// makes the controller speak gRPC. The Ingress is deleted at the end.
func doctorNginxIngress(t *testing.T, s *h.Suite, transcript *bytes.Buffer) {
	ingress := kustomizeDir(t, map[string]string{
		"ingress.yaml": kitFile(t, filepath.Join(s.Root, "kustomize", "overlays", "nginx-ingress"), "ingress.yaml"),
	}, "namespace: "+doctorNS, []string{"ingress.yaml"}, nil, `
- target: {kind: Ingress}
  patch: |-
    - op: replace
      path: /spec/rules/0/host
      value: `+doctorHost+`
    - op: replace
      path: /spec/tls/0/hosts/0
      value: `+doctorHost)
	createTLSSecret(t, s, doctorNS)
	s.Kube.Run(t, "apply", "-k", ingress)
	t.Cleanup(func() { s.Kube.Cleanup(t, "delete", "-k", ingress, "--ignore-not-found", "--wait=false") })

	runRouteCases(t, s, transcript, []routeCase{
		{name: "nginx-ingress: hello-grpc, an Ingress backend", args: []string{"-service", "hello-grpc"},
			then: func(t *testing.T, rep doctor.Report) {
				if f := find(rep, doctor.CheckBalancing); f == nil || f.Severity != doctor.Info || !strings.Contains(f.Message, "Ingress grpc-kit sends calls") {
					t.Errorf("balancing: want the proxy-backend info, got %+v", f)
				}
				if f := find(rep, doctor.CheckIngress); f == nil || f.Severity != doctor.OK || !strings.Contains(f.Message, "backend-protocol: GRPC") {
					t.Errorf("ingress: want ok naming the annotation, got %+v", f)
				}
			}},
		{name: "nginx-ingress: goodbye-grpc, an Ingress backend", args: []string{"-service", "goodbye-grpc"}},
		{name: "nginx-ingress: backend-protocol annotation removed", args: []string{"-service", "hello-grpc"},
			fault: func(t *testing.T) {
				s.Kube.Run(t, "-n", doctorNS, "annotate", "ingress", "grpc-kit", "nginx.ingress.kubernetes.io/backend-protocol-")
			},
			repair: func(t *testing.T) { s.Kube.Run(t, "apply", "-k", ingress) },
			check:  doctor.CheckIngress, want: "backend-protocol"},
	})

	s.Kube.Run(t, "delete", "-k", ingress, "--ignore-not-found")
}

// kitFile reads a manifest of the kit, to be copied into a test's kustomization: kustomize
// loads no file from outside a kustomization's directory.
func kitFile(t *testing.T, dir string, path ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{dir}, path...)...))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// kustomizeDir writes files and a kustomization (the namespace line, resources and
// components, absolute paths made relative, and the patches' YAML) into a temporary
// directory and returns it.
func kustomizeDir(t *testing.T, files map[string]string, namespace string, resources, components []string, patches string) string {
	t.Helper()
	dir := t.TempDir()
	rel := func(p string) string {
		if !filepath.IsAbs(p) {
			return p
		}
		r, err := filepath.Rel(dir, p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n%s\nresources:\n", namespace)
	for _, r := range resources {
		fmt.Fprintf(&b, "- %s\n", rel(r))
	}
	if len(components) > 0 {
		b.WriteString("components:\n")
		for _, c := range components {
			fmt.Fprintf(&b, "- %s\n", rel(c))
		}
	}
	if patches != "" {
		b.WriteString("patches:" + patches + "\n")
	}
	files["kustomization.yaml"] = b.String()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
