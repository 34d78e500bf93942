package loopback

import (
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/loadgen"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serverkit"
)

var threeIPs = []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}

// threeBackends is hello-1, hello-2 and hello-3 behind hello.kit.test.
func threeBackends(t *testing.T, tweak func(*serverkit.Config)) (*cluster, []*backend) {
	t.Helper()
	return startGroup(t, "hello.kit.test", "hello", threeIPs, tweak)
}

func TestRoundRobinSpreadsExactly(t *testing.T) {
	c, _ := threeBackends(t, nil)
	call := helloCall(c.client(t, dialer.RoundRobin, true))
	warmUp(t, call, 3)

	for _, conc := range []int{1, 6} {
		s := run(t, call, loadgen.Plan{Calls: 300, Concurrency: conc})
		got := counts(s)
		t.Logf("concurrency %d: %v", conc, got)
		if s.Failed != 0 {
			t.Fatalf("concurrency %d: %d calls failed: %+v", conc, s.Failed, s.Errors)
		}
		for _, pod := range []string{"hello-1", "hello-2", "hello-3"} {
			if got[pod] != 100 {
				t.Errorf("concurrency %d: %s served %d calls, want exactly 100 (round robin over 3): %v", conc, pod, got[pod], got)
			}
		}
		if a := report.Check(s, report.Expect{Backends: 3, MaxSkew: 0, MaxErrors: 0}); !report.Passed(a) {
			t.Errorf("greeter assertions fail on an exact spread: %+v", a)
		}
	}
}

// pick_first is gRPC's default: one connection, every call to one pod. This is the
// imbalance the kit exists to fix, asserted on purpose.
func TestPickFirstPinsOneBackend(t *testing.T) {
	c, _ := threeBackends(t, nil)
	call := helloCall(c.client(t, dialer.PickFirst, false))
	s := run(t, call, loadgen.Plan{Calls: 300, Concurrency: 4})
	got := counts(s)
	t.Logf("pick_first: %v", got)
	if len(got) != 1 || s.OK != 300 {
		t.Fatalf("pick_first spread calls over %d backends (%v), want all 300 on one", len(got), got)
	}
}

func TestNotServingBackendGetsNoCalls(t *testing.T) {
	c, bs := threeBackends(t, nil)
	call := helloCall(c.client(t, dialer.RoundRobin, true))
	warmUp(t, call, 3)

	flipped := time.Now()
	bs[1].setHealth(t, "NOT_SERVING")
	// The client watches health over a stream: the flip should land within milliseconds.
	// Poll with small batches until hello-2 is out of rotation, bounded at 1s.
	for {
		s := run(t, call, loadgen.Plan{Calls: 30})
		if counts(s)["hello-2"] == 0 {
			break
		}
		if time.Since(flipped) > time.Second {
			t.Fatalf("hello-2 still served calls 1s after NOT_SERVING")
		}
	}
	t.Logf("out of rotation %s after the flip", time.Since(flipped).Round(time.Millisecond))

	s := run(t, call, loadgen.Plan{Calls: 300, Concurrency: 3})
	got := counts(s)
	if got["hello-2"] != 0 || got["hello-1"] != 150 || got["hello-3"] != 150 || s.Failed != 0 {
		t.Fatalf("with hello-2 NOT_SERVING got %v (%d failed), want hello-1 150, hello-3 150", got, s.Failed)
	}

	bs[1].setHealth(t, "SERVING")
	warmUp(t, call, 3) // back in rotation
	s = run(t, call, loadgen.Plan{Calls: 300})
	if got := counts(s); got["hello-2"] != 100 {
		t.Fatalf("after SERVING again got %v, want 100 each", got)
	}
}

