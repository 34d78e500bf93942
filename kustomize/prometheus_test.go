package kustomize

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	psapi "k8s.io/pod-security-admission/api"
	"sigs.k8s.io/yaml"
)

// The metrics pipeline of the kit's kind cluster: deploy/prometheus-operator (through
// deploy/kind/prometheus-operator) and the Prometheus of deploy/kind/prometheus. They run
// the images scripts/airgap/build-prometheus*.sh build, with least privilege, and the
// Prometheus selects what kustomize/components/prometheus-rule ships.

const (
	operatorDir   = "../deploy/kind/prometheus-operator"
	prometheusDir = "../deploy/kind/prometheus"
	operatorCRDs  = "../deploy/prometheus-operator/crds"
	kindConfig    = "../deploy/kind/cluster.yaml"
)

// versionsVar is a variable of scripts/lib/versions.sh as bash computes it (some are
// derived there, as PROMETHEUS_RELEASE is: the rule is written once, in that file).
func versionsVar(name string) (string, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	out, err := exec.Command("bash", "-c", `REPO_ROOT=$1; die() { echo "$*" >&2; exit 1; }; source "$1/scripts/lib/versions.sh"; printf %s "${!2}"`,
		"bash", root, name).Output()
	if err != nil {
		return "", fmt.Errorf("sourcing scripts/lib/versions.sh for %s: %w", name, err)
	}
	if len(out) == 0 {
		return "", fmt.Errorf("scripts/lib/versions.sh sets no %s", name)
	}
	return string(out), nil
}

// operatorClusterWrites are the only writes the operator may make outside "monitoring" and
// "kube-system" (rbac.yaml says why).
var operatorClusterWrites = map[string][]string{"/events": {"create", "patch"}}

// checkOperator: the operator's pod passes Pod Security "restricted" with a read-only root
// filesystem, resources and probes, runs on the control plane with the images of
// PROMETHEUS_OPERATOR_VERSION; its RBAC has no wildcard, no built-in role, and writes
// cluster-wide only events.
func checkOperator(objs []object, version string) []string {
	var f findings
	var deploy *appsv1.Deployment
	for _, o := range objs {
		switch x := o.Obj.(type) {
		case *appsv1.Deployment:
			deploy = x
			spec := &x.Spec.Template.Spec
			lv := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
			for _, r := range psaEvaluator.EvaluatePod(lv, &x.Spec.Template.ObjectMeta, spec) {
				if !r.Allowed {
					f.add(o, "spec.template.spec", "violates Pod Security \"restricted\": %s (%s)", r.ForbiddenReason, r.ForbiddenDetail)
				}
			}
			if spec.NodeSelector["node-role.kubernetes.io/control-plane"] != "" || len(spec.NodeSelector) != 1 {
				f.add(o, "spec.template.spec.nodeSelector", "%v, want the control plane (deploy/kind/control-plane)", spec.NodeSelector)
			}
			for _, c := range containers(spec, "spec.template.spec") {
				checkResources(&f, o, c)
				if sc := c.c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					f.add(o, c.path+".securityContext.readOnlyRootFilesystem", "must be true")
				}
				if want := "grpc-k8s-kit/prometheus-operator:" + version; c.c.Image != want {
					f.add(o, c.path+".image", "%q, want %q (PROMETHEUS_OPERATOR_VERSION in scripts/lib/versions.sh)", c.c.Image, want)
				}
				if want := "--prometheus-config-reloader=grpc-k8s-kit/prometheus-config-reloader:" + version; !slices.Contains(c.c.Args, want) {
					f.add(o, c.path+".args", "no %s: the default is upstream's image, which no node here can pull", want)
				}
				if c.c.ReadinessProbe == nil || c.c.LivenessProbe == nil {
					f.add(o, c.path, "want a readiness and a liveness probe")
				}
			}
		case *corev1.Namespace:
			if v := x.Labels[psaEnforceLabel]; v != "restricted" {
				f.add(o, "metadata.labels["+psaEnforceLabel+"]", "is %q, want \"restricted\"", v)
			}
		case *rbacv1.ClusterRole:
			for i, r := range x.Rules {
				checkWildcards(&f, o, i, r)
				for _, res := range r.Resources {
					for _, g := range r.APIGroups {
						for _, v := range r.Verbs {
							if !slices.Contains(readVerbs, v) && !slices.Contains(operatorClusterWrites[g+"/"+res], v) {
								f.add(o, fmt.Sprintf("rules[%d]", i), "%s on %s/%s cluster-wide: the operator writes only in monitoring and kube-system (Roles)", v, g, res)
							}
						}
					}
				}
			}
		case *rbacv1.Role:
			for i, r := range x.Rules {
				checkWildcards(&f, o, i, r)
			}
		case *rbacv1.ClusterRoleBinding:
			checkRoleRef(&f, o, x.RoleRef)
		case *rbacv1.RoleBinding:
			checkRoleRef(&f, o, x.RoleRef)
		}
	}
	if deploy == nil {
		return append(f, operatorDir+": no Deployment")
	}
	return f
}

