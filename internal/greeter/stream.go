package greeter

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

// streams runs c.Stream: c.Stream.Count streams, each reopened when it ends and resumed
// from its last message, then the report and its assertions.
func streams(ctx context.Context, c Config, cc grpc.ClientConnInterface, md metadata.MD, opts []grpc.CallOption, stdout, stderr io.Writer) error {
	if c.Warmup > 0 {
		// Unary calls of the service until every backend answered: round robin only
		// spreads streams over the connections that are up when they open.
		warmup(ctx, c, NewCall(cc, c.Service.Methods[0], c.Name, md, nil, opts...), stderr)
	}
	// The run ends by cancelling its streams, not with a deadline: a deadline would go to
	// the servers with every stream (grpc-timeout) and they would end the streams with
	// DEADLINE_EXCEEDED a moment before the client does, counted as ends.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if c.Stream.Duration > 0 {
		stop := time.AfterFunc(c.Stream.Duration, cancel)
		defer stop.Stop()
	}
	if md.Len() > 0 {
		runCtx = metadata.NewOutgoingContext(runCtx, md)
	}
	start := time.Now()
	tally := report.NewStreamTally(start)
	var wg sync.WaitGroup
	for i := range c.Stream.Count {
		track := tally.Track(i, start)
		wg.Go(func() { keepStream(runCtx, c, cc, opts, track) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	if !c.Quiet && c.ProgressEvery > 0 {
		tick := time.NewTicker(c.ProgressEvery)
		defer tick.Stop()
	loop:
		for {
			select {
			case <-done:
				break loop
			case <-tick.C:
				msgs, open, re := tally.Progress()
				writeProgress(stderr, c.JSON, true, report.Progress{Messages: msgs, Open: open, Reconnects: re,
					ElapsedS: time.Since(start).Seconds(), DurationS: c.Stream.Duration.Seconds()})
			}
		}
	}
	<-done

	s := tally.StreamSummary(time.Now())
	s.Target, s.Method, s.LB, s.Kind = c.Dial.Target, c.Service.FullStream(c.Stream.Method), c.Dial.LB, string(c.Stream.Kind)
	s.Streams, s.IntervalMs = c.Stream.Count, float64(c.Stream.Interval)/float64(time.Millisecond)
	for i := range s.Ends {
		s.Ends[i].Hint = hintFor(c.Dial.Target, s.Ends[i].Code, s.Ends[i].Example)
	}
	s.Assertions = report.CheckStreams(s, c.Expect, c.StreamExpect)
	if err := writeReport(stdout, c.JSON, s); err != nil {
		return err
	}
	switch {
	case !report.Passed(s.Assertions):
		return ErrAssertionFailed
	case s.Messages == 0:
		return fmt.Errorf("%w: no stream delivered a message", ErrCallsFailed)
	case c.Stream.Duration > 0 && ctx.Err() != nil:
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	return nil // without -duration, an interrupt is how the run ends
}

// keepStream keeps one of the run's streams open until ctx ends: open, receive, and when
// the stream ends (whatever the status: the server's max age, a drain, a dead pod), wait
// a jittered backoff and reopen it from the last message received.
func keepStream(ctx context.Context, c Config, cc grpc.ClientConnInterface, opts []grpc.CallOption, track *report.StreamTrack) {
	backoff := c.Stream.Backoff
	for ctx.Err() == nil {
		got, err := openOnce(ctx, c, cc, opts, track)
		if ctx.Err() != nil {
			return // the run is over: not a reconnect
		}
		track.Ended(err)
		if got {
			backoff = c.Stream.Backoff
		}
		wait := time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if !got {
			backoff = min(2*backoff, c.Stream.BackoffMax)
		}
	}
}

// openOnce opens the stream once and receives until it ends: whether it delivered a
// message, and the error it ended with.
func openOnce(ctx context.Context, c Config, cc grpc.ClientConnInterface, opts []grpc.CallOption, track *report.StreamTrack) (bool, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.Stream.Method.Open(sctx, cc, catalog.StreamOpen{Name: c.Name, ResumeFrom: track.Last(), Interval: c.Stream.Interval}, opts...)
	if err != nil {
		return false, err
	}
	if c.Stream.Kind == catalog.BidiStreaming {
		go sendEvery(sctx, st, c.Stream.Interval)
	}
	got := false
	for {
		m, err := st.Recv()
		if err != nil {
			return got, err
		}
		got = true
		track.Receive(time.Now(), m.GetSeq(), m.GetBackend())
	}
}

// sendEvery sends a bidi stream's messages: one at once, then one every interval, until
// the stream or ctx ends.
func sendEvery(ctx context.Context, st catalog.Stream, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if st.Send() != nil {
			return // the stream ended: Recv reports why
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
