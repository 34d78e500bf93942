// Package promapi is the kit's one client of the Prometheus HTTP API: greeter doctor's
// metrics checks (internal/doctor) and the end-to-end suite's cost lane (e2e/cost_test.go)
// both read Prometheus through it.
//
// The client is client_golang's api/prometheus/v1: a module the kit requires already; it
// decodes results into prometheus/common's model types (a dependency already), posts a
// query with a GET fallback as Prometheus' own tools do, and returns typed API errors
// (*v1.Error), so a caller can tell a refused query (bad_data) from a URL that is not the
// API (a 404). This package adds what both callers need on top: the base URL checked
// before any request, and instant queries that say which kind of result they want.
package promapi

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// New returns a client of the Prometheus HTTP API whose base URL is addr (CheckURL).
func New(addr string) (v1.API, error) {
	if err := CheckURL(addr); err != nil {
		return nil, err
	}
	c, err := api.NewClient(api.Config{Address: addr})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %s: %w", addr, err)
	}
	return v1.NewAPI(c), nil
}

// CheckURL accepts the base URL of a Prometheus server: http or https, a host, an
// optional path prefix (a Prometheus served under /prometheus), nothing else. Anything
// more (a query, the API's own path with parameters) would make every request fail.
func CheckURL(addr string) error {
	u, err := url.Parse(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: want the server's base URL, http(s)://HOST[:PORT][/PREFIX]", addr)
	}
	return nil
}

// Vector runs the instant query q at time at and wants an instant vector (a selector, a
// rate, an aggregation). A zero at asks at Prometheus' own now: no clock skew between the
// caller's host and the server. The warnings are Prometheus' own, for the caller to show.
func Vector(ctx context.Context, p v1.API, q string, at time.Time) (model.Vector, []string, error) {
	v, warnings, err := query(ctx, p, q, at)
	if err != nil {
		return nil, warnings, err
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, warnings, fmt.Errorf("query %s: answered %s, want a vector", q, kind(v))
	}
	return vec, warnings, nil
}

// Matrix runs the instant query q, a range selector such as metric{...}[2m], at time at
// and wants a matrix: the raw samples of each series in the range, with the times
// Prometheus stored them at (for a scrape, when the scrape began). Unlike a rate or an
// increase, nothing is extrapolated, so a caller can choose the samples that bracket an
// interval.
func Matrix(ctx context.Context, p v1.API, q string, at time.Time) (model.Matrix, []string, error) {
	v, warnings, err := query(ctx, p, q, at)
	if err != nil {
		return nil, warnings, err
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, warnings, fmt.Errorf("query %s: answered %s, want a matrix (a range selector)", q, kind(v))
	}
	return m, warnings, nil
}

func query(ctx context.Context, p v1.API, q string, at time.Time) (model.Value, []string, error) {
	v, warnings, _, err := p.Query(ctx, q, at) // infos: notes on the query, nothing to act on
	if err != nil {
		return nil, warnings, fmt.Errorf("query %s: %w", q, err)
	}
	return v, warnings, nil
}

func kind(v model.Value) string {
	if v == nil {
		return "nothing"
	}
	return "a " + v.Type().String()
}
