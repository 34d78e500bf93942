// Package loadgen drives calls: a fixed count, a duration, or both, over N concurrent
// workers, optionally paced to a rate, with periodic progress.
package loadgen

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// CallFunc makes one call and returns the backend that served it and, when it knows it,
// the address of the connection the call went on (nil otherwise). A failed call returns
// that address too when it had one (grpc.Peer sets it once a connection was picked): the
// report attributes the failure to the backend that answered from that address
// (report.Call).
type CallFunc func(ctx context.Context) (b *pb.Backend, peer net.Addr, err error)

// Plan of a run. The run ends when Calls calls have started, when Duration has passed,
// or when ctx is cancelled, whichever is first. At least one of Calls and Duration is set.
type Plan struct {
	Calls       int
	Duration    time.Duration
	Concurrency int
	Rate        float64       // calls per second over all workers; 0 = as fast as possible
	Timeout     time.Duration // per call
}

// Validate rejects plans that would run forever or never.
func (p Plan) Validate() error {
	switch {
	case p.Calls < 0:
		return errors.New("calls (-n) must not be negative")
	case p.Calls == 0 && p.Duration <= 0:
		return errors.New("give a number of calls (-n) or a duration (-duration)")
	case p.Concurrency < 1:
		return errors.New("concurrency (-c) must be at least 1")
	case p.Rate < 0:
		return errors.New("rate must not be negative")
	case p.Timeout <= 0:
		return errors.New("timeout must be positive")
	}
	return nil
}

// Progress is a snapshot during a run.
type Progress struct {
	Started, Done, Failed int64
	Elapsed               time.Duration
}

// Run executes the plan. onProgress (may be nil) is called every interval. Calls cut short
// because ctx was cancelled (Ctrl-C) are not counted: the tally holds what really happened.
func Run(ctx context.Context, p Plan, call CallFunc, interval time.Duration, onProgress func(Progress)) (*report.Tally, time.Duration, error) {
	if err := p.Validate(); err != nil {
		return nil, 0, err
	}
	start := time.Now()
	var deadline time.Time
	if p.Duration > 0 {
		deadline = start.Add(p.Duration)
	}
	var next, done, failed atomic.Int64

	// claim returns the start time of this worker's next call, or false when the run is over.
	claim := func() bool {
		if ctx.Err() != nil || (!deadline.IsZero() && !time.Now().Before(deadline)) {
			return false
		}
		slot := next.Add(1) - 1
		if p.Calls > 0 && slot >= int64(p.Calls) {
			return false
		}
		if p.Rate > 0 {
			at := start.Add(time.Duration(float64(slot) / p.Rate * float64(time.Second)))
			if !deadline.IsZero() && at.After(deadline) {
				return false
			}
			if d := time.Until(at); d > 0 {
				t := time.NewTimer(d)
				defer t.Stop()
				select {
				case <-ctx.Done():
					return false
				case <-t.C:
				}
			}
		}
		return true
	}

	tallies := make([]*report.Tally, p.Concurrency)
	var wg sync.WaitGroup
	for w := range p.Concurrency {
		tallies[w] = report.NewTally()
		wg.Add(1)
		go func(t *report.Tally) {
			defer wg.Done()
			for claim() {
				cctx, cancel := context.WithTimeout(ctx, p.Timeout)
				t0 := time.Now()
				b, peer, err := call(cctx)
				lat := time.Since(t0)
				cancel()
				if err != nil && ctx.Err() != nil {
					return // interrupted by the user, not a failure of the backends
				}
				t.Record(report.Call{Start: t0, Latency: lat, Backend: b, Peer: peer, Err: err})
				done.Add(1)
				if err != nil {
					failed.Add(1)
				}
			}
		}(tallies[w])
	}

	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	if onProgress != nil && interval > 0 {
		tick := time.NewTicker(interval)
		defer tick.Stop()
	loop:
		for {
			select {
			case <-finished:
				break loop
			case <-tick.C:
				onProgress(Progress{Started: next.Load(), Done: done.Load(), Failed: failed.Load(), Elapsed: time.Since(start)})
			}
		}
	}
	<-finished
	elapsed := time.Since(start)

	total := report.NewTally()
	for _, t := range tallies {
		total.Merge(t)
	}
	return total, elapsed, nil
}
