// Package doctor diagnoses a gRPC Service in a live cluster: it reads the Service, its
// pods, EndpointSlices, events and NetworkPolicies with client-go, talks gRPC to every pod
// through port-forward, asks CoreDNS what the Service name resolves to, optionally asks
// Prometheus what the pods did with real calls (metrics.go), and turns what it saw into
// findings that name the cause and the fix.
//
// Checks run from the Service down to the wire, and a check that finds the cause records
// it: later checks that would only see the consequence (no endpoints after a selector
// typo, connection refused after a wrong targetPort) report it as info that confirms the
// cause instead of a second error. One fault, one error.
package doctor

import (
	"context"
	"net"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
)

// DialFunc opens a TCP connection to port inside a pod. In a cluster it goes through the
// API server's port-forward (package poddial), which is why it takes a pod, not an IP:
// the host running the doctor usually cannot route to pod IPs.
type DialFunc func(ctx context.Context, namespace, pod string, port int) (net.Conn, error)

// Doctor holds what the checks need: the API, a way into pods, and the subject.
type Doctor struct {
	Kube kubernetes.Interface
	// Gateway reads the Gateway API objects: GRPCRoutes that send calls to the Service
	// (and their Gateways and ReferenceGrants), and those with the Service as parent, for
	// proxyless xDS clients; nil skips them.
	Gateway gatewayclient.Interface
	Dial    DialFunc
	// Prometheus answers the metrics checks (metrics.go): promapi.New(Cfg.Prometheus);
	// nil skips them.
	Prometheus promv1.API
	Cfg        Config // Namespace must be set
}

// Upstream causes already reported as errors; downstream checks consult them.
const (
	causeSelector = "selector" // the selector matches no pod
	causePorts    = "ports"    // targetPort does not reach the server
	causeNoReady  = "noReady"  // no endpoint is ready
	causeTLS      = "tls"      // client and server disagree on TLS
	causeProbeTLS = "probeTLS" // no pod is Ready: native gRPC readiness probes that do not speak what the port speaks
	causeOnePod   = "onePod"   // the client's policy over a ClusterIP Service sends every call of a client to one pod
)

// state is what one diagnosis learnt so far, passed from check to check.
type state struct {
	rep     *Report
	svc     *corev1.Service
	front   *frontends          // GRPCRoutes and Ingresses that send calls to the Service (routes.go)
	port    *corev1.ServicePort // the port the client dials
	pods    []corev1.Pod        // selected by the Service, not finished
	targets map[string]target   // pod name -> where targetPort lands in it
	eps     []endpoint
	probes  map[string]*probe // pod name -> what gRPC said
	causes  map[string]bool
	// probeTLSWhy: with causeProbeTLS, why the readiness probes fail, as checkEndpoints says it.
	probeTLSWhy string
	workloads   []*workload // the pods' controllers (nodes.go), once read; nil until then
}

// target is the Service's targetPort resolved in one pod.
type target struct {
	port     int    // 0 when a named targetPort is not a port of the pod
	name     string // containerPort name, if any
	declared bool   // a containerPort of the pod has this number
}

// endpoint is one address of the Service's EndpointSlices.
type endpoint struct {
	ip, pod     string
	ready       bool
	terminating bool
}

func (s *state) add(f Finding) { s.rep.add(f) }

func (s *state) pod(name string) *corev1.Pod {
	for i := range s.pods {
		if s.pods[i].Name == name {
			return &s.pods[i]
		}
	}
	return nil
}

// Diagnose runs every check and returns the report. It returns an error only when the
// diagnosis itself cannot proceed (the API server fails); what is wrong with the Service
// is in the findings.
func (d *Doctor) Diagnose(ctx context.Context) (Report, error) {
	rep := Report{Subject: Subject{Namespace: d.Cfg.Namespace, Service: d.Cfg.Service, LB: d.Cfg.LB, TLS: d.Cfg.TLS, FromPod: d.Cfg.FromPod}}
	if d.Prometheus != nil {
		rep.Subject.Prometheus = d.Cfg.Prometheus
	}
	st := &state{rep: &rep, targets: map[string]target{}, probes: map[string]*probe{}, causes: map[string]bool{}}
	if err := d.checkService(ctx, st); err != nil || st.svc == nil || st.port == nil {
		return rep, err
	}
	rep.Subject.Port = st.port.Port
	for _, check := range []func(context.Context, *state) error{
		d.checkSelector,
		d.scanFrontends, // no findings of its own: balancing and routes read what it found
		d.checkBalancing,
		d.checkRoutes,
		d.probePods, // no findings of its own: ports, endpoints and tls read its results
		d.checkPorts,
		d.checkAppProtocol,
		d.checkReadinessProbes,
		d.checkEndpoints,
		d.checkNodeLoss, // nodes and pdb: what losing or draining a node takes (nodes.go)
		d.reportProbes,
		d.checkDNS,
		d.checkNetworkPolicy,
		d.checkMeshRoutes,
		d.checkMetrics, // -prometheus: what the pods did with real calls, read last (metrics.go)
	} {
		if err := check(ctx, st); err != nil {
			return rep, err
		}
	}
	return rep, nil
}
