package kustomize

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// The kit also applies manifests outside kustomize/: the controllers (deploy/, e.g.
// deploy/traefik) and the smoke test (scripts/smoke/smoke.yaml). They are not templates of
// the servers, so not every rule of checkPod fits them (Traefik needs its service account
// token), but every container they run is sized like the kit's own (checkResources).
var appliedRoots = []string{"../deploy", "../scripts"}

// mustCheck: workloads that must be found under appliedRoots, so that moving or renaming
// one does not silently take it out of the check.
var mustCheck = []string{"Deployment traefik/traefik", "Deployment kit-smoke/smoke", "Deployment istio-system/istiod"}

var workloadKinds = []string{"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// appliedWorkloads decodes, strictly, every workload of every YAML file under
// appliedRoots. (deploy/ingress-nginx and deploy/envoy-gateway fetch upstream release
// manifests at build time: only their local files are here.)
func appliedWorkloads(t *testing.T) []object {
	t.Helper()
	var out []object
	for _, root := range appliedRoots {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || (filepath.Ext(path) != ".yaml" && filepath.Ext(path) != ".yml") {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for i, doc := range docSeparator.Split(string(data), -1) {
				var tm struct{ Kind string }
				if err := yaml.Unmarshal([]byte(doc), &tm); err != nil || !slices.Contains(workloadKinds, tm.Kind) {
					continue
				}
				o, err := decodeStrict([]byte(doc))
				if err != nil {
					t.Errorf("%s: document %d: %v", path, i, err)
					continue
				}
				out = append(out, o)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func checkAppliedResources(objs []object) []string {
	var f findings
	for _, o := range objs {
		if spec, _, path := podTemplate(o); spec != nil {
			for _, c := range containers(spec, path) {
				checkResources(&f, o, c)
			}
		}
	}
	return f
}

// TestAppliedManifestsHaveResources: CPU, memory and ephemeral-storage requests and
// limits on every container and init container of deploy/ and scripts/.
func TestAppliedManifestsHaveResources(t *testing.T) {
	objs := appliedWorkloads(t)
	var have []string
	for _, o := range objs {
		have = append(have, o.String())
	}
	for _, w := range mustCheck {
		if !slices.Contains(have, w) {
			t.Errorf("%s not found under %v (have %v): update mustCheck if it moved", w, appliedRoots, have)
		}
	}
	for _, f := range checkAppliedResources(objs) {
		t.Error(f)
	}
}

// TestAppliedManifestResourcesMutation: the check catches a missing limit.
func TestAppliedManifestResourcesMutation(t *testing.T) {
	objs := appliedWorkloads(t)
	for _, o := range objs {
		if o.String() == "Deployment traefik/traefik" {
			spec, _, _ := podTemplate(o)
			delete(spec.Containers[0].Resources.Limits, corev1.ResourceEphemeralStorage)
		}
	}
	fs := checkAppliedResources(objs)
	expectFinding(t, fs, "Deployment traefik/traefik", "containers[traefik].resources.limits.ephemeral-storage", "missing")
	if len(fs) != 1 || !strings.Contains(fs[0], "traefik") {
		t.Errorf("want exactly the one finding, got %q", fs)
	}
}
