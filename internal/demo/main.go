// Command demo shows, in seconds and with no cluster, what this kit is about: three Hello
// and three Goodbye servers on loopback addresses behind local DNS names (as pods behind
// headless Services), and the greeter calling them with round_robin and with gRPC's
// default pick_first, side by side. Run with `make demo`; -serve keeps the servers up so
// you can try greeter and grpcurl yourself.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/greeter"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/loadgen"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/loopfleet"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

func main() {
	calls := flag.Int("n", 30, "calls per run")
	serve := flag.Bool("serve", false, "keep the servers running after the demo (Ctrl-C to stop)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, *calls, *serve, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

// group is one service's three servers behind one DNS name, as pods behind a headless Service.
type group struct {
	service catalog.Service
	dnsName string
	ips     []string
	target  string // dns://DNS/dnsName:port, once started
}

func run(ctx context.Context, calls int, serve bool, out io.Writer) error {
	groups := []group{
		{service: catalog.Hello(), dnsName: "hello-headless.demo.test", ips: []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}},
		{service: catalog.Goodbye(), dnsName: "goodbye-headless.demo.test", ips: []string{"127.0.0.5", "127.0.0.6", "127.0.0.7"}},
	}
	var all []string
	for _, g := range groups {
		all = append(all, g.ips...)
	}
	fleet, err := loopfleet.New(all...)
	if err != nil {
		return err
	}
	defer fleet.Close()
	port := fleet.Port()
	fmt.Fprintf(out, "Local DNS server on %s (it plays the cluster DNS):\n", fleet.DNS().Addr())
	for i, g := range groups {
		pod := loopfleet.Pod{Service: g.service, ID: identity.Identity{Version: "v1", Node: "laptop"},
			Args: []string{"-http-port=-1", "-drain-delay=0s"}}
		if groups[i].target, _, err = fleet.Group(g.dnsName, "", g.ips, pod); err != nil {
			return err
		}
		fmt.Fprintf(out, "  %-28s → %s  (%s servers on port %d)\n", g.dnsName, strings.Join(g.ips, ", "), g.service.Key, port)
	}

	type runSpec struct {
		lb string
		g  group
	}
	specs := []runSpec{{dialer.RoundRobin, groups[0]}, {dialer.PickFirst, groups[0]}, {dialer.RoundRobin, groups[1]}}
	title := func(sp runSpec) string { return sp.g.service.Key + ", " + sp.lb }
	results := map[string]map[string]int64{}
	var pods []string
	for _, sp := range specs {
		fmt.Fprintf(out, "\n$ greeter -target %s -service %s -lb %s -n %d\n", sp.g.target, sp.g.service.Key, sp.lb, calls)
		s, err := callMany(ctx, sp.g.target, sp.g.service, sp.lb, calls)
		if err != nil {
			return err
		}
		results[title(sp)] = map[string]int64{}
		for _, b := range s.Backends {
			results[title(sp)][b.Pod] = b.Calls
		}
		fmt.Fprintf(out, "  %d ok, %d failed, served by %d of 3 servers\n", s.OK, s.Failed, len(s.Backends))
	}
	for _, g := range groups {
		for i := range g.ips {
			pods = append(pods, fmt.Sprintf("%s-%d", g.service.Key, i+1))
		}
	}

	fmt.Fprintln(out, "\nCalls per server, side by side:")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "SERVER\t")
	for _, sp := range specs {
		fmt.Fprintf(tw, "%s\t", title(sp))
	}
	fmt.Fprintln(tw)
	for _, pod := range pods {
		fmt.Fprintf(tw, "%s\t", pod)
		for _, sp := range specs {
			fmt.Fprintf(tw, "%d\t", results[title(sp)][pod])
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintf(out, `
round_robin spreads calls evenly over every address the name resolves to; pick_first
(gRPC's default) sends them all down one connection to one server. In Kubernetes the
name is a headless Service and the servers are pods: see README.md.
`)
	if !serve {
		return nil
	}
	fmt.Fprintf(out, `
Servers stay up until Ctrl-C. Try:
  go run ./client/greeter -target dns://%[1]s/%[2]s:%[3]d -n 300 -expect-backends 3 -max-skew 0
  go run ./client/greeter -target dns://%[1]s/%[4]s:%[3]d -service goodbye
  go tool -modfile=tools/go.mod grpcurl -plaintext -d '{"name":"Ryo"}' 127.0.0.2:%[3]d helloworld.Hello.SayHello
`, fleet.DNS().Addr(), groups[0].dnsName, port, groups[1].dnsName)
	<-ctx.Done()
	return nil
}

func callMany(ctx context.Context, target string, service catalog.Service, lb string, n int) (report.Summary, error) {
	cc, err := dialer.Dial(dialer.Options{Target: target, LB: lb, Retry: true, HealthCheck: lb == dialer.RoundRobin,
		HealthService: service.Name(), Services: []string{service.Name()}})
	if err != nil {
		return report.Summary{}, err
	}
	defer cc.Close()
	call := greeter.NewCall(cc, service.Methods[0], "demo", nil, nil)
	// Wait until every connection is up so round robin rotates over all three.
	cc.Connect()
	want := 1
	if lb == dialer.RoundRobin {
		want = 3
	}
	loadgen.WarmUp(ctx, call, want, 3*time.Second, time.Second)
	tally, elapsed, err := loadgen.Run(ctx, loadgen.Plan{Calls: n, Concurrency: 1, Timeout: 5 * time.Second}, call, 0, nil)
	if err != nil {
		return report.Summary{}, err
	}
	return tally.Summary(elapsed), nil
}
