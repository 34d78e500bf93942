package promapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

func TestCheckURL(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:30083", "https://prom.example:9090", "http://localhost:9090/prometheus"} {
		if err := CheckURL(ok); err != nil {
			t.Errorf("CheckURL(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"localhost:9090", "http://", "ftp://prom:9090", "http://prom:9090/api/v1/query?query=up", "http://prom:9090/#x", "http://prom:90 90"} {
		err := CheckURL(bad)
		if err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("CheckURL(%q) = %v, want an error naming the URL", bad, err)
		}
	}
	if _, err := New("prom:9090"); err == nil {
		t.Error("New accepted a URL without a scheme")
	}
}

// fakeAPI answers /api/v1/query as Prometheus does: the result of each query it knows,
// bad_data for any other.
func fakeAPI(t *testing.T, results map[string]string) (v1.API, *[]string) {
	t.Helper()
	var times []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		if err := r.ParseForm(); err != nil {
			t.Errorf("form: %v", err)
		}
		times = append(times, r.Form.Get("time"))
		w.Header().Set("Content-Type", "application/json")
		res, ok := results[r.Form.Get("query")]
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": "bad_data", "error": "parse error"})
			return
		}
		_, _ = w.Write([]byte(`{"status":"success","data":` + res + `}`))
	}))
	t.Cleanup(srv.Close)
	p, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return p, &times
}

func TestVectorAndMatrix(t *testing.T) {
	p, times := fakeAPI(t, map[string]string{
		`up`:      `{"resultType":"vector","result":[{"metric":{"pod":"hello-1"},"value":[1700000000.5,"1"]}]}`,
		`cpu[1m]`: `{"resultType":"matrix","result":[{"metric":{"pod":"hello-1"},"values":[[1700000000,"1.5"],[1700000015,"2.25"]]}]}`,
		`time()`:  `{"resultType":"scalar","result":[1700000000,"1700000000"]}`,
	})
	ctx := context.Background()
	vec, _, err := Vector(ctx, p, "up", time.Time{})
	if err != nil || len(vec) != 1 || vec[0].Metric["pod"] != "hello-1" || vec[0].Value != 1 {
		t.Errorf("Vector(up) = %v, %v", vec, err)
	}
	at := time.Unix(1700000030, 0)
	m, _, err := Matrix(ctx, p, "cpu[1m]", at)
	if err != nil || len(m) != 1 || len(m[0].Values) != 2 || m[0].Values[1].Value != 2.25 ||
		m[0].Values[1].Timestamp != model.TimeFromUnix(1700000015) {
		t.Errorf("Matrix(cpu[1m]) = %v, %v", m, err)
	}
	// A zero time is Prometheus' own now: no time parameter; otherwise the time asked.
	if (*times)[0] != "" || (*times)[1] != "1700000030" {
		t.Errorf("time parameters sent: %q, want \"\" then 1700000030", *times)
	}
	// The wrong kind of result is an error naming what came back.
	if _, _, err := Vector(ctx, p, "cpu[1m]", time.Time{}); err == nil || !strings.Contains(err.Error(), "a matrix, want a vector") {
		t.Errorf("Vector of a range selector: %v", err)
	}
	if _, _, err := Matrix(ctx, p, "time()", time.Time{}); err == nil || !strings.Contains(err.Error(), "a scalar, want a matrix") {
		t.Errorf("Matrix of a scalar: %v", err)
	}
	// A refused query keeps client_golang's typed error, which the doctor's fixes tell apart.
	_, _, err = Vector(ctx, p, "nonsense{", time.Time{})
	var apiErr *v1.Error
	if !errors.As(err, &apiErr) || apiErr.Type != v1.ErrBadData || !strings.Contains(err.Error(), "query nonsense{") {
		t.Errorf("refused query: %v (%T), want a bad_data *v1.Error naming the query", err, err)
	}
}
