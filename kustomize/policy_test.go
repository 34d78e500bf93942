package kustomize

import (
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	psapi "k8s.io/pod-security-admission/api"
	pspolicy "k8s.io/pod-security-admission/policy"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/greeter"
)

// The rules every manifest of the kit follows. Each finding names the object and the
// field, e.g.
//
//	Deployment grpc-kit-headless/hello: spec.template.spec.containers[hello].readinessProbe: missing (servers need startup, readiness and liveness probes)
const (
	h2c               = "kubernetes.io/h2c"
	psaEnforceLabel   = "pod-security.kubernetes.io/enforce"
	roundRobin        = "round_robin"
	traefikClass      = "traefik"
	traefikDeployment = "../deploy/traefik/deployment.yaml"
)

type findings []string

func (f *findings) add(o object, field, format string, args ...any) {
	*f = append(*f, fmt.Sprintf("%s: %s: %s", o, field, fmt.Sprintf(format, args...)))
}

// check runs every policy on a render. complete marks a render that is applied as a
// whole: then every reference must resolve inside it and every namespace must be one it
// creates.
func check(objs []object, complete bool) []string { return checkSpread(objs, complete, false) }

// checkSpread is check for a render that is the e2e's when e2e is true: its servers may
// spread over nodes as a requirement (e2e/components/shared-node), not only as the
// templates' preference.
func checkSpread(objs []object, complete, e2e bool) []string {
	var f findings
	for _, o := range objs {
		if spec, meta, path := podTemplate(o); spec != nil {
			checkPod(&f, o, meta, spec, path)
		}
		switch x := o.Obj.(type) {
		case *appsv1.Deployment:
			checkServer(&f, o, &x.Spec.Template.Spec)
			checkNodeSpread(&f, o, x, e2e)
		case *corev1.Service:
			checkService(&f, o, x, selectsTLSServer(objs, o.Namespace, x))
		case *corev1.Namespace:
			if v := x.Labels[psaEnforceLabel]; v != "restricted" {
				f.add(o, "metadata.labels["+psaEnforceLabel+"]", "is %q, want \"restricted\"", v)
			}
		case *corev1.Secret:
			checkSecret(&f, o, x)
		case *gatewayv1.Gateway:
			checkGateway(&f, o, x)
		case *gatewayv1.GRPCRoute:
			checkMeshRoute(&f, o, x)
		}
	}
	checkGreeterTargets(&f, objs)
	checkDisruptionBudgets(&f, objs)
	checkBudgetsLetDrainsThrough(&f, objs)
	if complete {
		checkNamespaces(&f, objs)
		checkIngressBackends(&f, objs)
		checkRoutes(&f, objs)
	}
	return f
}

// podTemplate returns the pod spec of a workload and the path of its spec.
func podTemplate(o object) (*corev1.PodSpec, *metav1.ObjectMeta, string) {
	switch x := o.Obj.(type) {
	case *appsv1.Deployment:
		return &x.Spec.Template.Spec, &x.Spec.Template.ObjectMeta, "spec.template.spec"
	case *appsv1.StatefulSet:
		return &x.Spec.Template.Spec, &x.Spec.Template.ObjectMeta, "spec.template.spec"
	case *appsv1.DaemonSet:
		return &x.Spec.Template.Spec, &x.Spec.Template.ObjectMeta, "spec.template.spec"
	case *batchv1.Job:
		return &x.Spec.Template.Spec, &x.Spec.Template.ObjectMeta, "spec.template.spec"
	case *batchv1.CronJob:
		return &x.Spec.JobTemplate.Spec.Template.Spec, &x.Spec.JobTemplate.Spec.Template.ObjectMeta, "spec.jobTemplate.spec.template.spec"
	case *corev1.Pod:
		return &x.Spec, &x.ObjectMeta, "spec"
	}
	return nil, nil, ""
}

// psaEvaluator is the Pod Security admission code the API server runs.
var psaEvaluator = func() pspolicy.Evaluator {
	e, err := pspolicy.NewEvaluator(pspolicy.DefaultChecks(), nil)
	if err != nil {
		panic(err)
	}
	return e
}()

type container struct {
	c    *corev1.Container
	path string
}

func containers(spec *corev1.PodSpec, path string) []container {
	var out []container
	for i := range spec.InitContainers {
		out = append(out, container{&spec.InitContainers[i], fmt.Sprintf("%s.initContainers[%s]", path, spec.InitContainers[i].Name)})
	}
	for i := range spec.Containers {
		out = append(out, container{&spec.Containers[i], fmt.Sprintf("%s.containers[%s]", path, spec.Containers[i].Name)})
	}
	return out
}

