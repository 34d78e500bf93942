package serverkit

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// httpHandler serves the side port. It is never exposed through a Service: only the
// kubelet (probes), Prometheus and operators (port-forward) reach it.
//
//	GET  /metrics                        Prometheus metrics (grpc_server_* and Go runtime)
//	GET  /healthz                        200 while the process runs (liveness)
//	GET  /readyz                         200 when SERVING, 503 when NOT_SERVING or draining
//	GET  /admin/health                   every health status as JSON
//	POST /admin/health?status=NOT_SERVING  flip every status (SERVING to flip back); only with
//	                                     --admin (off by default: it is unauthenticated)
//	GET  /debug/pprof/...                Go profiles, only with --pprof
func (s *Server) httpHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if st := s.status(r.Context(), ""); st != healthpb.HealthCheckResponse_SERVING.String() || s.draining.Load() {
			http.Error(w, st, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("SERVING\n"))
	})
	if s.cfg.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /admin/health", s.writeStatuses)
	mux.HandleFunc("POST /admin/health", func(w http.ResponseWriter, r *http.Request) {
		if !s.cfg.AdminEnabled {
			http.Error(w, "admin endpoint off: start the server with --admin (ADMIN=true) to flip health", http.StatusForbidden)
			return
		}
		want := r.FormValue("status")
		switch want {
		case "SERVING", "NOT_SERVING":
		default:
			http.Error(w, `status must be SERVING or NOT_SERVING, e.g. POST /admin/health?status=NOT_SERVING`, http.StatusBadRequest)
			return
		}
		if s.draining.Load() {
			http.Error(w, "draining: health stays NOT_SERVING", http.StatusConflict)
			return
		}
		s.SetServing(want == "SERVING")
		s.log.Info("health flipped through the admin endpoint", "status", want, "remote", r.RemoteAddr)
		s.writeStatuses(w, r)
	})
	return mux
}

func (s *Server) status(ctx context.Context, name string) string {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	resp, err := s.health.Check(ctx, &healthpb.HealthCheckRequest{Service: name})
	if err != nil {
		return "UNKNOWN"
	}
	return resp.GetStatus().String()
}

func (s *Server) writeStatuses(w http.ResponseWriter, r *http.Request) {
	out := map[string]string{}
	for _, n := range s.names {
		key := n
		if key == "" {
			key = "(overall)"
		}
		out[key] = s.status(r.Context(), n)
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(out)
}
