package kustomize

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	psapi "k8s.io/pod-security-admission/api"
)

// deploy/istiod: the xDS control plane of the proxyless-xds topology runs with least
// privilege, non-root, with the image scripts/airgap/build-istiod.sh builds.

const istiodDir = "../deploy/istiod"

// istiodXDSAddress is host:port of deploy/istiod's xDS port, as a pod in the cluster
// dials it.
func istiodXDSAddress() (string, error) {
	objs, err := render(istiodDir)
	if err != nil {
		return "", err
	}
	for _, o := range objs {
		if s, ok := o.Obj.(*corev1.Service); ok {
			for _, p := range s.Spec.Ports {
				if p.Name == "grpc-xds" {
					return fmt.Sprintf("%s.%s.svc.cluster.local:%d", o.Name, o.Namespace, p.Port), nil
				}
			}
		}
	}
	return "", fmt.Errorf("%s: no Service with a port named grpc-xds", istiodDir)
}

// istiodVersion reads ISTIO_VERSION from scripts/lib/versions.sh, where it is written.
func istiodVersion() (string, error) {
	data, err := os.ReadFile("../scripts/lib/versions.sh")
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`(?m)^ISTIO_VERSION=(\S+)`).FindSubmatch(data)
	if m == nil {
		return "", fmt.Errorf("scripts/lib/versions.sh sets no ISTIO_VERSION")
	}
	return string(m[1]), nil
}

// clusterWrites are the only writes istiod may make outside istio-system (rbac.yaml says
// why each).
var clusterWrites = map[string][]string{
	"gateway.networking.k8s.io/grpcroutes/status": {"update", "patch"},
	"gateway.networking.k8s.io/httproutes/status": {"update", "patch"},
	"/configmaps": {"create", "update"},
}

var readVerbs = []string{"get", "list", "watch"}

// checkIstiod: the pod passes Pod Security "restricted" with a read-only root filesystem,
// runs the image of ISTIO_VERSION, has probes and resources; its Service has the three
// ports on the pod's ports; RBAC has no wildcard, no cluster-admin, no cluster-wide Secret
// write, and writes outside istio-system only what clusterWrites lists.
func checkIstiod(objs []object) []string {
	var f findings
	version, err := istiodVersion()
	if err != nil {
		return []string{err.Error()}
	}
	var deploy *appsv1.Deployment
	var sa string
	for _, o := range objs {
		switch x := o.Obj.(type) {
		case *appsv1.Deployment:
			deploy, sa = x, x.Spec.Template.Spec.ServiceAccountName
			spec := &x.Spec.Template.Spec
			lv := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
			for _, r := range psaEvaluator.EvaluatePod(lv, &x.Spec.Template.ObjectMeta, spec) {
				if !r.Allowed {
					f.add(o, "spec.template.spec", "violates Pod Security \"restricted\": %s (%s)", r.ForbiddenReason, r.ForbiddenDetail)
				}
			}
			for _, c := range containers(spec, "spec.template.spec") {
				checkResources(&f, o, c)
				sc := c.c.SecurityContext
				if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					f.add(o, c.path+".securityContext.readOnlyRootFilesystem", "must be true")
				}
				if want := "grpc-k8s-kit/istiod:" + version; c.c.Image != want {
					f.add(o, c.path+".image", "%q, want %q (ISTIO_VERSION in scripts/lib/versions.sh)", c.c.Image, want)
				}
				for name, p := range map[string]*corev1.Probe{"startupProbe": c.c.StartupProbe, "readinessProbe": c.c.ReadinessProbe} {
					if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/ready" || p.HTTPGet.Port.IntValue() != 8080 {
						f.add(o, c.path+"."+name, "want httpGet /ready on 8080")
					}
				}
			}
		case *corev1.Namespace:
			if v := x.Labels[psaEnforceLabel]; v != "restricted" {
				f.add(o, "metadata.labels["+psaEnforceLabel+"]", "is %q, want \"restricted\"", v)
			}
		case *rbacv1.ClusterRole:
			for i, r := range x.Rules {
				checkRule(&f, o, i, r, true)
			}
		case *rbacv1.Role:
			for i, r := range x.Rules {
				checkRule(&f, o, i, r, false)
			}
		case *rbacv1.ClusterRoleBinding:
			if x.RoleRef.Name == "cluster-admin" || x.RoleRef.Name == "admin" || x.RoleRef.Name == "edit" {
				f.add(o, "roleRef", "binds %s: istiod gets least privilege (rbac.yaml), not a built-in role", x.RoleRef.Name)
			}
		}
	}
	if deploy == nil {
		return append(f, istiodDir+": no Deployment")
	}
	for _, o := range objs {
		switch x := o.Obj.(type) {
		case *corev1.Service:
			for _, want := range []struct {
				name string
				port int32
			}{{"grpc-xds", 15010}, {"http-monitoring", 15014}, {"http-debug", 8080}} {
				i := slices.IndexFunc(x.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == want.name })
				if i < 0 || x.Spec.Ports[i].Port != want.port {
					f.add(o, "spec.ports", "want %s on %d", want.name, want.port)
					continue
				}
				if !hasContainerPort(&deploy.Spec.Template.Spec.Containers[0], x.Spec.Ports[i].TargetPort.IntVal) {
					f.add(o, "spec.ports["+want.name+"].targetPort", "%s is not a containerPort of istiod", x.Spec.Ports[i].TargetPort.String())
				}
			}
		case *rbacv1.ClusterRoleBinding, *rbacv1.RoleBinding:
			var subjects []rbacv1.Subject
			if b, ok := x.(*rbacv1.ClusterRoleBinding); ok {
				subjects = b.Subjects
			} else {
				subjects = x.(*rbacv1.RoleBinding).Subjects
			}
			if len(subjects) != 1 || subjects[0].Kind != "ServiceAccount" || subjects[0].Name != sa || subjects[0].Namespace != deploy.Namespace {
				f.add(o, "subjects", "%+v, want only istiod's ServiceAccount %s/%s", subjects, deploy.Namespace, sa)
			}
		}
	}
	return f
}