// checkPod: every pod of the kit passes Pod Security "restricted" (evaluated by the
// admission code itself), and on top of it has a read-only root filesystem, no service
// account token, resources (checkResources) on every container and image names without a
// registry host.
func checkPod(f *findings, o object, meta *metav1.ObjectMeta, spec *corev1.PodSpec, path string) {
	lv := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
	for _, r := range psaEvaluator.EvaluatePod(lv, meta, spec) {
		if !r.Allowed {
			f.add(o, path, "violates Pod Security \"restricted\": %s (%s)", r.ForbiddenReason, r.ForbiddenDetail)
		}
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		f.add(o, path+".automountServiceAccountToken", "must be false (the kit's pods never call the API server)")
	}
	for _, c := range containers(spec, path) {
		sc := c.c.SecurityContext
		switch {
		case sc == nil:
			f.add(o, c.path+".securityContext", "missing")
		default:
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				f.add(o, c.path+".securityContext.readOnlyRootFilesystem", "must be true")
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				f.add(o, c.path+".securityContext.allowPrivilegeEscalation", "must be false")
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
				f.add(o, c.path+".securityContext.capabilities.drop", "must contain ALL")
			}
		}
		checkResources(f, o, c)
		if host, ok := registryHost(c.c.Image); ok {
			f.add(o, c.path+".image", "%q names the registry host %q: keep image names host-free and set the registry with kustomize images:", c.c.Image, host)
		}
	}
}

// checkResources: CPU, memory and ephemeral storage (the container's log and writable
// layer) are requested, so the scheduler reserves them, and limited, so one container
// cannot starve or fill its node; a request never exceeds its limit.
func checkResources(f *findings, o object, c container) {
	res := c.c.Resources
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
		req, hasReq := res.Requests[name]
		lim, hasLim := res.Limits[name]
		if !hasReq {
			f.add(o, c.path+".resources.requests."+string(name), "missing")
		}
		if !hasLim {
			f.add(o, c.path+".resources.limits."+string(name), "missing")
		}
		if hasReq && hasLim && req.Cmp(lim) > 0 {
			f.add(o, c.path+".resources.requests."+string(name), "%s exceeds the limit %s", req.String(), lim.String())
		}
	}
}

// registryHost reports whether an image reference starts with a registry host (a first
// path component with a dot or a port, or localhost).
func registryHost(image string) (string, bool) {
	first, _, ok := strings.Cut(image, "/")
	if !ok {
		return "", false
	}
	if strings.ContainsAny(first, ".:") || first == "localhost" {
		return first, true
	}
	return "", false
}

// checkServer: the gRPC servers (every Deployment of the kit) have all three probes, and
// a grace period longer than their shutdown sequence.
func checkServer(f *findings, o object, spec *corev1.PodSpec) {
	path := "spec.template.spec"
	for i := range spec.Containers {
		c := &spec.Containers[i]
		cp := fmt.Sprintf("%s.containers[%s]", path, c.Name)
		for name, p := range map[string]*corev1.Probe{
			"startupProbe": c.StartupProbe, "readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe,
		} {
			if p == nil {
				f.add(o, cp+"."+name, "missing (servers need startup, readiness and liveness probes)")
				continue
			}
			if p.GRPC != nil && !hasContainerPort(c, p.GRPC.Port) {
				f.add(o, cp+"."+name+".grpc.port", "%d is not a containerPort of %s", p.GRPC.Port, c.Name)
			}
			// The kubelet's gRPC prober speaks TLS only with grpc.mode: TLS (alpha in
			// Kubernetes 1.37, feature gate GRPCContainerProbeTLS); without it, against a TLS
			// server it fails at every period (greeter doctor's readiness check says the same
			// of a live pod), and with it against a plaintext server the handshake fails.
			if p.GRPC != nil {
				tlsMode := p.GRPC.Mode != nil && *p.GRPC.Mode == corev1.GRPCProbeModeTLS
				switch {
				case servesTLS(c) && !tlsMode:
					f.add(o, cp+"."+name+".grpc", "a native gRPC probe without mode: TLS cannot speak TLS and the container serves TLS (TLS_CERT_FILE): use exec [\"/app\", \"probe\"] (components/backend-tls) or httpGet /readyz (or grpc.mode: TLS, alpha: docs/probes.md)")
				case !servesTLS(c) && tlsMode:
					f.add(o, cp+"."+name+".grpc.mode", "TLS, but the container serves plaintext (no TLS_CERT_FILE): the probe's handshake fails at every period")
				}
			}
		}
		// The server must keep its listener open until every proxy has dropped the pod: a
		// terminating pod stays "serving" until its readiness probe fails, and some
		// proxies route to serving endpoints (the e2e's nginx-ingress lane lost the
		// in-flight calls of every removed pod with a 3s delay).
		if p := c.ReadinessProbe; p != nil {
			window := time.Duration(max(p.PeriodSeconds, 1)*max(p.FailureThreshold, 1)) * time.Second
			if drain := envDuration(c, "DRAIN_DELAY", 5*time.Second); drain < window+propagation {
				f.add(o, cp+".env[DRAIN_DELAY]", "%s must cover the readiness window (%s) + endpoint propagation and proxy reload (%s)", drain, window, propagation)
			}
		}
		// SIGKILL must not come before the preStop sleep, the drain delay and the
		// graceful stop are over.
		need := envDuration(c, "DRAIN_DELAY", 5*time.Second) + envDuration(c, "SHUTDOWN_TIMEOUT", 15*time.Second)
		what := "DRAIN_DELAY + SHUTDOWN_TIMEOUT"
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			need += time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
			what = "preStop sleep + " + what
		}
		grace := 30 * time.Second // the API default
		if spec.TerminationGracePeriodSeconds != nil {
			grace = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
		}
		if grace <= need {
			f.add(o, path+".terminationGracePeriodSeconds", "%s must exceed %s of container %s (%s)", grace, what, c.Name, need)
		}
	}
}

