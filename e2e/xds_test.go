//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	h "github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/xdsdump"
)

// deployProxyless: grpc-go clients with xds:/// targets get their routes, clusters and
// endpoints from istiod (deploy/istiod, which make kind-up deploys), which turns the GAMMA
// GRPCRoute of components/mesh-gamma into them; no proxy in the path. The overlay's greeter
// Jobs assert the route's split, the canary header and the default route of a Service
// without one; then what a proxyless client does not apply, and what it received.
func deployProxyless(t *testing.T, s *h.Suite, tp h.Topology) {
	// One replica: a run killed during controlPlaneLost (its cleanup never ran) leaves 0,
	// and a Deployment of 0 replicas is "rolled out".
	s.Kube.Cleanup(t, "-n", istiodNS, "scale", "deploy/istiod", "--replicas=1")
	if out, err := s.Kube.Exec("-n", istiodNS, "rollout", "status", "deploy/istiod", "--timeout=2m"); err != nil {
		t.Fatalf("istiod is not running in %s (%v: %s): run `make kind-up`, which deploys deploy/istiod", istiodNS, err, out)
	}
	// Jobs are immutable: delete the previous run's before applying. The Jobs come last, as
	// in the headless topology: their warm-up waits for every backend, at most 120 s.
	s.Kube.Cleanup(t, "-n", xdsNS, "delete", "job", "greeter-hello", "greeter-canary", "greeter-goodbye", "--ignore-not-found", "--wait=true")
	s.Apply(t, tp.Overlay, "-l", "app.kubernetes.io/name!=greeter")
	s.Kube.Rollout(t, xdsNS, "hello", "hello-v2", "goodbye")
	s.WaitPodsReady(t, xdsNS, 3)
	s.Apply(t, tp.Overlay)

	t.Run("greeter-hello: 90/10, round robin within v1", func(t *testing.T) {
		sum := s.JobReport(t, xdsNS, "greeter-hello", "proxyless xDS (GAMMA GRPCRoute): hello 90/10")
		if sum.OK < 2000 {
			t.Errorf("%d ok calls, want ≥ 2000", sum.OK)
		}
		// Round robin: each pod in turn. A picker rebuilt by an update (an endpoint's
		// state) starts at a random pod, so each pod may be 2 calls from an even share.
		checkCanary(t, sum, 2/(float64(sum.ByVersion["v1"])/3))
	})
	t.Run("greeter-canary: the header sends every call to v2", func(t *testing.T) {
		sum := s.JobReport(t, xdsNS, "greeter-canary", "proxyless xDS (GAMMA GRPCRoute): hello, header canary")
		if sum.OK != 200 || sum.ByVersion["v2"] != 200 {
			t.Errorf("with x-experiment-group: canary, v2 served %d of %d ok calls, want 200 of 200", sum.ByVersion["v2"], sum.OK)
		}
	})
	t.Run("greeter-goodbye: no GRPCRoute, istiod's default route", func(t *testing.T) {
		sum := s.JobReport(t, xdsNS, "greeter-goodbye", "proxyless xDS (no route): goodbye")
		h.CheckRouting(t, "goodbye", sum, "helloworld.Goodbye", "goodbye-")
		h.CheckSpread(t, "goodbye", sum, 3, 2/(float64(sum.OK)/3))
	})

	// The route's RequestHeaderModifier adds x-routed-by, and the route reports Accepted;
	// a proxyless client drops it. The servers echo both headers when they get them: the
	// client's own arrives (so the check can see metadata), the route's must not. If this
	// fails, grpc-go has learnt to apply the filter: update the mesh-gamma README.
	t.Run("header filter does not reach the server (documented limitation)", func(t *testing.T) {
		var reply map[string]any
		s.JobLoad(t, tp, "header filter", "-H=x-experiment-group=control", "-n=1", "-json").Decode(t, &reply)
		md, _ := reply["requestMetadata"].(map[string]any)
		if md["x-experiment-group"] != "control" {
			t.Fatalf("the client's own header did not come back, so the check cannot see metadata: %v", reply)
		}
		if v, ok := md["x-routed-by"]; ok {
			t.Errorf("x-routed-by reached the server (%v): grpc-go now applies RequestHeaderModifier; update components/mesh-gamma/README.md", v)
		}
	})

	// What the client received, with the kit's own parser of -xds-dump -json: the route's
	// weights, the retry policy istiod adds, the dropped header, nothing rejected.
	t.Run("xds-dump", func(t *testing.T) {
		var d xdsdump.Dump
		s.JobLoad(t, tp, "xds-dump", "-xds-dump", "-json", "-timeout=30s").Decode(t, &d)
		if p := d.Problems(); len(p) > 0 || !d.Settled() {
			t.Errorf("the client did not accept everything istiod sent (settled %v): %v", d.Settled(), p)
		}
		var weighted *xdsdump.Route
		for _, rc := range d.Routes {
			for _, vh := range rc.VirtualHosts {
				for i, r := range vh.Routes {
					if r.Path == "path /helloworld.Hello/SayHello" && len(r.Headers) == 0 {
						weighted = &vh.Routes[i]
					}
				}
			}
		}
		if weighted == nil {
			t.Fatalf("no route for /helloworld.Hello/SayHello without a header match: %+v", d.Routes)
		}
		var weights []string
		for _, c := range weighted.Clusters {
			// istiod names a cluster outbound|<port>||<Service host>.
			parts := strings.Split(c.Name, "|")
			if len(parts) != 4 {
				t.Fatalf("cluster %q is not named outbound|port||host", c.Name)
			}
			weights = append(weights, fmt.Sprintf("%s=%d", parts[3], c.Weight))
		}
		if got := strings.Join(weights, " "); got != "hello-v1."+xdsNS+".svc.cluster.local=90 hello-v2."+xdsNS+".svc.cluster.local=10" {
			t.Errorf("SayHello's weights: %s, want hello-v1 90 and hello-v2 10", got)
		}
		if !strings.Contains(weighted.Retry, "unavailable") {
			t.Errorf("SayHello's route has retry %q: want istiod's default (retries on unavailable)", weighted.Retry)
		}
		if !slices.ContainsFunc(weighted.Ignored, func(sum string) bool { return strings.Contains(sum, "x-routed-by") }) {
			t.Errorf("the dump does not show the dropped x-routed-by header: %q", weighted.Ignored)
		}
		t.Logf("SayHello: %s; retry %s; ignored %q", strings.Join(weights, ", "), weighted.Retry, weighted.Ignored)
	})
	s.Progressf(tp.Where(), "routing checks done")
}
