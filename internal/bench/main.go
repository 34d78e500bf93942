// Command bench compares our Hello server (full middleware: metrics, logging, recovery,
// health, reflection, keepalive) with grpc-go's own examples/helloworld/greeter_server,
// built from the same grpc-go version, under the same load from the greeter's load
// generator, in the same run, with its ORCA load reports on (the default) and off, so
// their cost shows. Rounds alternate between the servers so drift on a shared machine
// hits all of them. Then it measures the client policies with one of three servers 10×
// slower (policies.go). Run with `make bench`.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	examplepb "google.golang.org/grpc/examples/helloworld/helloworld"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/loadgen"
	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

type options struct {
	duration    time.Duration
	rounds      int
	concurrency int
	target      float64
	failUnder   bool
	oursEnv     []string
	servers     bool // run the server comparison
	policy      bool // run the one-slow-pod figures
	policies    policyOptions

	instructions bool // count instructions per call with callgrind
	instrWarmup  int
	instrProcs   int
	instrCalls   int
	instrRuns    int
	allocs       bool // allocations per call from BenchmarkHotPath
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of each measured round")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per server (alternating); 0 skips the timed rounds (instruction and allocation counts only)")
	flag.IntVar(&o.concurrency, "c", 16, "concurrent callers")
	flag.Float64Var(&o.target, "target", 1.0, "throughput ratio (ours, ORCA on / example) the kit aims for")
	flag.BoolVar(&o.failUnder, "fail-under", false, "exit 1 when the ratio is below -target")
	flag.Func("ours-env", "extra KEY=VALUE for our server, repeatable (e.g. STREAM_WORKERS=0, LOG_LEVEL=debug)", func(v string) error {
		if !strings.Contains(v, "=") {
			return fmt.Errorf("want KEY=VALUE, got %q", v)
		}
		o.oursEnv = append(o.oursEnv, v)
		return nil
	})
	_, vgErr := exec.LookPath("valgrind")
	flag.BoolVar(&o.instructions, "instructions", vgErr == nil, "after the timed rounds, count each server's instructions per call under valgrind's callgrind (default: when valgrind is installed)")
	flag.IntVar(&o.instrWarmup, "instructions-warmup", 1000, "instructions: calls before the counter is zeroed")
	flag.IntVar(&o.instrProcs, "instructions-procs", 1, "instructions: GOMAXPROCS of each server under callgrind (see instructions.go: more spins, and the spinning is counted)")
	flag.IntVar(&o.instrCalls, "instructions-calls", 5000, "instructions: calls counted")
	flag.IntVar(&o.instrRuns, "instructions-runs", 1, "instructions: counts per server (the median and the range are printed)")
	flag.BoolVar(&o.allocs, "allocs", true, "after the timed rounds, allocations per call of the example and ours (go test -bench BenchmarkHotPath ./internal/serverkit: a loopback connection, client and server in one process)")
	flag.BoolVar(&o.servers, "servers", true, "compare our server (ORCA on and off) with grpc-go's example server")
	flag.BoolVar(&o.policy, "policies", true, "measure round_robin, weighted_round_robin and least_request with one of 3 servers slow")
	flag.DurationVar(&o.policies.fast, "fast", 2*time.Millisecond, "policies: latency added to every call of every server (their work)")
	flag.DurationVar(&o.policies.slow, "slow", 20*time.Millisecond, "policies: latency of the slow server's calls")
	flag.DurationVar(&o.policies.warmup, "policy-warmup", 3*time.Second, "policies: uncounted load before each measured run (ORCA weights form)")
	flag.DurationVar(&o.policies.duration, "policy-duration", 5*time.Second, "policies: length of each measured run")
	flag.DurationVar(&o.policies.recovery, "recovery", 20*time.Second, "policies: longest wait for the slow server, made fast again, to regain its share under weighted_round_robin")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := error(nil)
	if o.servers {
		err = run(ctx, o, os.Stdout)
	}
	if err == nil && o.policy {
		err = runPolicies(ctx, o, os.Stdout)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// server under test: how to build it, start it, and call it.
type server struct {
	label, pkg string
	args       func(port int) []string
	env        func(port int) []string
	method     string
}

// servers: ours with ORCA on (the default) first, the example server last.
var servers = []server{
	{
		label: "ours: services/hello", pkg: "./services/hello",
		env: func(p int) []string {
			return []string{"LISTEN_HOST=127.0.0.1", "PORT=" + strconv.Itoa(p), "HTTP_PORT=-1", "POD_NAME=bench"}
		},
		method: pb.Hello_SayHello_FullMethodName,
	},
	{
		label: "ours, ORCA=false", pkg: "./services/hello",
		env: func(p int) []string {
			return []string{"LISTEN_HOST=127.0.0.1", "PORT=" + strconv.Itoa(p), "HTTP_PORT=-1", "POD_NAME=bench", "ORCA=false"}
		},
		method: pb.Hello_SayHello_FullMethodName,
	},
	{
		label: "grpc-go examples/helloworld/greeter_server", pkg: "google.golang.org/grpc/examples/helloworld/greeter_server",
		args:   func(p int) []string { return []string{"-port", strconv.Itoa(p)} },
		method: examplepb.Greeter_SayHello_FullMethodName,
	},
}

type round struct {
	perSecond, p50, p99 float64
	cpuPerCall          float64 // server CPU (user+system) per call, µs: robust to a busy machine
	failed              int64
}

func run(ctx context.Context, o options, out io.Writer) error {
	dir, err := os.MkdirTemp("", "bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	results := make([][]round, len(servers))
	conns := make([]*grpc.ClientConn, len(servers))
	pids := make([]int, len(servers))
	built := map[string]string{} // package → binary
	bins := make([]string, len(servers))
	for i, s := range servers {
		bin, ok := built[s.pkg]
		if !ok {
			fmt.Fprintf(out, "building %s\n", s.pkg)
			bin = filepath.Join(dir, strconv.Itoa(i))
			if b, err := exec.CommandContext(ctx, "go", "build", "-o", bin, s.pkg).CombinedOutput(); err != nil {
				return fmt.Errorf("go build %s: %v\n%s", s.pkg, err, b)
			}
			built[s.pkg] = bin
		}
		bins[i] = bin
		port, err := freePort()
		if err != nil {
			return err
		}
		var args, env []string
		if s.args != nil {
			args = s.args(port)
		}
		if s.env != nil {
			env = append(s.env(port), o.oursEnv...)
		}
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = env // stdout/stderr to /dev/null: both servers' logs cost the same write
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", s.label, err)
		}
		defer func() { cmd.Process.Signal(syscall.SIGKILL); cmd.Wait() }()
		pids[i] = cmd.Process.Pid
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := waitListening(ctx, addr, 5*time.Second); err != nil {
			return fmt.Errorf("%s: %w", s.label, err)
		}
		// The same client for both: the greeter's dialer, round_robin, retry policy on.
		// Client-side health checking is off because the example server has no health service.
		cc, err := dialer.Dial(dialer.Options{Target: addr, LB: dialer.RoundRobin, Retry: true,
			Services: []string{catalog.Hello().Name(), examplepb.Greeter_ServiceDesc.ServiceName}})
		if err != nil {
			return err
		}
		defer cc.Close()
		conns[i] = cc
	}

	ratio := 1.0 // ours/example throughput, median of rounds
	if o.rounds > 0 {
		fmt.Fprintf(out, "load: %d concurrent callers, %d rounds of %s per server, alternating, on %d CPUs\n\n",
			o.concurrency, o.rounds, o.duration, runtime.NumCPU())
		for r := range o.rounds {
			for i, s := range servers {
				call := unaryCall(conns[i], s.method)
				if r == 0 { // warm up: connections, buffer pools and caches
					if _, _, err := loadgen.Run(ctx, loadgen.Plan{Duration: time.Second, Concurrency: o.concurrency, Timeout: 5 * time.Second}, call, 0, nil); err != nil {
						return err
					}
				}
				cpu0 := cpuTime(pids[i])
				t, elapsed, err := loadgen.Run(ctx, loadgen.Plan{Duration: o.duration, Concurrency: o.concurrency, Timeout: 5 * time.Second}, call, 0, nil)
				if err != nil {
					return err
				}
				cpu := cpuTime(pids[i]) - cpu0
				if ctx.Err() != nil {
					return ctx.Err()
				}
				sum := t.Summary(elapsed)
				if sum.OK == 0 {
					return fmt.Errorf("%s: every call failed: %+v", s.label, sum.Errors)
				}
				rd := round{perSecond: sum.PerSecond, p50: sum.Latency.P50, p99: sum.Latency.P99, failed: sum.Failed,
					cpuPerCall: float64(cpu.Microseconds()) / float64(sum.Calls)}
				results[i] = append(results[i], rd)
				fmt.Fprintf(out, "round %d  %-45s %9.0f calls/s  p50 %.3f ms  p99 %.3f ms  server CPU %.1f µs/call  failed %d\n",
					r+1, s.label, rd.perSecond, rd.p50, rd.p99, rd.cpuPerCall, rd.failed)
			}
		}

		fmt.Fprintln(out)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVER (median of rounds)\tCALLS/S\tP50 MS\tP99 MS\tSERVER CPU µs/CALL\tFAILED")
		med := make([]round, len(servers))
		for i, s := range servers {
			med[i] = median(results[i])
			fmt.Fprintf(tw, "%s\t%.0f\t%.3f\t%.3f\t%.1f\t%d\n", s.label, med[i].perSecond, med[i].p50, med[i].p99, med[i].cpuPerCall, med[i].failed)
		}
		tw.Flush()
		ours, noORCA, example := med[0], med[1], med[len(med)-1]
		ratio = ours.perSecond / example.perSecond
		verdict := "meets"
		if ratio < o.target {
			verdict = "BELOW"
		}
		fmt.Fprintf(out, "\nthroughput ratio ours/example: %.3f (%s the %.2f target); p50 ratio %.3f, p99 ratio %.3f\n",
			ratio, verdict, o.target, ours.p50/example.p50, ours.p99/example.p99)
		var perRound, cpuRound []string
		for r := range results[0] {
			perRound = append(perRound, fmt.Sprintf("%.3f", results[0][r].perSecond/results[len(results)-1][r].perSecond))
			cpuRound = append(cpuRound, fmt.Sprintf("%.3f", results[0][r].cpuPerCall/results[len(results)-1][r].cpuPerCall))
		}
		fmt.Fprintf(out, "round by round (ours/example, the same round): throughput %s; server CPU per call %s\n", strings.Join(perRound, " "), strings.Join(cpuRound, " "))
		fmt.Fprintf(out, "without ORCA: throughput ratio ours/example %.3f; ORCA on/off %.3f\n",
			noORCA.perSecond/example.perSecond, ours.perSecond/noORCA.perSecond)
		if ours.cpuPerCall > 0 && noORCA.cpuPerCall > 0 {
			fmt.Fprintf(out, "server CPU per call ratio example/ours: %.3f (the same comparison, insensitive to other load on the machine); ORCA costs %+.1f µs per call (%.1f vs %.1f)\n",
				example.cpuPerCall/ours.cpuPerCall, ours.cpuPerCall-noORCA.cpuPerCall, ours.cpuPerCall, noORCA.cpuPerCall)
		}
	}
	if o.instructions {
		fmt.Fprintf(out, "\ninstructions per call (valgrind --tool=callgrind, the server process, %d calls at %d concurrent after %d warm-up, GOMAXPROCS=%d, GODEBUG=asyncpreemptoff=1):\n",
			o.instrCalls, o.concurrency, o.instrWarmup, o.instrProcs)
		instr := make([]float64, len(servers))
		for i, s := range servers {
			var counts []float64
			for range max(o.instrRuns, 1) {
				r, err := countInstructions(ctx, dir, bins[i], s, o, i)
				if err != nil {
					return err
				}
				counts = append(counts, r.perCall)
			}
			slices.Sort(counts)
			instr[i] = counts[len(counts)/2]
			if len(counts) == 1 {
				fmt.Fprintf(out, "  %-45s %8.0f\n", s.label, instr[i])
				continue
			}
			fmt.Fprintf(out, "  %-45s %8.0f  (median of %d, %.0f-%.0f)\n", s.label, instr[i], len(counts), counts[0], counts[len(counts)-1])
		}
		fmt.Fprintf(out, "instructions per call ratio ours/example: %.3f; without ORCA %.3f\n", instr[0]/instr[len(instr)-1], instr[1]/instr[len(instr)-1])
	}
	if o.allocs {
		a, err := allocsPerCall(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\nallocations per call (go test -bench BenchmarkHotPath ./internal/serverkit: loopback, client and server in one process, the client's share the same for both): ours %.0f, ours ORCA=false %.0f, example %.0f; ours - example %+.0f\n",
			a["ours"], a["ours,orca=false"], a["example"], a["ours"]-a["example"])
	}
	if o.failUnder && ratio < o.target {
		return errors.New("throughput ratio below target")
	}
	return nil
}

func unaryCall(cc *grpc.ClientConn, method string) loadgen.CallFunc {
	return func(ctx context.Context) (*pb.Backend, net.Addr, error) {
		// helloworld.Greeter's HelloRequest/HelloReply share field 1 (name, message) with
		// ours, so one message type calls both servers.
		var reply pb.SayHelloResponse
		if err := cc.Invoke(ctx, method, &pb.SayHelloRequest{Name: "bench"}, &reply); err != nil {
			return nil, nil, err
		}
		if reply.GetMessage() == "" {
			return nil, nil, errors.New("empty reply")
		}
		return &pb.Backend{Pod: method}, nil, nil
	}
}

// median by throughput; latencies come from the same round.
func median(rs []round) round {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b round) int { return cmp.Compare(a.perSecond, b.perSecond) })
	return s[len(s)/2]
}

// cpuTime is a process's user+system CPU time from /proc (Linux); 0 elsewhere.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command: state is field 3, utime 14, stime 15.
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok {
		return 0
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clockTicks
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitListening waits until addr accepts a TCP connection: a server it started is up
// (a server under valgrind takes seconds, hence limit).
func waitListening(ctx context.Context, addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not listening after %s", addr, limit)
}
