package loopback

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/yaml"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/loopfleet"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/reqmeta"
)

// Proxyless gRPC on loopback: the greeter binary dials xds:///, with the bootstrap of
// kustomize/overlays/proxyless-xds (read from that file, only server_uri pointed here), and
// a real xDS management server (go-control-plane, which grpc-go's own xDS tests use) sends
// it what istiod sends for the kit's GAMMA route: a canary header rule and a 90/10 weighted
// rule with a header-adding filter. grpc-go's real xDS client does the rest.

const (
	xdsNS       = "kit"
	xdsListener = "hello-grpc.kit.svc.cluster.local:50051" // istiod names listeners host:port
	xdsTarget   = "xds:///" + xdsListener
	clusterV1   = "outbound|50051||hello-v1.kit.svc.cluster.local"
	clusterV2   = "outbound|50051||hello-v2.kit.svc.cluster.local"
	routesName  = "hello-grpc.kit.svc.cluster.local:50051"
)

// overlayBootstrap is the GRPC_XDS_BOOTSTRAP_CONFIG of the overlay's greeter Jobs with
// $(POD_IP), $(POD_NAME) and $(POD_NAMESPACE) expanded as the kubelet would, and the
// control plane at serverURI. It returns the bootstrap and the node id in it.
func overlayBootstrap(t *testing.T, pod, serverURI string) (string, string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(moduleRoot(t), "kustomize/overlays/proxyless-xds/xds-bootstrap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var job batchv1.Job
	if err := yaml.UnmarshalStrict(data, &job); err != nil {
		t.Fatalf("xds-bootstrap.yaml: %v", err)
	}
	var raw string
	for _, c := range job.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			if e.Name == dialer.BootstrapConfigEnv {
				raw = e.Value
			}
		}
	}
	if raw == "" {
		t.Fatalf("xds-bootstrap.yaml sets no %s", dialer.BootstrapConfigEnv)
	}
	raw = strings.NewReplacer("$(POD_IP)", "127.0.0.1", "$(POD_NAME)", pod, "$(POD_NAMESPACE)", xdsNS).Replace(raw)
	var b map[string]any
	if err := json.Unmarshal([]byte(raw), &b); err != nil {
		t.Fatalf("the overlay's bootstrap is not JSON: %v", err)
	}
	b["xds_servers"].([]any)[0].(map[string]any)["server_uri"] = serverURI
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(out), b["node"].(map[string]any)["id"].(string)
}

// xdsPlane is a management server on 127.0.0.1 serving one snapshot per node id.
type xdsPlane struct {
	addr  string
	cache cachev3.SnapshotCache
}

func startXDSPlane(t *testing.T) *xdsPlane {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	gs := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, serverv3.NewServer(context.Background(), cache, nil))
	go gs.Serve(l) //nolint:errcheck // ends with Stop
	t.Cleanup(gs.Stop)
	return &xdsPlane{addr: l.Addr().String(), cache: cache}
}

// set gives node the listener, the route configuration rc, the two clusters and their
// endpoints.
func (p *xdsPlane) set(t *testing.T, node string, rc *routev3.RouteConfiguration, v1, v2 []string) {
	t.Helper()
	snap, err := cachev3.NewSnapshot("1", map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: {apiListener(t, xdsListener, rc.GetName())},
		resourcev3.RouteType:    {rc},
		resourcev3.ClusterType:  {edsCluster(clusterV1), edsCluster(clusterV2)},
		resourcev3.EndpointType: {assignment(clusterV1, v1), assignment(clusterV2, v2)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cache.SetSnapshot(context.Background(), node, snap); err != nil {
		t.Fatal(err)
	}
}

func anyOf(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var adsSource = &corev3.ConfigSource{ResourceApiVersion: corev3.ApiVersion_V3,
	ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}

func apiListener(t *testing.T, name, routes string) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: adsSource, RouteConfigName: routes}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}}},
	}
	return &listenerv3.Listener{Name: name, ApiListener: &listenerv3.ApiListener{ApiListener: anyOf(t, hcm)}}
}

func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource}, LbPolicy: clusterv3.Cluster_ROUND_ROBIN}
}

func assignment(cluster string, addrs []string) *endpointv3.ClusterLoadAssignment {
	var eps []*endpointv3.LbEndpoint
	for _, a := range addrs {
		host, port, _ := net.SplitHostPort(a)
		var p uint32
		fmt.Sscan(port, &p) //nolint:errcheck // our own addresses
		eps = append(eps, &endpointv3.LbEndpoint{HealthStatus: corev3.HealthStatus_HEALTHY,
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{
				Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: host,
					PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: p}}}}}}})
	}
	// grpc-go NACKs a locality without an ID; istiod sends the node's region and zone.
	return &endpointv3.ClusterLoadAssignment{ClusterName: cluster, Endpoints: []*endpointv3.LocalityLbEndpoints{{
		Locality: &corev3.Locality{Region: "kit", Zone: "loopback"}, LbEndpoints: eps, LoadBalancingWeight: wrapperspb.UInt32(1)}}}
}

