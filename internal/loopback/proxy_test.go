package loopback

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
)

// h2cProxy is a plaintext HTTP/2 reverse proxy in front of one backend, like Traefik or
// ingress-nginx in front of a pod. Its first failFirst requests get the bare HTTP status
// a proxy sends when its upstream failed, instead of being forwarded.
type h2cProxy struct {
	addr       string
	failFirst  int64
	httpStatus int
	requests   atomic.Int64
}

func startH2CProxy(t *testing.T, backend string, failFirst int64, httpStatus int) *h2cProxy {
	t.Helper()
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: backend})
	upstream := &http.Transport{Protocols: &h2c}
	t.Cleanup(upstream.CloseIdleConnections)
	rp.Transport = upstream
	p := &h2cProxy{failFirst: failFirst, httpStatus: httpStatus}
	srv := &http.Server{Protocols: &h2c, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.requests.Add(1) <= p.failFirst {
			http.Error(w, http.StatusText(p.httpStatus), p.httpStatus)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })
	p.addr = lis.Addr().String()
	return p
}

// A proxy that loses its upstream mid-call answers with a plain HTTP status, which gRPC
// maps to a code: 502, 503 and 504 to UNAVAILABLE, and 500 (Traefik's answer when the
// upstream connection ends with a call in flight) to UNKNOWN. The retry policy must
// retry each of them for the idempotent SayHello, and without it the caller must see the
// mapped code.
func TestRetryPolicyRetriesProxyErrors(t *testing.T) {
	ip := "127.0.0.41"
	f := newFleet(t, ip)
	startBackend(t, f, ip, "behind-proxy", nil)
	backend := net.JoinHostPort(ip, itoa(f.Port()))
	waitListening(t, backend)

	for _, tc := range []struct {
		status int
		code   codes.Code
	}{
		{http.StatusInternalServerError, codes.Unknown},
		{http.StatusBadGateway, codes.Unavailable},
		{http.StatusServiceUnavailable, codes.Unavailable},
		{http.StatusGatewayTimeout, codes.Unavailable},
	} {
		for _, retry := range []bool{true, false} {
			name := http.StatusText(tc.status) + map[bool]string{true: "/retry on", false: "/retry off"}[retry]
			t.Run(name, func(t *testing.T) {
				// Two failures: the call needs the second retry, not only the first.
				p := startH2CProxy(t, backend, 2, tc.status)
				cc, err := dialer.Dial(dialer.Options{
					Target: p.addr, LB: dialer.RoundRobin, Retry: retry,
					Services: []string{catalog.Hello().Name()},
				})
				if err != nil {
					t.Fatal(err)
				}
				defer cc.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				b, _, err := helloCall(cc)(ctx)
				switch {
				case retry && err != nil:
					t.Fatalf("with the retry policy the call failed: %v (proxy saw %d requests)", err, p.requests.Load())
				case retry && b.GetPod() != "behind-proxy":
					t.Fatalf("answered by %q, want behind-proxy", b.GetPod())
				case retry && p.requests.Load() != 3:
					t.Fatalf("proxy saw %d requests, want 3 (two failed attempts, one that got through)", p.requests.Load())
				case !retry && status.Code(err) != tc.code:
					t.Fatalf("without retries: %v, want code %v", err, tc.code)
				case !retry && p.requests.Load() != 1:
					t.Fatalf("without retries the proxy saw %d requests, want 1", p.requests.Load())
				}
				t.Logf("HTTP %d → %v; retry %v: proxy saw %d request(s), err=%v", tc.status, tc.code, retry, p.requests.Load(), err)
			})
		}
	}
}
