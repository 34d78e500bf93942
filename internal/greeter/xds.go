package greeter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/hint"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/xdsdump"
)

// ErrXDSNotAcked: -xds-dump found a resource the client did not accept (exit 3): the
// tool worked, the configuration the control plane sends does not.
var ErrXDSNotAcked = exitcode.MarkCheckFailed(errors.New("xDS configuration not accepted"))

// xdsDump starts cc's xDS resolver, waits up to c.Plan.Timeout for the configuration to
// settle, and prints it.
func xdsDump(ctx context.Context, c Config, cc *grpc.ClientConn, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, c.Plan.Timeout)
	defer cancel()
	d, err := xdsdump.Wait(ctx, cc.Connect, 100*time.Millisecond)
	if err != nil {
		return fmt.Errorf("xds dump of %s: %w", c.Dial.Target, err)
	}
	if c.JSON {
		err = d.WriteJSON(stdout)
	} else {
		err = d.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	switch {
	case !d.Settled():
		return fmt.Errorf("%w: after %s the client still waits for resources from the control plane (is it reachable at the bootstrap's server_uri? does it know this listener?)", ErrXDSNotAcked, c.Plan.Timeout)
	case len(d.Problems()) > 0:
		return fmt.Errorf("%w: %s", ErrXDSNotAcked, strings.Join(d.Problems(), "; "))
	}
	return nil
}

// hintFor is the hint for a failed call to target: the xDS causes first for an xds:///
// target (whose "zero addresses" is not a DNS matter), then the kit's usual hints.
func hintFor(target string, code codes.Code, msg string) string {
	if dialer.IsXDS(target) {
		if h := xdsHint(msg); h != "" {
			return h
		}
	}
	return hint.For(code, msg)
}

// callHint is hintFor of err's status ("" when err carries none).
func callHint(target string, err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	return hintFor(target, st.Code(), st.Message())
}

// xdsHint names the causes of the xDS errors the kit has met.
func xdsHint(msg string) string {
	switch {
	case strings.Contains(msg, "no matched route"):
		return "the xDS routes have no rule for this method: a GRPCRoute on the Service must match every method its clients call, each exactly (service and method). greeter -xds-dump shows the routes the client got."
	case strings.Contains(msg, "unrecognized path specifier"), strings.Contains(msg, "NACK"):
		return "the client rejected the route configuration the control plane sent (a GRPCRoute matching a service without a method becomes a match grpc-go does not know): greeter -xds-dump shows why, greeter doctor -lb xds -service NAME finds the rule."
	case strings.Contains(msg, "produced zero addresses"), strings.Contains(msg, "does not exist"), strings.Contains(msg, "resource-not-found"):
		return "the control plane sent no endpoints or no listener for this target yet: check that the target is xds:///<service>.<namespace>.svc.cluster.local:<port>, that the Service port is named grpc (or has appProtocol kubernetes.io/h2c), and that its pods are Ready; a client started before istiod knows the route fails its first calls, -warmup waits."
	case strings.Contains(msg, "xds") && (strings.Contains(msg, "connection") || strings.Contains(msg, "transport")):
		return "the client cannot reach the xDS control plane named in its bootstrap (server_uri): is istiod running (kubectl -n istio-system get pods)?"
	}
	return ""
}
