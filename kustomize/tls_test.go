package kustomize

import (
	"net"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/certgen"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/greeter"
)

// What the e2e's backendTLS and components/backend-tls/README.md rely on.
const (
	tlsNS           = "grpc-kit-tls"
	backendSecret   = "grpc-kit-backend-tls"
	backendCA       = "grpc-kit-backend-ca"
	tlsIngressHost  = "grpc-tls.kit.local"
	probesNS        = "grpc-kit-probes"
	probeModeBinary = "/app"
)

// TestBackendTLSContract: in e2e/overlays/headless-tls every server serves TLS from the
// Secret and probes with its exec probe mode, every greeter Job trusts the CA ConfigMap,
// the Ingress verifies the backends, and every name a client verifies (greeter targets,
// proxy-ssl-name, BackendTLSPolicy hostnames) is one the backend certificate carries
// (certgen.ServiceNames, what make backend-certs writes).
func TestBackendTLSContract(t *testing.T) {
	objs, err := render("../e2e/overlays/headless-tls")
	if err != nil {
		t.Fatal(err)
	}
	sans := certgen.ServiceNames(tlsNS, "cluster.local", certgen.BackendServices...)
	carried := func(what, name string) {
		t.Helper()
		if !slices.Contains(sans, name) {
			t.Errorf("%s verifies %q, which the backend certificate does not carry (%v)", what, name, sans)
		}
	}
	find(t, objs, "Namespace", "", tlsNS)
	servers := 0
	for _, o := range objs {
		switch x := o.Obj.(type) {
		case *appsv1.Deployment:
			servers++
			spec := x.Spec.Template.Spec
			if !slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Secret != nil && v.Secret.SecretName == backendSecret }) {
				t.Errorf("%s: no volume of Secret %s", o, backendSecret)
			}
			c := spec.Containers[0]
			if !servesTLS(&c) {
				t.Errorf("%s: TLS_CERT_FILE unset: the server would be plaintext", o)
			}
			for name, p := range map[string]*corev1.Probe{"startupProbe": c.StartupProbe, "readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
				if p == nil || p.Exec == nil || !slices.Equal(p.Exec.Command, []string{probeModeBinary, "probe"}) || p.GRPC != nil {
					t.Errorf("%s: %s is not exec [%s probe] alone: %+v", o, name, probeModeBinary, p)
				}
			}
		case *batchv1.Job:
			spec := x.Spec.Template.Spec
			if !slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.ConfigMap != nil && v.ConfigMap.Name == backendCA }) {
				t.Errorf("%s: no volume of ConfigMap %s", o, backendCA)
			}
			for _, c := range containers(&spec, "spec.template.spec") {
				cfg, ok, err := greeterConfig(c.c)
				if !ok || err != nil {
					t.Fatalf("%s: %s: %v", o, c.path, err)
				}
				if cfg.Dial.CACert == "" {
					t.Errorf("%s: %s: no -cacert (GREETER_CACERT): the calls would not be TLS", o, c.path)
				}
				host, _, err := greeter.TargetHostPort(cfg.Dial.Target)
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Dial.Authority != "" {
					host, _, _ = net.SplitHostPort(cfg.Dial.Authority)
				}
				carried(o.String()+" "+c.path, host)
			}
		case *networkingv1.Ingress:
			a := x.Annotations
			for k, v := range map[string]string{
				"nginx.ingress.kubernetes.io/backend-protocol": "GRPCS",
				"nginx.ingress.kubernetes.io/proxy-ssl-verify": "on",
				"nginx.ingress.kubernetes.io/proxy-ssl-secret": tlsNS + "/" + backendCA,
			} {
				if a[k] != v {
					t.Errorf("%s: annotation %s = %q, want %q", o, k, a[k], v)
				}
			}
			carried(o.String()+" proxy-ssl-name", a["nginx.ingress.kubernetes.io/proxy-ssl-name"])
			if !slices.ContainsFunc(x.Spec.TLS, func(t networkingv1.IngressTLS) bool {
				return t.SecretName == tlsSecret && slices.Contains(t.Hosts, tlsIngressHost)
			}) {
				t.Errorf("%s: no TLS section for %s with Secret %s", o, tlsIngressHost, tlsSecret)
			}
		}
	}
	if servers != 2 {
		t.Errorf("%d server Deployments, want hello and goodbye", servers)
	}
	policies, err := render(compose(t, []string{"base"}, []string{"components/backend-tls", "components/backend-tls/gateway-api"}, tlsNS, nil))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, o := range policies {
		if p, ok := o.Obj.(*gatewayv1.BackendTLSPolicy); ok {
			n++
			carried(o.String()+" hostname", string(p.Spec.Validation.Hostname))
			find(t, policies, "Service", tlsNS, string(p.Spec.TargetRefs[0].Name))
			if r := p.Spec.Validation.CACertificateRefs; len(r) != 1 || r[0].Kind != "ConfigMap" || string(r[0].Name) != backendCA {
				t.Errorf("%s: caCertificateRefs %+v, want ConfigMap %s", o, r, backendCA)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d BackendTLSPolicies, want one per ClusterIP Service", n)
	}
}

// TestProbesContract: e2e/overlays/probes has one 2-replica hello per probe style, each
// with its own headless Service selecting only its pods, and the style the name says; the
// native TLS style's server serves TLS from the backend Secret (which the e2e creates in
// the namespace), and all three of its probes are native with mode TLS, with the base's
// periods and thresholds, so its timing compares with the others'.
func TestProbesContract(t *testing.T) {
	objs, err := render("../e2e/overlays/probes")
	if err != nil {
		t.Fatal(err)
	}
	native := find(t, objs, "Deployment", probesNS, "hello-native").Obj.(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
	for _, style := range []string{"native", "exec", "http", "native-tls"} {
		d := find(t, objs, "Deployment", probesNS, "hello-"+style).Obj.(*appsv1.Deployment)
		if ptr.Deref(d.Spec.Replicas, 1) != 2 {
			t.Errorf("hello-%s: %d replicas, want 2", style, *d.Spec.Replicas)
		}
		c := d.Spec.Template.Spec.Containers[0]
		p := c.ReadinessProbe
		got := map[bool]string{true: "native"}[p.GRPC != nil] + map[bool]string{true: "exec"}[p.Exec != nil] + map[bool]string{true: "http"}[p.HTTPGet != nil]
		if p.GRPC != nil && p.GRPC.Mode != nil && *p.GRPC.Mode == corev1.GRPCProbeModeTLS {
			got += "-tls"
		}
		if got != style {
			t.Errorf("hello-%s: readiness probe style %q", style, got)
		}
		if tls := style == "native-tls"; servesTLS(&c) != tls {
			t.Errorf("hello-%s: serves TLS %t, want %t", style, servesTLS(&c), tls)
		}
		if style == "native-tls" {
			if !slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Secret != nil && v.Secret.SecretName == backendSecret }) {
				t.Errorf("hello-native-tls: no volume of Secret %s", backendSecret)
			}
			for name, pp := range map[string][2]*corev1.Probe{"startupProbe": {c.StartupProbe, native.StartupProbe},
				"readinessProbe": {c.ReadinessProbe, native.ReadinessProbe}, "livenessProbe": {c.LivenessProbe, native.LivenessProbe}} {
				want := pp[1].DeepCopy()
				want.GRPC.Mode = ptr.To(corev1.GRPCProbeModeTLS)
				if !equality.Semantic.DeepEqual(pp[0], want) {
					t.Errorf("hello-native-tls %s: %+v, want hello-native's with mode TLS: %+v", name, pp[0], want)
				}
			}
		}
		s := find(t, objs, "Service", probesNS, "hello-grpc-headless-"+style).Obj.(*corev1.Service)
		if s.Spec.Selector["probe-style"] != style {
			t.Errorf("Service hello-grpc-headless-%s selects %v: it would take the other styles' pods", style, s.Spec.Selector)
		}
	}
}

