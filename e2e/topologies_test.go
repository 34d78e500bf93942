//go:build e2e

package e2e

import (
	"slices"
	"time"

	h "github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"
)

// Where clients reach the topologies. Traefik's entry points are published on the host by
// kind-up (deploy/kind/README.md); the proxies route by authority.
const (
	webAddr       = "127.0.0.1:8000" // Traefik "web", h2c
	websecureAddr = "127.0.0.1:8443" // Traefik "websecure", TLS with the suite's certificate
	ingressHost   = "grpc-ingress.kit.local"
	gatewayHost   = "grpc-gateway.kit.local"

	headlessNS         = "grpc-kit-headless"
	headlessCapacityNS = "grpc-kit-headless-capacity"
	ingressNS          = "grpc-kit-ingress"
	gatewayNS          = "grpc-kit-gateway"
	backendsNS         = "grpc-kit-gateway-backends"
	xdsNS              = "grpc-kit-xds"
	istiodNS           = "istio-system"
	traefikNS          = "traefik"
)

// headlessEntry: client-side round robin over the headless Service, from a Job in ns that
// copies the headless overlay's greeter (re-resolving at most every 2 s).
func headlessEntry(ns string) h.Entry {
	return h.Entry{InCluster: true, JobOverlay: "headless", Target: "dns:///hello-grpc-headless." + ns + ".svc.cluster.local:50051",
		JobArgs: []string{"-dns-min-resolve=2s"}}
}

// topologies is the registry: every deployment of a topology the suite tests, the longest
// running first (the node gate lets them on in this order). Adding a topology is its
// overlay (kustomize/overlays/<name>, e2e/overlays/<name>) and one entry here.
func topologies() []h.Topology {
	kitRetry := []string{"-retry=true"}
	return []h.Topology{
		{Name: "headless", Overlay: "headless", Namespace: headlessNS, Entry: headlessEntry(headlessNS),
			Discovery: h.DiscoveryDNS, Balancer: h.BalancerClient, Spread: h.SpreadExact, Backends: 3,
			// Its slow pod and connection-age scale-outs run in headless-capacity.
			Features: []h.Feature{h.FeatureResilience, h.FeatureClients},
			RetryOn:  kitRetry, FailoverTarget: time.Second, Deploy: deployHeadless},
		// The headless topology again, for the scenarios that hold hello's settings for
		// minutes (slow pod, MAX_CONNECTION_AGE 5m and 5s): one after the other, they made
		// headless alone most of the suite's time.
		{Name: "headless", Overlay: "headless-capacity", Namespace: headlessCapacityNS, Entry: headlessEntry(headlessCapacityNS),
			Discovery: h.DiscoveryDNS, Balancer: h.BalancerClient, Spread: h.SpreadExact, Backends: 3,
			// Its namespace is the one no scenario has sent calls to before the alerts fire.
			Features: []h.Feature{h.FeatureAlerts, h.FeatureSlowPod, h.FeatureConnectionAge},
			RetryOn:  kitRetry, FailoverTarget: time.Second, Deploy: deployHeadlessCapacity},
		{Name: "proxyless-xds", Overlay: "proxyless-xds", Namespace: xdsNS,
			Entry:     h.Entry{InCluster: true, JobOverlay: "proxyless-xds", Target: "xds:///hello-grpc." + xdsNS + ".svc.cluster.local:50051"},
			Discovery: h.DiscoveryXDS, Balancer: h.BalancerControlPlane, Spread: h.SpreadExact,
			// The 3 v1 pods and hello-v2, which the route's 10 % reaches.
			Backends: 4,
			Features: []h.Feature{h.FeatureResilience, h.FeatureSlowPod, h.FeatureControlPlane},
			// istiod sends Istio's default retry policy (2 retries on UNAVAILABLE and
			// CANCELLED) with the routes; -retry=false turns it off in the client.
			RetryOn: nil,
			// A NOT_SERVING pod leaves the endpoints when its readiness probe fails (4 s),
			// then istiod pushes the change.
			FailoverTarget: 6 * time.Second,
			// istiod pushes a new pod's endpoint when it is Ready.
			ReadyGoal: 5 * time.Second, AlsoDumped: []string{istiodNS}, Deploy: deployProxyless},
		{Name: "gateway-api", Overlay: "gateway-api", Namespace: gatewayNS, Entry: h.Entry{Target: webAddr, Authority: gatewayHost},
			Discovery: h.DiscoveryProxy, Balancer: h.BalancerProxy, Spread: h.SpreadProportional,
			// 3 hello pods behind the 90 % weight and hello-v2 behind the 10 %.
			Backends: 4,
			Features: []h.Feature{h.FeatureResilience, h.FeatureSlowPod, h.FeatureProxyTimeouts, h.FeatureClientsFromHost},
			RetryOn:  kitRetry, FailoverTarget: 6 * time.Second, AlsoDumped: []string{backendsNS, traefikNS}, Deploy: deployGateway},
		{Name: "nginx-ingress", Overlay: "nginx-ingress", Namespace: ingressNS, Entry: h.Entry{Target: websecureAddr, Authority: ingressHost, TLS: true},
			Discovery: h.DiscoveryProxy, Balancer: h.BalancerProxy, Spread: h.SpreadProportional, Backends: 3,
			Features: []h.Feature{h.FeatureResilience, h.FeatureSlowPod, h.FeatureProxyTimeouts},
			RetryOn:  kitRetry, FailoverTarget: 6 * time.Second, AlsoDumped: []string{traefikNS}, Deploy: deployIngress},
	}
}

// topologyOrder is the topologies' names in the registry's order, once each: the order of
// every table.
func topologyOrder() []string {
	var names []string
	for _, tp := range topologies() {
		if !slices.Contains(names, tp.Name) {
			names = append(names, tp.Name)
		}
	}
	return names
}