// propagation: from a failed readiness probe to a proxy without the pod: the kubelet's
// status update, the EndpointSlice controller, the proxy's watch and reload (Traefik
// batches provider changes for 2s).
const propagation = 3 * time.Second

func hasContainerPort(c *corev1.Container, port int32) bool {
	for _, p := range c.Ports {
		if p.ContainerPort == port {
			return true
		}
	}
	return false
}

func envDuration(c *corev1.Container, name string, def time.Duration) time.Duration {
	for _, e := range c.Env {
		if e.Name == name {
			if d, err := time.ParseDuration(e.Value); err == nil {
				return d
			}
		}
	}
	return def
}

// checkService: gRPC ports say what they speak, the standard way: cleartext HTTP/2
// (kubernetes.io/h2c), or "https" when the pods behind them serve TLS
// (components/backend-tls), so that a proxy in front neither speaks h2c to a TLS port nor
// TLS to a cleartext one.
func checkService(f *findings, o object, s *corev1.Service, serveTLS bool) {
	want, why := h2c, "on a port named grpc"
	if serveTLS {
		want, why = "https", "on a port named grpc whose pods serve TLS (TLS_CERT_FILE)"
	}
	for i, p := range s.Spec.Ports {
		if p.Name == "grpc" && (p.AppProtocol == nil || *p.AppProtocol != want) {
			got := "unset"
			if p.AppProtocol != nil {
				got = strconv.Quote(*p.AppProtocol)
			}
			f.add(o, fmt.Sprintf("spec.ports[%d].appProtocol", i), "is %s, want %q %s", got, want, why)
		}
	}
}

// servesTLS: the container serves TLS (the servers' TLS_CERT_FILE).
func servesTLS(c *corev1.Container) bool {
	return slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "TLS_CERT_FILE" && e.Value != "" })
}

// selectsTLSServer: a Deployment of the render whose pods the Service selects serves TLS.
func selectsTLSServer(objs []object, ns string, s *corev1.Service) bool {
	for _, o := range objs {
		d, ok := o.Obj.(*appsv1.Deployment)
		if !ok || o.Namespace != ns || len(s.Spec.Selector) == 0 ||
			!labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			continue
		}
		if slices.ContainsFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return servesTLS(&c) }) {
			return true
		}
	}
	return false
}

// checkSecret: no key material in the repository. TLS Secrets are created at deploy time.
func checkSecret(f *findings, o object, s *corev1.Secret) {
	if s.Type == corev1.SecretTypeTLS {
		f.add(o, "type", "kubernetes.io/tls Secrets are created at deploy time, never committed")
	}
	for k, v := range s.Data {
		if isKeyMaterial(k, string(v)) {
			f.add(o, "data."+k, "holds key material: create the Secret at deploy time instead")
		}
	}
	for k, v := range s.StringData {
		if isKeyMaterial(k, v) {
			f.add(o, "stringData."+k, "holds key material: create the Secret at deploy time instead")
		}
	}
}

