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
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/greeter"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/loadgen"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/localdns"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serverkit"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serving"
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
}

func run(ctx context.Context, calls int, serve bool, out io.Writer) error {
	groups := []group{
		{catalog.Hello(), "hello-headless.demo.test", []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}},
		{catalog.Goodbye(), "goodbye-headless.demo.test", []string{"127.0.0.5", "127.0.0.6", "127.0.0.7"}},
	}
	dns, err := localdns.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer dns.Close()
	var all []string
	for _, g := range groups {
		all = append(all, g.ips...)
	}
	if err := localdns.CheckLoopback(all...); err != nil {
		return err
	}
	port, err := localdns.FreePortOn(all...)
	if err != nil {
		return err
	}

	srvCtx, stopServers := context.WithCancel(context.Background())
	defer stopServers()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	fmt.Fprintf(out, "Local DNS server on %s (it plays the cluster DNS):\n", dns.Addr())
	for _, g := range groups {
		if err := dns.Set(g.dnsName, g.ips...); err != nil {
			return err
		}
		for i, ip := range g.ips {
			pod := fmt.Sprintf("%s-%d", g.service.Key, i+1)
			if err := startServer(srvCtx, log, g.service, ip, port, pod); err != nil {
				return err
			}
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
		target := fmt.Sprintf("dns://%s/%s:%d", dns.Addr(), sp.g.dnsName, port)
		fmt.Fprintf(out, "\n$ greeter -target %s -service %s -lb %s -n %d\n", target, sp.g.service.Key, sp.lb, calls)
		s, err := callMany(ctx, target, sp.g.service, sp.lb, calls)
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
`, dns.Addr(), groups[0].dnsName, port, groups[1].dnsName)
	<-ctx.Done()
	return nil
}

func startServer(ctx context.Context, log *slog.Logger, service catalog.Service, ip string, port int, pod string) error {
	cfg, err := serverkit.Load("demo", []string{"-listen-host=" + ip, "-port=" + strconv.Itoa(port), "-http-port=-1", "-drain-delay=0s"},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		return err
	}
	id := identity.Identity{Pod: pod, PodIP: ip, Version: "v1", Node: "laptop"}
	srv, err := serverkit.New(cfg, log, serving.Server(service, id, nil))
	if err != nil {
		return fmt.Errorf("start %s on %s:%d: %w", pod, ip, port, err)
	}
	go srv.Serve(ctx) //nolint:errcheck // the demo ends with the process
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
	deadline := time.Now().Add(3 * time.Second)
	seen := map[string]bool{}
	for time.Now().Before(deadline) && (len(seen) < 3 && lb == dialer.RoundRobin || len(seen) == 0) {
		if b, err := call(ctx); err == nil {
			seen[b.GetPod()] = true
		}
	}
	tally, elapsed, err := loadgen.Run(ctx, loadgen.Plan{Calls: n, Concurrency: 1, Timeout: 5 * time.Second}, call, 0, nil)
	if err != nil {
		return report.Summary{}, err
	}
	return tally.Summary(elapsed), nil
}
