package dialer

import (
	"errors"
	"fmt"
	"net"
	"strings"

	_ "google.golang.org/grpc/xds" // registers the xds:/// resolver and the xDS balancers (proxyless gRPC)
)

// XDSScheme is the target scheme of a proxyless client: xds:///name:port asks the xDS
// control plane named in the bootstrap (istiod in the kit) for name's listener, and gets
// its routes, clusters and endpoints from there, with no proxy and no DNS in the path.
const XDSScheme = "xds"

// FromControlPlane is the LB "policy" of an xds:/// client: the control plane chooses it
// (in the clusters it sends), along with retries, per-call routing and weights.
const FromControlPlane = "xds"

// The environment variables grpc-go reads its xDS bootstrap from (the file, or the JSON
// itself), once, when the process starts.
const (
	BootstrapFileEnv   = "GRPC_XDS_BOOTSTRAP"
	BootstrapConfigEnv = "GRPC_XDS_BOOTSTRAP_CONFIG"
)

// ErrNoBootstrap: an xds:/// target in a process that has no xDS bootstrap.
var ErrNoBootstrap = errors.New("no xDS bootstrap")

// IsXDS reports whether target is an xds:/// target.
func IsXDS(target string) bool {
	scheme, _, ok := strings.Cut(target, "://")
	return ok && scheme == XDSScheme
}

// XDSHostPort returns the listener name of an xds:/// target split in host and port
// ("xds:///hello-grpc.ns.svc.cluster.local:50051"). istiod names a Service's listener
// host:port, so both must be there.
func XDSHostPort(target string) (host, port string, err error) {
	rest, ok := strings.CutPrefix(target, XDSScheme+"://")
	if !ok {
		return "", "", fmt.Errorf("target %q is not an xds:/// target", target)
	}
	authority, name, ok := strings.Cut(rest, "/")
	if !ok || authority != "" {
		return "", "", fmt.Errorf("target %q: xds targets are xds:///name:port (three slashes; the kit uses no xDS authority)", target)
	}
	host, port, err = net.SplitHostPort(name)
	if err != nil || host == "" || port == "" {
		return "", "", fmt.Errorf("target %q: want xds:///service.namespace.svc.cluster.local:port, the Service host and port istiod names its listener with", target)
	}
	return host, port, nil
}

// CheckBootstrap fails with a hint when neither bootstrap variable is set in env (os.Getenv
// in the greeter): grpc-go's own error only appears at the first call, as UNAVAILABLE.
func CheckBootstrap(getenv func(string) string) error {
	if getenv(BootstrapFileEnv) != "" || getenv(BootstrapConfigEnv) != "" {
		return nil
	}
	return fmt.Errorf("%w: an xds:/// target needs %s (the bootstrap JSON) or %s (a file holding it): "+
		"which control plane to ask and this client's node id "+
		"(kustomize/overlays/proxyless-xds/xds-bootstrap.yaml builds it from the downward API)", ErrNoBootstrap, BootstrapConfigEnv, BootstrapFileEnv)
}