// pemPrivateKey matches the armour of any PEM private key (PKCS#1, PKCS#8, EC, ...).
var pemPrivateKey = regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`)

func isKeyMaterial(key, value string) bool {
	return key == corev1.TLSPrivateKeyKey || strings.HasSuffix(key, ".key") || pemPrivateKey.MatchString(value)
}

// checkGateway: on Traefik, a listener port must be one of Traefik's entry points
// (deploy/traefik/deployment.yaml), or the listener is PortUnavailable.
func checkGateway(f *findings, o object, g *gatewayv1.Gateway) {
	if string(g.Spec.GatewayClassName) != traefikClass {
		return
	}
	ports, err := traefikEntryPoints()
	if err != nil {
		f.add(o, "spec.listeners", "cannot read Traefik's entry points: %v", err)
		return
	}
	for i, l := range g.Spec.Listeners {
		if !slices.Contains(ports, int(l.Port)) {
			f.add(o, fmt.Sprintf("spec.listeners[%d].port", i), "%d is not a Traefik entry point port %v (%s): the listener would be PortUnavailable", l.Port, ports, traefikDeployment)
		}
	}
}

var entryPointArg = regexp.MustCompile(`^--entry[pP]oints\.([A-Za-z0-9_-]+)\.address=.*:(\d+)$`)

// traefikEntryPoints reads the ports of Traefik's entry points, except the one that only
// serves /ping, from the teammate's deployment manifest.
func traefikEntryPoints() ([]int, error) {
	data, err := os.ReadFile(traefikDeployment)
	if err != nil {
		return nil, err
	}
	o, err := decodeStrict(data)
	if err != nil {
		return nil, err
	}
	d, ok := o.Obj.(*appsv1.Deployment)
	if !ok || len(d.Spec.Template.Spec.Containers) == 0 {
		return nil, fmt.Errorf("%s: not a Deployment with a container", traefikDeployment)
	}
	args := d.Spec.Template.Spec.Containers[0].Args
	ping := ""
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--ping.entryPoint="); ok {
			ping = v
		}
	}
	var ports []int
	for _, a := range args {
		if m := entryPointArg.FindStringSubmatch(a); m != nil && m[1] != ping {
			p, _ := strconv.Atoi(m[2])
			ports = append(ports, p)
		}
	}
	if len(ports) == 0 {
		return nil, fmt.Errorf("%s: no --entryPoints.<name>.address=:<port> argument", traefikDeployment)
	}
	slices.Sort(ports)
	return ports, nil
}

// greeterConfig parses a greeter container's args and environment with the greeter's own
// parser (what the container will run with). ok is false for containers that do not run
// the greeter image.
func greeterConfig(c *corev1.Container) (cfg greeter.Config, ok bool, err error) {
	if !isGreeterImage(c.Image) {
		return greeter.Config{}, false, nil
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	args := c.Args
	if len(c.Command) > 1 { // a command that names the binary and then flags
		args = append(append([]string{}, c.Command[1:]...), c.Args...)
	}
	cfg, err = greeter.ParseFlags(args, func(k string) string { return env[k] }, io.Discard)
	return cfg, true, err
}

// isGreeterImage: grpc-k8s-kit/greeter, under any registry prefix and tag.
func isGreeterImage(image string) bool {
	repo, _, _ := strings.Cut(image, "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	return path.Base(repo) == "greeter"
}

// serviceOf names the Service behind a DNS name in a pod of namespace ns: svc, svc.ns,
// svc.ns.svc or svc.ns.svc.cluster.local.
func serviceOf(host, ns string) (svcNS, svc string, err error) {
	parts := strings.Split(strings.TrimSuffix(host, "."), ".")
	switch {
	case len(parts) == 1:
		return ns, parts[0], nil
	case len(parts) == 2, len(parts) == 3 && parts[2] == "svc",
		len(parts) == 5 && strings.Join(parts[2:], ".") == "svc.cluster.local":
		return parts[1], parts[0], nil
	}
	return "", "", fmt.Errorf("%q is not a Service name (svc, svc.ns, svc.ns.svc[.cluster.local])", host)
}

// checkGreeterTargets: a round_robin client only balances when DNS returns every pod,
// so the Service it targets must be headless; every target must be a Service (and
// port) of the same render.
func checkGreeterTargets(f *findings, objs []object) {
	services := map[string]*corev1.Service{}
	for _, o := range objs {
		if s, ok := o.Obj.(*corev1.Service); ok {
			services[o.Namespace+"/"+o.Name] = s
		}
	}
	for _, o := range objs {
		spec, _, path := podTemplate(o)
		if spec == nil {
			continue
		}
		for _, c := range containers(spec, path) {
			cfg, ok, err := greeterConfig(c.c)
			if !ok {
				continue
			}
			if err != nil {
				f.add(o, c.path+".args", "the greeter rejects its flags: %v", err)
				continue
			}
			// expect is -1 when -expect-backends is not set.
			target, lb, expect := cfg.Dial.Target, cfg.Dial.LB, cfg.Expect.Backends
			field := c.path + ".args[-target]"
			if dialer.IsXDS(target) {
				checkXDSGreeter(f, o, c, services)
				continue
			}
			host, port, err := greeter.TargetHostPort(target)
			var ns, name string
			if err == nil {
				ns, name, err = serviceOf(host, o.Namespace)
			}
			if err != nil {
				if lb == roundRobin {
					f.add(o, field, "%s with %s: %v: round_robin needs dns:/// and a Service name", target, lb, err)
				}
				continue
			}
			s, ok := services[ns+"/"+name]
			if !ok {
				f.add(o, field, "%s: Service %s/%s is not in this render (wrong name or namespace?)", target, ns, name)
				continue
			}
			if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return int(p.Port) == port }) {
				f.add(o, field, "%s: Service %s/%s has no port %d", target, ns, name, port)
			}
			if lb == roundRobin && s.Spec.ClusterIP != corev1.ClusterIPNone {
				f.add(o, field, "%s with round_robin: Service %s/%s is not headless (spec.clusterIP %q, want None): DNS returns one virtual IP and every call goes to one pod", target, ns, name, s.Spec.ClusterIP)
			}
			if lb == roundRobin && expect >= 0 {
				if n := replicasBehind(objs, ns, s); n != expect {
					f.add(o, c.path+".args[-expect-backends]", "%d, but the Deployments behind Service %s/%s have %d replicas", expect, ns, name, n)
				}
			}
		}
	}
}

// replicasBehind adds up the replicas of the Deployments whose pods the Service selects.
func replicasBehind(objs []object, ns string, s *corev1.Service) int {
	n := 0
	for _, o := range objs {
		d, ok := o.Obj.(*appsv1.Deployment)
		if ok && o.Namespace == ns && len(s.Spec.Selector) > 0 &&
			labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			n += int(ptr.Deref(d.Spec.Replicas, 1))
		}
	}
	return n
}

// checkDisruptionBudgets: every server Deployment is covered by a PodDisruptionBudget.
func checkDisruptionBudgets(f *findings, objs []object) {
	var pdbs []*policyv1.PodDisruptionBudget
	var pdbNS []string
	for _, o := range objs {
		if p, ok := o.Obj.(*policyv1.PodDisruptionBudget); ok {
			pdbs, pdbNS = append(pdbs, p), append(pdbNS, o.Namespace)
		}
	}
	for _, o := range objs {
		d, ok := o.Obj.(*appsv1.Deployment)
		if !ok {
			continue
		}
		covered := false
		for i, p := range pdbs {
			sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
			if err == nil && pdbNS[i] == o.Namespace && sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				covered = true
			}
		}
		if !covered {
			f.add(o, "spec.template.metadata.labels", "no PodDisruptionBudget in this render selects these pods")
		}
	}
}

var clusterScoped = map[string]bool{
	"Namespace": true, "GatewayClass": true, "IngressClass": true, "ClusterRole": true,
	"ClusterRoleBinding": true, "CustomResourceDefinition": true,
}

// checkNamespaces: in something applied as a whole, every object lands in a namespace
// that the same render creates (catches a component added without "namespace:").
func checkNamespaces(f *findings, objs []object) {
	have := map[string]bool{}
	for _, o := range objs {
		if o.GVK.Kind == "Namespace" {
			have[o.Name] = true
		}
	}
	for _, o := range objs {
		if clusterScoped[o.GVK.Kind] {
			continue
		}
		if o.Namespace == "" {
			f.add(o, "metadata.namespace", "unset: set namespace: in the kustomization that adds it")
		} else if !have[o.Namespace] {
			f.add(o, "metadata.namespace", "%q is not a Namespace of this render", o.Namespace)
		}
	}
}

func serviceIndex(objs []object) map[string]*corev1.Service {
	m := map[string]*corev1.Service{}
	for _, o := range objs {
		if s, ok := o.Obj.(*corev1.Service); ok {
			m[o.Namespace+"/"+o.Name] = s
		}
	}
	return m
}

// checkIngressBackends: every Ingress backend is a Service port of the render.
func checkIngressBackends(f *findings, objs []object) {
	services := serviceIndex(objs)
	for _, o := range objs {
		ing, ok := o.Obj.(*networkingv1.Ingress)
		if !ok {
			continue
		}
		for i, r := range ing.Spec.Rules {
			if r.HTTP == nil {
				continue
			}
			for j, p := range r.HTTP.Paths {
				field := fmt.Sprintf("spec.rules[%d].http.paths[%d].backend.service", i, j)
				b := p.Backend.Service
				if b == nil {
					f.add(o, field, "missing")
					continue
				}
				s, ok := services[o.Namespace+"/"+b.Name]
				if !ok {
					f.add(o, field+".name", "Service %s/%s is not in this render", o.Namespace, b.Name)
					continue
				}
				if !slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool {
					return (b.Port.Name != "" && sp.Name == b.Port.Name) || (b.Port.Name == "" && sp.Port == b.Port.Number)
				}) {
					f.add(o, field+".port", "Service %s/%s has no port %q/%d", o.Namespace, b.Name, b.Port.Name, b.Port.Number)
				}
			}
		}
	}
}

// checkRoutes: every GRPCRoute's parents and backends exist in the render, and a
// backend in another namespace is allowed by a ReferenceGrant there.
func checkRoutes(f *findings, objs []object) {
	services := serviceIndex(objs)
	gateways := map[string]bool{}
	var grants []object
	for _, o := range objs {
		switch o.Obj.(type) {
		case *gatewayv1.Gateway:
			gateways[o.Namespace+"/"+o.Name] = true
		case *gatewayv1beta1.ReferenceGrant:
			grants = append(grants, o)
		}
	}
	for _, o := range objs {
		r, ok := o.Obj.(*gatewayv1.GRPCRoute)
		if !ok {
			continue
		}
		for i, p := range r.Spec.ParentRefs {
			ns := o.Namespace
			if p.Namespace != nil {
				ns = string(*p.Namespace)
			}
			field := fmt.Sprintf("spec.parentRefs[%d]", i)
			kind := "Gateway"
			if p.Kind != nil {
				kind = string(*p.Kind)
			}
			switch {
			case kind == "Gateway" && !gateways[ns+"/"+string(p.Name)]:
				f.add(o, field, "Gateway %s/%s is not in this render", ns, p.Name)
			case kind == "Service" && services[ns+"/"+string(p.Name)] == nil:
				f.add(o, field, "Service %s/%s is not in this render", ns, p.Name)
			}
		}
		for i, rule := range r.Spec.Rules {
			for j, b := range rule.BackendRefs {
				field := fmt.Sprintf("spec.rules[%d].backendRefs[%d]", i, j)
				if b.Kind != nil && *b.Kind != "Service" {
					continue
				}
				ns := o.Namespace
				if b.Namespace != nil {
					ns = string(*b.Namespace)
				}
				s, ok := services[ns+"/"+string(b.Name)]
				if !ok {
					f.add(o, field, "Service %s/%s is not in this render", ns, b.Name)
					continue
				}
				if b.Port == nil || !slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Port == int32(*b.Port) }) {
					f.add(o, field+".port", "Service %s/%s has no such port", ns, b.Name)
				}
				if ns != o.Namespace && !granted(grants, ns, o.Namespace, string(b.Name)) {
					f.add(o, field, "Service %s/%s is in another namespace and no ReferenceGrant in %s allows GRPCRoutes of %s to use it", ns, b.Name, ns, o.Namespace)
				}
			}
		}
	}
}

func granted(grants []object, toNS, fromNS, service string) bool {
	for _, o := range grants {
		g := o.Obj.(*gatewayv1beta1.ReferenceGrant)
		if o.Namespace != toNS {
			continue
		}
		from := slices.ContainsFunc(g.Spec.From, func(x gatewayv1beta1.ReferenceGrantFrom) bool {
			return x.Group == gatewayv1.GroupName && x.Kind == "GRPCRoute" && string(x.Namespace) == fromNS
		})
		to := slices.ContainsFunc(g.Spec.To, func(x gatewayv1beta1.ReferenceGrantTo) bool {
			return x.Group == "" && x.Kind == "Service" && (x.Name == nil || string(*x.Name) == service)
		})
		if from && to {
			return true
		}
	}
	return false
}
