package loopback

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/greeter"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/hello"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/keepalivepolicy"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/loopfleet"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serverkit"
	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// streamRun runs `greeter -stream ... -json` and returns its report and error.
func streamRun(t *testing.T, args ...string) (report.StreamSummary, error) {
	t.Helper()
	out, err := runGreeter(t, append(args, "-json", "-quiet")...)
	var s report.StreamSummary
	if jerr := json.Unmarshal([]byte(out), &s); jerr != nil {
		t.Fatalf("greeter %v: %v; report: %v\n%s", args, err, jerr, out)
	}
	t.Logf("%s: %d messages, %d opened, %d reconnects, lost %d, dup %d, ends %+v, gap %+v, pods %+v",
		s.Kind, s.Messages, s.Opened, s.Reconnects, s.Lost, s.Duplicated, s.Ends, s.LongestGap, streamsPerPod(s))
	return s, err
}

func streamsPerPod(s report.StreamSummary) map[string]int64 {
	m := map[string]int64{}
	for _, b := range s.Backends {
		m[b.Pod] += b.Streams
	}
	return m
}

// onlyReconnects fails unless every stream ended with UNAVAILABLE and a message saying
// "reconnect" that contains want: the server ended them on purpose, nothing cut them.
func onlyReconnects(t *testing.T, s report.StreamSummary, want string) {
	t.Helper()
	for _, e := range s.Ends {
		if e.Code != codes.Unavailable || !strings.Contains(e.Example, want) {
			t.Errorf("%d streams ended with %s (%q), want only UNAVAILABLE %q", e.Count, e.Code, e.Example, want)
		}
	}
}

// STREAM_MAX_AGE: every stream is ended by its server after about 1s with the reconnect
// status and reopened by the greeter from where it stopped: nothing lost, nothing twice.
func TestStreamMaxAgeReconnects(t *testing.T) {
	c, _ := threeBackends(t, func(cfg *serverkit.Config) { cfg.StreamMaxAge = time.Second })
	for _, kind := range []string{"server", "bidi"} {
		t.Run(kind, func(t *testing.T) {
			s, err := streamRun(t, "-target", c.target, "-stream", kind, "-streams", "6", "-interval", "50ms",
				"-duration", "3500ms", "-max-lost", "0", "-max-dup", "0", "-max-gap", "2s")
			if err != nil {
				t.Fatalf("greeter: %v (assertions %+v)", err, s.Assertions)
			}
			onlyReconnects(t, s, "stream max age reached, reconnect")
			// Each of the 6 streams lives 0.9-1.1s: 3 ends each in 3.5s, give or take.
			if s.Reconnects < 12 || s.EndCount(codes.Unavailable) != s.Reconnects {
				t.Fatalf("%d reconnects in 3.5s of 6 streams with a 1s max age, want at least 12", s.Reconnects)
			}
			// Opened counts a stream at its first message, so a stream reopened in the
			// last moments of the run (within one interval and a round trip of its end)
			// is not counted yet. The 6 streams' ages are drawn together, so several can
			// be caught so at once: at most one each. Reconnects ≥ 12 already shows that
			// ended streams came back (a stream not reopened cannot end twice).
			if s.Opened > 6+s.Reconnects || s.Opened < s.Reconnects {
				t.Errorf("%d streams opened for %d reconnects of 6 streams: want %d, or up to 6 fewer (reopened at the run's end, no message yet)", s.Opened, s.Reconnects, 6+s.Reconnects)
			}
			if s.Messages < 6*3500/50/2 {
				t.Errorf("%d messages: far fewer than 6 streams × 70", s.Messages)
			}
		})
	}
}

