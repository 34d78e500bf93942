package apicheck

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/component-base/featuregate"
	featuregatetesting "k8s.io/component-base/featuregate/testing"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	"k8s.io/kubernetes/pkg/apis/apps"
	_ "k8s.io/kubernetes/pkg/apis/apps/install"
	api "k8s.io/kubernetes/pkg/apis/core"
	_ "k8s.io/kubernetes/pkg/apis/core/install"
	"k8s.io/kubernetes/pkg/features"
	"k8s.io/kubernetes/pkg/probe"
	grpcprobe "k8s.io/kubernetes/pkg/probe/grpc"
	"k8s.io/kubernetes/pkg/registry/apps/deployment"
	podstore "k8s.io/kubernetes/pkg/registry/core/pod"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// The probes lane's native TLS style (e2e/overlays/probes/native-tls), as rendered.
const (
	probesOverlay = "../../../../e2e/overlays/probes"
	probesNS      = "grpc-kit-probes"
	nativeTLS     = "hello-native-tls"
)

// The gate is what the kit's docs say: alpha and off by default in the pinned version, so a
// cluster has it only if its components are started with it (deploy/kind/cluster.yaml).
func TestGRPCContainerProbeTLSGateIsAlphaAndOff(t *testing.T) {
	spec, ok := utilfeature.DefaultMutableFeatureGate.GetAll()[features.GRPCContainerProbeTLS]
	if !ok {
		t.Fatalf("feature gate %s is not registered in this Kubernetes version", features.GRPCContainerProbeTLS)
	}
	if spec.PreRelease != featuregate.Alpha || spec.Default {
		t.Errorf("%s: %s, default %t; the docs say alpha and off by default", features.GRPCContainerProbeTLS, spec.PreRelease, spec.Default)
	}
	if utilfeature.DefaultFeatureGate.Enabled(features.GRPCContainerProbeTLS) {
		t.Errorf("%s is enabled without being asked for", features.GRPCContainerProbeTLS)
	}
}

// What the API server does with the kit's manifest: it runs the Deployment through the
// create strategy (PrepareForCreate drops the fields of disabled gates, then Validate),
// and the pods the ReplicaSet makes through the pod's. With the gate on, mode TLS is kept
// on all three probes. With it off (the default), it is dropped silently, from the
// Deployment and from a pod alike: no error, no warning, and what is stored and read back
// has a native probe without mode, which the kubelet dials in plaintext.
func TestGRPCProbeModeDroppedWithTheGateOff(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(map[bool]string{true: "gate on", false: "gate off"}[on], func(t *testing.T) {
			featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.GRPCContainerProbeTLS, on)
			ctx := genericapirequest.WithNamespace(context.Background(), probesNS)

			d := internalDeployment(t, renderedDeployment(t))
			if got := probeModes(d.Spec.Template.Spec.Containers[0]); strings.Join(got, ",") != "TLS,TLS,TLS" {
				t.Fatalf("the rendered %s has probe modes %v before the API server sees it, want TLS on all three", nativeTLS, got)
			}
			deployment.Strategy.PrepareForCreate(ctx, d)
			if errs := deployment.Strategy.Validate(ctx, d); len(errs) > 0 {
				t.Fatalf("Deployment %s rejected: %v", nativeTLS, errs.ToAggregate())
			}
			if w := deployment.Strategy.WarningsOnCreate(ctx, d); len(w) > 0 {
				t.Logf("warnings: %q", w)
			}

			pod := &api.Pod{ObjectMeta: d.Spec.Template.ObjectMeta, Spec: *d.Spec.Template.Spec.DeepCopy()}
			pod.Name, pod.Namespace = nativeTLS+"-abc12", probesNS
			// The pod is made from the template as stored: set the mode again, as a pod
			// written by hand with it would have, so the pod's own path is tested too.
			setModes(&pod.Spec.Containers[0], api.GRPCProbeModeTLS)
			podstore.Strategy.PrepareForCreate(ctx, pod)
			if errs := podstore.Strategy.Validate(ctx, pod); len(errs) > 0 {
				t.Fatalf("pod rejected: %v", errs.ToAggregate())
			}

			want := "TLS,TLS,TLS"
			if !on {
				want = "<none>,<none>,<none>"
			}
			if got := strings.Join(probeModes(d.Spec.Template.Spec.Containers[0]), ","); got != want {
				t.Errorf("Deployment's probe modes after create: %s, want %s", got, want)
			}
			if got := strings.Join(probeModes(pod.Spec.Containers[0]), ","); got != want {
				t.Errorf("pod's probe modes after create: %s, want %s", got, want)
			}
			// What a client reads back (apps/v1, as stored): the field is there or it is not.
			out := &appsv1.Deployment{}
			if err := legacyscheme.Scheme.Convert(d, out, nil); err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(out.Spec.Template.Spec.Containers[0].ReadinessProbe)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), `"mode"`) != on {
				t.Errorf("readinessProbe read back as apps/v1: %s", b)
			}
			t.Logf("readinessProbe read back: %s", b)
		})
	}
}

