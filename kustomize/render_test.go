// Package kustomize holds the kit's Kubernetes manifests (base, overlays, components,
// examples) and the tests that render them. The tests need no cluster: every
// kustomization is built with the kustomize library (the same code as kubectl apply -k),
// every object is decoded strictly into its Go type (an unknown or misspelt field fails),
// and the policy checks of policy_test.go run on the result.
package kustomize

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// object is one rendered Kubernetes object, decoded into its Go type.
type object struct {
	GVK       schema.GroupVersionKind
	Namespace string
	Name      string
	Obj       runtime.Object
}

// String names the object the way the findings do: "Kind namespace/name".
func (o object) String() string {
	if o.Namespace == "" {
		return o.GVK.Kind + " " + o.Name
	}
	return o.GVK.Kind + " " + o.Namespace + "/" + o.Name
}

// scheme knows every type the kit's manifests may contain: the built-in kinds of
// client-go, Gateway API v1.6.1 (deploy/gateway-api), the Prometheus Operator's and Istio's
// networking API (DestinationRule, deploy/istiod/crds) at the istiod the kit builds.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme, gatewayv1.Install, gatewayv1beta1.Install, monitoringv1.AddToScheme,
		istionetworkingv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// strictJSON decodes into the registered type and fails on unknown or duplicate fields.
var strictJSON = json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme,
	json.SerializerOptions{Yaml: false, Strict: true})

// decodeStrict turns one object (JSON or YAML) into its Go type. Unknown kinds,
// unknown fields and duplicate fields are errors.
func decodeStrict(data []byte) (object, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return object{}, err
	}
	obj, gvk, err := strictJSON.Decode(js, nil, nil)
	if err != nil {
		return object{}, err
	}
	o := object{GVK: *gvk, Obj: obj}
	if m, ok := obj.(interface {
		GetNamespace() string
		GetName() string
	}); ok {
		o.Namespace, o.Name = m.GetNamespace(), m.GetName()
	}
	return o, nil
}

// render builds the kustomization in dir (relative to this package or absolute) and
// decodes every object strictly.
func render(dir string) ([]object, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var objs []object
	var errs []string
	for _, r := range m.Resources() {
		js, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", dir, r.CurId(), err)
		}
		o, err := decodeStrict(js)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s %s/%s: %v", r.GetKind(), r.GetNamespace(), r.GetName(), err))
			continue
		}
		objs = append(objs, o)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s: objects that do not decode strictly:\n  %s", dir, strings.Join(errs, "\n  "))
	}
	return objs, nil
}

