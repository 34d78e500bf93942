package doctor

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Node loss and node drains, as far as the Service's pods show them. Two questions:
//   - nodes: do the Ready pods of a Deployment all sit on one node while the cluster has
//     others? Then losing that node (a crash, a partition, a drain) takes every one of
//     them at once, and the clients that still hold connections to them wait for their
//     deadlines. On a single-node cluster there is nothing to spread over: info.
//   - pdb: what may a node drain take at once? No PodDisruptionBudget: every pod on the
//     node. A budget that allows no disruption: the drain never ends.
//
// Severities. Error in this tool means "calls fail (or go to one pod) now", which is what
// exit code 3, the e2e suite and scripts key on, and what "one fault, one error" counts.
// Neither finding changes a call until a node goes away or is drained, so both are
// warnings, including the budget that blocks every drain: it stalls node maintenance
// forever (kubectl drain retries its evictions without end, upgrades wait), and a drain
// that is forced past it (--disable-eviction, a managed platform's drain timeout) takes
// every pod of the node at once, but Kubernetes documents "zero voluntary evictions" as a
// deliberate choice, and nothing is broken until someone drains.
//
// Reading nodes needs a cluster-wide right that a namespaced role cannot grant: without
// it (or without get on ReplicaSets, Deployments, list on PodDisruptionBudgets) the
// checks say what they could not see, as info.

// The node-loss checks. Declared here rather than with the others in finding.go, so that
// this file carries the whole feature.
const (
	CheckNodes = "nodes" // where the Ready pods run: can one node's loss take them all?
	CheckPDB   = "pdb"   // PodDisruptionBudgets: what a node drain may take at once
)

// workload is the controller of some of the Service's pods: a Deployment when the pods'
// ReplicaSet has one, else whatever controls them.
type workload struct {
	kind, name string
	replicas   int32 // desired; -1 when the controller could not be read
	selector   map[string]string
	spread     []corev1.TopologySpreadConstraint
	pods       []*corev1.Pod
	note       string // why the Deployment is not known, if it is not
}

func (w *workload) String() string { return w.kind + " " + w.name }

// expected is the number of pods w wants, or has when that is unknown.
func (w *workload) expected() int {
	if w.replicas >= 0 {
		return int(w.replicas)
	}
	return len(w.pods)
}

// checkNodeLoss reports where the Ready pods run (nodes) and what the disruption budgets
// let a drain take (pdb). Pods without a controller are left out: no template to spread,
// nothing a budget's eviction brings back.
func (d *Doctor) checkNodeLoss(ctx context.Context, st *state) error {
	if len(st.pods) == 0 || st.causes[causeSelector] {
		return nil
	}
	ws := d.workloadsOnce(ctx, st)
	if len(ws) == 0 {
		return nil
	}
	d.checkSpread(ctx, st, ws)
	d.checkBudgets(ctx, st, ws)
	return nil
}

// workloadsOnce is workloads, read from the API once per diagnosis: the node-loss and
// metrics checks both group the pods by Deployment.
func (d *Doctor) workloadsOnce(ctx context.Context, st *state) []*workload {
	if st.workloads == nil {
		st.workloads = d.workloads(ctx, st)
		if st.workloads == nil {
			st.workloads = []*workload{}
		}
	}
	return st.workloads
}

