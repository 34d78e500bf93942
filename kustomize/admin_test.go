package kustomize

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// POST /admin/health is unauthenticated, so the templates leave it off (the binaries
// default to --admin=false) and only components/admin-endpoint-for-tests turns it on,
// for the e2e suite (e2e/overlays).
const adminComponent = "components/admin-endpoint-for-tests"

// adminOn reports whether a container sets ADMIN to a true value, and how many ADMIN
// entries it has.
func adminOn(c *corev1.Container) (on bool, entries int) {
	for _, e := range c.Env {
		if e.Name == "ADMIN" {
			entries++
			v, err := strconv.ParseBool(e.Value)
			on = on || err != nil || v // an unparsable value is not "off"
		}
	}
	return on, entries
}

// TestAdminOffInTemplates: no template of the kit turns the admin endpoint on; only
// targets that add the component may.
func TestAdminOffInTemplates(t *testing.T) {
	for _, tg := range targets {
		if slices.Contains(tg.components, adminComponent) || strings.HasPrefix(tg.dir, "../e2e/") {
			continue
		}
		t.Run(tg.name, func(t *testing.T) {
			for _, o := range tg.render(t) {
				spec, _, path := podTemplate(o)
				if spec == nil {
					continue
				}
				for _, c := range containers(spec, path) {
					if on, _ := adminOn(c.c); on {
						t.Errorf("%s: %s.env[ADMIN]: turns on the unauthenticated POST /admin/health: leave it to %s (tests only)", o, c.path, adminComponent)
					}
				}
			}
		})
	}
}

// TestAdminComponent: each e2e overlay is its kustomize/ overlay with ADMIN=true added to
// the container of every server Deployment (hello, goodbye, hello-v2, in every
// namespace), once, its CPU request set to e2e/components/shared-node's, and nothing else
// changed but what the long-stream and silent-backend checks add (their components) and
// the metrics component in each namespace with servers.
// sharedNodeCPU is the CPU request e2e/components/shared-node gives every server.
const sharedNodeCPU = "20m"

func TestAdminComponent(t *testing.T) {
	for _, name := range []string{"headless", "nginx-ingress", "gateway-api"} {
		t.Run(name, func(t *testing.T) {
			plain, err := render("overlays/" + name)
			if err != nil {
				t.Fatal(err)
			}
			withAdmin, err := render("../e2e/overlays/" + name)
			if err != nil {
				t.Fatal(err)
			}
			servers := 0
			longStreams := name == "gateway-api" // e2e/components/long-streams
			// e2e/components/silent-backend adds an Ingress (traefik_test.go checks it).
			if name == "nginx-ingress" {
				n := len(withAdmin)
				withAdmin = slices.DeleteFunc(withAdmin, func(o object) bool {
					return o.GVK.Kind == "Ingress" && o.Namespace == ingressNS && o.Name == stockDialIngress
				})
				if len(withAdmin) != n-1 {
					t.Errorf("no Ingress %s/%s (e2e/components/silent-backend)", ingressNS, stockDialIngress)
				}
			}
			// The metrics component (prometheus-rule, with fast-alerts): its PodMonitor and
			// PrometheusRule in every namespace with a server Deployment, and nowhere else.
			withServers, withMetrics := map[string]bool{}, map[string]int{}
			for _, o := range withAdmin {
				if _, ok := o.Obj.(*appsv1.Deployment); ok {
					withServers[o.Namespace] = true
				}
			}
			withAdmin = slices.DeleteFunc(withAdmin, func(o object) bool {
				if (o.GVK.Kind == "PodMonitor" || o.GVK.Kind == "PrometheusRule") && o.Name == "grpc-kit" {
					withMetrics[o.Namespace]++
					return true
				}
				return false
			})
			for ns := range withServers {
				if withMetrics[ns] != 2 {
					t.Errorf("namespace %s: %d of the PodMonitor and PrometheusRule grpc-kit (kustomize/components/prometheus-rule), want both", ns, withMetrics[ns])
				}
			}
			if len(withMetrics) != len(withServers) {
				t.Errorf("the metrics component in namespaces %v, want those with servers, %v", withMetrics, withServers)
			}
			for _, o := range withAdmin {
				if g, ok := o.Obj.(*gatewayv1.Gateway); ok && longStreams {
					n := len(g.Spec.Listeners)
					g.Spec.Listeners = slices.DeleteFunc(g.Spec.Listeners, func(l gatewayv1.Listener) bool {
						return l.Name == "h2c-stock-timeouts" && l.Port == 8001
					})
					if len(g.Spec.Listeners) != n-1 {
						t.Errorf("%s: no listener h2c-stock-timeouts on port 8001 (e2e/components/long-streams)", o)
					}
				}
				d, ok := o.Obj.(*appsv1.Deployment)
				if !ok {
					continue
				}
				servers++
				for i := range d.Spec.Template.Spec.Containers {
					c := &d.Spec.Template.Spec.Containers[i]
					if on, n := adminOn(c); !on || n != 1 {
						t.Errorf("%s: container %s: ADMIN on=%v in %d env entries, want one ADMIN=true", o, c.Name, on, n)
					}
					c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "ADMIN" })
					if got := c.Resources.Requests[corev1.ResourceCPU]; got.String() != sharedNodeCPU {
						t.Errorf("%s: container %s requests %s CPU, want e2e/components/shared-node's %s", o, c.Name, got.String(), sharedNodeCPU)
					}
					delete(c.Resources.Requests, corev1.ResourceCPU)
				}
				// The spread over nodes, a requirement in the e2e (shared-node), back to the
				// templates' preference; TestRender checks the e2e's.
				for i := range d.Spec.Template.Spec.TopologySpreadConstraints {
					if c := &d.Spec.Template.Spec.TopologySpreadConstraints[i]; c.TopologyKey == corev1.LabelHostname {
						c.WhenUnsatisfiable, c.NodeTaintsPolicy = corev1.ScheduleAnyway, nil
					}
				}
			}
			for _, o := range plain {
				if d, ok := o.Obj.(*appsv1.Deployment); ok {
					for i := range d.Spec.Template.Spec.Containers {
						delete(d.Spec.Template.Spec.Containers[i].Resources.Requests, corev1.ResourceCPU)
					}
				}
			}
			if servers == 0 {
				t.Fatal("no Deployment in the render")
			}
			// With ADMIN removed again, the two renders must be the same objects.
			key := func(objs []object) map[string]any {
				m := map[string]any{}
				for _, o := range objs {
					m[fmt.Sprint(o)] = o.Obj
				}
				return m
			}
			if d := cmp.Diff(key(plain), key(withAdmin)); d != "" {
				t.Errorf("e2e/overlays/%s differs from kustomize/overlays/%s beyond ADMIN (-overlay +e2e):\n%s", name, name, d)
			}
		})
	}
}