func toCluster(name string) *routev3.Route_Route {
	return &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name}}}
}

// kitRoutes is what istiod sends for components/mesh-gamma's rules 1 and 2.
func kitRoutes() *routev3.RouteConfiguration {
	sayHello := &routev3.RouteMatch_Path{Path: "/helloworld.Hello/SayHello"}
	return &routev3.RouteConfiguration{Name: routesName, VirtualHosts: []*routev3.VirtualHost{{
		Name: "hello-grpc", Domains: []string{"*"},
		Routes: []*routev3.Route{
			{Name: "canary", Match: &routev3.RouteMatch{PathSpecifier: sayHello, Headers: []*routev3.HeaderMatcher{{
				Name: "x-experiment-group", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
					StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "canary"}}}}}},
				Action: toCluster(clusterV2)},
			{Name: "weighted", Match: &routev3.RouteMatch{PathSpecifier: sayHello},
				// The RequestHeaderModifier of the GRPCRoute, as istiod sends it.
				RequestHeadersToAdd: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-routed-by", Value: "grpc-k8s-kit-mesh"}}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
					WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
						{Name: clusterV1, Weight: wrapperspb.UInt32(90)}, {Name: clusterV2, Weight: wrapperspb.UInt32(10)}}}}}}},
		},
	}}}
}

// startVersioned starts a Hello server reporting version and echoing the metadata the
// manifests' servers echo (x-experiment-group, x-routed-by).
func startVersioned(t *testing.T, f *loopfleet.Fleet, ip, pod, version string) {
	t.Helper()
	p := helloPod(t, ip, pod, nil)
	p.ID.Version, p.Echo = version, reqmeta.ParseKeys("x-experiment-group,x-routed-by")
	if _, err := f.Start(p); err != nil {
		t.Fatal(err)
	}
}

// xdsGreeter runs the greeter binary with bootstrap in its environment (grpc-go reads it
// once, at start: hence a process, not the in-process command).
func xdsGreeter(t *testing.T, bootstrap string, args ...string) (string, int) {
	t.Helper()
	bin := buildBinary(t, "greeter", "./client/greeter")
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"HOME=" + t.TempDir()}
	if bootstrap != "" {
		cmd.Env = append(cmd.Env, dialer.BootstrapConfigEnv+"="+bootstrap)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if stderr.Len() > 0 {
		t.Logf("greeter %v stderr:\n%s", args, stderr.String())
	}
	return string(out) + stderr.String(), code
}

