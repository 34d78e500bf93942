//go:build e2e

package e2e

import "testing"

// Probe styles (native gRPC, exec probe mode, HTTP /readyz) in their own namespace, at the
// same time as the topologies.
func TestProbes(t *testing.T) {
	t.Parallel()
	probes(t)
}

// The backend-tls component end to end (headless over TLS, the ingress to TLS backends, the
// doctor on a native probe in front of a TLS server), in its own namespaces.
func TestBackendTLS(t *testing.T) {
	t.Parallel()
	backendTLS(t)
}
