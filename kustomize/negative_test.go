package kustomize

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// The checks must catch what they are written for: each test below breaks a manifest on
// purpose and expects a finding that names the object and the field.

// expectFinding fails unless some finding contains every one of want.
func expectFinding(t *testing.T, fs []string, want ...string) {
	t.Helper()
	for _, f := range fs {
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(f, w)
		}
		if ok {
			t.Logf("caught: %s", f)
			return
		}
	}
	t.Fatalf("no finding contains all of %q; findings:\n  %s", want, strings.Join(fs, "\n  "))
}

// badGreeter is a Job that balances with round_robin over the ClusterIP Service: DNS
// returns one virtual IP, so every call would land on the same pod.
const badGreeter = `apiVersion: batch/v1
kind: Job
metadata:
  name: bad-greeter
spec:
  template:
    spec:
      restartPolicy: Never
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: greeter
        image: grpc-k8s-kit/greeter:dev
        args:
        - -target
        - dns:///hello-grpc.grpc-kit-headless.svc.cluster.local:50051
        - -lb=round_robin
        resources:
          requests: {cpu: 50m, memory: 32Mi, ephemeral-storage: 16Mi}
          limits: {cpu: 500m, memory: 128Mi, ephemeral-storage: 64Mi}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
`

// TestRoundRobinOverClusterIPIsCaught renders a temporary overlay (the headless overlay
// plus badGreeter) and expects the headless-target check to fail on it.
func TestRoundRobinOverClusterIPIsCaught(t *testing.T) {
	dir := compose(t, []string{"overlays/headless"}, nil, "grpc-kit-headless", map[string]string{"bad-greeter.yaml": badGreeter})
	objs, err := render(dir)
	if err != nil {
		t.Fatal(err)
	}
	expectFinding(t, check(objs, true),
		"Job grpc-kit-headless/bad-greeter", "spec.template.spec.containers[greeter].args[-target]",
		"Service grpc-kit-headless/hello-grpc is not headless")
}

// TestGreeterTargetMustExist: a target in the wrong namespace is not in the render.
func TestGreeterTargetMustExist(t *testing.T) {
	job := strings.Replace(badGreeter, "hello-grpc.grpc-kit-headless", "hello-grpc-headless.elsewhere", 1)
	dir := compose(t, []string{"overlays/headless"}, nil, "grpc-kit-headless", map[string]string{"bad-greeter.yaml": job})
	objs, err := render(dir)
	if err != nil {
		t.Fatal(err)
	}
	expectFinding(t, check(objs, true), "Job grpc-kit-headless/bad-greeter", "Service elsewhere/hello-grpc-headless is not in this render")
}

// TestCrossNamespaceBackendNeedsReferenceGrant renders the Gateway API overlay without
// its reference-grant kustomization: the goodbye route's backend must be flagged, as
// the gateway would report ResolvedRefs=False.
func TestCrossNamespaceBackendNeedsReferenceGrant(t *testing.T) {
	dir := compose(t, []string{"overlays/gateway-api/gateway", "overlays/gateway-api/backends"}, nil, "", nil)
	objs, err := render(dir)
	if err != nil {
		t.Fatal(err)
	}
	expectFinding(t, check(objs, true), "GRPCRoute grpc-kit-gateway/goodbye", "spec.rules[0].backendRefs[0]",
		"no ReferenceGrant in grpc-kit-gateway-backends")
}

// TestComponentWithoutNamespaceIsCaught: a component added to an overlay from a
// kustomization without "namespace:" leaves its objects namespace-less.
func TestComponentWithoutNamespaceIsCaught(t *testing.T) {
	dir := compose(t, []string{"overlays/headless"}, []string{"components/network-policies"}, "", nil)
	objs, err := render(dir)
	if err != nil {
		t.Fatal(err)
	}
	expectFinding(t, check(objs, true), "NetworkPolicy grpc-servers", "metadata.namespace", "unset")
}

