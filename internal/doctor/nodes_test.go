package doctor

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// The node-loss checks (nodes.go) read objects only: most tests run them alone on pods
// of the kit's hello Deployment (ReplicaSet hello-abc, Deployment hello), as netpolDoctor
// does for NetworkPolicies; TestNodeLossOnRealServers runs the whole diagnosis.

var helloLabels = map[string]string{"app.kubernetes.io/name": "hello"}

// owned makes p a pod of ReplicaSet hello-abc on node (Ready as p is).
func owned(p *corev1.Pod, node string) *corev1.Pod {
	p.Spec.NodeName = node
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "hello-abc", Controller: ptrTo(true)}}
	return p
}

func ptrTo[T any](v T) *T { return &v }

// kitPods are n Ready pods of hello, on the nodes given in turn.
func kitPods(n int, nodes ...string) []*corev1.Pod {
	var out []*corev1.Pod
	for i := range n {
		out = append(out, owned(helloPod("hello-abc-"+string(rune('a'+i)), "10.244.0."+string(rune('2'+i)), 50051, true), nodes[i%len(nodes)]))
	}
	return out
}

// helloDeployment is the kit's hello with replicas, and the hostname spread when whenUnsatisfiable is set.
func helloDeployment(replicas int32, whenUnsatisfiable corev1.UnsatisfiableConstraintAction) []runtime.Object {
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: ns},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: helloLabels}}}
	if whenUnsatisfiable != "" {
		dep.Spec.Template.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: corev1.LabelHostname,
			WhenUnsatisfiable: whenUnsatisfiable, LabelSelector: &metav1.LabelSelector{MatchLabels: helloLabels}}}
	}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "hello-abc", Namespace: ns,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "hello", Controller: ptrTo(true)}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: &replicas}}
	return []runtime.Object{dep, rs}
}

// node is a Ready, schedulable node.
func node(name string, taints ...corev1.Taint) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
		Spec:   corev1.NodeSpec{Taints: taints},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
}

// kitPDB is kustomize/base/hello/pdb.yaml, with the status the disruption controller
// writes for healthy of expected pods.
func kitPDB(healthy, expected int32) *policyv1.PodDisruptionBudget {
	mu := intstr.FromInt32(1)
	allowed := max(healthy-(expected-1), 0)
	return &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: ns},
		Spec:   policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &mu, Selector: &metav1.LabelSelector{MatchLabels: helloLabels}},
		Status: policyv1.PodDisruptionBudgetStatus{CurrentHealthy: healthy, DesiredHealthy: expected - 1, ExpectedPods: expected, DisruptionsAllowed: allowed}}
}

// nodeLoss runs checkNodeLoss alone on pods (the Service's) with objs in the API; react,
// if set, is put in front of the fake clientset's own handling.
func nodeLoss(t *testing.T, pods []*corev1.Pod, react func(*fake.Clientset), objs ...runtime.Object) Report {
	t.Helper()
	st := &state{rep: &Report{}, causes: map[string]bool{}}
	for _, p := range pods {
		st.pods = append(st.pods, *p)
		objs = append(objs, p)
	}
	kube := fake.NewClientset(objs...)
	if react != nil {
		react(kube)
	}
	d := &Doctor{Kube: kube, Cfg: Config{Namespace: ns, Service: "hello-grpc-headless"}}
	if err := d.checkNodeLoss(context.Background(), st); err != nil {
		t.Fatalf("checkNodeLoss: %v", err)
	}
	return *st.rep
}

// only asserts that check's worst finding has severity sev and its message contains want.
func only(t *testing.T, rep Report, check string, sev Severity, want string) *Finding {
	t.Helper()
	w := worst(rep, check)
	if w == nil || w.Severity != sev || !strings.Contains(w.Message, want) {
		t.Fatalf("%s: want %s containing %q, got:\n%s", check, sev, want, dump(rep))
	}
	return w
}

func twoNodes() []runtime.Object { return []runtime.Object{node("n1"), node("n2")} }

