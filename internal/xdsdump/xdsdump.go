// Package xdsdump shows what xDS configuration a proxyless gRPC client of this process
// received: its listeners, the routes with their matches and weights, the clusters and
// their endpoints, and the status of each resource (ACKED, or NACKED with grpc-go's reason).
//
// It reads grpc-go's public Client Status Discovery Service (google.golang.org/grpc/xds/csds)
// in process, by calling the CSDS server's FetchClientStatus directly: no port is opened.
// That is the answer to "why does my canary get 0 %": the weights this client holds, or
// the route configuration it rejected.
package xdsdump

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	v3adminpb "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	v3clusterpb "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	v3endpointpb "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	v3listenerpb "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	v3routepb "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	v3hcmpb "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	v3statuspb "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	v3matcherpb "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/grpc/xds/csds"
	"google.golang.org/protobuf/types/known/anypb"
)

// Type names of the four resources a gRPC client asks for, as Dump reports them.
const (
	TypeListener  = "Listener"
	TypeRoute     = "RouteConfiguration"
	TypeCluster   = "Cluster"
	TypeEndpoints = "ClusterLoadAssignment"
)

// Resource is one resource the client asked for, and what became of it.
type Resource struct {
	Type    string `json:"type"`
	Name    string `json:"name"`
	Status  string `json:"status"` // REQUESTED, ACKED, NACKED, DOES_NOT_EXIST, ...
	Version string `json:"version,omitempty"`
	// Error: why the client rejected the last update (NACKED), or why the resource could
	// not be read here.
	Error string `json:"error,omitempty"`
}

// Dump is the xDS configuration of every xDS client of this process.
type Dump struct {
	Clients   []Client           `json:"clients"`
	Resources []Resource         `json:"resources"`
	Listeners []Listener         `json:"listeners,omitempty"`
	Routes    []RouteConfig      `json:"routeConfigurations,omitempty"`
	Clusters  []Cluster          `json:"clusters,omitempty"`
	Endpoints []ClusterEndpoints `json:"endpoints,omitempty"`
}

// Client is one xDS client: grpc-go keeps one per target (its scope) and node.
type Client struct {
	Scope  string `json:"scope"` // the channel target the client serves
	NodeID string `json:"nodeId"`
}

// Listener is an API listener: the name of an xds:/// target, and its routes.
type Listener struct {
	Name        string `json:"name"`
	RouteConfig string `json:"routeConfig"` // RDS name, or "(inline)"
}

// RouteConfig is a route configuration: virtual hosts, each an ordered list of routes.
type RouteConfig struct {
	Name         string        `json:"name"`
	VirtualHosts []VirtualHost `json:"virtualHosts"`
}

// VirtualHost: the routes for a set of domains (the target's name picks one).
type VirtualHost struct {
	Name    string   `json:"name"`
	Domains []string `json:"domains"`
	Routes  []Route  `json:"routes"`
}

// Route is one rule, in the order the client tries them: the first match wins.
type Route struct {
	Name    string   `json:"name,omitempty"`
	Path    string   `json:"path"`              // e.g. "path /helloworld.Hello/SayHello", "prefix /"
	Headers []string `json:"headers,omitempty"` // "x-experiment-group exact canary"
	// Clusters the route sends to, with their weights (one cluster: weight 0).
	Clusters []WeightedCluster `json:"clusters,omitempty"`
	Action   string            `json:"action"` // "route", or what else the route does
	// Retry is the route's retry policy as grpc-go applies it ("" when it has none):
	// whether a call that fails on a dying pod is tried again is the control plane's
	// choice for a proxyless client, not the client's.
	Retry string `json:"retry,omitempty"`
	// Ignored lists what the route carries that grpc-go does not apply (header
	// rewrites, mirrors): it reaches no server.
	Ignored []string `json:"ignored,omitempty"`
}

