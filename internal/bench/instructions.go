package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/loadgen"
	examplepb "google.golang.org/grpc/examples/helloworld/helloworld"
)

// Instruction counts per call: each server binary runs under valgrind's callgrind, which
// counts the instructions it executes, whatever else the machine is doing. The counter
// is zeroed after a warm-up, the same load as the timed rounds (the same client, the same
// concurrency) makes a fixed number of calls, and the count is dumped: instructions of
// the server process (every thread: the calls, the transport, the GC, the runtime's
// background work) divided by the calls. Other work on the machine does not change it;
// with one P per server (below) repeated counts of one binary agree to within about 1 %
// (docs/results/bench.md); -instructions-runs prints their median and range. It shows changes of the server's code that
// timings on a busy machine cannot. ORCA's share is larger here than in the timed rounds:
// a call carries a load report at most once a millisecond (trailerGap), and under
// callgrind, about 50 times slower, nearly every call is a millisecond after the last.
//
// GODEBUG=asyncpreemptoff=1 for every server: callgrind stops on the signals the Go
// runtime sends to preempt goroutines (valgrind 3.19, "Assertion 'sigNum ==
// vgCallgrind_current_state.sig' failed").
//
// GOMAXPROCS (-instructions-procs, 1 by default) for every server under callgrind:
// valgrind runs one thread at a time, so with two Ps an idle one's thread spins looking for
// work that the descheduled thread holds, and its spinning is counted: one binary's counts
// then varied several-fold from run to run. With one P nothing spins; the count is the
// work of a call.

type instrResult struct {
	perCall float64
	calls   int
}

// countInstructions runs bin under callgrind and returns its instructions per call.
func countInstructions(ctx context.Context, dir, bin string, s server, o options, idx int) (instrResult, error) {
	port, err := freePort()
	if err != nil {
		return instrResult{}, err
	}
	var args, env []string
	if s.args != nil {
		args = s.args(port)
	}
	if s.env != nil {
		env = append(s.env(port), o.oursEnv...)
	}
	out := filepath.Join(dir, fmt.Sprintf("callgrind.%d", idx))
	vargs := append([]string{"--tool=callgrind", "--callgrind-out-file=" + out + ".%p", bin}, args...)
	cmd := exec.CommandContext(ctx, "valgrind", vargs...)
	cmd.Env = append(env, "GODEBUG=asyncpreemptoff=1", "GOMAXPROCS="+strconv.Itoa(o.instrProcs))
	var vlog strings.Builder
	cmd.Stderr = &vlog
	if err := cmd.Start(); err != nil {
		return instrResult{}, fmt.Errorf("valgrind %s: %w", s.label, err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGKILL); cmd.Wait() }()
	pid := cmd.Process.Pid
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := waitListening(ctx, addr, 60*time.Second); err != nil {
		return instrResult{}, fmt.Errorf("%s under valgrind: %w\n%s", s.label, err, vlog.String())
	}
	cc, err := dialer.Dial(dialer.Options{Target: addr, LB: dialer.RoundRobin, Retry: true,
		Services: []string{catalog.Hello().Name(), examplepb.Greeter_ServiceDesc.ServiceName}})
	if err != nil {
		return instrResult{}, err
	}
	defer cc.Close()
	fixed := func(n int) error {
		t, _, err := loadgen.Run(ctx, loadgen.Plan{Calls: n, Concurrency: o.concurrency, Timeout: 30 * time.Second}, unaryCall(cc, s.method), 0, nil)
		if err != nil {
			return err
		}
		if sum := t.Summary(time.Second); sum.Failed > 0 {
			return fmt.Errorf("%s under valgrind: %d calls failed: %+v", s.label, sum.Failed, sum.Errors)
		}
		return nil
	}
	if err := fixed(o.instrWarmup); err != nil {
		return instrResult{}, err
	}
	if err := callgrindControl(ctx, "-z", pid); err != nil {
		return instrResult{}, err
	}
	if err := fixed(o.instrCalls); err != nil {
		return instrResult{}, err
	}
	if err := callgrindControl(ctx, "-d", pid); err != nil {
		return instrResult{}, err
	}
	total, err := readTotals(out, pid)
	if err != nil {
		return instrResult{}, err
	}
	return instrResult{perCall: float64(total) / float64(o.instrCalls), calls: o.instrCalls}, nil
}

// callgrindControl sends a command (-z zero, -d dump) to a running callgrind and waits
// for it to be done.
func callgrindControl(ctx context.Context, flag string, pid int) error {
	b, err := exec.CommandContext(ctx, "callgrind_control", flag, strconv.Itoa(pid)).CombinedOutput()
	if err != nil || !strings.Contains(string(b), "OK") {
		return fmt.Errorf("callgrind_control %s %d: %v\n%s", flag, pid, err, b)
	}
	return nil
}

var totalsLine = regexp.MustCompile(`^(?:totals|summary): (\d+)`)

// readTotals reads the instruction total of the dump callgrind_control -d wrote: the
// file out.PID.N with the highest N (the first dump is .1).
func readTotals(out string, pid int) (int64, error) {
	var last string
	for n := 1; ; n++ {
		f := fmt.Sprintf("%s.%d.%d", out, pid, n)
		if _, err := os.Stat(f); err != nil {
			break
		}
		last = f
	}
	if last == "" {
		return 0, fmt.Errorf("no callgrind dump %s.%d.*", out, pid)
	}
	f, err := os.Open(last)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseTotals(f)
}

func parseTotals(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m := totalsLine.FindStringSubmatch(sc.Text()); m != nil {
			return strconv.ParseInt(m[1], 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no totals line in the callgrind dump")
}

// allocsPerCall runs the in-process hot-path benchmark (internal/serverkit's
// BenchmarkHotPath: a real loopback connection, client and server in one process) for
// the example and ours, and returns allocs/op by variant.
func allocsPerCall(ctx context.Context) (map[string]float64, error) {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "BenchmarkHotPath/^(example|ours|ours,orca=false)$",
		"-benchtime", "3000x", "-count", "1", "./internal/serverkit")
	b, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go test -bench BenchmarkHotPath: %v\n%s", err, b)
	}
	return parseAllocs(string(b)), nil
}

var benchLine = regexp.MustCompile(`^BenchmarkHotPath/(\S+?)(?:-\d+)?\s+\d+\s+.*?\s(\d+) allocs/op`)

func parseAllocs(out string) map[string]float64 {
	res := map[string]float64{}
	for _, l := range strings.Split(out, "\n") {
		if m := benchLine.FindStringSubmatch(l); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			res[m[1]] = v
		}
	}
	return res
}
