package dialer

import (
	"errors"
	"strings"
	"testing"
)

func TestXDSTargets(t *testing.T) {
	for _, tc := range []struct{ target, host, port, wantErr string }{
		{"xds:///hello-grpc.grpc-kit-xds.svc.cluster.local:50051", "hello-grpc.grpc-kit-xds.svc.cluster.local", "50051", ""},
		{"xds://istiod/hello:50051", "", "", "three slashes"},
		{"xds:///hello-grpc", "", "", "want xds:///service.namespace.svc.cluster.local:port"},
		{"xds:///:50051", "", "", "want xds:///"},
	} {
		if got := IsXDS(tc.target); !got {
			t.Errorf("IsXDS(%q) = false", tc.target)
		}
		host, port, err := XDSHostPort(tc.target)
		cerr := CheckTarget(tc.target)
		switch {
		case tc.wantErr == "" && (err != nil || cerr != nil || host != tc.host || port != tc.port):
			t.Errorf("%q: got %q %q %v (CheckTarget %v), want %q %q", tc.target, host, port, err, cerr, tc.host, tc.port)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || cerr == nil):
			t.Errorf("%q: got %v (CheckTarget %v), want an error containing %q", tc.target, err, cerr, tc.wantErr)
		}
	}
	if IsXDS("dns:///xds:50051") || IsXDS("xds.example:443") {
		t.Error("IsXDS is true for targets of other schemes")
	}
}

func TestCheckBootstrap(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	if err := CheckBootstrap(env(map[string]string{BootstrapConfigEnv: `{"xds_servers":[]}`})); err != nil {
		t.Errorf("bootstrap JSON set: %v", err)
	}
	if err := CheckBootstrap(env(map[string]string{BootstrapFileEnv: "/etc/xds/bootstrap.json"})); err != nil {
		t.Errorf("bootstrap file set: %v", err)
	}
	err := CheckBootstrap(env(nil))
	if !errors.Is(err, ErrNoBootstrap) || !strings.Contains(err.Error(), BootstrapConfigEnv) || !strings.Contains(err.Error(), BootstrapFileEnv) {
		t.Errorf("no bootstrap: %v, want ErrNoBootstrap naming both variables", err)
	}
}

// Dial refuses an xds:/// target in a process without a bootstrap, before grpc-go would
// fail the first call with UNAVAILABLE.
func TestDialXDSNeedsBootstrap(t *testing.T) {
	t.Setenv(BootstrapConfigEnv, "")
	t.Setenv(BootstrapFileEnv, "")
	o := Options{Target: "xds:///hello-grpc.kit.svc.cluster.local:50051", LB: FromControlPlane}
	if _, err := Dial(o); !errors.Is(err, ErrNoBootstrap) {
		t.Fatalf("Dial without bootstrap: %v, want ErrNoBootstrap", err)
	}
	o.LB = RoundRobin
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "control plane") {
		t.Errorf("an xds:/// target with round_robin: %v, want an error naming the control plane", err)
	}
}