// workloads groups the Service's pods by their controller, resolving ReplicaSets to their
// Deployment. A read that fails leaves the ReplicaSet as the workload, with a note.
func (d *Doctor) workloads(ctx context.Context, st *state) []*workload {
	byKey := map[string]*workload{}
	rsCache := map[string]*appsv1.ReplicaSet{}
	for i := range st.pods {
		pod := &st.pods[i]
		ref := metav1.GetControllerOf(pod)
		if ref == nil {
			continue
		}
		w := &workload{kind: ref.Kind, name: ref.Name, replicas: -1, spread: pod.Spec.TopologySpreadConstraints}
		if ref.Kind == "ReplicaSet" {
			rs, ok := rsCache[ref.Name]
			if !ok {
				var err error
				rs, err = d.Kube.AppsV1().ReplicaSets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
				if err != nil {
					rs = nil
					w.note = fmt.Sprintf("ReplicaSet %s not read: %v", ref.Name, err)
				}
				rsCache[ref.Name] = rs
			}
			if rs != nil {
				w.replicas = ptrOr(rs.Spec.Replicas, 1)
				if own := metav1.GetControllerOf(rs); own != nil && own.Kind == "Deployment" {
					w.kind, w.name, w.replicas = "Deployment", own.Name, -1
				}
			}
		}
		key := w.String()
		if have, ok := byKey[key]; ok {
			have.pods = append(have.pods, pod)
			continue
		}
		if w.kind == "Deployment" {
			dep, err := d.Kube.AppsV1().Deployments(pod.Namespace).Get(ctx, w.name, metav1.GetOptions{})
			if err == nil {
				w.replicas = ptrOr(dep.Spec.Replicas, 1)
				w.spread = dep.Spec.Template.Spec.TopologySpreadConstraints
				if dep.Spec.Selector != nil {
					w.selector = dep.Spec.Selector.MatchLabels
				}
			} else {
				w.note = fmt.Sprintf("Deployment %s not read: %v", w.name, err)
			}
		}
		if w.selector == nil {
			w.selector = pod.Labels
		}
		w.pods = []*corev1.Pod{pod}
		byKey[key] = w
	}
	return slices.SortedFunc(maps.Values(byKey), func(a, b *workload) int { return strings.Compare(a.String(), b.String()) })
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// readyByNode is the Ready pods of pods, by the node they run on (pods not yet on a node
// are left out).
func readyByNode(pods []*corev1.Pod) map[string][]string {
	out := map[string][]string{}
	for _, p := range pods {
		if podReady(p) && p.Spec.NodeName != "" {
			out[p.Spec.NodeName] = append(out[p.Spec.NodeName], p.Name)
		}
	}
	return out
}

// checkSpread: can the loss of one node take every Ready pod of a workload?
func (d *Doctor) checkSpread(ctx context.Context, st *state, ws []*workload) {
	var all []*corev1.Pod
	for _, w := range ws {
		all = append(all, w.pods...)
	}
	where := readyByNode(all)
	if len(where) == 0 {
		return // no Ready pod on a node: the endpoints finding says why
	}
	var sample *corev1.Pod // the pods' tolerations and nodeSelector decide where they may run
	for _, p := range all {
		if podReady(p) {
			sample = p
			break
		}
	}
	nodes, err := d.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	known := err == nil
	var usable, unusable []string
	if known {
		for i := range nodes.Items {
			n := &nodes.Items[i]
			why := nodeUnusable(n, sample)
			if _, hosts := where[n.Name]; why == "" || hosts {
				usable = append(usable, n.Name) // a node that runs a Ready pod evidently can
			} else {
				unusable = append(unusable, fmt.Sprintf("%s (%s)", n.Name, why))
			}
		}
	}
	nodeEvidence := func() []string {
		ev := []string{"nodes these pods may run on: " + orNone(usable)}
		if len(unusable) > 0 {
			ev = append(ev, "other nodes: "+strings.Join(unusable, ", "))
		}
		return ev
	}
	if known && len(usable) <= 1 {
		st.add(Finding{Severity: Info, Check: CheckNodes,
			Message:  fmt.Sprintf("single-node cluster (for these pods): every pod runs on %s, so losing it stops the Service whatever the manifests say, and a drain has nowhere to move the pods; spreading needs a second node", orNone(usable)),
			Evidence: nodeEvidence(),
			Fix:      "nothing to change in the manifests; with more nodes, topologySpreadConstraints on kubernetes.io/hostname place the pods apart"})
		return
	}
	flagged := false
	for _, w := range ws {
		byNode := readyByNode(w.pods)
		ready := 0
		for _, ps := range byNode {
			ready += len(ps)
		}
		switch {
		case ready == 0 || len(byNode) > 1:
			continue
		case ready == 1:
			flagged = true
			node := slices.Collect(maps.Keys(byNode))[0]
			st.add(Finding{Severity: Info, Check: CheckNodes,
				Message: fmt.Sprintf("%s has 1 Ready pod (on node %s): losing that node or that pod leaves it nothing Ready until a new pod starts", w, node),
				Fix:     "run 2 or more replicas, spread over nodes (topologySpreadConstraints on kubernetes.io/hostname), if the Service must survive a node"})
			continue
		}
		flagged = true
		node := slices.Collect(maps.Keys(byNode))[0]
		f := Finding{Severity: Warning, Check: CheckNodes,
			Message: fmt.Sprintf("all %d Ready pods of %s run on node %s while %d nodes could run them: losing that node (a crash, a partition, a drain) takes every one at once, and clients still connected to them wait for their deadlines (DEADLINE_EXCEEDED) until keepalive finds the dead connections",
				ready, w, node, len(usable)),
			Evidence: append([]string{fmt.Sprintf("node %s: %s", node, strings.Join(byNode[node], ", "))}, nodeEvidence()...)}
		if !known {
			f.Severity = Info
			f.Message = fmt.Sprintf("all %d Ready pods of %s run on node %s; the nodes could not be listed, so whether others could run them is unknown", ready, w, node)
			f.Evidence = []string{fmt.Sprintf("list nodes: %v", err)}
			f.Fix = "the doctor needs list on nodes (cluster-scoped: a ClusterRole) to tell a single-node cluster from pods that share a node"
			st.add(f)
			continue
		}
		c := hostnameSpread(w.spread)
		if w.note != "" {
			f.Evidence = append(f.Evidence, w.note)
		}
		restart := "kubectl rollout restart " + strings.ToLower(w.kind) + "/" + w.name
		switch {
		case c == nil:
			f.Evidence = append(f.Evidence, fmt.Sprintf("%s: no topologySpreadConstraints on kubernetes.io/hostname", w))
			f.Fix = fmt.Sprintf("add to the pod template: topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {%s}}, matchLabelKeys: [pod-template-hash]}] (DoNotSchedule guarantees the spread but leaves pods Pending when nodes are short); then %s: the scheduler never moves running pods",
				labelsInline(w.selector), restart)
		case c.WhenUnsatisfiable == corev1.DoNotSchedule:
			f.Evidence = append(f.Evidence, fmt.Sprintf("%s: spread on kubernetes.io/hostname with DoNotSchedule, labelSelector %s", w, metav1.FormatLabelSelector(c.LabelSelector)))
			f.Fix = "the required spread does not see these pods together: check that its labelSelector matches the pods' labels (kubectl get pods --show-labels), then " + restart
		default:
			f.Evidence = append(f.Evidence, fmt.Sprintf("%s: spread on kubernetes.io/hostname with ScheduleAnyway, labelSelector %s: a preference the scheduler gives up when the other nodes are full, tainted, or joined after the pods started", w, metav1.FormatLabelSelector(c.LabelSelector)))
			f.Fix = restart + " re-spreads them (the scheduler never moves running pods); whenUnsatisfiable: DoNotSchedule makes the spread a requirement, at the price of Pending pods when nodes are short"
		}
		st.add(f)
	}
	if flagged {
		return
	}
	n := 0
	most := 0
	for _, ps := range where {
		n += len(ps)
		most = max(most, len(ps))
	}
	msg := fmt.Sprintf("%d Ready pod(s) on %d node(s): losing one node leaves %d of them", n, len(where), n-most)
	var ev []string
	for _, node := range slices.Sorted(maps.Keys(where)) {
		ev = append(ev, fmt.Sprintf("node %s: %s", node, strings.Join(where[node], ", ")))
	}
	if known {
		ev = append(ev, nodeEvidence()...)
	} else {
		ev = append(ev, fmt.Sprintf("list nodes: %v", err))
	}
	st.add(Finding{Severity: OK, Check: CheckNodes, Message: msg, Evidence: ev})
}

// hostnameSpread is the constraint that spreads over nodes, if any.
func hostnameSpread(cs []corev1.TopologySpreadConstraint) *corev1.TopologySpreadConstraint {
	for i := range cs {
		if cs[i].TopologyKey == corev1.LabelHostname {
			return &cs[i]
		}
	}
	return nil
}

// nodeUnusable says why pod could not be scheduled on n ("" if it could): cordoned, not
// Ready, a NoSchedule or NoExecute taint it does not tolerate, or its nodeSelector.
// Required node affinity is not evaluated.
func nodeUnusable(n *corev1.Node, pod *corev1.Pod) string {
	if n.Spec.Unschedulable {
		return "cordoned"
	}
	ready := false
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			ready = c.Status == corev1.ConditionTrue
		}
	}
	if !ready {
		return "not Ready"
	}
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectPreferNoSchedule || pod != nil && tolerated(pod.Spec.Tolerations, t) {
			continue
		}
		return "taint " + t.ToString()
	}
	if pod != nil && len(pod.Spec.NodeSelector) > 0 && !labels.SelectorFromSet(pod.Spec.NodeSelector).Matches(labels.Set(n.Labels)) {
		return "nodeSelector " + labels.SelectorFromSet(pod.Spec.NodeSelector).String() + " does not match"
	}
	return ""
}