// compose writes a kustomization into a temporary directory: the given resources and
// components (directories relative to this package), the extra files (name: content) as
// more resources, and an optional namespace. It returns that directory.
func compose(t *testing.T, resources, components []string, namespace string, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	var b bytes.Buffer
	b.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n")
	if namespace != "" {
		fmt.Fprintf(&b, "namespace: %s\n", namespace)
	}
	// Relative paths: kustomize refuses absolute ones.
	rel := func(p string) string {
		a, err := filepath.Abs(p)
		if err == nil {
			a, err = filepath.Rel(dir, a)
		}
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	b.WriteString("resources:\n")
	for _, r := range resources {
		fmt.Fprintf(&b, "- %s\n", rel(r))
	}
	names := make([]string, 0, len(extra))
	for name := range extra {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(&b, "- %s\n", name)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(extra[name]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if len(components) > 0 {
		b.WriteString("components:\n")
		for _, c := range components {
			fmt.Fprintf(&b, "- %s\n", rel(c))
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// target is one thing the tests render.
type target struct {
	name       string
	dir        string   // a kustomization of the kit, or empty with components or resources
	components []string // composed onto kustomize/base (or resources) in a temporary kustomization
	resources  []string // composed instead of kustomize/base, when set
	// complete: the render is something one applies as a whole (an overlay, an
	// example), so every reference must resolve inside it and every namespace must be
	// one of its Namespaces.
	complete bool
}

var targets = []target{
	{name: "base", dir: "base"},
	{name: "base/hello", dir: "base/hello"},
	{name: "base/goodbye", dir: "base/goodbye"},
	// The canary alone is not a whole app: with base/hello, as the overlays use it (its pod
	// is covered by hello's disruption budget).
	{name: "base/hello+hello-v2", resources: []string{"base/hello", "base/hello-v2"}},
	{name: "overlays/headless", dir: "overlays/headless", complete: true},
	{name: "overlays/nginx-ingress", dir: "overlays/nginx-ingress", complete: true},
	{name: "overlays/gateway-api", dir: "overlays/gateway-api", complete: true},
	{name: "overlays/proxyless-xds", dir: "overlays/proxyless-xds", complete: true},
	{name: "overlays/gateway-api/gateway", dir: "overlays/gateway-api/gateway"},
	{name: "overlays/gateway-api/backends", dir: "overlays/gateway-api/backends"},
	{name: "overlays/gateway-api/reference-grant", dir: "overlays/gateway-api/reference-grant"},
	{name: "base+components/network-policies", components: []string{"components/network-policies"}},
	{name: "base+components/prometheus-rule", components: []string{ruleComponent}},
	// What the e2e suite would apply for its alert tests: the rules made fast.
	{name: "base+components/prometheus-rule+e2e/components/fast-alerts", components: []string{ruleComponent, fastAlertsComponent}},
	{name: "base+components/mesh-gamma", components: []string{"components/mesh-gamma"}},
	{name: "base+components/mesh-gamma+xds-least-request", components: []string{"components/mesh-gamma", "components/xds-least-request"}},
	{name: "base+components/admin-endpoint-for-tests", components: []string{adminComponent}},
	{name: "base+components/backend-tls", components: []string{"components/backend-tls"}},
	{name: "base+components/backend-tls+gateway-api", components: []string{"components/backend-tls", "components/backend-tls/gateway-api"}},
	// The menu of kustomize/ (menu_test.go), as it stands: the headless topology.
	{name: "kustomization.yaml (the menu)", dir: ".", complete: true},
	{name: "examples/all-in-one", dir: "examples/all-in-one", complete: true},
	{name: "examples/gateway-envoy", dir: "examples/gateway-envoy", complete: true},
	// What the e2e suite applies: an overlay plus components/admin-endpoint-for-tests.
	{name: "e2e/overlays/headless", dir: "../e2e/overlays/headless", complete: true},
	{name: "e2e/overlays/headless-capacity", dir: "../e2e/overlays/headless-capacity", complete: true},
	{name: "e2e/overlays/nginx-ingress", dir: "../e2e/overlays/nginx-ingress", complete: true},
	{name: "e2e/overlays/gateway-api", dir: "../e2e/overlays/gateway-api", complete: true},
	{name: "e2e/overlays/gateway-api/gateway", dir: "../e2e/overlays/gateway-api/gateway"},
	{name: "e2e/overlays/gateway-api/backends", dir: "../e2e/overlays/gateway-api/backends"},
	{name: "e2e/overlays/proxyless-xds", dir: "../e2e/overlays/proxyless-xds", complete: true},
	{name: "e2e/overlays/proxyless-xds-least-request", dir: "../e2e/overlays/proxyless-xds-least-request"},
	// The TLS topology and the probe styles (e2e only: no kustomize/overlays twin).
	{name: "e2e/overlays/headless-tls", dir: "../e2e/overlays/headless-tls", complete: true},
	{name: "e2e/overlays/probes", dir: "../e2e/overlays/probes", complete: true},
	{name: "e2e/overlays/probes/native", dir: "../e2e/overlays/probes/native"},
	{name: "e2e/overlays/probes/exec", dir: "../e2e/overlays/probes/exec"},
	{name: "e2e/overlays/probes/http", dir: "../e2e/overlays/probes/http"},
	{name: "e2e/overlays/probes/native-tls", dir: "../e2e/overlays/probes/native-tls"},
}

func (tg target) render(t *testing.T) []object {
	t.Helper()
	dir := tg.dir
	if dir == "" {
		resources := tg.resources
		if resources == nil {
			resources = []string{"base"}
		}
		dir = compose(t, resources, tg.components, "", nil)
	}
	objs, err := render(dir)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// TestRender renders every kustomization of the kit, decodes every object strictly and
// runs every policy check on it.
func TestRender(t *testing.T) {
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			objs := tg.render(t)
			if len(objs) == 0 {
				t.Fatal("renders no object")
			}
			for _, o := range objs {
				t.Log(o)
			}
			for _, f := range checkSpread(objs, tg.complete, strings.HasPrefix(tg.name, "e2e/")) {
				t.Error(f)
			}
		})
	}
}

// TestEveryKustomizationIsRendered fails when a kustomization or component is added
// under kustomize/ (or e2e/overlays/) without a line in targets, so nothing escapes the
// checks.
func TestEveryKustomizationIsRendered(t *testing.T) {
	covered := map[string]bool{}
	for _, tg := range targets {
		if tg.dir != "" {
			covered[tg.dir] = true
		}
		for _, r := range tg.resources {
			covered[r] = true
		}
		for _, c := range tg.components {
			covered[c] = true
		}
	}
	for _, root := range []string{".", "../e2e/overlays"} {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || d.Name() != "kustomization.yaml" {
				return nil
			}
			dir := filepath.ToSlash(filepath.Dir(path))
			if !covered[dir] {
				t.Errorf("%s: not rendered by any test: add it to targets in render_test.go", path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestStrictDecodingRejectsUnknownFields: a misspelt field (clusterIp instead of
// clusterIP) must not be dropped silently, and unknown kinds must not pass untyped.
func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"misspelt field", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {clusterIp: None}\n", `unknown field "spec.clusterIp"`},
		{"duplicate field", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  type: ClusterIP\n  type: ClusterIP\n", "type"},
		{"unknown Gateway API field", "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: x}\nspec: {rules: [{backendRef: []}]}\n", `unknown field "spec.rules[0].backendRef"`},
		{"unknown kind", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n", "no kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeStrict([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decodeStrict = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// find returns the rendered object of that kind, namespace and name, or fails.
func find(t *testing.T, objs []object, kind, ns, name string) object {
	t.Helper()
	for _, o := range objs {
		if o.GVK.Kind == kind && o.Namespace == ns && o.Name == name {
			return o
		}
	}
	var have []string
	for _, o := range objs {
		have = append(have, o.String())
	}
	t.Fatalf("no %s %s/%s in the render; have:\n  %s", kind, ns, name, strings.Join(have, "\n  "))
	return object{}
}

func names(objs []object, kind string) []string {
	var out []string
	for _, o := range objs {
		if o.GVK.Kind == kind {
			out = append(out, o.Namespace+"/"+o.Name)
		}
	}
	slices.Sort(out)
	return out
}