// TestMutationsAreCaught breaks one field of a rendered object at a time.
func TestMutationsAreCaught(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(t *testing.T, objs []object) []object
		want   []string
	}{
		{"readiness probe removed", func(t *testing.T, objs []object) []object {
			deployment(t, objs, "hello").Spec.Template.Spec.Containers[0].ReadinessProbe = nil
			return objs
		}, []string{"Deployment grpc-kit-headless/hello", "containers[hello].readinessProbe", "missing"}},
		{"liveness probe removed", func(t *testing.T, objs []object) []object {
			deployment(t, objs, "goodbye").Spec.Template.Spec.Containers[0].LivenessProbe = nil
			return objs
		}, []string{"Deployment grpc-kit-headless/goodbye", "containers[goodbye].livenessProbe", "missing"}},
		{"probe on a port the container does not open", func(t *testing.T, objs []object) []object {
			deployment(t, objs, "hello").Spec.Template.Spec.Containers[0].StartupProbe.GRPC.Port = 9999
			return objs
		}, []string{"Deployment grpc-kit-headless/hello", "startupProbe.grpc.port", "9999"}},
		{"appProtocol grpc", func(t *testing.T, objs []object) []object {
			service(t, objs, "hello-grpc").Spec.Ports[0].AppProtocol = ptr.To("grpc")
			return objs
		}, []string{"Service grpc-kit-headless/hello-grpc", "spec.ports[0].appProtocol", `is "grpc"`}},
		{"writable root filesystem", func(t *testing.T, objs []object) []object {
			deployment(t, objs, "hello").Spec.Template.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem = ptr.To(false)
			return objs
		}, []string{"Deployment grpc-kit-headless/hello", "securityContext.readOnlyRootFilesystem"}},
		{"runs as root", func(t *testing.T, objs []object) []object {
			d := deployment(t, objs, "hello")
			d.Spec.Template.Spec.SecurityContext.RunAsNonRoot = nil
			d.Spec.Template.Spec.SecurityContext.RunAsUser = ptr.To[int64](0)
			return objs
		}, []string{"Deployment grpc-kit-headless/hello", `violates Pod Security "restricted"`, "runAsNonRoot"}},
		{"capabilities kept", func(t *testing.T, objs []object) []object {
			job(t, objs, "greeter-hello").Spec.Template.Spec.InitContainers[0].SecurityContext.Capabilities = nil
			return objs
		}, []string{"Job grpc-kit-headless/greeter-hello", "initContainers[wait-for-backends].securityContext.capabilities.drop"}},
		{"no memory limit", func(t *testing.T, objs []object) []object {
			delete(job(t, objs, "greeter-pick-first").Spec.Template.Spec.Containers[0].Resources.Limits, corev1.ResourceMemory)
			return objs
		}, []string{"Job grpc-kit-headless/greeter-pick-first", "containers[greeter].resources.limits.memory", "missing"}},
		{"no ephemeral-storage request", func(t *testing.T, objs []object) []object {
			delete(deployment(t, objs, "goodbye").Spec.Template.Spec.Containers[0].Resources.Requests, corev1.ResourceEphemeralStorage)
			return objs
		}, []string{"Deployment grpc-kit-headless/goodbye", "containers[goodbye].resources.requests.ephemeral-storage", "missing"}},
		{"no ephemeral-storage limit on an init container", func(t *testing.T, objs []object) []object {
			delete(job(t, objs, "greeter-hello").Spec.Template.Spec.InitContainers[0].Resources.Limits, corev1.ResourceEphemeralStorage)
			return objs
		}, []string{"Job grpc-kit-headless/greeter-hello", "initContainers[wait-for-backends].resources.limits.ephemeral-storage", "missing"}},
		{"request above its limit", func(t *testing.T, objs []object) []object {
			deployment(t, objs, "hello").Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceEphemeralStorage] = resource.MustParse("1Gi")
			return objs
		}, []string{"Deployment grpc-kit-headless/hello", "resources.requests.ephemeral-storage", "1Gi exceeds the limit 128Mi"}},
		{"image with a registry host", func(t *testing.T, objs []object) []object {
			deployment(t, objs, "hello").Spec.Template.Spec.Containers[0].Image = "registry.example.com/grpc-k8s-kit/hello:dev"
			return objs
		}, []string{"Deployment grpc-kit-headless/hello", "containers[hello].image", "registry.example.com"}},
		{"grace period shorter than the shutdown", func(t *testing.T, objs []object) []object {
			deployment(t, objs, "hello").Spec.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](20)
			return objs
		}, []string{"Deployment grpc-kit-headless/hello", "terminationGracePeriodSeconds", "must exceed preStop sleep + DRAIN_DELAY + SHUTDOWN_TIMEOUT"}},
		{"drain shorter than the readiness window", func(t *testing.T, objs []object) []object {
			c := &deployment(t, objs, "hello").Spec.Template.Spec.Containers[0]
			for i := range c.Env {
				if c.Env[i].Name == "DRAIN_DELAY" {
					c.Env[i].Value = "3s"
				}
			}
			return objs
		}, []string{"Deployment grpc-kit-headless/hello", "env[DRAIN_DELAY]", "3s must cover the readiness window (4s)"}},
		{"namespace not restricted", func(t *testing.T, objs []object) []object {
			for _, o := range objs {
				if ns, ok := o.Obj.(*corev1.Namespace); ok {
					ns.Labels["pod-security.kubernetes.io/enforce"] = "baseline"
				}
			}
			return objs
		}, []string{"Namespace grpc-kit-headless", "metadata.labels[pod-security.kubernetes.io/enforce]", `"baseline"`}},
		{"committed TLS key", func(t *testing.T, objs []object) []object {
			s := &corev1.Secret{Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.key": []byte("secret")}}
			s.Name, s.Namespace = "grpc-kit-tls", "grpc-kit-headless"
			return append(objs, object{GVK: corev1.SchemeGroupVersion.WithKind("Secret"), Namespace: s.Namespace, Name: s.Name, Obj: s})
		}, []string{"Secret grpc-kit-headless/grpc-kit-tls", "data.tls.key", "key material"}},
		{"replicas no longer what the greeter expects", func(t *testing.T, objs []object) []object {
			deployment(t, objs, "hello").Spec.Replicas = ptr.To[int32](2)
			return objs
		}, []string{"Job grpc-kit-headless/greeter-hello", "args[-expect-backends]", "3, but the Deployments behind Service grpc-kit-headless/hello-grpc-headless have 2 replicas"}},
		{"greeter flag the greeter rejects", func(t *testing.T, objs []object) []object {
			c := &job(t, objs, "greeter-hello").Spec.Template.Spec.Containers[0]
			c.Args = append(c.Args, "-lb=random")
			return objs
		}, []string{"Job grpc-kit-headless/greeter-hello", "containers[greeter].args", "the greeter rejects its flags", `lb "random"`}},
		{"target from GREETER_TARGET, in the wrong namespace", func(t *testing.T, objs []object) []object {
			c := &job(t, objs, "greeter-goodbye").Spec.Template.Spec.Containers[0]
			c.Args = slices.DeleteFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "-target=") })
			c.Env = append(c.Env, corev1.EnvVar{Name: "GREETER_TARGET", Value: "dns:///goodbye-grpc-headless.elsewhere:50051"})
			return objs
		}, []string{"Job grpc-kit-headless/greeter-goodbye", "containers[greeter].args[-target]", "Service elsewhere/goodbye-grpc-headless is not in this render"}},
		{"wrong port in a target", func(t *testing.T, objs []object) []object {
			c := &job(t, objs, "greeter-pick-first").Spec.Template.Spec.InitContainers[0]
			for i, a := range c.Args {
				if strings.HasPrefix(a, "-target=") {
					c.Args[i] = strings.Replace(a, ":50051", ":50052", 1)
				}
			}
			return objs
		}, []string{"Job grpc-kit-headless/greeter-pick-first", "initContainers[wait-for-backends].args[-target]", "has no port 50052"}},
		{"no disruption budget", func(t *testing.T, objs []object) []object {
			var out []object
			for _, o := range objs {
				if o.GVK.Kind != "PodDisruptionBudget" || o.Name != "goodbye" {
					out = append(out, o)
				}
			}
			return out
		}, []string{"Deployment grpc-kit-headless/goodbye", "no PodDisruptionBudget"}},
		{"no spread over nodes", func(t *testing.T, objs []object) []object {
			d := deployment(t, objs, "hello")
			d.Spec.Template.Spec.TopologySpreadConstraints = slices.DeleteFunc(d.Spec.Template.Spec.TopologySpreadConstraints,
				func(c corev1.TopologySpreadConstraint) bool { return c.TopologyKey == corev1.LabelHostname })
			return objs
		}, []string{"Deployment grpc-kit-headless/hello", "spec.template.spec.topologySpreadConstraints", "no constraint on kubernetes.io/hostname"}},
		{"budget that blocks every drain", func(t *testing.T, objs []object) []object {
			zero := intstr.FromInt32(0)
			find(t, objs, "PodDisruptionBudget", "grpc-kit-headless", "hello").Obj.(*policyv1.PodDisruptionBudget).Spec.MaxUnavailable = &zero
			return objs
		}, []string{"PodDisruptionBudget grpc-kit-headless/hello", "maxUnavailable 0", "keeps 3 of the 3 pods", "never ends"}},
		{"spread over nodes required", func(t *testing.T, objs []object) []object {
			for i, c := range deployment(t, objs, "goodbye").Spec.Template.Spec.TopologySpreadConstraints {
				if c.TopologyKey == corev1.LabelHostname {
					deployment(t, objs, "goodbye").Spec.Template.Spec.TopologySpreadConstraints[i].WhenUnsatisfiable = corev1.DoNotSchedule
				}
			}
			return objs
		}, []string{"Deployment grpc-kit-headless/goodbye", "topologySpreadConstraints[1].whenUnsatisfiable", "want ScheduleAnyway"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := render("overlays/headless")
			if err != nil {
				t.Fatal(err)
			}
			if fs := check(objs, true); len(fs) > 0 {
				t.Fatalf("the unmodified overlay already has findings: %q", fs)
			}
			expectFinding(t, check(tc.mutate(t, objs), true), tc.want...)
		})
	}
}

// TestGatewayListenerOnNonEntryPointPortIsCaught: Traefik only serves listeners on its
// entry point ports.
func TestGatewayListenerOnNonEntryPointPortIsCaught(t *testing.T) {
	objs, err := render("overlays/gateway-api")
	if err != nil {
		t.Fatal(err)
	}
	find(t, objs, "Gateway", "grpc-kit-gateway", "grpc-kit").Obj.(*gatewayv1.Gateway).Spec.Listeners[0].Port = 443
	expectFinding(t, check(objs, true), "Gateway grpc-kit-gateway/grpc-kit", "spec.listeners[0].port", "443 is not a Traefik entry point port")
}

func deployment(t *testing.T, objs []object, name string) *appsv1.Deployment {
	t.Helper()
	for _, o := range objs {
		if d, ok := o.Obj.(*appsv1.Deployment); ok && o.Name == name {
			return d
		}
	}
	t.Fatalf("no Deployment %s", name)
	return nil
}

func service(t *testing.T, objs []object, name string) *corev1.Service {
	t.Helper()
	for _, o := range objs {
		if s, ok := o.Obj.(*corev1.Service); ok && o.Name == name {
			return s
		}
	}
	t.Fatalf("no Service %s", name)
	return nil
}