// With the gate off, an unsupported mode is dropped before validation sees it: a typo is
// not even an error. With the gate on, validation lists the two values.
func TestGRPCProbeModeValues(t *testing.T) {
	for _, tc := range []struct {
		on       bool
		mode     api.GRPCProbeMode
		wantErrs int
	}{
		{true, api.GRPCProbeModeTLS, 0},
		{true, api.GRPCProbeModePlaintext, 0},
		{true, "tls", 3}, // startup, readiness, liveness
		{false, "tls", 0},
	} {
		featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.GRPCContainerProbeTLS, tc.on)
		ctx := genericapirequest.WithNamespace(context.Background(), probesNS)
		d := internalDeployment(t, renderedDeployment(t))
		setModes(&d.Spec.Template.Spec.Containers[0], tc.mode)
		deployment.Strategy.PrepareForCreate(ctx, d)
		var errs field.ErrorList
		for _, e := range deployment.Strategy.Validate(ctx, d) {
			if strings.HasSuffix(e.Field, ".grpc.mode") {
				errs = append(errs, e)
			}
		}
		if len(errs) != tc.wantErrs {
			t.Errorf("gate %t, mode %q: %d errors on grpc.mode, want %d: %v", tc.on, tc.mode, len(errs), tc.wantErrs, errs.ToAggregate())
		}
		if tc.wantErrs > 0 && !strings.Contains(errs[0].Error(), `supported values: "Plaintext", "TLS"`) {
			t.Errorf("the error should list the supported values: %v", errs[0])
		}
	}
}

// An object stored while the gate was on keeps its mode through updates after the gate is
// turned off (the field is "in use" in the old object): turning the gate off does not
// change running Deployments, while new ones lose the field.
func TestGRPCProbeModeKeptOnUpdateOnceInUse(t *testing.T) {
	ctx := genericapirequest.WithNamespace(context.Background(), probesNS)
	old := internalDeployment(t, renderedDeployment(t))
	featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, features.GRPCContainerProbeTLS, false)
	updated := old.DeepCopy()
	updated.Spec.Replicas = 3
	deployment.Strategy.PrepareForUpdate(ctx, updated, old)
	if got := strings.Join(probeModes(updated.Spec.Template.Spec.Containers[0]), ","); got != "TLS,TLS,TLS" {
		t.Errorf("update of a Deployment that has mode TLS, gate off: modes %s, want kept", got)
	}
}

// What the kubelet's gRPC prober does, against a TLS health server whose certificate names
// neither the address dialled nor anything the kubelet trusts: with TLS it passes (the
// certificate is not verified: InsecureSkipVerify), without TLS (no mode, or mode dropped,
// or the kubelet's gate off) it fails at every period, and NOT_SERVING fails over TLS.
func TestKubeletGRPCProberWithTLS(t *testing.T) {
	addr, hs := tlsHealthServer(t)
	host, portStr, _ := net.SplitHostPort(addr)
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatal(err)
	}
	const svc = "helloworld.Hello"
	hs.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)

	p := grpcprobe.New()
	res, out, err := p.Probe(host, svc, port, time.Second, grpcprobe.ProbeOptions{UseTLS: true})
	if err != nil || res != probe.Success {
		t.Errorf("TLS probe of a SERVING TLS server with an unverifiable certificate: %s %q %v, want success (no verification)", res, out, err)
	}
	res, out, _ = p.Probe(host, svc, port, time.Second, grpcprobe.ProbeOptions{UseTLS: false})
	if res != probe.Failure {
		t.Errorf("plaintext probe of a TLS server: %s %q, want failure", res, out)
	}
	t.Logf("plaintext probe of a TLS server: %s: %s", res, out)
	hs.SetServingStatus(svc, healthpb.HealthCheckResponse_NOT_SERVING)
	res, out, _ = p.Probe(host, svc, port, time.Second, grpcprobe.ProbeOptions{UseTLS: true})
	if res != probe.Failure || !strings.Contains(out, "NOT_SERVING") {
		t.Errorf("TLS probe of a NOT_SERVING server: %s %q, want failure naming NOT_SERVING", res, out)
	}
}

// renderedDeployment is hello-native-tls of the probes overlay, as kubectl apply -k sends it.
func renderedDeployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	dir, err := filepath.Abs(probesOverlay)
	if err != nil {
		t.Fatal(err)
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", probesOverlay, err)
	}
	for _, r := range m.Resources() {
		if r.GetKind() != "Deployment" || r.GetName() != nativeTLS {
			continue
		}
		js, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		d := &appsv1.Deployment{}
		if err := json.Unmarshal(js, d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	t.Fatalf("%s renders no Deployment %s", probesOverlay, nativeTLS)
	return nil
}

// internalDeployment is what the API server's decoder makes of a request body: defaulted,
// converted to the internal version.
func internalDeployment(t *testing.T, d *appsv1.Deployment) *apps.Deployment {
	t.Helper()
	body, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	obj, _, err := legacyscheme.Codecs.UniversalDecoder(apps.SchemeGroupVersion).Decode(body, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, ok := obj.(*apps.Deployment)
	if !ok {
		t.Fatalf("decoded %T", obj)
	}
	return out
}

// probeModes: the gRPC mode of the startup, readiness and liveness probes ("<none>" unset,
// "-" not a gRPC probe).
func probeModes(c api.Container) []string {
	var out []string
	for _, p := range []*api.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
		switch {
		case p == nil || p.GRPC == nil:
			out = append(out, "-")
		case p.GRPC.Mode == nil:
			out = append(out, "<none>")
		default:
			out = append(out, string(*p.GRPC.Mode))
		}
	}
	return out
}

func setModes(c *api.Container, m api.GRPCProbeMode) {
	for _, p := range []*api.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
		if p != nil && p.GRPC != nil {
			p.GRPC.Mode = &m
		}
	}
}

// tlsHealthServer: a grpc.health.v1 server on 127.0.0.1 over TLS, with a self-signed
// certificate for a name that is not the address (what a pod's certificate is to the
// kubelet, which dials the pod IP).
func tlsHealthServer(t *testing.T) (string, *health.Server) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hello-grpc-headless"},
		DNSNames: []string{"hello-grpc-headless"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12})))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String(), hs
}
