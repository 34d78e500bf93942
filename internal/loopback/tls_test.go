package loopback

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/certgen"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/loadgen"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serverkit"
)

var tlsIPs = []string{"127.0.0.41", "127.0.0.42", "127.0.0.43"}

// writeCerts makes a throwaway CA and a server certificate for hosts in a temp dir and
// returns the directory (ca.crt, tls.crt, tls.key).
func writeCerts(t *testing.T, hosts ...string) string {
	t.Helper()
	b, err := certgen.Generate(hosts, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := b.Write(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// tlsClient dials c's name with round_robin and TLS verified against the CA in dir, as the
// greeter does with -cacert (and -authority when authority is set).
func tlsClient(t *testing.T, c *cluster, dir, authority string) *grpc.ClientConn {
	t.Helper()
	cc, err := dialer.Dial(dialer.Options{
		Target: c.target, LB: dialer.RoundRobin, Retry: true, HealthCheck: true,
		HealthService: catalog.Hello().Name(), Services: []string{catalog.Hello().Name()},
		CACert: filepath.Join(dir, "ca.crt"), Authority: authority,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// A round_robin client over a headless Service dials every pod IP, and verifies each
// pod's certificate against the host of its target (the Service's DNS name), not against
// the IP it dialled. So the certificate must carry the Service name the client writes in
// -target; pod IPs are not needed (and change at every restart). Negative control: a
// certificate for the pod IPs only fails every handshake.
func TestHeadlessRoundRobinOverTLS(t *testing.T) {
	const name = "hello-grpc-headless.kit.svc.cluster.local"
	for _, tc := range []struct {
		what      string
		hosts     []string
		authority string
		ok        bool
	}{
		{"certificate for the Service name", []string{name, "hello-grpc-headless.kit.svc"}, "", true},
		{"certificate for the pod IPs only", tlsIPs, "", false},
		{"certificate for another name, -authority set to it", []string{"hello.grpc-kit.internal"}, "hello.grpc-kit.internal", true},
	} {
		t.Run(tc.what, func(t *testing.T) {
			dir := writeCerts(t, tc.hosts...)
			c, _ := startGroup(t, name, "hello", tlsIPs, func(c *serverkit.Config) {
				c.TLSCertFile, c.TLSKeyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
			})
			call := helloCall(tlsClient(t, c, dir, tc.authority))
			if !tc.ok {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				_, _, err := call(ctx)
				if err == nil || !strings.Contains(err.Error(), "wanted to match "+name) {
					t.Fatalf("want a certificate name error (the certificate names no %s), got %v", name, err)
				}
				t.Logf("as expected: %v", err)
				return
			}
			warmUp(t, call, 3)
			s := run(t, call, loadgen.Plan{Calls: 300, Concurrency: 3})
			got := counts(s)
			t.Logf("%v", got)
			if s.Failed != 0 {
				t.Fatalf("%d calls failed: %+v", s.Failed, s.Errors)
			}
			for _, pod := range []string{"hello-1", "hello-2", "hello-3"} {
				if got[pod] != 100 {
					t.Errorf("%s served %d calls, want exactly 100: %v", pod, got[pod], got)
				}
			}
		})
	}
}

// The probe mode of the real binaries (`hello probe`, `/app probe` in the image), with
// only the server's environment, as an exec probe runs it: exit 0 SERVING, 1 otherwise,
// 2 on a bad flag, for plaintext and TLS servers. It logs what one probe costs (wall
// time and peak RSS of the process, the kubelet's fork per period).
func TestProbeModeOfTheBinaries(t *testing.T) {
	dir := writeCerts(t, "hello-grpc.kit.svc.cluster.local")
	for i, key := range []string{"hello", "goodbye"} {
		svc, err := catalog.Lookup(key)
		if err != nil {
			t.Fatal(err)
		}
		bin := buildBinary(t, key, "./services/"+key)
		for j, tlsOn := range []bool{false, true} {
			t.Run(key+map[bool]string{false: "/plaintext", true: "/TLS"}[tlsOn], func(t *testing.T) {
				ip := "127.0.0." + strconv.Itoa(44+2*i+j)
				port := freePortOn(t, ip)
				env := []string{"LISTEN_HOST=" + ip, "PORT=" + itoa(port)}
				if tlsOn {
					env = append(env, "TLS_CERT_FILE="+filepath.Join(dir, "tls.crt"), "TLS_KEY_FILE="+filepath.Join(dir, "tls.key"))
				}
				srv := exec.Command(bin)
				srv.Env = append([]string{"HTTP_PORT=-1", "DRAIN_DELAY=0s", "LOG_LEVEL=warn"}, env...)
				srv.Stderr = t.Output()
				if err := srv.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
				waitListening(t, ip+":"+itoa(port))

				probe := func(extraEnv []string, args ...string) (int, string, time.Duration, int64) {
					cmd := exec.Command(bin, append([]string{"probe"}, args...)...)
					cmd.Env = append(slices.Clone(env), extraEnv...)
					start := time.Now()
					out, err := cmd.CombinedOutput()
					wall := time.Since(start)
					var ee *exec.ExitError
					if err != nil && !errors.As(err, &ee) {
						t.Fatal(err)
					}
					rss := int64(0)
					if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
						rss = ru.Maxrss // KiB on Linux
					}
					return cmd.ProcessState.ExitCode(), strings.TrimSpace(string(out)), wall, rss
				}

				code, out, _, _ := probe(nil)
				if code != 0 || !strings.Contains(out, strconv.Quote(svc.Name())+" SERVING") {
					t.Fatalf("probe of a serving %s: exit %d, %q; want 0 and its own service SERVING", key, code, out)
				}
				var walls []time.Duration
				var rsss []int64
				for range 15 {
					_, _, w, r := probe(nil)
					walls, rsss = append(walls, w), append(rsss, r)
				}
				slices.Sort(walls)
				slices.Sort(rsss)
				t.Logf("one probe: median wall %s (max %s), median peak RSS %d KiB; %s", walls[len(walls)/2], walls[len(walls)-1], rsss[len(rsss)/2], out)

				if code, out, _, _ = probe(nil, "-service", "helloworld.Nope"); code != 1 || !strings.Contains(out, "SERVICE_UNKNOWN") {
					t.Errorf("unknown service: exit %d, %q; want 1 and SERVICE_UNKNOWN", code, out)
				}
				if code, out, _, _ = probe(nil, "-bogus"); code != 2 {
					t.Errorf("bad flag: exit %d, %q; want 2", code, out)
				}
				if tlsOn {
					// Without TLS_CERT_FILE the probe speaks plaintext: what the kubelet's native
					// gRPC probe does against a TLS server.
					plain := exec.Command(bin, "probe")
					plain.Env = []string{"LISTEN_HOST=" + ip, "PORT=" + itoa(port)}
					b, _ := plain.CombinedOutput()
					if plain.ProcessState.ExitCode() != 1 || !strings.Contains(string(b), "(plaintext): unreachable") {
						t.Errorf("plaintext probe of a TLS server: exit %d, %q; want 1, unreachable", plain.ProcessState.ExitCode(), b)
					}
				}
				// NOT_SERVING: SIGTERM flips every status at once; the probe says so while the
				// server drains (DRAIN_DELAY 0: it is a race, so only a failure is required).
				if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				srv.Wait()
				if code, out, _, _ = probe(nil); code != 1 {
					t.Errorf("after the server exited: exit %d, %q; want 1", code, out)
				}
			})
		}
	}
}