func checkWildcards(f *findings, o object, i int, r rbacv1.PolicyRule) {
	for _, l := range [][]string{r.APIGroups, r.Resources, r.Verbs} {
		if slices.Contains(l, "*") {
			f.add(o, fmt.Sprintf("rules[%d]", i), "has a wildcard: name what is used")
		}
	}
}

func checkRoleRef(f *findings, o object, ref rbacv1.RoleRef) {
	if ref.Kind == "ClusterRole" && slices.Contains([]string{"cluster-admin", "admin", "edit", "view"}, ref.Name) {
		f.add(o, "roleRef", "binds %s: least privilege (rbac.yaml), not a built-in role", ref.Name)
	}
}

// selects: sel (a Prometheus' resource selector) matches these labels. A nil selector
// selects nothing (the operator's rule for every selector but the unmanaged case).
func selects(sel *metav1.LabelSelector, l map[string]string) (bool, error) {
	if sel == nil {
		return false, nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false, err
	}
	return s.Matches(labels.Set(l)), nil
}

// checkPrometheus: the Prometheus object runs the image of PROMETHEUS_VERSION and says its
// release, is non-root, has resources and bounded storage, runs on the control plane, and
// selects (in any namespace) the PodMonitor and PrometheusRule of monitors (the
// prometheus-rule component's) and its own kubelet ServiceMonitor; the host port of its
// Service is one kind publishes on 127.0.0.1.
func checkPrometheus(objs, monitors []object, version, release string, hostPorts map[int32]string) []string {
	var f findings
	p := first[*monitoringv1.Prometheus](objs)
	if p == nil {
		return []string{prometheusDir + ": no Prometheus"}
	}
	po := object{GVK: p.GroupVersionKind(), Obj: p, Namespace: p.Namespace, Name: p.Name}
	if want := "grpc-k8s-kit/prometheus:" + version; p.Spec.Image == nil || *p.Spec.Image != want {
		f.add(po, "spec.image", "want %q (PROMETHEUS_VERSION in scripts/lib/versions.sh)", want)
	}
	if p.Spec.Version != release {
		f.add(po, "spec.version", "%q, want %q, the release the image holds (PROMETHEUS_RELEASE)", p.Spec.Version, release)
	}
	if sc := p.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		f.add(po, "spec.securityContext", "want runAsNonRoot and seccompProfile RuntimeDefault (Pod Security \"restricted\")")
	}
	checkResources(&f, po, container{&corev1.Container{Resources: p.Spec.Resources}, "spec"})
	for _, c := range append(slices.Clone(p.Spec.Containers), p.Spec.InitContainers...) {
		checkResources(&f, po, container{&c, "spec.containers[" + c.Name + "]"})
	}
	if p.Spec.Storage == nil || p.Spec.Storage.EmptyDir == nil || p.Spec.Storage.EmptyDir.SizeLimit == nil {
		f.add(po, "spec.storage.emptyDir.sizeLimit", "missing: the TSDB's volume must be bounded")
	}
	if p.Spec.Retention == "" || p.Spec.RetentionSize == "" {
		f.add(po, "spec.retention", "want retention and retentionSize set")
	}
	if p.Spec.NodeSelector["node-role.kubernetes.io/control-plane"] != "" || len(p.Spec.NodeSelector) != 1 {
		f.add(po, "spec.nodeSelector", "%v, want the control plane", p.Spec.NodeSelector)
	}
	for _, want := range []struct {
		kind       string
		sel, nsSel *metav1.LabelSelector
		from       []object
		field      string
	}{
		{"PodMonitor", p.Spec.PodMonitorSelector, p.Spec.PodMonitorNamespaceSelector, monitors, "podMonitorSelector"},
		{"PrometheusRule", p.Spec.RuleSelector, p.Spec.RuleNamespaceSelector, monitors, "ruleSelector"},
		{"ServiceMonitor", p.Spec.ServiceMonitorSelector, p.Spec.ServiceMonitorNamespaceSelector, objs, "serviceMonitorSelector"},
	} {
		found := false
		for _, o := range want.from {
			if o.GVK.Kind != want.kind {
				continue
			}
			found = true
			ok, err := selects(want.sel, o.Obj.(metav1.Object).GetLabels())
			if err != nil || !ok {
				f.add(po, "spec."+want.field, "does not select %s (labels %v)", o, o.Obj.(metav1.Object).GetLabels())
			}
			// The kit deploys each topology in its own namespace: every namespace.
			if want.nsSel == nil || len(want.nsSel.MatchLabels)+len(want.nsSel.MatchExpressions) != 0 {
				f.add(po, "spec."+strings.Replace(want.field, "Selector", "NamespaceSelector", 1), "want {} (every namespace)")
			}
		}
		if !found {
			f.add(po, "spec."+want.field, "no %s to select in the renders", want.kind)
		}
	}
	for _, o := range objs {
		if s, ok := o.Obj.(*corev1.Service); ok && s.Spec.Type == corev1.ServiceTypeNodePort {
			for _, port := range s.Spec.Ports {
				if hostPorts[port.NodePort] != "127.0.0.1" {
					f.add(o, "spec.ports["+port.Name+"].nodePort", "%d is not published by %s on 127.0.0.1, same port", port.NodePort, kindConfig)
				}
			}
		}
	}
	return f
}

