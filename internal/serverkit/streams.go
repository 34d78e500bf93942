package serverkit

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/faultinject"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/streamkit"
)

// Why streams end on purpose, and why per stream: a stream is pinned to the pod it opened
// on for its whole life, so after a rollout or a scale-out the streams stay where they
// were. MaxConnectionAge does not fix that well: when the age is reached the server sends
// GOAWAY, and when MaxConnectionAgeGrace runs out it closes the connection with every
// stream still on it, at once; a grace long enough for the streams is a grace in which the
// connection takes no new calls but still pins them. StreamMaxAge ends each stream on its
// own (with ±10% jitter, so streams opened together do not all reconnect together) with
// the reconnect status; the client reopens it, the balancer picks a pod for the new
// stream, and streams spread onto new pods within StreamMaxAge. Unary calls keep using
// MaxConnectionAge to find new pods.
//
// MaxConnectionAge still applies to the connections streams ride on, and would cut them
// when its grace runs out: a stream also ends, with the same status, after its
// connection's GOAWAY and before that cut (connEnd), so it reopens on a new connection.
// The kit's default grace (config.go) is longer than STREAM_MAX_AGE, so that end only
// comes for a stream that outlived its own max age or when the grace is set shorter.
//
// The statuses below are UNAVAILABLE: the code clients (and the greeter) treat as
// "reopen the stream, elsewhere if possible"; the message says why.
var (
	errStreamMaxAge = status.Error(codes.Unavailable, "stream max age reached, reconnect")
	errConnMaxAge   = status.Error(codes.Unavailable, "connection max age reached, reconnect")
	errStreamDrain  = status.Error(codes.Unavailable, "server is shutting down, reconnect")
)

// connEndMargin: how long before its connection would be closed a stream ends, at most;
// ample for the end and the client's reopen, which goes to a new connection.
const connEndMargin = 5 * time.Second

// streamJitter is the spread of each stream's max age around StreamMaxAge: ±10%.
const streamJitter = 0.1

// streamGuard applies the kit's stream rules to the streaming methods of the kit's
// services (health watches, ORCA and reflection streams have their own): an injected
// error (POST /admin/errors) ends a stream as it opens, as for a unary call; at most
// MaxStreamsPerConn open per client connection, at most StreamMaxRate messages a second
// from the client, the limits in the stream's context for the handler (server streams
// check their interval against them), and the end after StreamMaxAge or at the drain.
type streamGuard struct {
	prefixes []string      // "/helloworld.Hello/", ...
	maxAge   time.Duration // 0 = no max age
	perConn  int           // 0 = no bound (beyond MaxConcurrentStreams)
	limits   streamkit.Limits
	drained  <-chan struct{} // closed when the drain ends streams (with the health watches)
	faults   *faultinject.Knob
	// ages and connEnd bound a stream by its connection's life (nil/0: no bound).
	ages    *connAges
	connEnd time.Duration

	mu   sync.Mutex
	open map[string]int // open streams per client connection (its remote address)
}

func newStreamGuard(cfg Config, services []Service, drained <-chan struct{}, ages *connAges, faults *faultinject.Knob) *streamGuard {
	g := &streamGuard{maxAge: cfg.StreamMaxAge, perConn: cfg.MaxStreamsPerConn, drained: drained, faults: faults, open: map[string]int{},
		limits: streamkit.Limits{MaxRate: cfg.StreamMaxRate, Flag: "--stream-max-rate / STREAM_MAX_RATE"}}
	if ages != nil {
		g.ages, g.connEnd = ages, connStreamEnd(cfg.MaxConnectionAge, cfg.MaxConnectionAgeGrace)
	}
	for _, s := range services {
		g.prefixes = append(g.prefixes, "/"+s.Name+"/")
	}
	return g
}

func (g *streamGuard) ours(method string) bool {
	for _, p := range g.prefixes {
		if strings.HasPrefix(method, p) {
			return true
		}
	}
	return false
}

// acquire counts a stream on its connection; false when the connection is at the bound.
// A client connection is one remote address on this server's port.
func (g *streamGuard) acquire(ctx context.Context) (release func(), ok bool) {
	if g.perConn <= 0 {
		return func() {}, true
	}
	p, found := peer.FromContext(ctx)
	if !found || p.Addr == nil {
		return func() {}, true
	}
	key := p.Addr.String()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open[key] >= g.perConn {
		return nil, false
	}
	g.open[key]++
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.open[key]--; g.open[key] <= 0 {
			delete(g.open, key)
		}
	}, true
}