// Negative control: three pods over two nodes with the kit's budget.
func TestNodeLossHealthySpread(t *testing.T) {
	objs := append(append(twoNodes(), helloDeployment(3, corev1.ScheduleAnyway)...), kitPDB(3, 3))
	rep := nodeLoss(t, kitPods(3, "n1", "n2"), nil, objs...)
	if rep.Warnings != 0 || rep.Errors != 0 {
		t.Fatalf("a healthy spread and a sane budget: want no warning, got:\n%s", dump(rep))
	}
	only(t, rep, CheckNodes, OK, "3 Ready pod(s) on 2 node(s): losing one node leaves 1")
	only(t, rep, CheckPDB, OK, "covers Deployment hello: maxUnavailable 1, a drain evicts at most 1 of 3")
}

func TestAllPodsOnOneNode(t *testing.T) {
	objs := append(append(twoNodes(), helloDeployment(3, "")...), kitPDB(3, 3))
	rep := nodeLoss(t, kitPods(3, "n1"), nil, objs...)
	w := only(t, rep, CheckNodes, Warning, "all 3 Ready pods of Deployment hello run on node n1 while 2 nodes could run them")
	if !strings.Contains(w.Fix, "topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway") ||
		!strings.Contains(w.Fix, "matchLabels: {app.kubernetes.io/name: hello}") || !strings.Contains(w.Fix, "kubectl rollout restart deployment/hello") {
		t.Errorf("the fix should show the constraint for these pods and the restart: %s", w.Fix)
	}
	if ev := strings.Join(w.Evidence, "\n"); !strings.Contains(ev, "node n1: hello-abc-a, hello-abc-b, hello-abc-c") || !strings.Contains(ev, "no topologySpreadConstraints") {
		t.Errorf("evidence should place the pods and say the constraint is missing:\n%s", ev)
	}
	if rep.Errors != 0 || rep.Warnings != 1 {
		t.Errorf("one warning, from nodes only:\n%s", dump(rep))
	}

	// The constraint is there but is a preference: restart to re-spread.
	rep = nodeLoss(t, kitPods(3, "n1"), nil, append(append(twoNodes(), helloDeployment(3, corev1.ScheduleAnyway)...), kitPDB(3, 3))...)
	w = only(t, rep, CheckNodes, Warning, "run on node n1")
	if !strings.HasPrefix(w.Fix, "kubectl rollout restart deployment/hello re-spreads them") || !strings.Contains(strings.Join(w.Evidence, "\n"), "ScheduleAnyway") {
		t.Errorf("with ScheduleAnyway in place the fix is a restart:\n%s", dump(rep))
	}
}

// A one-node cluster (the kit's kind) is info, never a warning: there is nothing to
// spread over. So is one whose other nodes these pods cannot use.
func TestSingleNodeIsInfo(t *testing.T) {
	deps := append(helloDeployment(3, corev1.ScheduleAnyway), kitPDB(3, 3))
	rep := nodeLoss(t, kitPods(3, "kind-control-plane"), nil, append(deps, node("kind-control-plane"))...)
	only(t, rep, CheckNodes, Info, "single-node cluster (for these pods): every pod runs on kind-control-plane")
	if rep.Warnings != 0 || rep.Errors != 0 {
		t.Errorf("a healthy kit on one node:\n%s", dump(rep))
	}

	cordoned := node("n2")
	cordoned.Spec.Unschedulable = true
	notReady := node("n3")
	notReady.Status.Conditions[0].Status = corev1.ConditionFalse
	// A kind control plane beside workers keeps its taint: the pods do not tolerate it.
	tainted := node("cp", corev1.Taint{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule})
	rep = nodeLoss(t, kitPods(3, "n1"), nil, append(deps, node("n1"), cordoned, notReady, tainted)...)
	w := only(t, rep, CheckNodes, Info, "every pod runs on n1")
	if ev := strings.Join(w.Evidence, "\n"); !strings.Contains(ev, "n2 (cordoned)") || !strings.Contains(ev, "n3 (not Ready)") || !strings.Contains(ev, "cp (taint node-role.kubernetes.io/control-plane:NoSchedule)") {
		t.Errorf("evidence should say why the other nodes do not count:\n%s", ev)
	}

	// The same taint tolerated: two nodes, so the pods on one are a warning.
	pods := kitPods(3, "n1")
	for _, p := range pods {
		p.Spec.Tolerations = []corev1.Toleration{{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	}
	only(t, nodeLoss(t, pods, nil, append(deps, node("n1"), tainted)...), CheckNodes, Warning, "while 2 nodes could run them")
}

func TestNodesNotReadable(t *testing.T) {
	forbid := func(c *fake.Clientset) {
		c.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, "", nil)
		})
	}
	deps := append(helloDeployment(3, ""), kitPDB(3, 3))
	rep := nodeLoss(t, kitPods(3, "n1"), forbid, append(deps, node("n1"), node("n2"))...)
	w := only(t, rep, CheckNodes, Info, "the nodes could not be listed")
	if !strings.Contains(w.Fix, "ClusterRole") {
		t.Errorf("fix should name the right needed: %s", w.Fix)
	}
	// Spread pods need no node list to be fine.
	only(t, nodeLoss(t, kitPods(3, "n1", "n2"), forbid, deps...), CheckNodes, OK, "on 2 node(s)")
}

