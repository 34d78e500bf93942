package loopback

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/greeter"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/loadgen"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serverkit"
)

// One of three servers slowed by 20 ms a call (the others answer in well under 2 ms
// even on a busy 2-core machine, so it is at least 10× slower): round robin keeps giving
// it a third of the calls, while weighted_round_robin (from the servers' ORCA reports)
// and least_request (from the calls in flight) move most of them off it. The clients
// come from the greeter's own flags, so the service configs are the ones users get.
func TestPoliciesFollowCapacity(t *testing.T) {
	ips := []string{"127.0.0.46", "127.0.0.47", "127.0.0.48"}
	c, bs := startGroup(t, "capacity.kit.test", "pod", ips, func(c *serverkit.Config) {
		// Load reports on, sampled every 250 ms so weights form in a second.
		c.ORCA, c.ORCAInterval = true, 250*time.Millisecond
	})
	bs[2].setSlow(t, "20ms") // through the real admin endpoint

	for _, tc := range []struct {
		lb       string
		flags    []string
		min, max float64 // bounds on the slow server's share
	}{
		{dialer.RoundRobin, nil, 0.25, 0.42},
		// A short blackout and weight period so the weights act within the warm-up.
		{dialer.WeightedRoundRobin, []string{"-wrr-blackout", "500ms", "-wrr-weight-update", "100ms"}, 0, 0.15},
		// Three samples: with two, each of 3 backends is picked alone 1/9 of the time,
		// too close to the bound (docs/balancing.md).
		{dialer.LeastRequest, []string{"-lr-choices", "3"}, 0, 0.15},
	} {
		t.Run(tc.lb, func(t *testing.T) {
			args := append([]string{"-target", c.target, "-lb", tc.lb}, tc.flags...)
			cfg, err := greeter.ParseFlags(args, func(string) string { return "" }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			cc, err := dialer.Dial(cfg.Dial)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cc.Close() })
			call := helloCall(cc)
			warmUp(t, call, 3)
			plan := loadgen.Plan{Duration: 1500 * time.Millisecond, Concurrency: 8}
			run(t, call, plan) // uncounted: reports flow and weights form
			plan.Duration = 2500 * time.Millisecond
			s := run(t, call, plan)
			if s.Failed != 0 {
				t.Fatalf("%d calls failed: %+v", s.Failed, s.Errors)
			}
			var slow float64
			for _, b := range s.Backends {
				t.Logf("%s: %s %d calls (%.1f%%), p50 %.2f ms, p99 %.2f ms", tc.lb, b.Pod, b.Calls, 100*b.Share, b.Latency.P50, b.Latency.P99)
				if b.Pod == bs[2].ID.Pod {
					slow = b.Share
				}
			}
			t.Logf("%s: %.0f calls/s, p50 %.2f ms, p99 %.2f ms", tc.lb, s.PerSecond, s.Latency.P50, s.Latency.P99)
			if slow < tc.min || slow > tc.max {
				t.Errorf("%s gave the slow server %.1f%% of %d calls, want %.0f%% to %.0f%%", tc.lb, 100*slow, s.OK, 100*tc.min, 100*tc.max)
			}
		})
	}
}

// setSlow sets b's added latency through its real admin HTTP endpoint.
func (b *backend) setSlow(t *testing.T, latency string) {
	t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://%s/admin/slow?latency=%s", b.HTTPAddr(), latency), "", nil)
	if err != nil {
		t.Fatalf("slow %s: %v", b.ID.Pod, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("slow %s to %s: HTTP %d %s", b.ID.Pod, latency, resp.StatusCode, body)
	}
}