func TestProxylessXDS(t *testing.T) {
	v1 := []string{"127.0.0.41", "127.0.0.42", "127.0.0.43"}
	v2 := []string{"127.0.0.44"}
	f := newFleet(t, append(append([]string{}, v1...), v2...)...) // xDS, not DNS, names them
	port := f.Port()
	var v1Addrs, v2Addrs []string
	for i, ip := range v1 {
		startVersioned(t, f, ip, fmt.Sprintf("hello-%d", i+1), "v1")
		v1Addrs = append(v1Addrs, net.JoinHostPort(ip, itoa(port)))
	}
	startVersioned(t, f, v2[0], "hello-v2-1", "v2")
	v2Addrs = append(v2Addrs, net.JoinHostPort(v2[0], itoa(port)))

	plane := startXDSPlane(t)
	bootstrap, node := overlayBootstrap(t, "greeter-hello-abcde", plane.addr)
	if want := "sidecar~127.0.0.1~greeter-hello-abcde.kit~kit.svc.cluster.local"; node != want {
		t.Fatalf("node id %q, want istiod's form %q", node, want)
	}
	plane.set(t, node, kitRoutes(), v1Addrs, v2Addrs)

	t.Run("weighted", func(t *testing.T) {
		const n = 2000
		out, code := xdsGreeter(t, bootstrap, "-target", xdsTarget, "-n", itoa(n), "-warmup", "10s",
			"-expect-backends", "4", "-max-errors", "0", "-json", "-quiet")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		var s report.Summary
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("-json: %v\n%s", err, out)
		}
		byVersion := map[string]int64{}
		var v1Calls []int64
		for _, b := range s.Backends {
			byVersion[b.Version] += b.Calls
			if b.Version == "v1" {
				v1Calls = append(v1Calls, b.Calls)
			}
		}
		// v2's share: inside the binomial 99.9 % interval around 10 % (±3.29 σ).
		sigma := math.Sqrt(n * 0.1 * 0.9)
		if got := float64(byVersion["v2"]); math.Abs(got-0.1*n) > 3.29*sigma {
			t.Errorf("v2 got %v of %d calls, want 10 %% ± %.0f: %+v", got, n, 3.29*sigma, s.Backends)
		}
		// Round robin inside v1: counts differ by at most one.
		if len(v1Calls) != 3 || slices.Max(v1Calls)-slices.Min(v1Calls) > 1 {
			t.Errorf("v1 calls per pod %v, want round robin over 3 pods", v1Calls)
		}
		t.Logf("v1 %v, v2 %d of %d; %.0f calls/s, p50 %+v", v1Calls, byVersion["v2"], n, s.PerSecond, s.Latency)
	})

	t.Run("canary header", func(t *testing.T) {
		out, code := xdsGreeter(t, bootstrap, "-target", xdsTarget, "-H", "x-experiment-group=canary", "-n", "200",
			"-warmup", "10s", "-expect-backends", "1", "-max-errors", "0", "-json", "-quiet")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		var s report.Summary
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("-json: %v\n%s", err, out)
		}
		if len(s.Backends) != 1 || s.Backends[0].Version != "v2" || s.Backends[0].Calls != 200 {
			t.Errorf("want all 200 calls on v2, got %+v", s.Backends)
		}
	})

	t.Run("header filter does not reach the server", func(t *testing.T) {
		// One call through the weighted rule, printed in full: the server echoes
		// x-experiment-group and x-routed-by when it receives them. The client's own
		// header arrives (the echo works); the route's does not.
		out, code := xdsGreeter(t, bootstrap, "-target", xdsTarget, "-H", "x-experiment-group=control", "-json", "-wait-for-ready")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if !strings.Contains(out, `"control"`) || strings.Contains(out, "x-routed-by") {
			t.Errorf("want a reply echoing x-experiment-group but not x-routed-by (grpc-go drops request_headers_to_add):\n%s", out)
		}
	})

	t.Run("xds-dump", func(t *testing.T) {
		out, code := xdsGreeter(t, bootstrap, "-target", xdsTarget, "-xds-dump")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		for _, want := range []string{
			"xDS client for " + xdsTarget + ", node " + node,
			"ACKED          Listener               " + xdsListener,
			"header x-experiment-group exact canary",
			"-> " + clusterV1 + " weight 90 (90.0%)",
			"-> " + clusterV2 + " weight 10 (10.0%)",
			"ignored by grpc-go (never reaches the server): request header x-routed-by: grpc-k8s-kit-mesh",
			clusterV1 + ": EDS, lb ROUND_ROBIN",
			clusterV1 + ": 3", clusterV2 + ": 1",
			v2Addrs[0] + " HEALTHY",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("-xds-dump lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "not ACKED") {
			t.Errorf("everything should be ACKED:\n%s", out)
		}
	})

	// Trap 1: the route istiod sends for a service-only method match. grpc-go rejects the
	// whole route configuration: every call fails, and -xds-dump shows why.
	t.Run("path_separated_prefix is rejected", func(t *testing.T) {
		bad, badNode := overlayBootstrap(t, "greeter-trap-abcde", plane.addr)
		rc := kitRoutes()
		rc.VirtualHosts[0].Routes = append(rc.VirtualHosts[0].Routes, &routev3.Route{Name: "streams",
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/helloworld.Hello"}},
			Action: toCluster(clusterV1)})
		plane.set(t, badNode, rc, v1Addrs, v2Addrs)

		out, code := xdsGreeter(t, bad, "-target", xdsTarget, "-xds-dump")
		// (A first update that is NACKED leaves the client no copy of it: the dump has the
		// status and grpc-go's reason, not the routes.)
		if code != exitcode.CheckFailed || !strings.Contains(out, "NACKED         RouteConfiguration") ||
			!strings.Contains(out, "unrecognized path specifier") {
			t.Errorf("-xds-dump: want exit 3 and the NACK with grpc-go's reason, got exit %d:\n%s", code, out)
		}
		out, code = xdsGreeter(t, bad, "-target", xdsTarget, "-n", "20", "-json", "-quiet")
		if code != exitcode.Failure || !strings.Contains(out, "Unavailable") {
			t.Errorf("calls: want every one to fail with Unavailable (exit 1), got exit %d:\n%s", code, out)
		}
	})
}

// With no bootstrap, an xds:/// target is a usage error that names both variables.
func TestProxylessWithoutBootstrap(t *testing.T) {
	out, code := xdsGreeter(t, "", "-target", xdsTarget)
	if code != exitcode.Usage || !strings.Contains(out, dialer.BootstrapConfigEnv) || !strings.Contains(out, dialer.BootstrapFileEnv) {
		t.Fatalf("want exit 2 naming %s and %s, got exit %d:\n%s", dialer.BootstrapConfigEnv, dialer.BootstrapFileEnv, code, out)
	}
}