// kindHostPorts: containerPort → listenAddress of the control plane's extraPortMappings
// that publish a node port on the same host port (kind-up reaches Prometheus there).
func kindHostPorts() (map[int32]string, error) {
	data, err := os.ReadFile(kindConfig)
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Nodes []struct {
			Role              string `json:"role"`
			ExtraPortMappings []struct {
				ContainerPort int32  `json:"containerPort"`
				HostPort      int32  `json:"hostPort"`
				ListenAddress string `json:"listenAddress"`
			} `json:"extraPortMappings"`
		} `json:"nodes"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", kindConfig, err)
	}
	out := map[int32]string{}
	for _, n := range cfg.Nodes {
		for _, m := range n.ExtraPortMappings {
			if m.HostPort == m.ContainerPort {
				out[m.ContainerPort] = m.ListenAddress
			}
		}
	}
	return out, nil
}

// pipeline renders the operator, the Prometheus and the component, and reads versions.sh.
type pipeline struct {
	operator, prometheus, monitors []object
	opVersion, version, release    string
	hostPorts                      map[int32]string
}

func loadPipeline(t *testing.T) pipeline {
	t.Helper()
	var p pipeline
	var err error
	for _, v := range []struct {
		dst  *string
		name string
	}{{&p.opVersion, "PROMETHEUS_OPERATOR_VERSION"}, {&p.version, "PROMETHEUS_VERSION"}, {&p.release, "PROMETHEUS_RELEASE"}} {
		if *v.dst, err = versionsVar(v.name); err != nil {
			t.Fatal(err)
		}
	}
	if p.operator, err = render(operatorDir); err != nil {
		t.Fatal(err)
	}
	if p.prometheus, err = render(prometheusDir); err != nil {
		t.Fatal(err)
	}
	if p.monitors, err = render(compose(t, []string{"base"}, []string{"components/prometheus-rule"}, "grpc-kit-any", nil)); err != nil {
		t.Fatal(err)
	}
	if p.hostPorts, err = kindHostPorts(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrometheusPipelineManifests(t *testing.T) {
	p := loadPipeline(t)
	for _, f := range checkOperator(p.operator, p.opVersion) {
		t.Error(f)
	}
	for _, f := range checkPrometheus(p.prometheus, p.monitors, p.version, p.release, p.hostPorts) {
		t.Error(f)
	}
}

// TestPrometheusRelease: versions.sh derives the release from the module version the way
// Prometheus' scripts/get_module_version.sh maps one to the other.
func TestPrometheusRelease(t *testing.T) {
	v, err := versionsVar("PROMETHEUS_VERSION")
	if err != nil {
		t.Fatal(err)
	}
	r, err := versionsVar("PROMETHEUS_RELEASE")
	if err != nil {
		t.Fatal(err)
	}
	var major, minor, patch int
	if _, err := fmt.Sscanf(r, "v%d.%d.%d", &major, &minor, &patch); err != nil {
		t.Fatalf("PROMETHEUS_RELEASE %q: %v", r, err)
	}
	if want := fmt.Sprintf("v0.%d%02d.%d", major, minor, patch); v != want || major != 3 {
		t.Errorf("PROMETHEUS_RELEASE %s maps to module %s, but PROMETHEUS_VERSION is %s", r, want, v)
	}
}

// TestOperatorCRDs: the committed CRDs are of PROMETHEUS_OPERATOR_VERSION (kind-up checks
// the same header), and each file holds the CRD its name says (kind-up waits for
// <plural>.monitoring.coreos.com, read from monitoring.coreos.com_<plural>.yaml).
func TestOperatorCRDs(t *testing.T) {
	version, err := versionsVar("PROMETHEUS_OPERATOR_VERSION")
	if err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile(filepath.Join(operatorCRDs, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^# ` + regexp.QuoteMeta(version) + `\): generated by`).Match(k) {
		t.Errorf("%s/kustomization.yaml is not of %s: run scripts/update-prometheus-operator-crds.sh", operatorCRDs, version)
	}
	files, err := filepath.Glob(filepath.Join(operatorCRDs, "monitoring.coreos.com_*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in %s (%v)", operatorCRDs, err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var crd struct {
			Kind     string            `json:"kind"`
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal(data, &crd); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		plural := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(file), "monitoring.coreos.com_"), ".yaml")
		if want := plural + ".monitoring.coreos.com"; crd.Kind != "CustomResourceDefinition" || crd.Metadata.Name != want {
			t.Errorf("%s: %s %s, want the CRD %s", file, crd.Kind, crd.Metadata.Name, want)
		}
		if !strings.Contains(string(k), "- "+filepath.Base(file)+"\n") {
			t.Errorf("%s is not in %s/kustomization.yaml", file, operatorCRDs)
		}
	}
}

