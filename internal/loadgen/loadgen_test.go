package loadgen

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

func ok(_ context.Context) (*pb.Backend, net.Addr, error) { return &pb.Backend{Pod: "p"}, nil, nil }

func TestCountIsExact(t *testing.T) {
	var n atomic.Int64
	call := func(ctx context.Context) (*pb.Backend, net.Addr, error) { n.Add(1); return ok(ctx) }
	tl, _, err := Run(context.Background(), Plan{Calls: 1000, Concurrency: 7, Timeout: time.Second}, call, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n.Load() != 1000 || tl.Calls() != 1000 {
		t.Fatalf("made %d calls, tallied %d, want 1000", n.Load(), tl.Calls())
	}
}

func TestRatePacesCalls(t *testing.T) {
	tl, elapsed, err := Run(context.Background(), Plan{Calls: 50, Concurrency: 4, Rate: 100, Timeout: time.Second}, ok, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 50 calls at 100/s: the last starts at 490ms. Well below would mean no pacing.
	if tl.Calls() != 50 || elapsed < 450*time.Millisecond {
		t.Fatalf("%d calls in %s: not paced to 100/s", tl.Calls(), elapsed)
	}
}

func TestDurationAndProgress(t *testing.T) {
	var reports atomic.Int64
	tl, elapsed, err := Run(context.Background(), Plan{Duration: 300 * time.Millisecond, Concurrency: 2, Timeout: time.Second},
		func(ctx context.Context) (*pb.Backend, net.Addr, error) { time.Sleep(time.Millisecond); return ok(ctx) },
		50*time.Millisecond, func(Progress) { reports.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	if tl.Calls() == 0 || elapsed < 300*time.Millisecond || reports.Load() < 3 {
		t.Fatalf("%d calls, %s, %d progress reports", tl.Calls(), elapsed, reports.Load())
	}
}

func TestCancelDoesNotCountInterruptedCalls(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var started atomic.Int64
	call := func(cctx context.Context) (*pb.Backend, net.Addr, error) {
		if started.Add(1) < 5 {
			return ok(cctx)
		}
		cancel() // the user presses Ctrl-C during call 5
		<-cctx.Done()
		return nil, nil, cctx.Err()
	}
	tl, _, err := Run(ctx, Plan{Calls: 100, Concurrency: 1, Timeout: time.Minute}, call, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tl.Calls() != 4 || tl.Failed() != 0 {
		t.Fatalf("tallied %d calls, %d failed; want the 4 finished calls and no failure", tl.Calls(), tl.Failed())
	}
}

func TestTimeoutIsAFailure(t *testing.T) {
	call := func(ctx context.Context) (*pb.Backend, net.Addr, error) { <-ctx.Done(); return nil, nil, ctx.Err() }
	tl, _, _ := Run(context.Background(), Plan{Calls: 2, Concurrency: 1, Timeout: 10 * time.Millisecond}, call, 0, nil)
	if tl.Failed() != 2 {
		t.Fatalf("timeouts: %d failed, want 2", tl.Failed())
	}
}

func TestPlanValidate(t *testing.T) {
	for _, p := range []Plan{{}, {Calls: -1, Concurrency: 1, Timeout: 1}, {Calls: 1, Timeout: 1}, {Calls: 1, Concurrency: 1}, {Calls: 1, Concurrency: 1, Timeout: 1, Rate: -1}} {
		if err := p.Validate(); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	if _, _, err := Run(context.Background(), Plan{}, ok, 0, nil); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("Run with empty plan: %v", err)
	}
}

// WarmUp stops as soon as n distinct backends answered, and otherwise at its deadline
// with the count it reached.
func TestWarmUp(t *testing.T) {
	var i atomic.Int64
	pods := []string{"a", "", "b", "a", "c", "b"} // "": the call fails
	rotating := func(context.Context) (*pb.Backend, net.Addr, error) {
		pod := pods[int(i.Add(1)-1)%len(pods)]
		if pod == "" {
			return nil, nil, errors.New("not up yet")
		}
		return &pb.Backend{Pod: pod}, nil, nil
	}
	if got := WarmUp(context.Background(), rotating, 3, 5*time.Second, time.Second); got != 3 || i.Load() != 5 {
		t.Fatalf("WarmUp to 3: %d backends after %d calls, want 3 after 5 (a, failed, b, a, c)", got, i.Load())
	}
	start := time.Now()
	if got := WarmUp(context.Background(), ok, 2, 200*time.Millisecond, time.Second); got != 1 || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("WarmUp to 2 with one backend: %d backends after %s, want 1 after the 200ms deadline", got, time.Since(start))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := WarmUp(ctx, ok, 1, time.Minute, time.Second); got != 0 {
		t.Fatalf("WarmUp with a cancelled context made calls: %d backends", got)
	}
}
