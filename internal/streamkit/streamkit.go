// Package streamkit is what the kit's streaming handlers share: the numbering of the
// messages (seq, resumed from the client's resume_from), the pacing of server streams,
// the receive loop of bidi streams, and the per-stream limits serverkit puts in each
// stream's context.
//
// A stream here never ends on its own: the client cancels it, or the server ends it on
// purpose (serverkit: stream max age, drain) by cancelling the stream's context, and
// turns that into the "reconnect" status.
package streamkit

import (
	"context"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// DefaultInterval is a server stream's interval when the request leaves it unset.
const DefaultInterval = time.Second

// Limits of one stream, set by the server (serverkit.Config) in the stream's context.
type Limits struct {
	// MaxRate is the most messages per second a stream may carry each way: a server
	// stream asking for a shorter interval than 1/MaxRate, or a client sending faster,
	// gets RESOURCE_EXHAUSTED. 0 = no limit.
	MaxRate float64
	// Flag names the server setting, for the error message.
	Flag string
}

type limitsKey struct{}

// WithLimits returns ctx carrying l.
func WithLimits(ctx context.Context, l Limits) context.Context {
	return context.WithValue(ctx, limitsKey{}, l)
}

// LimitsFrom is the limits in ctx; none (no limit) when the server set none.
func LimitsFrom(ctx context.Context) Limits {
	l, _ := ctx.Value(limitsKey{}).(Limits)
	return l
}

// Interval checks a requested interval against the stream's limits: unset is
// DefaultInterval, negative or malformed is INVALID_ARGUMENT, faster than the server's
// rate limit is RESOURCE_EXHAUSTED naming the limit.
func Interval(ctx context.Context, d *durationpb.Duration) (time.Duration, error) {
	if d == nil {
		return DefaultInterval, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, status.Errorf(codes.InvalidArgument, "interval: %v", err)
	}
	iv := d.AsDuration()
	if iv <= 0 {
		return 0, status.Errorf(codes.InvalidArgument, "interval is %s: send a positive interval, e.g. {\"interval\":\"0.1s\"}, or none for %s", iv, DefaultInterval)
	}
	if l := LimitsFrom(ctx); l.MaxRate > 0 {
		if min := time.Duration(float64(time.Second) / l.MaxRate); iv < min {
			return 0, status.Errorf(codes.ResourceExhausted,
				"interval %s is shorter than this server allows: at most %g messages/s per stream (%s), i.e. an interval of at least %s", iv, l.MaxRate, l.Flag, min)
		}
	}
	return iv, nil
}

// Tick calls send with resumeFrom+1, resumeFrom+2, ...: the first at once, then one
// every interval, until ctx ends (its status is returned) or send fails.
func Tick(ctx context.Context, interval time.Duration, resumeFrom uint64, send func(seq uint64) error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for seq := resumeFrom + 1; ; seq++ {
		if err := send(seq); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-t.C:
		}
	}
}

// Chat answers every message recv returns with reply(seq, msg), seq numbered from the
// first message's resume point (start) + 1, until the client closes its side (nil),
// recv or reply fails, or ctx ends. check validates each message (INVALID_ARGUMENT
// ends the stream). Recv does not watch a context the server derived from the stream's,
// so it runs in its own goroutine: when Chat returns, grpc-go ends the stream and that
// Recv returns too.
func Chat[Req any](ctx context.Context, recv func() (*Req, error), check func(*Req) error,
	start func(*Req) uint64, reply func(seq uint64, msg *Req) error) error {
	type got struct {
		msg *Req
		err error
	}
	msgs := make(chan got)
	go func() {
		for {
			m, err := recv()
			select {
			case msgs <- got{m, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var seq uint64
	for first := true; ; first = false {
		var g got
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case g = <-msgs:
		}
		if g.err != nil {
			if errors.Is(g.err, io.EOF) { // the client closed its side
				return nil
			}
			return g.err
		}
		if err := check(g.msg); err != nil {
			return err
		}
		if first {
			seq = start(g.msg)
		}
		seq++
		if err := reply(seq, g.msg); err != nil {
			return err
		}
	}
}

// RateError is the status of a stream whose client sent faster than l allows.
func RateError(l Limits) error {
	return status.Errorf(codes.ResourceExhausted, "more than %g messages/s on this stream: the server's limit per stream (%s)", l.MaxRate, l.Flag)
}

// Bucket is a token bucket of MaxRate tokens a second holding one second's worth (at
// least one message): a stream may burst to MaxRate messages and keep MaxRate a second.
// Not safe for concurrent use (one stream's receives are sequential).
type Bucket struct {
	rate, size, tokens float64
	last               time.Time
}

// NewBucket is a full bucket for rate messages a second (0 = unlimited).
func NewBucket(rate float64) *Bucket {
	size := max(rate, 1)
	return &Bucket{rate: rate, size: size, tokens: size, last: time.Now()}
}

// Take spends a token; false when none is left.
func (b *Bucket) Take(now time.Time) bool {
	if b.rate <= 0 {
		return true
	}
	if now.After(b.last) {
		b.tokens = min(b.size, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
