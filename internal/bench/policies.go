package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/greeter"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/loadgen"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/loopfleet"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serverkit"
)

// The performance goal: with one of 3 pods 10× slower, the best policy keeps p99
// within 1.5× of the all-fast p99 and throughput within 10 % of all-fast, while
// round_robin's p99 is at least the slow pod's latency.
const (
	goalP99Ratio        = 1.5
	goalThroughputRatio = 0.90
)

// policyOptions: the "one slow pod" figures.
type policyOptions struct {
	fast, slow time.Duration // added latency per call: every pod's work, the slow pod's
	warmup     time.Duration // uncounted load before each measure (weights form)
	duration   time.Duration // each measured run
	recovery   time.Duration // longest wait for the slow pod, made fast again, to regain its share
}

// scenario is one measured run: a client policy (greeter flags) and whether one pod is slow.
type scenario struct {
	label   string
	oneSlow bool
	flags   []string // greeter flags after -target
}

type policyResult struct {
	scenario
	s         report.Summary
	slowShare float64
}

// runPolicies starts 3 Hello servers on loopback addresses behind a local DNS name, as 3
// pods behind a headless Service (package loopfleet), and measures each scenario with the
// greeter's own flags, dialer and load generator.
func runPolicies(ctx context.Context, o options, out io.Writer) error {
	p := o.policies
	ips := []string{"127.0.0.8", "127.0.0.9", "127.0.0.10"}
	fleet, err := loopfleet.New(ips...)
	if err != nil {
		return err
	}
	defer fleet.Close()
	const name = "hello-headless.bench.test"
	// ORCA on (the default), the admin endpoint on (the bench slows a pod through it) and
	// latency added to every call.
	target, servers, err := fleet.Group(name, "pod", ips, loopfleet.Pod{Service: catalog.Hello(),
		Args: []string{"-http-port=0", "-drain-delay=0s", "-admin", "-slow-latency=" + p.fast.String()}})
	if err != nil {
		return err
	}
	var admins []string // each server's HTTP address
	for _, s := range servers {
		admins = append(admins, s.HTTPAddr().String())
	}
	slowPod, slowAdmin := "pod-3", admins[2]

	wrrFlags := []string{"-lb", dialer.WeightedRoundRobin, "-wrr-blackout", "1s"}
	scenarios := []scenario{
		{"all fast, round_robin", false, []string{"-lb", dialer.RoundRobin}},
		{"one slow, round_robin", true, []string{"-lb", dialer.RoundRobin}},
		{"one slow, weighted_round_robin", true, wrrFlags},
		{"one slow, least_request (2 choices)", true, []string{"-lb", dialer.LeastRequest}},
		{"one slow, least_request (3 choices)", true, []string{"-lb", dialer.LeastRequest, "-lr-choices", "3"}},
	}
	fmt.Fprintf(out, "\nOne slow pod of 3: every call waits %s, the slow pod's %s (%.0f×); %d concurrent callers, %s warm-up and %s measured per run;\n"+
		"3 in-process servers (ORCA on, sampled every %s) on %s behind %s\n\n",
		p.fast, p.slow, float64(p.slow)/float64(p.fast), o.concurrency, p.warmup, p.duration, serverkit.DefaultORCAInterval, strings.Join(ips, ", "), name)
	var results []policyResult
	for _, sc := range scenarios {
		lat := p.fast
		if sc.oneSlow {
			lat = p.slow
		}
		if err := setSlow(slowAdmin, lat); err != nil {
			return err
		}
		cc, call, err := greeterClient(target, sc.flags)
		if err != nil {
			return err
		}
		plan := loadgen.Plan{Duration: p.warmup, Concurrency: o.concurrency, Timeout: 5 * time.Second}
		if _, _, err := loadgen.Run(ctx, plan, call, 0, nil); err != nil {
			cc.Close()
			return err
		}
		plan.Duration = p.duration
		t, elapsed, err := loadgen.Run(ctx, plan, call, 0, nil)
		if err != nil {
			cc.Close()
			return err
		}
		r := policyResult{scenario: sc, s: t.Summary(elapsed)}
		r.slowShare = share(r.s, slowPod)
		results = append(results, r)
		fmt.Fprintf(out, "%-38s %7.0f calls/s  p50 %6.3f ms  p99 %6.3f ms  slow pod's share %5.1f%%  failed %d   (greeter %s)\n",
			sc.label, r.s.PerSecond, r.s.Latency.P50, r.s.Latency.P99, 100*r.slowShare, r.s.Failed, strings.Join(sc.flags, " "))
		if sc.label == "one slow, weighted_round_robin" {
			if err := recovery(ctx, o, call, slowAdmin, slowPod, out); err != nil {
				cc.Close()
				return err
			}
		}
		cc.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	printPolicyTable(out, p, results)
	return nil
}

// recovery makes the slow pod fast again under weighted_round_robin and measures how long
// until it serves at least a quarter of the calls of a 250 ms window again.
func recovery(ctx context.Context, o options, call loadgen.CallFunc, admin, pod string, out io.Writer) error {
	if err := setSlow(admin, o.policies.fast); err != nil {
		return err
	}
	start := time.Now()
	for time.Since(start) < o.policies.recovery {
		t, elapsed, err := loadgen.Run(ctx, loadgen.Plan{Duration: 250 * time.Millisecond, Concurrency: o.concurrency, Timeout: 5 * time.Second}, call, 0, nil)
		if err != nil {
			return err
		}
		if sh := share(t.Summary(elapsed), pod); sh >= 0.25 {
			fmt.Fprintf(out, "%-38s the slow pod, fast again, served %.0f%% of a 250 ms window %.2f s after its latency was removed\n", "", 100*sh, time.Since(start).Seconds())
			return nil
		}
	}
	fmt.Fprintf(out, "%-38s the slow pod, fast again, did not regain a quarter of the calls within %s\n", "", o.policies.recovery)
	return nil
}

func printPolicyTable(out io.Writer, p policyOptions, rs []policyResult) {
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tCALLS/S\tP50 MS\tP99 MS\tSLOW POD'S SHARE\tP99 / ALL-FAST\tCALLS/S / ALL-FAST")
	base := rs[0].s
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%.0f\t%.3f\t%.3f\t%.1f%%\t%.2f\t%.2f\n", r.label, r.s.PerSecond, r.s.Latency.P50, r.s.Latency.P99,
			100*r.slowShare, r.s.Latency.P99/base.Latency.P99, r.s.PerSecond/base.PerSecond)
	}
	tw.Flush()
	best := rs[1]
	for _, r := range rs[2:] {
		if r.s.Latency.P99 < best.s.Latency.P99 {
			best = r
		}
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	p99Ratio, tputRatio := best.s.Latency.P99/base.Latency.P99, best.s.PerSecond/base.PerSecond
	fmt.Fprintf(out, "\nbest policy by p99: %s; p99 %.2f× all-fast (goal ≤ %.1f×: %s), throughput %.2f× all-fast (goal ≥ %.2f×: %s)\n",
		best.label, p99Ratio, goalP99Ratio, verdict(p99Ratio <= goalP99Ratio), tputRatio, goalThroughputRatio, verdict(tputRatio >= goalThroughputRatio))
	rr := rs[1].s.Latency.P99
	fmt.Fprintf(out, "round_robin p99 %.3f ms against the slow pod's %s (goal: at least that: %s)\n",
		rr, p.slow, verdict(rr >= float64(p.slow)/float64(time.Millisecond)))
}

// setSlow sets a server's added latency through its admin endpoint.
func setSlow(admin string, d time.Duration) error {
	resp, err := http.Post("http://"+admin+"/admin/slow?latency="+d.String(), "", nil)
	if err != nil {
		return fmt.Errorf("POST /admin/slow: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /admin/slow?latency=%s: HTTP %d %s", d, resp.StatusCode, body)
	}
	return nil
}

// greeterClient builds the client the greeter would with these flags.
func greeterClient(target string, flags []string) (*grpc.ClientConn, loadgen.CallFunc, error) {
	cfg, err := greeter.ParseFlags(append([]string{"-target", target}, flags...), func(string) string { return "" }, io.Discard)
	if err != nil {
		return nil, nil, err
	}
	cc, err := dialer.Dial(cfg.Dial)
	if err != nil {
		return nil, nil, err
	}
	return cc, greeter.NewCall(cc, cfg.Method, cfg.Name, nil, nil), nil
}

func share(s report.Summary, pod string) float64 {
	for _, b := range s.Backends {
		if b.Pod == pod {
			return b.Share
		}
	}
	return 0
}