// TestPrometheusChecksCatch: each rule of checkOperator and checkPrometheus fires on the
// fault it is for.
func TestPrometheusChecksCatch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(p *pipeline)
		want   string
	}{
		{"operator: cluster-wide Secret write", func(p *pipeline) {
			cr := first[*rbacv1.ClusterRole](p.operator)
			cr.Rules = append(cr.Rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"update"}})
		}, "update on /secrets cluster-wide"},
		{"operator: wildcard", func(p *pipeline) {
			first[*rbacv1.Role](p.operator).Rules[0].Verbs = []string{"*"}
		}, "has a wildcard"},
		{"operator: cluster-admin", func(p *pipeline) {
			first[*rbacv1.ClusterRoleBinding](p.operator).RoleRef.Name = "cluster-admin"
		}, "binds cluster-admin"},
		{"operator: upstream reloader", func(p *pipeline) {
			d := first[*appsv1.Deployment](p.operator)
			d.Spec.Template.Spec.Containers[0].Args = d.Spec.Template.Spec.Containers[0].Args[1:]
		}, "--prometheus-config-reloader="},
		{"operator: on a worker", func(p *pipeline) {
			first[*appsv1.Deployment](p.operator).Spec.Template.Spec.NodeSelector = nil
		}, "want the control plane"},
		{"prometheus: rules of another label", func(p *pipeline) {
			first[*monitoringv1.Prometheus](p.prometheus).Spec.RuleSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"release": "x"}}
		}, "ruleSelector: does not select"},
		{"prometheus: monitors of its own namespace only", func(p *pipeline) {
			first[*monitoringv1.Prometheus](p.prometheus).Spec.PodMonitorNamespaceSelector = nil
		}, "podMonitorNamespaceSelector: want {}"},
		{"prometheus: image version", func(p *pipeline) {
			img := "grpc-k8s-kit/prometheus:dev"
			first[*monitoringv1.Prometheus](p.prometheus).Spec.Image = &img
		}, "PROMETHEUS_VERSION"},
		{"prometheus: release", func(p *pipeline) {
			first[*monitoringv1.Prometheus](p.prometheus).Spec.Version = "v3.5.0"
		}, "PROMETHEUS_RELEASE"},
		{"prometheus: unbounded storage", func(p *pipeline) {
			first[*monitoringv1.Prometheus](p.prometheus).Spec.Storage = nil
		}, "must be bounded"},
		{"prometheus: port not published", func(p *pipeline) {
			delete(p.hostPorts, first[*corev1.Service](p.prometheus).Spec.Ports[0].NodePort)
		}, "is not published"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := loadPipeline(t)
			tc.mutate(&p)
			fs := append(checkOperator(p.operator, p.opVersion), checkPrometheus(p.prometheus, p.monitors, p.version, p.release, p.hostPorts)...)
			if !slices.ContainsFunc(fs, func(f string) bool { return strings.Contains(f, tc.want) }) {
				t.Errorf("want a finding containing %q, got %q", tc.want, fs)
			}
		})
	}
}
