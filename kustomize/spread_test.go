package kustomize

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/doctor"
)

// checkNodeSpread: a server Deployment spreads its pods over nodes, so that losing one
// node does not take every replica: a topologySpreadConstraint on kubernetes.io/hostname
// whose labelSelector selects the template's own pods (else it counts nothing), as a
// preference (ScheduleAnyway): a template must schedule every replica on any cluster,
// and DoNotSchedule leaves pods Pending when the nodes cannot keep the spread. greeter
// doctor's nodes check says when pods landed together anyway.
//
// e2e: an e2e render, which may also have e2e/components/shared-node's requirement
// instead: DoNotSchedule with nodeTaintsPolicy Honor (a cordoned or tainted node is no
// place to spread to), never DoNotSchedule alone.
func checkNodeSpread(f *findings, o object, d *appsv1.Deployment, e2e bool) {
	path := "spec.template.spec.topologySpreadConstraints"
	for i, c := range d.Spec.Template.Spec.TopologySpreadConstraints {
		if c.TopologyKey != corev1.LabelHostname {
			continue
		}
		field := fmt.Sprintf("%s[%d]", path, i)
		required := c.WhenUnsatisfiable == corev1.DoNotSchedule && c.NodeTaintsPolicy != nil && *c.NodeTaintsPolicy == corev1.NodeInclusionPolicyHonor
		if c.WhenUnsatisfiable != corev1.ScheduleAnyway && !(e2e && required) {
			f.add(o, field+".whenUnsatisfiable", "%s, want ScheduleAnyway: DoNotSchedule leaves pods Pending when the nodes cannot keep the spread", c.WhenUnsatisfiable)
		}
		if sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector); err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			f.add(o, field+".labelSelector", "%s does not select the template's pods: the constraint counts nothing", metav1.FormatLabelSelector(c.LabelSelector))
		}
		return
	}
	f.add(o, path, "no constraint on %s: every replica may land on one node, and losing that node takes them all", corev1.LabelHostname)
}

// checkBudgetsLetDrainsThrough: every PodDisruptionBudget lets a drain evict one pod of
// the Deployments it selects, and not all of them at once. A budget that allows no
// disruption (maxUnavailable 0, minAvailable = replicas) makes every drain of a node
// running one of the pods wait forever; one that allows all protects nothing. The
// arithmetic is greeter doctor's (doctor.BudgetFloor, the disruption controller's).
func checkBudgetsLetDrainsThrough(f *findings, objs []object) {
	for _, o := range objs {
		b, ok := o.Obj.(*policyv1.PodDisruptionBudget)
		if !ok {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
		if err != nil {
			continue
		}
		expected := 0
		for _, d := range objs {
			if dep, ok := d.Obj.(*appsv1.Deployment); ok && d.Namespace == o.Namespace && sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
				expected += int(ptr.Deref(dep.Spec.Replicas, 1))
			}
		}
		if expected == 0 {
			continue
		}
		field, floor := doctor.BudgetFloor(b, expected)
		switch {
		case floor >= expected:
			f.add(o, field, "keeps %d of the %d pods it selects: it allows no disruption, so a drain of any node running one of them never ends", floor, expected)
		case floor <= 0 && expected > 1:
			f.add(o, field, "keeps none of the %d pods it selects: a drain may evict them all at once", expected)
		}
	}
}
