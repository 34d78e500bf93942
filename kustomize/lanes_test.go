package kustomize

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"
)

// The optional controller lanes (deploy/ingress-nginx, deploy/envoy-gateway) pull the
// upstream release manifests at build time, which a test without network cannot do.
// Instead: their kustomization.yaml is strict, every remote resource is pinned to a
// release, and the lane renders with a local stand-in for the remote file (so its own
// files and patches are checked).

var lanes = map[string]string{
	// lane: a stand-in for its remote resource, with what the lane's patches expect.
	"../deploy/ingress-nginx": `apiVersion: v1
kind: Namespace
metadata: {name: ingress-nginx}
---
apiVersion: v1
kind: Service
metadata: {name: ingress-nginx-controller, namespace: ingress-nginx}
spec:
  type: NodePort
  ports:
  - {name: http, port: 80, protocol: TCP, targetPort: http, appProtocol: http}
  - {name: https, port: 443, protocol: TCP, targetPort: https, appProtocol: https}
`,
	"../deploy/envoy-gateway": `apiVersion: v1
kind: Namespace
metadata: {name: envoy-gateway-system}
`,
}

// pinned: a release tag in the URL (v1.2.3 or controller-v1.2.3), no moving branch.
var pinned = regexp.MustCompile(`/(controller-)?v\d+\.\d+\.\d+/`)
var moving = regexp.MustCompile(`/(latest|main|master|HEAD)/`)

func TestControllerLanes(t *testing.T) {
	for lane, stub := range lanes {
		t.Run(filepath.Base(lane), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(lane, "kustomization.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var k types.Kustomization
			if err := yaml.UnmarshalStrict(data, &k); err != nil {
				t.Fatalf("%s/kustomization.yaml: %v", lane, err)
			}
			if _, err := os.Stat(filepath.Join(lane, "README.md")); err != nil {
				t.Errorf("%s: no README.md", lane)
			}
			// Copy the lane, the remote resource replaced by the stand-in.
			dir := t.TempDir()
			remote := 0
			for i, r := range k.Resources {
				if !strings.HasPrefix(r, "http://") && !strings.HasPrefix(r, "https://") {
					continue
				}
				remote++
				if !strings.HasPrefix(r, "https://") || !pinned.MatchString(r) || moving.MatchString(r) {
					t.Errorf("%s: resources[%d] %s: want an https URL pinned to a release tag", lane, i, r)
				}
				k.Resources[i] = "upstream-stand-in.yaml"
			}
			if remote == 0 {
				t.Errorf("%s: no remote (upstream release) resource", lane)
			}
			files, err := os.ReadDir(lane)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if f.Name() == "kustomization.yaml" || f.IsDir() {
					continue
				}
				b, err := os.ReadFile(filepath.Join(lane, f.Name()))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, f.Name()), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			kdata, err := yaml.Marshal(k)
			if err != nil {
				t.Fatal(err)
			}
			for name, content := range map[string][]byte{"kustomization.yaml": kdata, "upstream-stand-in.yaml": []byte(stub)} {
				if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			objs, err := render(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				t.Log(o)
			}
			if lane == "../deploy/ingress-nginx" {
				checkIngressNginxNodePorts(t, objs)
			}
		})
	}
}

// checkIngressNginxNodePorts: the patch pins the controller's node ports to kind's
// spare, host-mapped ones.
func checkIngressNginxNodePorts(t *testing.T, objs []object) {
	s := find(t, objs, "Service", "ingress-nginx", "ingress-nginx-controller").Obj.(*corev1.Service)
	got := map[string]int32{}
	for _, p := range s.Spec.Ports {
		got[p.Name] = p.NodePort
		if p.TargetPort.String() != p.Name {
			t.Errorf("port %s: targetPort %s lost in the patch", p.Name, p.TargetPort.String())
		}
	}
	if got["http"] != 30081 || got["https"] != 30082 || len(got) != 2 {
		t.Errorf("ingress-nginx-controller node ports %v, want http 30081, https 30082", got)
	}
}

// TestNoKeyMaterialInFiles: no private key, certificate or key file anywhere in the
// kit's manifests (TLS Secrets are created at deploy time).
func TestNoKeyMaterialInFiles(t *testing.T) {
	for _, root := range []string{".", "../deploy/ingress-nginx", "../deploy/envoy-gateway"} {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(path, "_test.go") {
				return err
			}
			switch filepath.Ext(path) {
			case ".key", ".pem", ".crt", ".p12", ".pfx":
				t.Errorf("%s: key or certificate file committed; create the Secret at deploy time", path)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if pemPrivateKey.Match(data) {
				t.Errorf("%s: contains a PEM private key", path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
