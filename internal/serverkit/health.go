package serverkit

import (
	"context"
	"sync"

	"google.golang.org/grpc/codes"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"google.golang.org/grpc/health"
)

// drainableHealth is grpc-go's health server whose Watch streams end when the server
// stops. A Watch is a call that never finishes on its own, so a client that keeps one open
// (client-side health checking) would otherwise hold GracefulStop for its whole timeout.
type drainableHealth struct {
	*health.Server
	stopOnce sync.Once
	stop     chan struct{}
}

func newDrainableHealth() *drainableHealth {
	return &drainableHealth{Server: health.NewServer(), stop: make(chan struct{})}
}

// endWatches ends every open and future Watch with UNAVAILABLE. Call it after the
// NOT_SERVING update had time to reach the watchers.
func (h *drainableHealth) endWatches() { h.stopOnce.Do(func() { close(h.stop) }) }

// ended is closed when endWatches is called.
func (h *drainableHealth) ended() <-chan struct{} { return h.stop }

func (h *drainableHealth) Watch(req *healthgrpc.HealthCheckRequest, stream healthgrpc.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-h.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := h.Server.Watch(req, watchStream{stream, ctx})
	select {
	case <-h.stop:
		return status.Error(codes.Unavailable, "server is shutting down")
	default:
		return err
	}
}

type watchStream struct {
	healthgrpc.Health_WatchServer
	ctx context.Context
}

func (w watchStream) Context() context.Context { return w.ctx }
