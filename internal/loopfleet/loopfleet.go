// Package loopfleet runs the kit's servers in this process on loopback addresses, behind
// names that a local DNS server resolves: the servers play pods, each name a headless
// Service, the DNS server the cluster DNS, and a real gRPC client dialling
// dns://DNS/name:port balances over them as it would in a cluster. The demo, the bench and
// the loopback tests start their servers with it.
package loopfleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/localdns"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/reqmeta"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serverkit"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serving"
)

// Config is the servers' own defaults (serverkit.Load with no environment) for a server
// on ip:port, with args (serverkit flags, e.g. "-drain-delay=0s") on top.
func Config(ip string, port int, args ...string) (serverkit.Config, error) {
	all := append([]string{"-listen-host=" + ip, "-port=" + strconv.Itoa(port)}, args...)
	return serverkit.Load("loopfleet", all, func(string) string { return "" }, io.Discard)
}

// Server is one server running in this process.
type Server struct {
	*serverkit.Server
	ID identity.Identity // who it says it is in its replies; ID.PodIP is where it listens

	cancel context.CancelFunc
	done   chan struct{}
	err    error // Serve's, once done is closed
}

// Serve starts a server of services with cfg, which runs until Stop.
func Serve(cfg serverkit.Config, log *slog.Logger, services ...serverkit.Service) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv, err := serverkit.New(cfg, log, services...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{Server: srv, cancel: cancel, done: make(chan struct{})}
	go func() { s.err = srv.Serve(ctx); close(s.done) }()
	return s, nil
}

// Stop drains the server as SIGTERM would (serverkit.Server.Serve) and returns once it is
// stopped, with Serve's error. Stopping a stopped server returns the same error.
func (s *Server) Stop() error {
	s.cancel()
	<-s.done
	return s.err
}

// Pod is one server of a service of the catalog.
type Pod struct {
	Service catalog.Service
	ID      identity.Identity       // ID.PodIP is the address it listens on
	Echo    reqmeta.Keys            // request metadata keys its replies echo
	Args    []string                // serverkit flags, on top of the defaults, -listen-host and -port
	Tweak   func(*serverkit.Config) // if set, changes the config after Args
	Log     *slog.Logger            // nil discards; either way the records carry "pod"
}

// Fleet is a local DNS server and the servers started behind it, all on one port: DNS
// names only addresses, so the servers behind a name share a port, as pods behind a
// headless Service do. Close stops them all.
type Fleet struct {
	dns  *localdns.Server
	port int

	mu      sync.Mutex
	servers []*Server
}

// New checks that every one of ips can be bound, picks a port free on all of them and
// starts the DNS server on 127.0.0.1.
func New(ips ...string) (*Fleet, error) {
	if err := localdns.CheckLoopback(ips...); err != nil {
		return nil, err
	}
	port, err := localdns.FreePortOn(ips...)
	if err != nil {
		return nil, err
	}
	dns, err := localdns.Start("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &Fleet{dns: dns, port: port}, nil
}

// Port is the port every server of the fleet listens on.
func (f *Fleet) Port() int { return f.port }

// DNS is the fleet's DNS server: Set changes what a name resolves to (a pod added, or
// removed as Kubernetes removes a terminating pod from a Service).
func (f *Fleet) DNS() *localdns.Server { return f.dns }

// Target is the gRPC target of name through the fleet's DNS server: dns://DNS/name:port.
func (f *Fleet) Target(name string) string {
	return fmt.Sprintf("dns://%s/%s:%d", f.dns.Addr(), name, f.port)
}

// Name makes name resolve to ips and returns its Target.
func (f *Fleet) Name(name string, ips ...string) (string, error) {
	if err := f.dns.Set(name, ips...); err != nil {
		return "", err
	}
	return f.Target(name), nil
}

// Start starts p on p.ID.PodIP at the fleet's port; Close stops it.
func (f *Fleet) Start(p Pod) (*Server, error) {
	cfg, err := Config(p.ID.PodIP, f.port, p.Args...)
	if err != nil {
		return nil, err
	}
	if p.Tweak != nil {
		p.Tweak(&cfg)
	}
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := Serve(cfg, log.With("pod", p.ID.Pod), serving.Server(p.Service, p.ID, p.Echo))
	if err != nil {
		return nil, fmt.Errorf("start %s on %s:%d: %w", p.ID.Pod, p.ID.PodIP, f.port, err)
	}
	s.ID = p.ID
	f.mu.Lock()
	f.servers = append(f.servers, s)
	f.mu.Unlock()
	return s, nil
}

// Group starts one server of p on each of ips, named prefix-1, prefix-2, ... (the
// service's key when prefix is ""), and makes name resolve to them, as a headless
// Service's name resolves to its pods. It returns the name's Target and the servers, in
// the order of ips.
func (f *Fleet) Group(name, prefix string, ips []string, p Pod) (string, []*Server, error) {
	if prefix == "" {
		prefix = p.Service.Key
	}
	var servers []*Server
	for i, ip := range ips {
		p.ID.Pod, p.ID.PodIP = prefix+"-"+strconv.Itoa(i+1), ip
		s, err := f.Start(p)
		if err != nil {
			return "", nil, err
		}
		servers = append(servers, s)
	}
	target, err := f.Name(name, ips...)
	if err != nil {
		return "", nil, err
	}
	return target, servers, nil
}

// Close stops every server of the fleet, at once, then the DNS server. It returns the
// servers' errors (a drain that failed) and the DNS server's.
func (f *Fleet) Close() error {
	f.mu.Lock()
	servers := f.servers
	f.servers = nil
	f.mu.Unlock()
	errs := make([]error, len(servers)+1)
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() {
			if err := s.Stop(); err != nil {
				errs[i] = fmt.Errorf("%s: %w", s.ID.Pod, err)
			}
		})
	}
	wg.Wait()
	errs[len(servers)] = f.dns.Close()
	return errors.Join(errs...)
}