// tolerated: some toleration matches the taint (key, value with Equal, effect), as the
// scheduler's TaintToleration filter decides it for the Equal and Exists operators.
func tolerated(ts []corev1.Toleration, t corev1.Taint) bool {
	for _, tol := range ts {
		if tol.Effect != "" && tol.Effect != t.Effect {
			continue
		}
		if tol.Key != "" && tol.Key != t.Key {
			continue
		}
		switch tol.Operator {
		case corev1.TolerationOpExists:
			return true
		case corev1.TolerationOpEqual, "":
			if tol.Key != "" && tol.Value == t.Value {
				return true
			}
		}
	}
	return false
}

func labelsInline(m map[string]string) string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		kv = append(kv, k+": "+m[k])
	}
	return strings.Join(kv, ", ")
}

// checkBudgets: for each workload, the PodDisruptionBudgets that select its pods, and
// what they let a node drain do.
func (d *Doctor) checkBudgets(ctx context.Context, st *state, ws []*workload) {
	ns := d.Cfg.Namespace
	list, err := d.Kube.PolicyV1().PodDisruptionBudgets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		st.add(Finding{Severity: Info, Check: CheckPDB, Message: fmt.Sprintf("PodDisruptionBudgets in %s not checked: %v", ns, err),
			Fix: "the doctor needs list on policy poddisruptionbudgets in the Service's namespace"})
		return
	}
	covers := map[string][]*workload{} // budget name -> the workloads it selects pods of
	var budgets []*policyv1.PodDisruptionBudget
	for _, w := range ws {
		var mine []string
		for i := range list.Items {
			b := &list.Items[i]
			sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector) // nil selects nothing, {} everything
			if err != nil || !slices.ContainsFunc(w.pods, func(p *corev1.Pod) bool { return sel.Matches(labels.Set(p.Labels)) }) {
				continue
			}
			mine = append(mine, b.Name)
			if covers[b.Name] == nil {
				budgets = append(budgets, b)
			}
			covers[b.Name] = append(covers[b.Name], w)
		}
		switch {
		case len(mine) == 0 && w.expected() <= 1:
			st.add(Finding{Severity: Info, Check: CheckPDB,
				Message: fmt.Sprintf("%s has %d replica and no PodDisruptionBudget: a node drain evicts its only pod (a budget cannot protect a single replica without blocking every drain)", w, w.expected()),
				Fix:     "run 2 or more replicas with a PodDisruptionBudget of maxUnavailable: 1, if the Service must stay up through node maintenance"})
		case len(mine) == 0:
			st.add(Finding{Severity: Warning, Check: CheckPDB,
				Message:  fmt.Sprintf("no PodDisruptionBudget selects the pods of %s: a node drain (kubectl drain, a node upgrade, the cluster autoscaler) evicts every one of them on that node at once, all %d when they share it", w, w.expected()),
				Evidence: []string{fmt.Sprintf("%d PodDisruptionBudget(s) in %s, none selecting labels %s", len(list.Items), ns, labelsInline(w.pods[0].Labels))},
				Fix: fmt.Sprintf("add a PodDisruptionBudget: spec: {maxUnavailable: 1, selector: {matchLabels: {%s}}, unhealthyPodEvictionPolicy: AlwaysAllow}: a drain then evicts one pod, waits until its replacement is Ready, then the next (kustomize/base/hello/pdb.yaml)",
					labelsInline(w.selector))})
		case len(mine) > 1:
			st.add(Finding{Severity: Warning, Check: CheckPDB,
				Message: fmt.Sprintf("%d PodDisruptionBudgets (%s) select the pods of %s: the eviction API refuses to evict a pod that more than one budget selects, so a drain of any node running one of them never ends", len(mine), strings.Join(mine, ", "), w),
				Fix:     "keep one PodDisruptionBudget per set of pods: make the selectors disjoint or delete the extra ones"})
		}
	}
	for _, b := range budgets {
		checkBudget(st, b, covers[b.Name])
	}
}