func TestOneReadyPod(t *testing.T) {
	pods := kitPods(3, "n1", "n2")
	for _, p := range pods[1:] {
		p.Status.Conditions[0].Status = corev1.ConditionFalse
	}
	rep := nodeLoss(t, pods, nil, append(append(twoNodes(), helloDeployment(3, corev1.ScheduleAnyway)...), kitPDB(1, 3))...)
	only(t, rep, CheckNodes, Info, "Deployment hello has 1 Ready pod (on node n1)")
	only(t, rep, CheckPDB, Info, "used up right now (1 of 3 healthy)")
	if rep.Warnings != 0 {
		t.Errorf("pods not Ready are the endpoints check's business:\n%s", dump(rep))
	}
}

func TestNoDisruptionBudget(t *testing.T) {
	rep := nodeLoss(t, kitPods(3, "n1", "n2"), nil, append(twoNodes(), helloDeployment(3, corev1.ScheduleAnyway)...)...)
	w := only(t, rep, CheckPDB, Warning, "no PodDisruptionBudget selects the pods of Deployment hello: a node drain")
	if !strings.Contains(w.Fix, "maxUnavailable: 1, selector: {matchLabels: {app.kubernetes.io/name: hello}}") {
		t.Errorf("fix should show the budget for these pods: %s", w.Fix)
	}
	only(t, rep, CheckNodes, OK, "on 2 node(s)")

	// One replica: no budget can help without blocking drains.
	rep = nodeLoss(t, kitPods(1, "n1"), nil, append(twoNodes(), helloDeployment(1, corev1.ScheduleAnyway)...)...)
	only(t, rep, CheckPDB, Info, "has 1 replica and no PodDisruptionBudget")
	if rep.Warnings != 0 {
		t.Errorf("one replica without a budget is info:\n%s", dump(rep))
	}
}

func TestBlockingDisruptionBudget(t *testing.T) {
	for _, tc := range []struct {
		name   string
		budget func(*policyv1.PodDisruptionBudget)
		want   string
	}{
		{"maxUnavailable 0", func(b *policyv1.PodDisruptionBudget) { b.Spec.MaxUnavailable = ptrTo(intstr.FromInt32(0)) }, "(maxUnavailable 0, 3 pod(s) expected)"},
		{"maxUnavailable 0%", func(b *policyv1.PodDisruptionBudget) { b.Spec.MaxUnavailable = ptrTo(intstr.FromString("0%")) }, "(maxUnavailable 0%"},
		{"minAvailable = replicas", func(b *policyv1.PodDisruptionBudget) {
			b.Spec.MaxUnavailable, b.Spec.MinAvailable = nil, ptrTo(intstr.FromInt32(3))
		}, "(minAvailable 3, 3 pod(s) expected)"},
		// Percentages round up: 67% of 3 is 3.
		{"minAvailable 67%", func(b *policyv1.PodDisruptionBudget) {
			b.Spec.MaxUnavailable, b.Spec.MinAvailable = nil, ptrTo(intstr.FromString("67%"))
		}, "(minAvailable 67%"},
		// The controller's verdict, whatever the spec says.
		{"disruptionsAllowed 0, all healthy", func(b *policyv1.PodDisruptionBudget) { b.Status.DisruptionsAllowed = 0 }, "although all 3 pods are healthy (status.disruptionsAllowed 0)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := kitPDB(3, 3)
			tc.budget(b)
			rep := nodeLoss(t, kitPods(3, "n1", "n2"), nil, append(append(twoNodes(), helloDeployment(3, corev1.ScheduleAnyway)...), b)...)
			w := only(t, rep, CheckPDB, Warning, "PodDisruptionBudget hello allows no disruption of Deployment hello")
			if !strings.Contains(w.Message, tc.want) || !strings.Contains(w.Message, "never ends") || !strings.Contains(w.Fix, "maxUnavailable: 1") {
				t.Errorf("want %q, a drain that never ends and the fix:\n%s", tc.want, dump(rep))
			}
			if rep.Errors != 0 {
				t.Errorf("a blocking budget breaks no call: a warning, not an error:\n%s", dump(rep))
			}
		})
	}

	// Negative controls: a budget with room, and one used up by a pod that is not Ready.
	for _, b := range []*policyv1.PodDisruptionBudget{kitPDB(3, 3), func() *policyv1.PodDisruptionBudget {
		b := kitPDB(3, 3)
		b.Spec.MaxUnavailable, b.Spec.MinAvailable = nil, ptrTo(intstr.FromString("50%"))
		return b
	}()} {
		rep := nodeLoss(t, kitPods(3, "n1", "n2"), nil, append(append(twoNodes(), helloDeployment(3, corev1.ScheduleAnyway)...), b)...)
		if w := worst(rep, CheckPDB); w == nil || w.Severity != OK {
			t.Errorf("budget %+v: want ok, got\n%s", b.Spec, dump(rep))
		}
	}
}

