package kustomize

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"
)

// The rules of components/prometheus-rule run in Prometheus' own evaluator: promtool
// checks them and runs their unit tests (testdata/), on the template and on the e2e's
// faster variant of it. make test builds promtool first (scripts/build-promtool.sh).

const (
	ruleComponent       = "components/prometheus-rule"
	fastAlertsComponent = "../e2e/components/fast-alerts"
)

func TestPrometheusRules(t *testing.T) {
	promtool := promtoolPath(t)
	for _, tc := range []struct {
		name       string
		components []string
		tests      string // promtool unit tests; their rule_files is rules.yaml
	}{
		{"template", []string{ruleComponent}, "testdata/prometheus-rule-tests.yaml"},
		{"e2e fast-alerts", []string{ruleComponent, fastAlertsComponent}, "testdata/fast-alerts-tests.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rules := filepath.Join(dir, "rules.yaml")
			writeRuleGroups(t, target{components: tc.components}.render(t), rules)
			tests, err := os.ReadFile(tc.tests)
			if err != nil {
				t.Fatal(err)
			}
			testsFile := filepath.Join(dir, filepath.Base(tc.tests))
			if err := os.WriteFile(testsFile, tests, 0o644); err != nil {
				t.Fatal(err)
			}
			out := runPromtool(t, promtool, "check", "rules", "--lint=all", "--lint-fatal", rules)
			t.Logf("promtool check rules:\n%s", out)
			out = runPromtool(t, promtool, "test", "rules", testsFile)
			t.Logf("promtool test rules %s:\n%s", tc.tests, out)
		})
	}
}

// writeRuleGroups writes the spec.groups of the render's one PrometheusRule as a
// Prometheus rule file, as the Operator hands them to Prometheus.
func writeRuleGroups(t *testing.T, objs []object, path string) {
	t.Helper()
	var rules []*monitoringv1.PrometheusRule
	for _, o := range objs {
		if r, ok := o.Obj.(*monitoringv1.PrometheusRule); ok {
			rules = append(rules, r)
		}
	}
	if len(rules) != 1 {
		t.Fatalf("%d PrometheusRules in the render, want 1", len(rules))
	}
	b, err := yaml.Marshal(struct {
		Groups []monitoringv1.RuleGroup `json:"groups"`
	}{rules[0].Spec.Groups})
	if err != nil {
		t.Fatalf("PrometheusRule %s: spec.groups to YAML: %v", rules[0].Name, err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// promtoolPath is $PROMTOOL when set, else where scripts/build-promtool.sh builds it
// (make test runs that first). A missing promtool fails the test, saying how to build it.
func promtoolPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("PROMTOOL")
	if p == "" {
		out, err := exec.Command("../scripts/build-promtool.sh", "--path").Output()
		if err != nil {
			t.Fatalf("where promtool goes: ../scripts/build-promtool.sh --path: %v", err)
		}
		p = strings.TrimSpace(string(out))
	}
	if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("no promtool at %s: build it with `make promtool` (scripts/build-promtool.sh: a few minutes, once per Prometheus version; make test does it first), or point PROMTOOL at one", p)
	}
	return p
}

func runPromtool(t *testing.T, promtool string, args ...string) string {
	t.Helper()
	out, err := exec.Command(promtool, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestPodMonitorDeploymentLabel applies the PodMonitor's relabeling that sets the
// deployment label the share-of-calls rules group by, as Prometheus does (its regular
// expressions are Go's, anchored at both ends), to the controller of pods the kit runs.
func TestPodMonitorDeploymentLabel(t *testing.T) {
	var pm *monitoringv1.PodMonitor
	for _, o := range (target{components: []string{ruleComponent}}).render(t) {
		if m, ok := o.Obj.(*monitoringv1.PodMonitor); ok {
			pm = m
		}
	}
	if pm == nil || len(pm.Spec.PodMetricsEndpoints) != 1 {
		t.Fatal("want one PodMonitor with one endpoint in the render")
	}
	var rc *monitoringv1.RelabelConfig
	for i, r := range pm.Spec.PodMetricsEndpoints[0].RelabelConfigs {
		if r.TargetLabel == "deployment" {
			rc = &pm.Spec.PodMetricsEndpoints[0].RelabelConfigs[i]
		}
	}
	if rc == nil || rc.Action != "replace" || rc.Replacement == nil {
		t.Fatalf("no relabeling replacing the deployment label in %+v", pm.Spec.PodMetricsEndpoints[0].RelabelConfigs)
	}
	re := regexp.MustCompile("^(?:" + rc.Regex + ")$")
	for _, tc := range []struct {
		meta map[string]string // the pod's __meta_kubernetes_* labels
		want string            // "" = no deployment label
	}{
		{map[string]string{"__meta_kubernetes_pod_controller_kind": "ReplicaSet", "__meta_kubernetes_pod_controller_name": "hello-57979b9569", "__meta_kubernetes_pod_label_pod_template_hash": "57979b9569"}, "hello"},
		// The canary is a Deployment of its own.
		{map[string]string{"__meta_kubernetes_pod_controller_kind": "ReplicaSet", "__meta_kubernetes_pod_controller_name": "hello-v2-598dc9d975", "__meta_kubernetes_pod_label_pod_template_hash": "598dc9d975"}, "hello-v2"},
		{map[string]string{"__meta_kubernetes_pod_controller_kind": "ReplicaSet", "__meta_kubernetes_pod_controller_name": "goodbye-6db785585f", "__meta_kubernetes_pod_label_pod_template_hash": "6db785585f"}, "goodbye"},
		// Not a Deployment's: a ReplicaSet of its own (no hash label), a StatefulSet.
		{map[string]string{"__meta_kubernetes_pod_controller_kind": "ReplicaSet", "__meta_kubernetes_pod_controller_name": "hello-rs"}, ""},
		{map[string]string{"__meta_kubernetes_pod_controller_kind": "StatefulSet", "__meta_kubernetes_pod_controller_name": "hello-db", "__meta_kubernetes_pod_label_pod_template_hash": "x"}, ""},
	} {
		var vals []string
		for _, l := range rc.SourceLabels {
			vals = append(vals, tc.meta[string(l)])
		}
		sep := ";" // Prometheus' default
		if rc.Separator != nil {
			sep = *rc.Separator
		}
		got := ""
		if m := re.FindStringSubmatchIndex(strings.Join(vals, sep)); m != nil {
			got = string(re.ExpandString(nil, *rc.Replacement, strings.Join(vals, sep), m))
		}
		if got != tc.want {
			t.Errorf("pod of %s %s: deployment=%q, want %q", tc.meta["__meta_kubernetes_pod_controller_kind"], tc.meta["__meta_kubernetes_pod_controller_name"], got, tc.want)
		}
	}
}