// WeightedCluster is one destination of a route.
type WeightedCluster struct {
	Name   string `json:"name"`
	Weight uint32 `json:"weight"`
}

// Cluster is a cluster: how its endpoints are found and balanced.
type Cluster struct {
	Name       string `json:"name"`
	Discovery  string `json:"discovery"`            // EDS, STATIC, LOGICAL_DNS, aggregate, ...
	EDSService string `json:"edsService,omitempty"` // the ClusterLoadAssignment it reads
	LBPolicy   string `json:"lbPolicy"`
}

// ClusterEndpoints are the endpoints of one cluster.
type ClusterEndpoints struct {
	Cluster   string     `json:"cluster"`
	Endpoints []Endpoint `json:"endpoints"`
}

// Endpoint is one address with its health and weight.
type Endpoint struct {
	Address  string `json:"address"`
	Health   string `json:"health"`
	Weight   uint32 `json:"weight,omitempty"`
	Locality string `json:"locality,omitempty"`
	Priority uint32 `json:"priority,omitempty"`
}

// Fetch asks grpc-go's CSDS for the configuration of every xDS client of this process.
func Fetch(ctx context.Context) (*v3statuspb.ClientStatusResponse, error) {
	s, err := csds.NewClientStatusDiscoveryServer()
	if err != nil {
		return nil, fmt.Errorf("csds server: %w", err)
	}
	defer s.Close()
	resp, err := s.FetchClientStatus(ctx, &v3statuspb.ClientStatusRequest{})
	if err != nil {
		return nil, fmt.Errorf("csds fetch: %w", err)
	}
	if resp == nil {
		return nil, errors.New("csds fetch: grpc-go could not dump its xDS clients")
	}
	return resp, nil
}