// A new pod behind the same DNS name: clients only re-resolve when a connection closes, so
// MaxConnectionAge is what makes them find it. Without it, the new pod gets nothing.
func TestMaxConnectionAgeFindsNewBackend(t *testing.T) {
	ips := []string{"127.0.0.21", "127.0.0.22", "127.0.0.23"}
	for _, tc := range []struct {
		name    string
		age     time.Duration
		wantNew bool
	}{
		{"max-connection-age 500ms", 500 * time.Millisecond, true},
		{"no max-connection-age", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(t, ips...)
			tweak := func(c *serverkit.Config) {
				c.MaxConnectionAge, c.MaxConnectionAgeGrace = tc.age, 500*time.Millisecond
			}
			startBackend(t, f, ips[0], "old-1", tweak)
			startBackend(t, f, ips[1], "old-2", tweak)
			c := newCluster(t, f, "scale.kit.test", ips[:2]...)
			call := helloCall(c.client(t, dialer.RoundRobin, true))
			warmUp(t, call, 2)

			startBackend(t, f, ips[2], "new-3", tweak)
			if err := c.dns.Set(c.name, ips...); err != nil {
				t.Fatal(err)
			}
			added := time.Now()
			window := 5 * time.Second
			if !tc.wantNew {
				window = 2 * time.Second
			}
			for time.Since(added) < window {
				s := run(t, call, loadgen.Plan{Calls: 20})
				if s.Failed != 0 {
					t.Fatalf("%d calls failed while connections were recycled: %+v", s.Failed, s.Errors)
				}
				if counts(s)["new-3"] > 0 {
					if !tc.wantNew {
						t.Fatalf("new backend got calls without MaxConnectionAge: nothing should have re-resolved")
					}
					t.Logf("new backend served its first call %s after it was added to DNS", time.Since(added).Round(time.Millisecond))
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			if tc.wantNew {
				t.Fatalf("new backend got no call within %s of being added to DNS", window)
			}
			t.Logf("as expected, the new backend got no call in %s: the client never re-resolved", window)
		})
	}
}

// SIGTERM to a real server process under load: it turns NOT_SERVING, drains, and exits
// 0, and the client loses no call (health watch + GOAWAY + retry policy).
func TestSIGTERMUnderLoadLosesNoCall(t *testing.T) {
	bin := buildBinary(t, "hello", "./services/hello")
	ips := []string{"127.0.0.31", "127.0.0.32", "127.0.0.33"}
	f := newFleet(t, ips...) // the processes are the pods; the fleet gives the port and the DNS
	port := f.Port()
	procs := make([]*exec.Cmd, len(ips))
	for i, ip := range ips {
		cmd := exec.Command(bin)
		cmd.Env = []string{
			"LISTEN_HOST=" + ip, "PORT=" + strconv.Itoa(port), "HTTP_PORT=-1",
			"POD_NAME=proc-" + strconv.Itoa(i+1), "DRAIN_DELAY=300ms", "LOG_FORMAT=text",
		}
		cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[i] = cmd
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	c := newCluster(t, f, "drain.kit.test", ips...)
	call := helloCall(c.client(t, dialer.RoundRobin, true))
	warmUp(t, call, 3)

	var exitErr error
	load := runAsync(call, loadgen.Plan{Duration: 3 * time.Second, Concurrency: 4})
	time.Sleep(time.Second)
	// Kubernetes removes a terminating pod from DNS and sends SIGTERM at about the same time.
	if err := c.dns.Set(c.name, ips[1:]...); err != nil {
		t.Fatal(err)
	}
	if err := procs[0].Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { exitErr = procs[0].Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("server did not exit within 10s of SIGTERM")
	}
	r := <-load
	if r.err != nil {
		t.Fatal(r.err)
	}
	summary := r.s
	if exitErr != nil {
		t.Errorf("server exit after SIGTERM: %v, want status 0", exitErr)
	}
	got := counts(summary)
	t.Logf("%d calls in 3s under SIGTERM of proc-1: %v, failed %d", summary.Calls, got, summary.Failed)
	if summary.Failed != 0 {
		t.Fatalf("%d calls failed during the drain: %+v", summary.Failed, summary.Errors)
	}
	if summary.Calls < 1000 || got["proc-1"] == 0 || got["proc-2"] == 0 {
		t.Fatalf("load too thin to prove anything: %d calls, %v", summary.Calls, got)
	}
}