// MaxConnectionAge (1s here, grace 1s) would cut every stream on a connection when its
// grace ends: each stream is ended before that, with the reconnect status, and reopened
// on the client's next connection. No max age of their own: the connection's bounds them.
func TestStreamsOutliveMaxConnectionAge(t *testing.T) {
	c, _ := threeBackends(t, func(cfg *serverkit.Config) {
		cfg.MaxConnectionAge, cfg.MaxConnectionAgeGrace = time.Second, time.Second
	})
	s, err := streamRun(t, "-target", c.target, "-stream", "bidi", "-streams", "6", "-interval", "50ms",
		"-duration", "4s", "-max-lost", "0", "-max-dup", "0", "-max-gap", "2s")
	if err != nil {
		t.Fatalf("greeter: %v (assertions %+v)", err, s.Assertions)
	}
	onlyReconnects(t, s, "connection max age reached, reconnect")
	if s.Reconnects < 6 {
		t.Fatalf("%d reconnects of 6 streams in 4s on connections living 1.5s", s.Reconnects)
	}
}

// Round robin balances streams per stream: 30 streams opened at once over 3 servers land
// 10 ± 1 on each (with -warmup, so every connection is up when they open).
func TestStreamsSpreadPerStream(t *testing.T) {
	c, _ := threeBackends(t, nil)
	s, err := streamRun(t, "-target", c.target, "-stream", "server", "-streams", "30", "-duration", "1500ms",
		"-warmup", "5s", "-expect-backends", "3", "-max-skew", "0.1", "-max-reconnects", "0")
	if err != nil {
		t.Fatalf("greeter: %v (assertions %+v)", err, s.Assertions)
	}
	got := streamsPerPod(s)
	for _, pod := range []string{"hello-1", "hello-2", "hello-3"} {
		if got[pod] < 9 || got[pod] > 11 {
			t.Errorf("%s: %d streams of 30, want 10 ± 1: %v", pod, got[pod], got)
		}
	}
}

// A server drains (what SIGTERM does) under 9 streams: its streams are ended when
// GracefulStop begins, with the reconnect status, and reopen on the other two servers;
// nothing is lost or repeated, nothing is cut by Stop, and the drain does not wait for
// its shutdown timeout.
func TestStreamsSurviveDrain(t *testing.T) {
	for _, kind := range []string{"server", "bidi"} {
		t.Run(kind, func(t *testing.T) {
			c, bs := threeBackends(t, func(cfg *serverkit.Config) {
				cfg.DrainDelay, cfg.ShutdownTimeout = 300*time.Millisecond, 10*time.Second
			})
			type result struct {
				s   report.StreamSummary
				err error
			}
			res := make(chan result, 1)
			go func() {
				out, err := runGreeterQuiet(c.target, "-stream", kind, "-streams", "9", "-interval", "50ms", "-duration", "4s",
					"-warmup", "5s", "-expect-backends", "3", "-max-lost", "0", "-max-dup", "0", "-max-gap", "2s", "-json", "-quiet")
				var s report.StreamSummary
				if jerr := json.Unmarshal([]byte(out), &s); jerr != nil && err == nil {
					err = jerr
				}
				res <- result{s, err}
			}()
			time.Sleep(1500 * time.Millisecond)
			// Kubernetes removes a terminating pod from DNS and sends SIGTERM at about the same time.
			if err := c.dns.Set(c.name, threeIPs[1:]...); err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			stopped := make(chan error, 1)
			go func() { stopped <- bs[0].Stop() }()
			select {
			case err := <-stopped:
				if err != nil {
					t.Fatalf("drain: %v", err)
				}
				if d := time.Since(t0); d > 5*time.Second {
					t.Fatalf("drain took %s: streams held GracefulStop", d)
				}
				t.Logf("hello-1 drained in %s", time.Since(t0).Round(time.Millisecond))
			case <-time.After(8 * time.Second):
				t.Fatal("hello-1 did not finish its drain in 8s")
			}
			r := <-res
			t.Logf("%s: %d messages, %d opened, %d reconnects, lost %d, dup %d, ends %+v, gap %+v, pods %+v",
				kind, r.s.Messages, r.s.Opened, r.s.Reconnects, r.s.Lost, r.s.Duplicated, r.s.Ends, r.s.LongestGap, streamsPerPod(r.s))
			if r.err != nil {
				t.Fatalf("greeter: %v (assertions %+v)", r.err, r.s.Assertions)
			}
			onlyReconnects(t, r.s, "server is shutting down, reconnect")
			got := streamsPerPod(r.s)
			if r.s.Reconnects != got["hello-1"] || r.s.Reconnects < 1 {
				t.Errorf("%d reconnects, want one per stream hello-1 had (%d)", r.s.Reconnects, got["hello-1"])
			}
			if got["hello-2"]+got["hello-3"] != 9-got["hello-1"]+r.s.Reconnects {
				t.Errorf("reopened streams did not all land on hello-2 and hello-3: %v", got)
			}
		})
	}
}

