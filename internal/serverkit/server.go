package serverkit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/orca"
	"google.golang.org/grpc/reflection"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/faultinject"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/slowdown"
)

// Service is one gRPC service to serve: its full name (also its health-check name) and
// the function that registers its implementation.
type Service struct {
	Name     string
	Register func(grpc.ServiceRegistrar)
}

// Server is a running gRPC server plus its HTTP side port.
type Server struct {
	cfg    Config
	log    *slog.Logger
	health *drainableHealth
	names  []string // "" (overall) and every service name: what health reports on
	// newGRPC builds a grpc.Server with every service, health and reflection registered;
	// gen is the one that takes new connections (a second one is built on SIGTERM, see
	// handoff.go).
	newGRPC  func() *grpc.Server
	gen      atomic.Pointer[generation]
	lis      net.Listener
	httpLis  net.Listener
	http     *http.Server
	draining atomic.Bool
	stopping atomic.Bool // the listener is being closed on purpose

	slow   *slowdown.Knob    // added latency and CPU per call (POST /admin/slow)
	faults *faultinject.Knob // calls failed on purpose (POST /admin/errors)
	ages   *connAges         // when each connection was accepted, for streams; nil without MaxConnectionAge
	load   *loadMeter        // ORCA load reports; nil with -orca=false
}

// generation is one grpc.Server and the listener the accept loop feeds it through.
type generation struct {
	srv *grpc.Server
	lis *handoffListener
}

// New builds the server and binds its listeners (so the ports are known before Serve).
func New(cfg Config, log *slog.Logger, services ...Service) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	registry := prometheus.NewRegistry()
	metrics := newServerMetrics()
	for _, c := range []prometheus.Collector{metrics, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := registry.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}

	s := &Server{cfg: cfg, log: log, health: newDrainableHealth(), names: []string{""}, slow: slowdown.New(cfg.slowdown()), faults: &faultinject.Knob{}, ages: newConnAges(cfg)}
	if cfg.ORCA {
		s.load = newLoadMeter()
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgSize),
		grpc.MaxConcurrentStreams(uint32(min(cfg.MaxConcurrentStreams, 1<<31))),
		// A fixed pool of stream workers instead of a new goroutine per call: less stack
		// growth and scheduling per call (grpc-go marks this option experimental).
		grpc.NumStreamWorkers(uint32(cfg.StreamWorkers)),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionAge:      cfg.MaxConnectionAge, // 0 = infinity
			MaxConnectionAgeGrace: cfg.MaxConnectionAgeGrace,
			Time:                  cfg.KeepaliveTime,
			Timeout:               cfg.KeepaliveTimeout,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             cfg.KeepaliveMinTime,
			PermitWithoutStream: true, // clients may keep idle connections warm with pings
		}),
	}
	kit, mw := middleware(log, metrics, s.load, s.slow, s.faults)
	opts = append(opts, mw...)
	if s.load != nil {
		opts = append(opts, grpc.ChainStreamInterceptor(endOOBOnDrain(s.health.ended())))
	}
	// Innermost: the kit's own streams end after StreamMaxAge and when the drain ends the
	// health watches, with the reconnect status (streams.go).
	opts = append(opts, grpc.ChainStreamInterceptor(newStreamGuard(cfg, services, s.health.ended(), s.ages, s.faults).intercept))
	if cfg.TLSCertFile != "" {
		creds, err := credentials.NewServerTLSFromFile(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("load TLS key pair %s, %s: %w", cfg.TLSCertFile, cfg.TLSKeyFile, err)
		}
		opts = append(opts, grpc.Creds(creds))
	}

	for _, svc := range services {
		s.names = append(s.names, svc.Name)
	}
	if s.load != nil {
		if _, err := orca.NewService(s.load.serviceOptions()); err != nil {
			return nil, fmt.Errorf("ORCA service: %w", err)
		}
	}
	s.newGRPC = func() *grpc.Server {
		g := grpc.NewServer(opts...)
		for _, svc := range services {
			svc.Register(g)
		}
		healthpb.RegisterHealthServer(g, s.health) // one health state for every generation
		reflection.Register(g)                     // v1 and v1alpha: old and new grpcurl both work
		if s.load != nil {
			_ = orca.Register(g, s.load.serviceOptions()) // the out-of-band stream; options checked above
		}
		kit.setMethods(g) // every method's metric series, at zero until called
		return g
	}
	s.SetServing(true)

	var err error
	if s.lis, err = net.Listen("tcp", net.JoinHostPort(cfg.ListenHost, strconv.Itoa(cfg.Port))); err != nil {
		return nil, fmt.Errorf("gRPC listener: %w", err)
	}
	if cfg.HTTPPort >= 0 {
		if s.httpLis, err = net.Listen("tcp", net.JoinHostPort(cfg.ListenHost, strconv.Itoa(cfg.HTTPPort))); err != nil {
			s.lis.Close()
			return nil, fmt.Errorf("HTTP listener: %w", err)
		}
		s.http = &http.Server{Handler: s.httpHandler(registry), ReadHeaderTimeout: 5 * time.Second}
	}
	return s, nil
}

// Addr is the gRPC listener's address.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// HTTPAddr is the HTTP listener's address, nil when the HTTP port is disabled.
func (s *Server) HTTPAddr() net.Addr {
	if s.httpLis == nil {
		return nil
	}
	return s.httpLis.Addr()
}

// SetServing sets the overall and every per-service health status. Once draining has
// begun, health stays NOT_SERVING whatever is asked.
func (s *Server) SetServing(serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	for _, n := range s.names {
		s.health.SetServingStatus(n, st)
	}
}