// Parse turns a CSDS response into a Dump. A resource that does not decode is kept, with
// its error, in Resources.
func Parse(resp *v3statuspb.ClientStatusResponse) Dump {
	d := Dump{Clients: []Client{}, Resources: []Resource{}}
	for _, c := range resp.GetConfig() {
		d.Clients = append(d.Clients, Client{Scope: c.GetClientScope(), NodeID: c.GetNode().GetId()})
		for _, g := range c.GetGenericXdsConfigs() {
			r := Resource{Type: shortType(g.GetTypeUrl()), Name: g.GetName(), Status: g.GetClientStatus().String(), Version: g.GetVersionInfo()}
			if es := g.GetErrorState(); es != nil {
				r.Error = es.GetDetails()
			}
			if g.GetXdsConfig() != nil {
				if err := d.add(r.Type, g.GetXdsConfig()); err != nil {
					r.Error = strings.TrimPrefix(r.Error+"; ", "; ") + err.Error()
				}
			}
			d.Resources = append(d.Resources, r)
		}
	}
	slices.SortFunc(d.Resources, func(a, b Resource) int {
		return cmp.Or(cmp.Compare(typeOrder(a.Type), typeOrder(b.Type)), cmp.Compare(a.Name, b.Name))
	})
	slices.SortFunc(d.Listeners, func(a, b Listener) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(d.Routes, func(a, b RouteConfig) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(d.Clusters, func(a, b Cluster) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(d.Endpoints, func(a, b ClusterEndpoints) int { return cmp.Compare(a.Cluster, b.Cluster) })
	return d
}

// Settled reports whether the client has an answer for every resource it asked for
// (none is still REQUESTED) and has asked for at least a listener.
func (d Dump) Settled() bool {
	if len(d.Resources) == 0 {
		return false
	}
	for _, r := range d.Resources {
		if r.Status == v3adminpb.ClientResourceStatus_REQUESTED.String() {
			return false
		}
	}
	return true
}

// Problems lists the resources that are not ACKED, as "NACKED RouteConfiguration x: why".
func (d Dump) Problems() []string {
	var out []string
	for _, r := range d.Resources {
		if r.Status == v3adminpb.ClientResourceStatus_ACKED.String() && r.Error == "" {
			continue
		}
		p := fmt.Sprintf("%s %s %s", r.Status, r.Type, r.Name)
		if r.Error != "" {
			p += ": " + r.Error
		}
		out = append(out, p)
	}
	return out
}

func shortType(url string) string {
	switch {
	case strings.HasSuffix(url, ".Listener"):
		return TypeListener
	case strings.HasSuffix(url, ".RouteConfiguration"):
		return TypeRoute
	case strings.HasSuffix(url, ".Cluster"):
		return TypeCluster
	case strings.HasSuffix(url, ".ClusterLoadAssignment"):
		return TypeEndpoints
	}
	return url
}

func typeOrder(t string) int {
	return slices.Index([]string{TypeListener, TypeRoute, TypeCluster, TypeEndpoints}, t) + 1
}

func (d *Dump) add(typ string, a *anypb.Any) error {
	switch typ {
	case TypeListener:
		var l v3listenerpb.Listener
		if err := a.UnmarshalTo(&l); err != nil {
			return fmt.Errorf("decode listener: %w", err)
		}
		li := Listener{Name: l.GetName()}
		if api := l.GetApiListener().GetApiListener(); api != nil {
			var hcm v3hcmpb.HttpConnectionManager
			if err := api.UnmarshalTo(&hcm); err != nil {
				return fmt.Errorf("listener %s: decode its HttpConnectionManager: %w", l.GetName(), err)
			}
			switch {
			case hcm.GetRds() != nil:
				li.RouteConfig = hcm.GetRds().GetRouteConfigName()
			case hcm.GetRouteConfig() != nil:
				li.RouteConfig = "(inline)"
				d.Routes = append(d.Routes, routeConfig(hcm.GetRouteConfig()))
			}
		}
		d.Listeners = append(d.Listeners, li)
	case TypeRoute:
		var rc v3routepb.RouteConfiguration
		if err := a.UnmarshalTo(&rc); err != nil {
			return fmt.Errorf("decode route configuration: %w", err)
		}
		d.Routes = append(d.Routes, routeConfig(&rc))
	case TypeCluster:
		var c v3clusterpb.Cluster
		if err := a.UnmarshalTo(&c); err != nil {
			return fmt.Errorf("decode cluster: %w", err)
		}
		d.Clusters = append(d.Clusters, cluster(&c))
	case TypeEndpoints:
		var cla v3endpointpb.ClusterLoadAssignment
		if err := a.UnmarshalTo(&cla); err != nil {
			return fmt.Errorf("decode endpoints: %w", err)
		}
		d.Endpoints = append(d.Endpoints, endpoints(&cla))
	}
	return nil
}

func routeConfig(rc *v3routepb.RouteConfiguration) RouteConfig {
	out := RouteConfig{Name: rc.GetName(), VirtualHosts: []VirtualHost{}}
	for _, vh := range rc.GetVirtualHosts() {
		v := VirtualHost{Name: vh.GetName(), Domains: vh.GetDomains(), Routes: []Route{}}
		for _, r := range vh.GetRoutes() {
			v.Routes = append(v.Routes, route(r))
		}
		out.VirtualHosts = append(out.VirtualHosts, v)
	}
	return out
}

// route describes r as grpc-go reads it (xdsresource/unmarshal_rds.go): prefix, path and
// safe_regex are the path matches it knows; any other rejects the whole configuration.
func route(r *v3routepb.Route) Route {
	out := Route{Name: r.GetName(), Action: "route"}
	m := r.GetMatch()
	switch ps := m.GetPathSpecifier().(type) {
	case *v3routepb.RouteMatch_Prefix:
		out.Path = "prefix " + ps.Prefix
	case *v3routepb.RouteMatch_Path:
		out.Path = "path " + ps.Path
	case *v3routepb.RouteMatch_SafeRegex:
		out.Path = "regex " + ps.SafeRegex.GetRegex()
	case *v3routepb.RouteMatch_PathSeparatedPrefix:
		out.Path = "path_separated_prefix " + ps.PathSeparatedPrefix + " (grpc-go rejects this match, and with it the whole route configuration)"
	case nil:
		out.Path = "(none)"
	default:
		out.Path = fmt.Sprintf("%T (not a match grpc-go knows)", ps)
	}
	if m.GetCaseSensitive() != nil && !m.GetCaseSensitive().GetValue() {
		out.Path += " (case-insensitive)"
	}
	for _, h := range m.GetHeaders() {
		out.Headers = append(out.Headers, header(h))
	}
	switch a := r.GetAction().(type) {
	case *v3routepb.Route_Route:
		switch cs := a.Route.GetClusterSpecifier().(type) {
		case *v3routepb.RouteAction_Cluster:
			out.Clusters = []WeightedCluster{{Name: cs.Cluster}}
		case *v3routepb.RouteAction_WeightedClusters:
			for _, c := range cs.WeightedClusters.GetClusters() {
				out.Clusters = append(out.Clusters, WeightedCluster{Name: c.GetName(), Weight: c.GetWeight().GetValue()})
			}
		case *v3routepb.RouteAction_ClusterSpecifierPlugin:
			out.Action = "route to cluster specifier plugin " + cs.ClusterSpecifierPlugin
		default:
			out.Action = fmt.Sprintf("route with %T (grpc-go ignores this route)", cs)
		}
		if rp := a.Route.GetRetryPolicy(); rp != nil {
			out.Retry = retry(rp)
		}
		if len(a.Route.GetRequestMirrorPolicies()) > 0 {
			out.Ignored = append(out.Ignored, fmt.Sprintf("request mirror policies (%d)", len(a.Route.GetRequestMirrorPolicies())))
		}
	case *v3routepb.Route_NonForwardingAction:
		out.Action = "non-forwarding (server-side only)"
	case *v3routepb.Route_DirectResponse:
		out.Action = "direct response (grpc-go fails the call)"
	case *v3routepb.Route_Redirect:
		out.Action = "redirect (grpc-go fails the call)"
	default:
		out.Action = fmt.Sprintf("%T", a)
	}
	for _, h := range r.GetRequestHeadersToAdd() {
		out.Ignored = append(out.Ignored, "request header "+h.GetHeader().GetKey()+": "+h.GetHeader().GetValue())
	}
	for _, h := range r.GetRequestHeadersToRemove() {
		out.Ignored = append(out.Ignored, "remove request header "+h)
	}
	for _, h := range r.GetResponseHeadersToAdd() {
		out.Ignored = append(out.Ignored, "response header "+h.GetHeader().GetKey()+": "+h.GetHeader().GetValue())
	}
	for _, h := range r.GetResponseHeadersToRemove() {
		out.Ignored = append(out.Ignored, "remove response header "+h)
	}
	return out
}

// grpcRetryOn are the retry_on conditions grpc-go applies: gRPC status names. The others
// (Envoy's HTTP ones: connect-failure, refused-stream, 5xx, ...) it ignores.
var grpcRetryOn = []string{"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"}

// retry describes a route's retry policy as grpc-go applies it: attempts and the status
// codes it retries on (grpc-go reads retry_on in lower case).
func retry(rp *v3routepb.RetryPolicy) string {
	var on, ignored []string
	for _, c := range strings.Split(rp.GetRetryOn(), ",") {
		if c = strings.ToLower(strings.TrimSpace(c)); c == "" {
			continue
		}
		if slices.Contains(grpcRetryOn, c) {
			on = append(on, c)
		} else {
			ignored = append(ignored, c)
		}
	}
	// num_retries counts retries after the first attempt; unset means 1 (Envoy's default).
	n := uint32(1)
	if rp.GetNumRetries() != nil {
		n = rp.GetNumRetries().GetValue()
	}
	if n == 0 {
		return "num_retries 0: grpc-go rejects the whole route configuration"
	}
	if len(on) == 0 {
		return "none (no gRPC status code in retry_on " + strconv.Quote(rp.GetRetryOn()) + ")"
	}
	s := fmt.Sprintf("%d retries on %s", n, strings.Join(on, ","))
	if len(ignored) > 0 {
		s += " (ignored by grpc-go: " + strings.Join(ignored, ",") + ")"
	}
	return s
}

func header(h *v3routepb.HeaderMatcher) string {
	var s string
	switch m := h.GetHeaderMatchSpecifier().(type) {
	case *v3routepb.HeaderMatcher_ExactMatch:
		s = "exact " + m.ExactMatch
	case *v3routepb.HeaderMatcher_SafeRegexMatch:
		s = "regex " + m.SafeRegexMatch.GetRegex()
	case *v3routepb.HeaderMatcher_PrefixMatch:
		s = "prefix " + m.PrefixMatch
	case *v3routepb.HeaderMatcher_PresentMatch:
		s = fmt.Sprintf("present %t", m.PresentMatch)
	case *v3routepb.HeaderMatcher_StringMatch:
		s = stringMatch(m.StringMatch)
	default:
		s = fmt.Sprintf("%T", m)
	}
	if h.GetInvertMatch() {
		s = "not " + s
	}
	return h.GetName() + " " + s
}

func stringMatch(m *v3matcherpb.StringMatcher) string {
	switch p := m.GetMatchPattern().(type) {
	case *v3matcherpb.StringMatcher_Exact:
		return "exact " + p.Exact
	case *v3matcherpb.StringMatcher_Prefix:
		return "prefix " + p.Prefix
	case *v3matcherpb.StringMatcher_Suffix:
		return "suffix " + p.Suffix
	case *v3matcherpb.StringMatcher_Contains:
		return "contains " + p.Contains
	case *v3matcherpb.StringMatcher_SafeRegex:
		return "regex " + p.SafeRegex.GetRegex()
	}
	return fmt.Sprintf("%T", m.GetMatchPattern())
}

func cluster(c *v3clusterpb.Cluster) Cluster {
	out := Cluster{Name: c.GetName(), LBPolicy: c.GetLbPolicy().String()}
	switch ct := c.GetClusterDiscoveryType().(type) {
	case *v3clusterpb.Cluster_Type:
		out.Discovery = ct.Type.String()
	case *v3clusterpb.Cluster_ClusterType:
		out.Discovery = ct.ClusterType.GetName()
	}
	if c.GetEdsClusterConfig() != nil {
		out.EDSService = cmp.Or(c.GetEdsClusterConfig().GetServiceName(), c.GetName())
	}
	if c.GetLoadBalancingPolicy() != nil {
		var ps []string
		for _, p := range c.GetLoadBalancingPolicy().GetPolicies() {
			ps = append(ps, p.GetTypedExtensionConfig().GetName())
		}
		out.LBPolicy = strings.Join(ps, ", ")
	}
	return out
}

func endpoints(cla *v3endpointpb.ClusterLoadAssignment) ClusterEndpoints {
	out := ClusterEndpoints{Cluster: cla.GetClusterName(), Endpoints: []Endpoint{}}
	for _, loc := range cla.GetEndpoints() {
		l := loc.GetLocality()
		locality := strings.Trim(strings.Join([]string{l.GetRegion(), l.GetZone(), l.GetSubZone()}, "/"), "/")
		for _, e := range loc.GetLbEndpoints() {
			sa := e.GetEndpoint().GetAddress().GetSocketAddress()
			out.Endpoints = append(out.Endpoints, Endpoint{
				Address:  fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()),
				Health:   e.GetHealthStatus().String(),
				Weight:   e.GetLoadBalancingWeight().GetValue(),
				Locality: locality,
				Priority: loc.GetPriority(),
			})
		}
	}
	return out
}