// runGreeterQuiet is runGreeter for a goroutine other than the test's (no t.Fatal).
func runGreeterQuiet(target string, args ...string) (string, error) {
	return runGreeterArgs(append([]string{"-target", target}, args...))
}

// forgetful is a Hello server that ignores resume_from: every stream starts again at 1.
type forgetful struct{ *hello.Server }

func (f forgetful) StreamHellos(req *pb.StreamHellosRequest, st grpc.ServerStreamingServer[pb.StreamHellosResponse]) error {
	req.ResumeFrom = 0
	return f.Server.StreamHellos(req, st)
}

// Resume: reopened streams continue the numbering (the max-age test above has 0 lost
// and 0 duplicated over dozens of reopens). The negative control: a server that ignores
// resume_from repeats messages after every reopen, the greeter counts them, and
// -max-dup 0 fails with exit 3.
func TestStreamResumeIsChecked(t *testing.T) {
	ip := "127.0.0.49"
	cfg := testConfig(t, ip, freePortOn(t, ip))
	cfg.StreamMaxAge = 500 * time.Millisecond
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	name := pb.Hello_ServiceDesc.ServiceName
	srv, err := loopfleet.Serve(cfg, log, serverkit.Service{Name: name, Register: func(r grpc.ServiceRegistrar) {
		pb.RegisterHelloServer(r, forgetful{hello.New(identity.Identity{Pod: "forgetful"}, nil)})
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })

	s, err := streamRun(t, "-target", srv.Addr().String(), "-stream", "server", "-streams", "2", "-interval", "50ms",
		"-duration", "1800ms", "-max-dup", "0")
	if exitcode.Of(err) != exitcode.CheckFailed || s.Duplicated == 0 || s.Reconnects < 2 {
		t.Fatalf("a server ignoring resume_from: err %v, %d duplicated over %d reconnects, want exit 3 and duplicates", err, s.Duplicated, s.Reconnects)
	}
}

// Keepalive pairing: a client pinging every 10s (grpc-go's floor) against a server that
// allows pings every minute gets GOAWAY too_many_pings on its fourth ping, its stream
// ends, and the greeter's hint names the fix; against the kit's default enforcement
// (10s) the same client runs clean. 40s each, in parallel.
func TestKeepaliveTooManyPings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ip      string
		minTime time.Duration
		goaway  bool
	}{
		{"server allows a ping a minute", "127.0.0.51", time.Minute, true},
		{"kit default 10s", "127.0.0.52", keepalivepolicy.MinTime, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFleet(t, tc.ip)
			startBackend(t, f, tc.ip, "pinged", func(c *serverkit.Config) { c.KeepaliveMinTime = tc.minTime })
			c := newCluster(t, f, "ping.kit.test", tc.ip)
			// One message a minute: the connection is silent, so the client's keepalive pings.
			s, err := streamRun(t, "-target", c.target, "-stream", "server", "-interval", "1m", "-duration", "40s", "-keepalive", "10s")
			if err != nil {
				t.Fatalf("greeter: %v", err)
			}
			var pings *report.ErrorCount
			for i, e := range s.Ends {
				if strings.Contains(e.Example, "too_many_pings") {
					pings = &s.Ends[i]
				}
			}
			if !tc.goaway {
				if s.Reconnects != 0 {
					t.Fatalf("client keepalive 10s vs server min 10s: %d streams ended: %+v", s.Reconnects, s.Ends)
				}
				return
			}
			if pings == nil || pings.Code != codes.Unavailable {
				t.Fatalf("no stream ended with GOAWAY too_many_pings in 40s: %+v", s.Ends)
			}
			if !strings.Contains(pings.Hint, "Raise -keepalive to at least the server's keepalive-min-time (10s") {
				t.Fatalf("hint %q does not name the fix", pings.Hint)
			}
			t.Logf("ended with %s %q; hint: %s", pings.Code, pings.Example, pings.Hint)
		})
	}
}

