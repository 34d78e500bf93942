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
	if err := writeReport(stdout, c.JSON, d); err != nil {
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

// hintFor is the hint for a failed call to target: for an xds:/// target the xDS causes
// first (its "zero addresses" is not a DNS matter), then the kit's usual hints.
func hintFor(target string, code codes.Code, msg string) string {
	if dialer.IsXDS(target) {
		return hint.ForXDS(code, msg)
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
