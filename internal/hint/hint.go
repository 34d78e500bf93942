// Package hint turns the gRPC errors people meet most into a sentence that names the
// cause and the fix: the greeter prints them under failed calls, the doctor as fixes.
package hint

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/keepalivepolicy"
)

// ForError is For of err's status; "" when err carries no gRPC status or nothing is known.
func ForError(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	return For(st.Code(), st.Message())
}

// For is the hint for a status code and message, or "" when the kit has nothing to add.
func For(code codes.Code, msg string) string {
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(msg, s) {
				return true
			}
		}
		return false
	}
	switch {
	case has("too_many_pings"):
		return fmt.Sprintf("the server closed the connection with GOAWAY too_many_pings: the client's keepalive pings more often than the server allows (the greeter pings every %s by default, on idle connections too). Raise -keepalive to at least the server's keepalive-min-time (%s on the kit's servers, KEEPALIVE_MIN_TIME), or lower KEEPALIVE_MIN_TIME on the servers; a server that refuses pings on connections with no call (grpc-go's default enforcement) needs -keepalive=0, and then outlier detection alone takes a lost node's pod out.", keepalivepolicy.MinTime, keepalivepolicy.MinTime)
	case has("first record does not look like a TLS handshake"):
		return "TLS mismatch: the client speaks TLS but the server is plaintext (h2c). Drop -tls/-cacert/-insecure, or point at the TLS entry point."
	case has("error reading server preface", "connection closed before server preface received", "http2: frame too large"):
		return "protocol mismatch: the server closed the connection before speaking HTTP/2. Usually plaintext client vs TLS server (add -tls with -cacert or -insecure), or the port is not a gRPC port."
	case has("certificate signed by unknown authority"):
		return "the server's certificate is not signed by a CA the client trusts: pass -cacert with the kit's CA (or -insecure for a quick test)."
	case has("certificate is valid for", "doesn't contain any IP SANs"):
		return "the certificate does not name the host you dialled: set -authority to a name in the certificate."
	case has("produced zero addresses", "no such host", "no children to pick from"):
		return "name resolution found no backends: check the Service name and namespace, that its pods are Ready, and that a round_robin client targets a headless Service (clusterIP: None)."
	case has("status=SERVICE_UNKNOWN"):
		return "the backend does not serve the health-check service asked for: wrong port (Hello vs Goodbye?) or -health-service; -health-check=false to skip client-side health checks."
	case has("health check failed"), has("status=NOT_SERVING"):
		return "every backend reports NOT_SERVING on grpc.health.v1: they are draining or were flipped (GET /admin/health on their HTTP port)."
	case has("connection refused"):
		return "nothing listens at that address and port: check the port (Service port vs targetPort vs the server's PORT) and that the pods run."
	case code == codes.Unimplemented:
		return "the server (or the proxy in front of it) does not serve this method: check routing rules (paths /helloworld.Hello and /helloworld.Goodbye) and the target."
	case code == codes.Unavailable && has("received from server: 503"):
		return "a proxy answered HTTP 503: it has no ready backend for this route (no ready pods, or it has not seen their endpoints yet). Check the pods' readiness and the route's backend Service."
	case code == codes.Unavailable && has("received from server: 502", "received from server: 504"):
		return "a proxy answered HTTP 502/504: it could not reach the backend it picked (a pod that died or is going away, or a wrong backend port). -retry retries it; if every call gets it, check the backend Service's port and appProtocol."
	case code == codes.Unknown && has("unexpected HTTP status code received from server: 500"):
		return "a proxy answered HTTP 500: its call to the backend failed in a way it does not classify (Traefik does this when the backend connection closes with the call in flight, e.g. a pod killed). -retry retries it; if every call gets it, read the proxy's log."
	case code == codes.Unknown && has("malformed header", "unexpected HTTP status", "content-type"):
		return "the answer did not come from a gRPC server: a proxy answered with plain HTTP (missing route, backend-protocol not GRPC, or a ReferenceGrant missing)."
	}
	return ""
}

// ForXDS is the hint for a call to an xds:/// target (a proxyless client): the causes of
// the xDS errors the kit has met, else For.
func ForXDS(code codes.Code, msg string) string {
	switch {
	case strings.Contains(msg, "no matched route"):
		return "the xDS routes have no rule for this method: a GRPCRoute on the Service must match every method its clients call, each exactly (service and method). greeter -xds-dump shows the routes the client got."
	case strings.Contains(msg, "unrecognized path specifier"), strings.Contains(msg, "NACK"):
		return "the client rejected the route configuration the control plane sent (a GRPCRoute matching a service without a method becomes a match grpc-go does not know): greeter -xds-dump shows why, greeter doctor -lb xds -service NAME finds the rule."
	case strings.Contains(msg, "produced zero addresses"), strings.Contains(msg, "does not exist"), strings.Contains(msg, "resource-not-found"):
		return "the control plane sent no endpoints or no listener for this target yet: check that the target is xds:///<service>.<namespace>.svc.cluster.local:<port>, that the Service port is named grpc (or has appProtocol kubernetes.io/h2c), and that its pods are Ready; a client started before istiod knows the route fails its first calls, -warmup waits."
	case strings.Contains(msg, "xds") && (strings.Contains(msg, "connection") || strings.Contains(msg, "transport")):
		return "the client cannot reach the xDS control plane named in its bootstrap (server_uri): is istiod running (kubectl -n istio-system get pods)?"
	case code == codes.DeadlineExceeded && msg == context.DeadlineExceeded.Error():
		// The bare message is the channel's wait for its first configuration; a call that
		// reached a pod and timed out there says so too, hence "if every call".
		return "the deadline passed before the client had a configuration from the control plane (or before the server answered). If every call from the client's start fails so, the xDS client is still waiting for istiod: it reports an unreachable control plane only when its first connection attempt fails, at once if the connection is refused, after up to 20 s (gRPC's minimum connect timeout) if nothing answers. Is istiod running (kubectl -n istio-system get pods)? A -timeout over 20 s shows the error."
	}
	return For(code, msg)
}