// checkRule: no wildcard; cluster-wide (a ClusterRole), Secrets read only (istiod's Gateway
// API controller reads every Secret a Gateway could name, and is not ready until it can)
// and only the writes of clusterWrites.
func checkRule(f *findings, o object, i int, r rbacv1.PolicyRule, cluster bool) {
	field := fmt.Sprintf("rules[%d]", i)
	for _, l := range [][]string{r.APIGroups, r.Resources, r.Verbs} {
		if slices.Contains(l, "*") {
			f.add(o, field, "has a wildcard: name what istiod uses")
		}
	}
	if !cluster {
		return
	}
	for _, res := range r.Resources {
		if res == "secrets" {
			for _, v := range r.Verbs {
				if !slices.Contains(readVerbs, v) {
					f.add(o, field, "%s on Secrets cluster-wide: istiod writes only its own namespace's (a Role)", v)
				}
			}
			continue
		}
		for _, g := range r.APIGroups {
			for _, v := range r.Verbs {
				if slices.Contains(readVerbs, v) || slices.Contains(clusterWrites[g+"/"+res], v) {
					continue
				}
				f.add(o, field, "%s on %s/%s cluster-wide is not among the writes istiod needs (clusterWrites)", v, g, res)
			}
		}
	}
}

func TestIstiodManifests(t *testing.T) {
	objs, err := render(istiodDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range checkIstiod(objs) {
		t.Error(f)
	}
}

// TestIstiodChecksCatch: each rule of checkIstiod fires on the fault it is for.
func TestIstiodChecksCatch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(objs []object) []object
		want   string
	}{
		{"cluster-admin", func(objs []object) []object {
			return append(objs, object{Obj: &rbacv1.ClusterRoleBinding{RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "cluster-admin"},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "istiod", Namespace: "istio-system"}}}})
		}, "binds cluster-admin"},
		{"wildcard", func(objs []object) []object {
			cr := first[*rbacv1.ClusterRole](objs)
			cr.Rules[0].Verbs = append(cr.Rules[0].Verbs, "*")
			return objs
		}, "has a wildcard"},
		{"secrets cluster-wide", func(objs []object) []object {
			cr := first[*rbacv1.ClusterRole](objs)
			cr.Rules = append(cr.Rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"update"}})
			return objs
		}, "update on Secrets cluster-wide"},
		{"gateway status write", func(objs []object) []object {
			cr := first[*rbacv1.ClusterRole](objs)
			cr.Rules = append(cr.Rules, rbacv1.PolicyRule{APIGroups: []string{"gateway.networking.k8s.io"}, Resources: []string{"gateways/status"}, Verbs: []string{"patch"}})
			return objs
		}, "patch on gateway.networking.k8s.io/gateways/status cluster-wide"},
		{"writable root", func(objs []object) []object {
			d := first[*appsv1.Deployment](objs)
			d.Spec.Template.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem = nil
			return objs
		}, "readOnlyRootFilesystem: must be true"},
		{"root", func(objs []object) []object {
			d := first[*appsv1.Deployment](objs)
			d.Spec.Template.Spec.SecurityContext.RunAsNonRoot = nil
			zero := int64(0)
			d.Spec.Template.Spec.SecurityContext.RunAsUser = &zero
			return objs
		}, "violates Pod Security"},
		{"image version", func(objs []object) []object {
			first[*appsv1.Deployment](objs).Spec.Template.Spec.Containers[0].Image = "grpc-k8s-kit/istiod:dev"
			return objs
		}, "ISTIO_VERSION"},
		{"no probe", func(objs []object) []object {
			first[*appsv1.Deployment](objs).Spec.Template.Spec.Containers[0].ReadinessProbe = nil
			return objs
		}, "readinessProbe: want httpGet /ready on 8080"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := render(istiodDir)
			if err != nil {
				t.Fatal(err)
			}
			fs := checkIstiod(tc.mutate(objs))
			if !slices.ContainsFunc(fs, func(f string) bool { return strings.Contains(f, tc.want) }) {
				t.Errorf("want a finding containing %q, got %q", tc.want, fs)
			}
		})
	}
}

func first[T any](objs []object) T {
	for _, o := range objs {
		if x, ok := o.Obj.(T); ok {
			return x
		}
	}
	var zero T
	return zero
}
