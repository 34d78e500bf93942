package probe

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/certgen"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serverkit"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serving"
)

// The names the throwaway certificate carries: a Service's DNS names, not 127.0.0.1, as
// in a cluster (components/backend-tls).
const certName = "hello-grpc.kit.svc.cluster.local"

type tlsFiles struct{ ca, cert, key string }

// newCerts writes a throwaway CA and a server certificate for certName into a temp dir.
func newCerts(t *testing.T) tlsFiles {
	t.Helper()
	b, err := certgen.Generate([]string{certName}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := b.Write(dir); err != nil {
		t.Fatal(err)
	}
	return tlsFiles{filepath.Join(dir, "ca.crt"), filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")}
}

// startHello serves helloworld.Hello on 127.0.0.1 (TLS when certs is not nil) and
// returns the server and its address.
func startHello(t *testing.T, certs *tlsFiles) (*serverkit.Server, string) {
	t.Helper()
	cfg := serverkit.Config{ListenHost: "127.0.0.1", Port: 0, HTTPPort: -1, ShutdownTimeout: time.Second,
		KeepaliveTime: 30 * time.Second, KeepaliveTimeout: 10 * time.Second, KeepaliveMinTime: 5 * time.Second,
		MaxRecvMsgSize: 4096, MaxConcurrentStreams: 100, LogLevel: "error", LogFormat: "text"}
	if certs != nil {
		cfg.TLSCertFile, cfg.TLSKeyFile = certs.cert, certs.key
	}
	srv, err := serverkit.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), serving.Server(catalog.Hello(), identity.Identity{Pod: "hello-1"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv, srv.Addr().String()
}

// env is a getenv over a map.
func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

// run runs the probe mode as `hello probe args...` with env and returns its exit code and
// what it printed (stdout, then the error line main would print).
func run(t *testing.T, kv map[string]string, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	err := Run(context.Background(), "hello", catalog.Hello().Name(), args, env(kv), &out, &out)
	if err != nil {
		out.WriteString("hello: " + err.Error() + "\n")
	}
	return exitcode.Of(err), out.String()
}

func expect(t *testing.T, code int, out string, wantCode int, wants ...string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("exit %d, want %d; output:\n%s", code, wantCode, out)
	}
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if n := strings.Count(strings.TrimSpace(out), "\n"); n > 0 && wantCode != exitcode.Usage {
		t.Errorf("want one line, got %d:\n%s", n+1, out)
	}
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPlaintext(t *testing.T) {
	srv, addr := startHello(t, nil)
	kv := map[string]string{"PORT": portOf(t, addr)}

	// Defaults from the server's environment: 127.0.0.1:$PORT, the binary's own service.
	code, out := run(t, kv)
	expect(t, code, out, exitcode.OK, `"helloworld.Hello" SERVING at `+addr+" (plaintext)")
	code, out = run(t, kv, "-service", "")
	expect(t, code, out, exitcode.OK, "overall health SERVING")

	code, out = run(t, kv, "-service", "helloworld.Nope")
	expect(t, code, out, exitcode.Failure, `service "helloworld.Nope"`, "SERVICE_UNKNOWN")

	srv.SetServing(false)
	code, out = run(t, kv)
	expect(t, code, out, exitcode.Failure, `service "helloworld.Hello" at `+addr+" (plaintext) is NOT_SERVING")
	code, out = run(t, kv, "-service", "")
	expect(t, code, out, exitcode.Failure, "overall health at "+addr+" (plaintext) is NOT_SERVING")

	srv.SetServing(true) // and back
	code, out = run(t, kv)
	expect(t, code, out, exitcode.OK, "SERVING")
}

func TestNothingListening(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	start := time.Now()
	code, out := run(t, nil, "-addr", addr, "-timeout", "3s")
	expect(t, code, out, exitcode.Failure, "unreachable", "connection refused")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a refused port took %s: it must fail fast, not wait out -timeout", d)
	}
}

// A server that accepts the connection and never answers: the check ends at -timeout
// with a message that says so (a stuck process).
func TestStuckServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	start := time.Now()
	code, out := run(t, nil, "-addr", l.Addr().String(), "-timeout", "300ms")
	expect(t, code, out, exitcode.Failure, "no answer within 300ms")
	if d := time.Since(start); d < 300*time.Millisecond || d > 2*time.Second {
		t.Errorf("took %s, want about -timeout (300ms)", d)
	}
}

func TestTLS(t *testing.T) {
	certs := newCerts(t)
	srv, addr := startHello(t, &certs)
	port := portOf(t, addr)
	// What the server's container has: PORT and TLS_CERT_FILE.
	kv := map[string]string{"PORT": port, "TLS_CERT_FILE": certs.cert}

	code, out := run(t, kv)
	expect(t, code, out, exitcode.OK, `"helloworld.Hello" SERVING at `+addr+" (TLS)")

	srv.SetServing(false)
	code, out = run(t, kv)
	expect(t, code, out, exitcode.Failure, "(TLS) is NOT_SERVING")
	srv.SetServing(true)

	// Verified against the CA with a name the certificate carries, and not with one it
	// does not (127.0.0.1, the host of -addr).
	code, out = run(t, kv, "-tls-ca", certs.ca, "-tls-server-name", certName)
	expect(t, code, out, exitcode.OK, "SERVING")
	code, out = run(t, kv, "-tls-ca", certs.ca)
	expect(t, code, out, exitcode.Failure, "unreachable", "127.0.0.1")
	code, out = run(t, kv, "-tls-insecure-skip-verify")
	expect(t, code, out, exitcode.OK, "SERVING")

	// The pin holds: another certificate (of another CA) is not this server's.
	other := newCerts(t)
	code, out = run(t, map[string]string{"PORT": port, "TLS_CERT_FILE": other.cert})
	expect(t, code, out, exitcode.Failure, "does not present the certificate in "+other.cert)

	// Negative control: plaintext against the TLS port (what the kubelet's native gRPC
	// probe does) fails, and the hint names the mismatch.
	code, out = run(t, map[string]string{"PORT": port})
	expect(t, code, out, exitcode.Failure, "(plaintext): unreachable", "hint:")
}

func TestTLSProbePlaintextServer(t *testing.T) {
	certs := newCerts(t)
	_, addr := startHello(t, nil)
	code, out := run(t, map[string]string{"PORT": portOf(t, addr), "TLS_CERT_FILE": certs.cert})
	expect(t, code, out, exitcode.Failure, "(TLS): unreachable")
}

func TestUsage(t *testing.T) {
	certs := newCerts(t)
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"bad PORT", map[string]string{"PORT": "x"}, nil, `port "x" is not 1-65535`},
		{"unknown flag", nil, []string{"-bogus"}, "flag provided but not defined: -bogus"},
		{"argument", nil, []string{"extra"}, "takes flags only"},
		{"tls with no trust", nil, []string{"-tls"}, "say how to trust the server"},
		{"two trusts", nil, []string{"-tls", "-tls-ca", certs.ca, "-tls-insecure-skip-verify"}, "contradict"},
		{"ca without tls", nil, []string{"-tls-ca", certs.ca}, "need TLS"},
		{"server name without ca", map[string]string{"TLS_CERT_FILE": certs.cert}, []string{"-tls-server-name", "x"}, "only used with -tls-ca"},
		{"zero timeout", nil, []string{"-timeout", "0s"}, "must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := run(t, tc.env, tc.args...)
			expect(t, code, out, exitcode.Usage, tc.want)
		})
	}
	if code, _ := run(t, nil, "-h"); code != exitcode.OK {
		t.Errorf("-h exits %d, want 0", code)
	}
}

func TestListenHostDefault(t *testing.T) {
	c, err := Parse("hello", "helloworld.Hello", nil, env(map[string]string{"LISTEN_HOST": "127.0.0.9", "PORT": "6000"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.9:6000" || c.TLS || c.Service != "helloworld.Hello" || c.Timeout != time.Second {
		t.Errorf("defaults: %+v", c)
	}
	c, err = Parse("hello", "helloworld.Hello", nil, env(nil), io.Discard)
	if err != nil || c.Addr != "127.0.0.1:50051" {
		t.Errorf("with no environment: %+v, %v; want 127.0.0.1:50051", c, err)
	}
}
