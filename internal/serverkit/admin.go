package serverkit

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/faultinject"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/slowdown"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/statuscode"
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
//	GET  /admin/slow                     the latency and CPU added to every call, as JSON
//	POST /admin/slow?latency=20ms&cpu=0  change them (either or both; 0 is off); only with --admin
//	GET  /admin/errors                   the calls failed on purpose: code, fraction, count, as JSON
//	POST /admin/errors?code=UNAVAILABLE&fraction=0.5  fail that fraction of the calls of the
//	                                     kit's services with that code (fraction=0 is off);
//	                                     only with --admin
//	GET  /admin/load                     the load the server reports with ORCA now, as JSON
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
	mux.HandleFunc("POST /admin/health", s.adminOnly("flip health", func(w http.ResponseWriter, r *http.Request) {
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
	}))
	mux.HandleFunc("GET /admin/slow", s.writeSlow)
	mux.HandleFunc("POST /admin/slow", s.adminOnly("slow it down", func(w http.ResponseWriter, r *http.Request) {
		set, err := parseSlow(r, s.slow.Get())
		if err == nil {
			err = s.slow.Set(set)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.log.Info("slowdown changed through the admin endpoint", "latency", set.Latency.String(), "cpu", set.CPU.String(), "remote", r.RemoteAddr)
		s.writeSlow(w, r)
	}))
	mux.HandleFunc("GET /admin/errors", s.writeErrors)
	mux.HandleFunc("POST /admin/errors", s.adminOnly("inject errors", func(w http.ResponseWriter, r *http.Request) {
		set, err := parseErrors(r, s.faults.Get())
		if err == nil {
			err = s.faults.Set(set)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.log.Info("injected errors changed through the admin endpoint", "code", statuscode.Canonical(set.Code), "fraction", set.Fraction, "remote", r.RemoteAddr)
		s.writeErrors(w, r)
	}))
	mux.HandleFunc("GET /admin/load", func(w http.ResponseWriter, _ *http.Request) {
		if s.load == nil {
			http.Error(w, "ORCA load reports are off (-orca=false)", http.StatusNotFound)
			return
		}
		writeJSON(w, s.load.report(s.cfg.ORCAInterval))
	})
	return mux
}

// parseSlow reads POST /admin/slow's latency and cpu parameters over cur: a parameter
// left out keeps its value.
func parseSlow(r *http.Request, cur slowdown.Setting) (slowdown.Setting, error) {
	lat, cpu := r.FormValue("latency"), r.FormValue("cpu")
	if lat == "" && cpu == "" {
		return cur, errors.New("give latency, cpu or both, e.g. POST /admin/slow?latency=20ms (latency=0 turns it off)")
	}
	var errs []error
	if lat != "" {
		d, err := slowdown.ParseDuration("latency", lat)
		errs = append(errs, err)
		cur.Latency = d
	}
	if cpu != "" {
		d, err := slowdown.ParseDuration("cpu", cpu)
		errs = append(errs, err)
		cur.CPU = d
	}
	return cur, errors.Join(errs...)
}

// parseErrors reads POST /admin/errors' code and fraction over cur: a parameter left out
// keeps its value (fraction=0 alone turns the knob off).
func parseErrors(r *http.Request, cur faultinject.Setting) (faultinject.Setting, error) {
	code, frac := r.FormValue("code"), r.FormValue("fraction")
	if code == "" && frac == "" {
		return cur, errors.New("give code, fraction or both, e.g. POST /admin/errors?code=UNAVAILABLE&fraction=0.5 (fraction=0 turns it off)")
	}
	var errs []error
	if code != "" {
		c, err := faultinject.ParseCode(code)
		errs = append(errs, err)
		cur.Code = c
	}
	if frac != "" {
		f, err := faultinject.ParseFraction(frac)
		errs = append(errs, err)
		cur.Fraction = f
	}
	if err := errors.Join(errs...); err != nil {
		return cur, err
	}
	return cur, cur.Validate()
}

func (s *Server) writeErrors(w http.ResponseWriter, _ *http.Request) { writeJSON(w, s.faults) }

func (s *Server) writeSlow(w http.ResponseWriter, _ *http.Request) { writeJSON(w, s.slow.Get()) }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
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
	writeJSON(w, out)
}

// adminOnly serves h only when the admin endpoint is on (--admin, ADMIN=true); otherwise
// every request is refused with 403 and what would have turned it on to do what.
func (s *Server) adminOnly(what string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.cfg.AdminEnabled {
			http.Error(w, "admin endpoint off: start the server with --admin (ADMIN=true) to "+what, http.StatusForbidden)
			return
		}
		h(w, r)
	}
}
