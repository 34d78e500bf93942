package greeter

import (
	"strings"
	"testing"
)

func TestTargetHostPort(t *testing.T) {
	for _, tc := range []struct {
		target, host string
		port         int
		err          string
	}{
		{"dns:///hello-grpc-headless.grpc-kit-headless.svc.cluster.local:50051", "hello-grpc-headless.grpc-kit-headless.svc.cluster.local", 50051, ""},
		{"dns://10.96.0.10:53/hello-grpc-headless:50051", "hello-grpc-headless", 50051, ""}, // with a DNS server
		{"hello-grpc:50051", "hello-grpc", 50051, ""},                                       // default scheme dns
		{"127.0.0.1:8443", "127.0.0.1", 8443, ""},
		{"dns:///[::1]:50051", "::1", 50051, ""},
		{"passthrough:///10.0.0.1:50051", "", 0, `scheme "passthrough" is not resolved through DNS`},
		{"dns://hello:50051", "", 0, "three slashes"},
		{"dns:///hello", "", 0, "want name:port"},
		{"dns:///hello:http", "", 0, `port "http" is not a number`},
		{"", "", 0, "target is empty"},
	} {
		host, port, err := TargetHostPort(tc.target)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("TargetHostPort(%q) error %v, want one containing %q", tc.target, err, tc.err)
		case tc.err == "" && (err != nil || host != tc.host || port != tc.port):
			t.Errorf("TargetHostPort(%q) = %q, %d, %v; want %q, %d", tc.target, host, port, err, tc.host, tc.port)
		}
	}
}