// lifetime is how long this stream may live, and the status it then ends with:
// StreamMaxAge ±10%, and no longer than its connection's connEnd; 0 = forever.
func (g *streamGuard) lifetime(ctx context.Context, now time.Time) (time.Duration, error) {
	var d time.Duration
	if g.maxAge > 0 {
		d = time.Duration(float64(g.maxAge) * (1 + streamJitter*(2*rand.Float64()-1)))
	}
	if g.ages == nil {
		return d, errStreamMaxAge
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return d, errStreamMaxAge
	}
	at, ok := g.ages.accepted(p.Addr.String(), now)
	if !ok {
		return d, errStreamMaxAge
	}
	// A stream opened after its connection's end point (possible only when the grace is
	// too short for a safe point, see connStreamEnd) is left to the connection's fate
	// rather than ended at once again and again.
	if left := at.Add(g.connEnd).Sub(now); left > 0 && (d == 0 || left < d) {
		return left, errConnMaxAge
	}
	return d, errStreamMaxAge
}

// connStreamEnd is when, after its connection was accepted, a stream ends so that it is
// neither cut by MaxConnectionAge's grace nor reopened on the same connection. grpc-go
// sends GOAWAY at age × [0.9, 1.1] (its jitter) and closes the connection, streams and
// all, grace later: a point after the latest GOAWAY and before the earliest close exists
// when grace > 0.2 × age, and the stream ends as late as is safe, connEndMargin before the
// earliest close (or halfway, when they are closer than twice that: 30 s and 10 s give
// 33 s and 37 s, and 35 s), so it lives as long as its connection's grace allows (30 s and
// the default 6 m: 382 s). Otherwise it ends halfway through the earliest grace (it may
// reopen on the same connection and be cut later). 0: no bound (no max age, or an
// unbounded grace).
func connStreamEnd(age, grace time.Duration) time.Duration {
	if age <= 0 || grace <= 0 {
		return 0
	}
	latestGoAway, earliestClose := age+age/10, age-age/10+grace
	if latestGoAway < earliestClose {
		return earliestClose - min((earliestClose-latestGoAway)/2, connEndMargin)
	}
	return age - age/10 + grace/2
}

// connAges remembers when each client connection was accepted, by remote address (what a
// stream's peer says). Entries older than any connection can live are dropped as new
// ones come; a reused address overwrites its entry.
type connAges struct {
	life time.Duration // MaxConnectionAge × 1.1 + grace: no connection lives longer
	mu   sync.Mutex
	at   map[string]time.Time
	adds int
}

func newConnAges(cfg Config) *connAges {
	if connStreamEnd(cfg.MaxConnectionAge, cfg.MaxConnectionAgeGrace) == 0 {
		return nil
	}
	return &connAges{life: cfg.MaxConnectionAge + cfg.MaxConnectionAge/10 + cfg.MaxConnectionAgeGrace, at: map[string]time.Time{}}
}

func (c *connAges) add(addr string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at[addr] = now
	if c.adds++; c.adds%256 == 0 {
		for a, t := range c.at {
			if now.Sub(t) > c.life {
				delete(c.at, a)
			}
		}
	}
}

func (c *connAges) accepted(addr string, now time.Time) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.at[addr]
	return t, ok && now.Sub(t) <= c.life
}

func (g *streamGuard) intercept(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !g.ours(info.FullMethod) {
		return handler(srv, ss)
	}
	if err := g.faults.Fail(); err != nil {
		return err
	}
	release, ok := g.acquire(ss.Context())
	if !ok {
		return status.Errorf(codes.ResourceExhausted,
			"this connection already has %d open streams, the server's limit per connection (--max-streams-per-conn / MAX_STREAMS_PER_CONN): close some, or spread them over more connections", g.perConn)
	}
	defer release()

	ctx, cancel := context.WithCancelCause(ss.Context())
	defer cancel(nil)
	var expired <-chan time.Time
	life, why := g.lifetime(ss.Context(), time.Now())
	if life > 0 {
		t := time.NewTimer(life)
		defer t.Stop()
		expired = t.C
	}
	go func() {
		select {
		case <-expired:
			cancel(why)
		case <-g.drained:
			cancel(errStreamDrain)
		case <-ctx.Done():
		}
	}()
	err := handler(srv, &guardedStream{ServerStream: ss, ctx: streamkit.WithLimits(ctx, g.limits), limits: g.limits, bucket: streamkit.NewBucket(g.limits.MaxRate)})
	// Ended by the server on purpose: the handler saw its context cancelled; the client
	// gets the reconnect status instead of CANCELED.
	if cause := context.Cause(ctx); cause == errStreamMaxAge || cause == errConnMaxAge || cause == errStreamDrain {
		return cause
	}
	return err
}

// guardedStream is the stream handlers see: the guard's context, and a bound on the
// rate of the client's messages.
type guardedStream struct {
	grpc.ServerStream
	ctx    context.Context
	limits streamkit.Limits
	bucket *streamkit.Bucket
}

func (s *guardedStream) Context() context.Context { return s.ctx }

func (s *guardedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if !s.bucket.Take(time.Now()) {
		return streamkit.RateError(s.limits)
	}
	return nil
}