// runGreeterArgs runs the greeter command on args, for goroutines that cannot t.Fatal.
func runGreeterArgs(args []string) (string, error) {
	cfg, err := greeter.ParseFlags(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	err = greeter.Run(context.Background(), cfg, &out, io.Discard)
	return out.String(), err
}

// SIGTERM to a real server process under streams, with the manifests' settings
// (STREAM_MAX_AGE and MAX_CONNECTION_AGE at their defaults): its streams reopen on the
// other processes with the reconnect status, nothing is lost, and it exits 0.
func TestSIGTERMUnderStreams(t *testing.T) {
	bin := buildBinary(t, "hello", "./services/hello")
	ips := []string{"127.0.0.34", "127.0.0.35", "127.0.0.39"}
	f := newFleet(t, ips...) // the processes are the pods; the fleet gives the port and the DNS
	port := f.Port()
	procs := make([]*exec.Cmd, len(ips))
	for i, ip := range ips {
		cmd := exec.Command(bin)
		cmd.Env = []string{
			"LISTEN_HOST=" + ip, "PORT=" + itoa(port), "HTTP_PORT=-1",
			"POD_NAME=proc-" + itoa(i+1), "DRAIN_DELAY=300ms", "LOG_FORMAT=text", "LOG_LEVEL=warn",
		}
		cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[i] = cmd
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	for _, ip := range ips {
		waitListening(t, ip+":"+itoa(port))
	}
	c := newCluster(t, f, "sigterm-streams.kit.test", ips...)
	type result struct {
		s   report.StreamSummary
		err error
	}
	res := make(chan result, 1)
	go func() {
		out, err := runGreeterQuiet(c.target, "-stream", "server", "-streams", "9", "-interval", "50ms", "-duration", "4s",
			"-warmup", "5s", "-expect-backends", "3", "-max-lost", "0", "-max-dup", "0", "-max-gap", "2s", "-json", "-quiet")
		var s report.StreamSummary
		if jerr := json.Unmarshal([]byte(out), &s); jerr != nil && err == nil {
			err = jerr
		}
		res <- result{s, err}
	}()
	time.Sleep(1500 * time.Millisecond)
	if err := c.dns.Set(c.name, ips[1:]...); err != nil {
		t.Fatal(err)
	}
	if err := procs[0].Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- procs[0].Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("proc-1 exit after SIGTERM: %v, want status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("proc-1 did not exit within 10s of SIGTERM")
	}
	r := <-res
	t.Logf("%d messages, %d opened, %d reconnects, lost %d, dup %d, ends %+v, gap %+v, pods %+v",
		r.s.Messages, r.s.Opened, r.s.Reconnects, r.s.Lost, r.s.Duplicated, r.s.Ends, r.s.LongestGap, streamsPerPod(r.s))
	if r.err != nil {
		t.Fatalf("greeter: %v (assertions %+v)", r.err, r.s.Assertions)
	}
	onlyReconnects(t, r.s, "server is shutting down, reconnect")
	if got := streamsPerPod(r.s); r.s.Reconnects != got["proc-1"] || got["proc-1"] == 0 {
		t.Errorf("%d reconnects, want one per stream proc-1 had: %v", r.s.Reconnects, got)
	}
}
