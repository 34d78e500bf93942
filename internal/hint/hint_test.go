package hint

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestForError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: tls: first record does not look like a TLS handshake"`), "TLS mismatch"},
		{status.Error(codes.Unavailable, "connection error: desc = \"error reading server preface: EOF\""), "plaintext client vs TLS server"},
		{status.Error(codes.Unavailable, "name resolver error: produced zero addresses"), "headless"},
		{status.Error(codes.Unavailable, "dial tcp 10.0.0.1:50051: connect: connection refused"), "targetPort"},
		{status.Error(codes.Unimplemented, "unknown service"), "routing"},
		{status.Error(codes.Unknown, `unexpected HTTP status code received from server: 500 (Internal Server Error); transport: received unexpected content-type "text/plain; charset=utf-8"`), "backend connection closes"},
		{status.Error(codes.Unknown, `unexpected HTTP status code received from server: 404 (Not Found); transport: received unexpected content-type "text/plain"`), "did not come from a gRPC server"},
		{status.Error(codes.Unavailable, "unexpected HTTP status code received from server: 502 (Bad Gateway); malformed header: missing HTTP content-type"), "could not reach the backend"},
		{status.Error(codes.Unavailable, "unexpected HTTP status code received from server: 503 (Service Unavailable)"), "no ready backend"},
		{status.Error(codes.Unavailable, `closing transport due to: connection error: desc = "error reading from server: EOF", received prior goaway: code: ENHANCE_YOUR_CALM, debug data: "too_many_pings"`), "Raise -keepalive to at least the server's keepalive-min-time (10s"},
		{status.Error(codes.InvalidArgument, "name is required"), ""},
	} {
		got := ForError(tc.err)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("ForError(%v) = %q, want it to mention %q", tc.err, got, tc.want)
		}
	}
	if got := For(codes.Unavailable, "produced zero addresses"); !strings.Contains(got, "no backends") {
		t.Errorf("For(Unavailable, zero addresses): %q", got)
	}
	if got := For(codes.Unimplemented, "x"); !strings.Contains(got, "routing") {
		t.Errorf("For(Unimplemented): %q", got)
	}
}

// TestForXDS: the xDS causes first, then For's. The messages are grpc-go's.
func TestForXDS(t *testing.T) {
	for _, tc := range []struct {
		code      codes.Code
		msg, want string
	}{
		{codes.Unavailable, `xds: error received from xDS stream: connection error: desc = "transport: Error while dialing: dial tcp 10.96.0.10:15010: connect: network is unreachable"`, "is istiod running"},
		// The channel still waits for its first configuration (ClientConn's
		// waitForResolvedAddrs): istiod unreachable, its connection attempt not failed yet.
		{codes.DeadlineExceeded, context.DeadlineExceeded.Error(), "20 s (gRPC's minimum connect timeout)"},
		// A pick that waited for a pod: not the control plane's doing.
		{codes.DeadlineExceeded, "context deadline exceeded while waiting for connections to become ready", ""},
		{codes.Unavailable, "no matched route was found", "GRPCRoute"},
		{codes.Unavailable, "dial tcp 10.0.0.1:50051: connect: connection refused", "targetPort"},
	} {
		got := ForXDS(tc.code, tc.msg)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("ForXDS(%s, %q) = %q, want it to mention %q", tc.code, tc.msg, got, tc.want)
		}
	}
}
