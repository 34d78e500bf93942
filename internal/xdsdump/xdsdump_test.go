package xdsdump

import (
	"strings"
	"testing"

	v3adminpb "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	v3clusterpb "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	v3corepb "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	v3endpointpb "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	v3listenerpb "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	v3routepb "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	v3hcmpb "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	v3statuspb "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Parse and WriteText on a CSDS response shaped as grpc-go builds it (one GenericXdsConfig
// per resource, the resource packed in an Any), with what istiod sends for the kit's GAMMA
// route. The loopback test (internal/loopback/xds_test.go) runs the same through grpc-go.

func packed(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func generic(t *testing.T, typ, name string, status v3adminpb.ClientResourceStatus, m proto.Message) *v3statuspb.ClientConfig_GenericXdsConfig {
	g := &v3statuspb.ClientConfig_GenericXdsConfig{TypeUrl: "type.googleapis.com/envoy.config." + typ, Name: name, ClientStatus: status, VersionInfo: "1"}
	if m != nil {
		g.XdsConfig = packed(t, m)
	}
	return g
}

func TestParseAndWrite(t *testing.T) {
	hcm := &v3hcmpb.HttpConnectionManager{RouteSpecifier: &v3hcmpb.HttpConnectionManager_Rds{Rds: &v3hcmpb.Rds{RouteConfigName: "hello-routes"}}}
	lis := &v3listenerpb.Listener{Name: "hello-grpc.kit.svc.cluster.local:50051", ApiListener: &v3listenerpb.ApiListener{ApiListener: packed(t, hcm)}}
	rc := &v3routepb.RouteConfiguration{Name: "hello-routes", VirtualHosts: []*v3routepb.VirtualHost{{Name: "hello", Domains: []string{"*"},
		Routes: []*v3routepb.Route{
			{Match: &v3routepb.RouteMatch{PathSpecifier: &v3routepb.RouteMatch_Path{Path: "/helloworld.Hello/SayHello"},
				Headers: []*v3routepb.HeaderMatcher{{Name: "x-experiment-group", HeaderMatchSpecifier: &v3routepb.HeaderMatcher_ExactMatch{ExactMatch: "canary"}}}},
				Action: &v3routepb.Route_Route{Route: &v3routepb.RouteAction{ClusterSpecifier: &v3routepb.RouteAction_Cluster{Cluster: "v2"}}}},
			{Match: &v3routepb.RouteMatch{PathSpecifier: &v3routepb.RouteMatch_Path{Path: "/helloworld.Hello/SayHello"}},
				RequestHeadersToAdd: []*v3corepb.HeaderValueOption{{Header: &v3corepb.HeaderValue{Key: "x-routed-by", Value: "mesh"}}},
				Action: &v3routepb.Route_Route{Route: &v3routepb.RouteAction{ClusterSpecifier: &v3routepb.RouteAction_WeightedClusters{
					WeightedClusters: &v3routepb.WeightedCluster{Clusters: []*v3routepb.WeightedCluster_ClusterWeight{
						{Name: "v1", Weight: wrapperspb.UInt32(90)}, {Name: "v2", Weight: wrapperspb.UInt32(10)}}}},
					// Istio's default: Envoy's HTTP conditions and gRPC status names mixed.
					RetryPolicy: &v3routepb.RetryPolicy{RetryOn: "connect-failure,refused-stream,UNAVAILABLE,cancelled", NumRetries: wrapperspb.UInt32(2)}}}},
			{Match: &v3routepb.RouteMatch{PathSpecifier: &v3routepb.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/helloworld.Hello"}},
				Action: &v3routepb.Route_Route{Route: &v3routepb.RouteAction{ClusterSpecifier: &v3routepb.RouteAction_Cluster{Cluster: "v1"}}}},
		}}}}
	cl := &v3clusterpb.Cluster{Name: "v1", ClusterDiscoveryType: &v3clusterpb.Cluster_Type{Type: v3clusterpb.Cluster_EDS},
		EdsClusterConfig: &v3clusterpb.Cluster_EdsClusterConfig{ServiceName: "v1-endpoints"}}
	cla := &v3endpointpb.ClusterLoadAssignment{ClusterName: "v1-endpoints", Endpoints: []*v3endpointpb.LocalityLbEndpoints{{
		Locality: &v3corepb.Locality{Region: "r", Zone: "z"},
		LbEndpoints: []*v3endpointpb.LbEndpoint{{HealthStatus: v3corepb.HealthStatus_HEALTHY, HostIdentifier: &v3endpointpb.LbEndpoint_Endpoint{
			Endpoint: &v3endpointpb.Endpoint{Address: &v3corepb.Address{Address: &v3corepb.Address_SocketAddress{SocketAddress: &v3corepb.SocketAddress{
				Address: "10.244.0.7", PortSpecifier: &v3corepb.SocketAddress_PortValue{PortValue: 50051}}}}}}}}}}}
	nacked := generic(t, "route.v3.RouteConfiguration", "hello-routes", v3adminpb.ClientResourceStatus_NACKED, rc)
	nacked.ErrorState = &v3adminpb.UpdateFailureState{Details: "route has an unrecognized path specifier"}
	resp := &v3statuspb.ClientStatusResponse{Config: []*v3statuspb.ClientConfig{{
		ClientScope: "xds:///hello-grpc.kit.svc.cluster.local:50051",
		Node:        &v3corepb.Node{Id: "sidecar~10.0.0.1~greeter.kit~kit.svc.cluster.local"},
		GenericXdsConfigs: []*v3statuspb.ClientConfig_GenericXdsConfig{
			generic(t, "endpoint.v3.ClusterLoadAssignment", "v1-endpoints", v3adminpb.ClientResourceStatus_ACKED, cla),
			generic(t, "cluster.v3.Cluster", "v1", v3adminpb.ClientResourceStatus_ACKED, cl),
			nacked,
			generic(t, "listener.v3.Listener", lis.Name, v3adminpb.ClientResourceStatus_ACKED, lis),
		}}}}

	d := Parse(resp)
	if !d.Settled() {
		t.Error("no resource is REQUESTED: want Settled")
	}
	if len(d.Resources) != 4 || d.Resources[0].Type != TypeListener || d.Resources[3].Type != TypeEndpoints {
		t.Errorf("resources not in listener, route, cluster, endpoints order: %+v", d.Resources)
	}
	if ps := d.Problems(); len(ps) != 1 || !strings.Contains(ps[0], "NACKED RouteConfiguration hello-routes: route has an unrecognized path specifier") {
		t.Errorf("problems %q", ps)
	}
	if d.Listeners[0].RouteConfig != "hello-routes" || d.Clusters[0].EDSService != "v1-endpoints" || d.Endpoints[0].Endpoints[0].Locality != "r/z" {
		t.Errorf("listener %+v, cluster %+v, endpoints %+v", d.Listeners, d.Clusters, d.Endpoints)
	}
	var b strings.Builder
	if err := d.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"xDS client for xds:///hello-grpc.kit.svc.cluster.local:50051, node sidecar~10.0.0.1~greeter.kit~kit.svc.cluster.local",
		"1. path /helloworld.Hello/SayHello, header x-experiment-group exact canary\n       -> v2\n",
		"-> v1 weight 90 (90.0%)", "-> v2 weight 10 (10.0%)",
		"ignored by grpc-go (never reaches the server): request header x-routed-by: mesh",
		"retry: 2 retries on unavailable,cancelled (ignored by grpc-go: connect-failure,refused-stream)",
		"3. path_separated_prefix /helloworld.Hello (grpc-go rejects this match",
		"v1: EDS (endpoints v1-endpoints), lb ROUND_ROBIN",
		"10.244.0.7:50051 HEALTHY locality r/z",
		"not ACKED:\n  NACKED RouteConfiguration hello-routes",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}

	// Still waiting for a resource: not settled.
	resp.Config[0].GenericXdsConfigs = append(resp.Config[0].GenericXdsConfigs,
		generic(t, "cluster.v3.Cluster", "v2", v3adminpb.ClientResourceStatus_REQUESTED, nil))
	if Parse(resp).Settled() {
		t.Error("a REQUESTED resource: want not Settled")
	}
	if (Dump{}).Settled() {
		t.Error("no resource at all: want not Settled")
	}
}