func TestBudgetThatProtectsNothing(t *testing.T) {
	b := kitPDB(3, 3)
	b.Spec.MaxUnavailable = ptrTo(intstr.FromString("100%"))
	rep := nodeLoss(t, kitPods(3, "n1", "n2"), nil, append(append(twoNodes(), helloDeployment(3, corev1.ScheduleAnyway)...), b)...)
	only(t, rep, CheckPDB, Warning, "lets a drain evict every pod of Deployment hello at once (maxUnavailable 100%)")
}

func TestTwoBudgetsBlockEviction(t *testing.T) {
	other := kitPDB(3, 3)
	other.Name = "hello-too"
	rep := nodeLoss(t, kitPods(3, "n1", "n2"), nil, append(append(twoNodes(), helloDeployment(3, corev1.ScheduleAnyway)...), kitPDB(3, 3), other)...)
	only(t, rep, CheckPDB, Warning, "2 PodDisruptionBudgets (hello, hello-too) select the pods of Deployment hello")
}

// Pods without a controller (and the fixture's pods, which have no node): nothing to say.
func TestBarePodsAreLeftOut(t *testing.T) {
	p := helloPod("hello-1", "10.244.0.2", 50051, true)
	p.Spec.NodeName = "n1"
	rep := nodeLoss(t, []*corev1.Pod{p}, nil, twoNodes()...)
	if len(rep.Findings) != 0 {
		t.Errorf("bare pods: want no finding, got:\n%s", dump(rep))
	}
}

// The whole diagnosis on real servers: the healthy kit over two nodes has no warning, and
// the same pods on one node add exactly the nodes warning, no error.
func TestNodeLossOnRealServers(t *testing.T) {
	f := newFixture(t, 3, false)
	svc := headlessService("hello-grpc-headless")
	f.records[fqdn(svc.Name)] = f.readyIPs()
	for i, p := range f.pods {
		owned(p, []string{"n1", "n2"}[i%2])
	}
	objs := append(append(twoNodes(), helloDeployment(3, corev1.ScheduleAnyway)...), kitPDB(3, 3), svc, slice(svc.Name, f.pods...))
	rep := diagnose(t, f.doctor(svc.Name, Config{}, objs...))
	noErrors(t, rep)
	if rep.Warnings != 0 {
		t.Errorf("healthy kit on two nodes has warnings:\n%s", dump(rep))
	}
	only(t, rep, CheckNodes, OK, "on 2 node(s)")
	only(t, rep, CheckPDB, OK, "covers Deployment hello")

	for _, p := range f.pods {
		p.Spec.NodeName = "n1"
	}
	rep = diagnose(t, f.doctor(svc.Name, Config{}, objs...))
	noErrors(t, rep)
	only(t, rep, CheckNodes, Warning, "run on node n1")
	if rep.Warnings != 1 {
		t.Errorf("want the nodes warning only:\n%s", dump(rep))
	}
}