// Serve serves until ctx is cancelled (SIGTERM), then drains (see drain). It returns nil
// after a clean drain and an error if a listener fails.
func (s *Server) Serve(ctx context.Context) error {
	if s.load != nil {
		meterCtx, stopMeter := context.WithCancel(context.Background())
		defer stopMeter()
		go s.load.run(meterCtx, s.cfg.ORCAInterval)
	}
	errc := make(chan error, 3)
	s.startGeneration(errc)
	go s.acceptLoop(errc)
	if s.http != nil {
		go func() {
			if err := s.http.Serve(s.httpLis); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("HTTP server: %w", err)
			}
		}()
	}
	s.log.Info("serving", "grpc", s.Addr().String(), "http", addrString(s.HTTPAddr()),
		"services", s.names[1:], "tls", s.cfg.TLSCertFile != "",
		"max_connection_age", s.cfg.MaxConnectionAge.String(), "stream_max_age", s.cfg.StreamMaxAge.String(), "drain_delay", s.cfg.DrainDelay.String(),
		"orca", s.cfg.ORCA, "slow", s.slow.Get())

	select {
	case err := <-errc:
		s.stopping.Store(true) // the accept loop's error on Close below is expected now
		s.lis.Close()
		s.gen.Load().srv.Stop()
		s.closeHTTP()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.drain(errc)
	return nil
}

// startGeneration builds a grpc.Server, makes it the one new connections go to, and
// serves it. Its Serve returns nil once stopped; anything else is reported on errc.
func (s *Server) startGeneration(errc chan<- error) *generation {
	g := &generation{srv: s.newGRPC(), lis: newHandoffListener(s.lis.Addr())}
	s.gen.Store(g)
	go func() {
		if err := g.srv.Serve(g.lis); err != nil {
			errc <- fmt.Errorf("gRPC server: %w", err)
		}
	}()
	return g
}

// acceptLoop accepts TCP connections and hands each to the current generation. It ends
// when the listener is closed.
func (s *Server) acceptLoop(errc chan<- error) {
	var backoff time.Duration
	for {
		c, err := s.lis.Accept()
		if err != nil {
			if s.stopping.Load() && errors.Is(err, net.ErrClosed) {
				return
			}
			var ne interface{ Temporary() bool }
			if errors.As(err, &ne) && ne.Temporary() { // e.g. out of file descriptors
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "in", backoff.String())
				time.Sleep(backoff)
				continue
			}
			errc <- fmt.Errorf("accept: %w", err)
			return
		}
		backoff = 0
		if s.ages != nil {
			s.ages.add(c.RemoteAddr().String(), time.Now())
		}
		// A generation stopped between Load and offer: the next Load returns its successor.
		// When every generation is stopping, the listener is closed too: drop the conn.
		for !s.gen.Load().lis.offer(c) {
			if s.stopping.Load() {
				c.Close()
				break
			}
		}
	}
}

// drain, on SIGTERM:
//  1. health NOT_SERVING (health-checking clients and readiness probes hear it), a new
//     generation takes new connections, the old one sends GOAWAY on every open connection
//     (direct clients re-resolve and move to live pods) and finishes its calls;
//  2. for DrainDelay new connections are still accepted and served: proxies that have not
//     dropped the pod yet (its readiness probe has to fail and the EndpointSlice change has
//     to reach them) keep getting answers instead of refused or hanging connections;
//  3. the listener closes; health watches and open streams are ended (the kit's streams
//     with the reconnect status); GracefulStop bounded by ShutdownTimeout, then Stop.
func (s *Server) drain(errc chan error) {
	start := time.Now()
	s.draining.Store(true)
	s.health.Shutdown() // every status NOT_SERVING; health watchers (clients) hear it now
	old := s.gen.Load()
	next := s.startGeneration(errc)
	oldDone := stopGracefully(old.srv)
	s.log.Info("drain 1/3: health NOT_SERVING, GOAWAY on open connections; accepting new ones for drain-delay", "drain_delay", s.cfg.DrainDelay.String())
	time.Sleep(s.cfg.DrainDelay)

	s.log.Info("drain 2/3: listener closed, GracefulStop: in-flight calls finishing", "timeout", s.cfg.ShutdownTimeout.String())
	s.stopping.Store(true)
	s.lis.Close()
	nextDone := stopGracefully(next.srv)
	// Open health Watch streams, ORCA streams and the kit's own streams would otherwise
	// hold GracefulStop: they end now, the kit's streams with UNAVAILABLE "server is
	// shutting down, reconnect", and their clients reopen them on other pods. Not at
	// SIGTERM: a proxy still routes to this pod for the drain delay, so a stream ended
	// then could come straight back here and have to reconnect twice.
	s.health.endWatches()
	timeout := time.After(s.cfg.ShutdownTimeout)
	for _, done := range []<-chan struct{}{oldDone, nextDone} {
		select {
		case <-done:
		case <-timeout:
			s.log.Warn("drain: GracefulStop timed out; cutting remaining calls with Stop")
			old.srv.Stop()
			next.srv.Stop()
			<-done
		}
	}
	s.closeHTTP()
	s.log.Info("drain 3/3: stopped", "took", time.Since(start).String())
}

func stopGracefully(g *grpc.Server) <-chan struct{} {
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	return done
}

func (s *Server) closeHTTP() {
	if s.http == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		s.log.Warn("HTTP shutdown", "err", err)
	}
}

func addrString(a net.Addr) string {
	if a == nil {
		return "disabled"
	}
	return a.String()
}
