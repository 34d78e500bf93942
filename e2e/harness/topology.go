//go:build e2e

package harness

import (
	"slices"
	"testing"
	"time"
)

// Topology is one way in to the hello pods, described as data: the suite's scenarios read
// what a topology is from here, never from its name. Adding a topology is its overlay and
// one entry in the suite's registry (e2e/topologies_test.go).
type Topology struct {
	// Name is the topology: kustomize/overlays/<Name>, and its rows in every table.
	Name string
	// Overlay is the e2e kustomization that deploys it (e2e/overlays/<Overlay>); it also
	// names the test (TestTopologies/<Overlay>). A topology may be deployed twice, in two
	// namespaces, to run scenarios that hold hello's settings for minutes beside the rest.
	Overlay   string
	Namespace string // of deploy/hello
	// AlsoDumped are the other namespaces whose state explains a failure (the proxy's, the
	// control plane's, a second namespace of the overlay).
	AlsoDumped []string
	Entry      Entry
	// Discovery is how a client learns of new pods; Balancer, who picks a pod per call;
	// Spread, how evenly a warmed-up client spreads calls and streams.
	Discovery Discovery
	Balancer  Balancer
	Spread    Spread
	// Backends is how many distinct backends a client reaches once warmed up: the 3 hello
	// v1 pods, and hello-v2 where a canary route sends it 10 %.
	Backends int
	// Features are the scenario groups this deployment runs (Supports).
	Features []Feature
	// RetryOn are the greeter flags of a load with the kit's retries on: the greeter's own
	// retry policy, or nothing where the control plane sends one (-retry=false turns either
	// off).
	RetryOn []string
	// FailoverTarget: how soon a NOT_SERVING pod must stop getting calls.
	FailoverTarget time.Duration
	// ReadyGoal: how soon after a new pod is Ready it must serve calls (0: no goal).
	ReadyGoal time.Duration
	// Deploy applies the topology and runs the checks only it has (its routes, its
	// negative control), before its scenarios.
	Deploy func(t *testing.T, s *Suite, tp Topology)
}

// Entry is where a topology's clients connect.
type Entry struct {
	// InCluster: loads run as Jobs in Namespace, copies of JobOverlay's greeter-hello Job
	// (a client that needs pod IPs or the mesh's control plane, which only the cluster
	// network reaches). Otherwise the greeter runs on the host, through a proxy.
	InCluster  bool
	JobOverlay string
	// Target is the greeter's -target: a dns:/// or xds:/// name in the cluster, or a
	// host address of Traefik's published entry points.
	Target    string
	Authority string // -authority, for a host entry: the proxy routes by it
	TLS       bool   // the host entry serves TLS with the suite's certificate
	// JobArgs are further flags of every in-cluster load.
	JobArgs []string
}

// Discovery is how clients learn that pods came or went.
type Discovery int

const (
	// DiscoveryDNS: the client resolves a headless Service's name, and again only when a
	// connection closes (MAX_CONNECTION_AGE bounds when new pods get calls).
	DiscoveryDNS Discovery = iota
	// DiscoveryProxy: a proxy watches the EndpointSlices and routes to a pod once Ready.
	DiscoveryProxy
	// DiscoveryXDS: a control plane pushes endpoints to the clients once a pod is Ready.
	DiscoveryXDS
)

// Balancer is who picks a pod for each call.
type Balancer int

const (
	// BalancerClient: the client's own policy (-lb round_robin, least_request,
	// weighted_round_robin).
	BalancerClient Balancer = iota
	// BalancerProxy: the proxy's round robin, whatever the client asks.
	BalancerProxy
	// BalancerControlPlane: the policy the control plane sends (a DestinationRule).
	BalancerControlPlane
)

// Spread is how evenly calls and streams of a warmed-up client land.
type Spread int

const (
	// SpreadExact: round robin over every connection, each pod in turn.
	SpreadExact Spread = iota
	// SpreadProportional: close to even, per call or stream, as a proxy balances them.
	SpreadProportional
)

// Feature is a group of scenarios a deployment of a topology runs.
type Feature string

const (
	// FeatureResilience: the pod-level scenarios (bad input, kills, failover, scaling,
	// streams, rolling restart).
	FeatureResilience Feature = "resilience"
	// FeatureSlowPod: one pod made slow, under each policy the entry point allows.
	FeatureSlowPod Feature = "slow pod"
	// FeatureConnectionAge: scale-outs under a long and a short MAX_CONNECTION_AGE.
	FeatureConnectionAge Feature = "connection-age scale-outs"
	// FeatureControlPlane: a control plane the clients depend on, to be lost.
	FeatureControlPlane Feature = "control plane"
	// FeatureProxyTimeouts: a proxy whose stream timeouts the kit sets (and a second entry
	// point with the proxy's defaults, the negative control).
	FeatureProxyTimeouts Feature = "proxy timeouts"
	// FeatureClients: the kit's clients in other languages (clients/) in the cluster: their
	// spread, a rolling restart and a scale-out.
	FeatureClients Feature = "clients in other languages"
	// FeatureClientsFromHost: the same clients on the host, calling through the proxy.
	FeatureClientsFromHost Feature = "clients in other languages, from the host"
	// FeatureAlerts: the kit's alerts made to fire (pick_first, a pod answering errors) in a
	// namespace no other scenario has sent calls to yet.
	FeatureAlerts Feature = "alerts"
)

// Namespaces are the deployment's namespace and the others that explain it (AlsoDumped).
func (tp Topology) Namespaces() []string { return append([]string{tp.Namespace}, tp.AlsoDumped...) }

// Supports says whether the deployment runs the scenarios of f.
func (tp Topology) Supports(f Feature) bool { return slices.Contains(tp.Features, f) }

// Retry are the greeter flags of a load with the kit's retries on or off.
func (tp Topology) Retry(on bool) []string {
	if on {
		return slices.Clone(tp.RetryOn)
	}
	return []string{"-retry=false"}
}

// Where names the deployment in progress lines: the topology, and its namespace when it
// is a second deployment of it.
func (tp Topology) Where() string {
	if tp.Overlay != tp.Name {
		return tp.Name + " (" + tp.Namespace + ")"
	}
	return tp.Name
}

// HostArgs are the greeter flags that aim a host greeter at a host entry: target,
// authority, the suite's CA for TLS, and no client health checks (the proxy is the only
// peer; its backends' health is the proxy's business).
func (s *Suite) HostArgs(e Entry) []string {
	args := []string{"-target", e.Target, "-authority", e.Authority}
	if e.TLS {
		args = append(args, "-cacert", s.CACert)
	}
	return append(args, "-health-check=false")
}

// Via is the same host entry reached through another of the proxy's entry points (its
// h2c or TLS listener, a listener with the proxy's default timeouts): the proxy routes by
// authority, whichever listener a call arrives on.
func (e Entry) Via(target string, tls bool) Entry {
	e.Target, e.TLS = target, tls
	return e
}