// The TLS rules catch what they are for: a native gRPC probe put back on a TLS server,
// and a Service of TLS pods still saying h2c; and the converse, "https" in front of
// plaintext pods.
func TestTLSRulesCatch(t *testing.T) {
	t.Run("native probe on a TLS server", func(t *testing.T) {
		objs, err := render("../e2e/overlays/headless-tls")
		if err != nil {
			t.Fatal(err)
		}
		d := find(t, objs, "Deployment", tlsNS, "hello").Obj.(*appsv1.Deployment)
		d.Spec.Template.Spec.Containers[0].ReadinessProbe.Exec = nil
		d.Spec.Template.Spec.Containers[0].ReadinessProbe.GRPC = &corev1.GRPCAction{Port: 50051, Service: ptr.To("helloworld.Hello")}
		expectFinding(t, check(objs, true), "Deployment grpc-kit-tls/hello", "containers[hello].readinessProbe.grpc", "cannot speak TLS")
	})
	t.Run("native probe in mode TLS on a plaintext server", func(t *testing.T) {
		objs, err := render("../e2e/overlays/probes")
		if err != nil {
			t.Fatal(err)
		}
		d := find(t, objs, "Deployment", probesNS, "hello-native").Obj.(*appsv1.Deployment)
		d.Spec.Template.Spec.Containers[0].ReadinessProbe.GRPC.Mode = ptr.To(corev1.GRPCProbeModeTLS)
		expectFinding(t, check(objs, true), "Deployment grpc-kit-probes/hello-native", "containers[hello].readinessProbe.grpc.mode", "serves plaintext")
	})
	t.Run("native probe in mode Plaintext on a TLS server", func(t *testing.T) {
		objs, err := render("../e2e/overlays/probes")
		if err != nil {
			t.Fatal(err)
		}
		d := find(t, objs, "Deployment", probesNS, "hello-native-tls").Obj.(*appsv1.Deployment)
		d.Spec.Template.Spec.Containers[0].ReadinessProbe.GRPC.Mode = ptr.To(corev1.GRPCProbeModePlaintext)
		expectFinding(t, check(objs, true), "Deployment grpc-kit-probes/hello-native-tls", "containers[hello].readinessProbe.grpc", "cannot speak TLS")
	})
	t.Run("h2c in front of TLS pods", func(t *testing.T) {
		objs, err := render("../e2e/overlays/headless-tls")
		if err != nil {
			t.Fatal(err)
		}
		find(t, objs, "Service", tlsNS, "hello-grpc").Obj.(*corev1.Service).Spec.Ports[0].AppProtocol = ptr.To(h2c)
		expectFinding(t, check(objs, true), "Service grpc-kit-tls/hello-grpc", "appProtocol", `want "https"`)
	})
	t.Run("https in front of plaintext pods", func(t *testing.T) {
		objs, err := render("overlays/headless")
		if err != nil {
			t.Fatal(err)
		}
		find(t, objs, "Service", headlessNS, "hello-grpc").Obj.(*corev1.Service).Spec.Ports[0].AppProtocol = ptr.To("https")
		expectFinding(t, check(objs, true), "Service grpc-kit-headless/hello-grpc", "appProtocol", `want "kubernetes.io/h2c"`)
	})
}