// checkBudget says what one budget lets a drain do with the pods of ws.
func checkBudget(st *state, b *policyv1.PodDisruptionBudget, ws []*workload) {
	names := make([]string, len(ws))
	expected := 0
	for i, w := range ws {
		names[i] = w.String()
		expected += w.expected()
	}
	of := strings.Join(names, ", ")
	// The disruption controller's own count when it has one (it also counts pods of the
	// selector outside this Service).
	current := b.Status.ObservedGeneration == b.Generation && b.Status.ExpectedPods > 0
	if current {
		expected = int(b.Status.ExpectedPods)
	}
	rule, floor := BudgetFloor(b, expected)
	status := fmt.Sprintf("status: %d of %d pod(s) healthy, %d disruption(s) allowed", b.Status.CurrentHealthy, b.Status.ExpectedPods, b.Status.DisruptionsAllowed)
	ev := []string{fmt.Sprintf("PodDisruptionBudget %s: %s; %s", b.Name, rule, status)}
	blockFix := "allow one disruption: maxUnavailable: 1 (with 2 or more replicas); a drain that is forced past a blocking budget (--disable-eviction, a managed platform's drain timeout) takes every pod of the node at once"
	switch {
	case expected > 0 && floor >= expected:
		st.add(Finding{Severity: Warning, Check: CheckPDB,
			Message:  fmt.Sprintf("PodDisruptionBudget %s allows no disruption of %s (%s, %d pod(s) expected): a drain of any node running one of them never ends, node upgrades stall", b.Name, of, rule, expected),
			Evidence: ev, Fix: blockFix})
	case current && b.Status.DisruptionsAllowed == 0 && b.Status.CurrentHealthy >= b.Status.ExpectedPods:
		st.add(Finding{Severity: Warning, Check: CheckPDB,
			Message:  fmt.Sprintf("PodDisruptionBudget %s allows no disruption of %s although all %d pods are healthy (status.disruptionsAllowed 0): a drain of any node running one of them never ends, node upgrades stall", b.Name, of, b.Status.ExpectedPods),
			Evidence: ev, Fix: blockFix})
	case expected > 1 && floor <= 0:
		st.add(Finding{Severity: Warning, Check: CheckPDB,
			Message:  fmt.Sprintf("PodDisruptionBudget %s lets a drain evict every pod of %s at once (%s): it protects nothing", b.Name, of, rule),
			Evidence: ev, Fix: "maxUnavailable: 1 (or minAvailable below the replicas): a drain then takes the pods one at a time"})
	case current && b.Status.DisruptionsAllowed == 0:
		st.add(Finding{Severity: Info, Check: CheckPDB,
			Message:  fmt.Sprintf("PodDisruptionBudget %s of %s is used up right now (%d of %d healthy): a drain waits until the others are Ready again", b.Name, of, b.Status.CurrentHealthy, b.Status.ExpectedPods),
			Evidence: ev})
	default:
		st.add(Finding{Severity: OK, Check: CheckPDB,
			Message:  fmt.Sprintf("PodDisruptionBudget %s covers %s: %s, a drain evicts at most %d of %d pod(s) at a time", b.Name, of, rule, expected-floor, expected),
			Evidence: ev})
	}
}

// BudgetFloor is how many of expected pods b keeps (the disruption controller's
// desiredHealthy: percentages round up, for maxUnavailable as for minAvailable), and the
// rule it comes from. The kustomize render tests hold the kit's own budgets to it too.
func BudgetFloor(b *policyv1.PodDisruptionBudget, expected int) (rule string, floor int) {
	switch {
	case b.Spec.MaxUnavailable != nil:
		n, err := intstr.GetScaledValueFromIntOrPercent(b.Spec.MaxUnavailable, expected, true)
		if err != nil {
			return "maxUnavailable " + b.Spec.MaxUnavailable.String() + " (invalid)", 0
		}
		return "maxUnavailable " + b.Spec.MaxUnavailable.String(), max(expected-n, 0)
	case b.Spec.MinAvailable != nil:
		n, err := intstr.GetScaledValueFromIntOrPercent(b.Spec.MinAvailable, expected, true)
		if err != nil {
			return "minAvailable " + b.Spec.MinAvailable.String() + " (invalid)", 0
		}
		return "minAvailable " + b.Spec.MinAvailable.String(), n
	}
	return "neither minAvailable nor maxUnavailable", 0
}
