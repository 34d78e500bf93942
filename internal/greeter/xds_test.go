package greeter

import (
	"errors"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"
)

const xdsTarget = "xds:///hello-grpc.grpc-kit-xds.svc.cluster.local:50051"

func TestXDSFlags(t *testing.T) {
	noEnv := func(string) string { return "" }
	c, err := ParseFlags([]string{"-target", xdsTarget, "-n", "100", "-H", "x-experiment-group=canary"}, noEnv, io.Discard)
	if err != nil {
		t.Fatalf("xds target: %v", err)
	}
	if c.Dial.LB != dialer.FromControlPlane || c.Dial.Retry || c.Dial.HealthCheck {
		t.Errorf("xds target: LB %q retry %v health %v; want the control plane's (xds, off, off)", c.Dial.LB, c.Dial.Retry, c.Dial.HealthCheck)
	}
	// The control plane sets these: asking for them is refused, not ignored.
	for _, args := range [][]string{{"-lb", "round_robin"}, {"-retry"}, {"-health-check"}, {"-dns-min-resolve", "5s"}, {"-wrr-blackout", "1s"}} {
		_, err := ParseFlags(append([]string{"-target", xdsTarget}, args...), noEnv, io.Discard)
		if !errors.Is(err, exitcode.ErrUsage) || !strings.Contains(err.Error(), "does not apply to an xds:/// target") {
			t.Errorf("%v with an xds target: %v, want a usage error", args, err)
		}
	}
	// -retry=false: the client refuses the control plane's retry policy.
	if c, err := ParseFlags([]string{"-target", xdsTarget, "-retry=false"}, noEnv, io.Discard); err != nil || !c.Dial.DisableRetry || c.Dial.Retry {
		t.Errorf("-retry=false with an xds target: %v (DisableRetry %v, Retry %v), want retries off", err, c.Dial.DisableRetry, c.Dial.Retry)
	}
	if c.Dial.DisableRetry {
		t.Error("xds target without -retry: DisableRetry set, want the control plane's retry policy")
	}
	if _, err := ParseFlags([]string{"-target", "dns:///hello:50051", "-xds-dump"}, noEnv, io.Discard); !errors.Is(err, exitcode.ErrUsage) || !strings.Contains(err.Error(), "needs an xds:/// target") {
		t.Errorf("-xds-dump with a dns target: %v, want a usage error", err)
	}
	if c, err := ParseFlags([]string{"-target", xdsTarget, "-xds-dump", "-json"}, noEnv, io.Discard); err != nil || !c.XDSDump {
		t.Errorf("-xds-dump: %v (XDSDump %v)", err, c.XDSDump)
	}
}

// The xDS errors met in the kit's cluster get xDS hints for an xds:/// target; the same
// message from a dns:/// target keeps the kit's usual hint.
func TestXDSHints(t *testing.T) {
	for msg, want := range map[string]string{
		"no matched route was found":                                        "no rule for this method",
		"received route is invalid: ... has an unrecognized path specifier": "greeter doctor -lb xds",
		"name resolver error: produced zero addresses":                      "no endpoints or no listener",
	} {
		if h := hintFor(xdsTarget, codes.Unavailable, msg); !strings.Contains(h, want) {
			t.Errorf("xds %q: hint %q, want one containing %q", msg, h, want)
		}
	}
	if h := hintFor("dns:///hello:50051", codes.Unavailable, "produced zero addresses"); strings.Contains(h, "listener") || !strings.Contains(h, "headless") {
		t.Errorf("dns target: hint %q, want the DNS hint", h)
	}
}
