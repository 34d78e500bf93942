//go:build e2e

package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/promapi"
)

// The kit's Prometheus in the kind cluster (deploy/kind/prometheus): it scrapes the server
// pods of every overlay that has kustomize/components/prometheus-rule and evaluates its
// rules; the e2e overlays add e2e/components/fast-alerts, whose timings bound the waits
// below.
const (
	// ServerPods selects every kit server (hello, hello-v2, goodbye): the PodMonitor's own
	// selector.
	ServerPods = "app.kubernetes.io/part-of=grpc-k8s-kit,app.kubernetes.io/component=server"
	// ScrapeInterval and EvalInterval are fast-alerts' (e2e/components/fast-alerts).
	ScrapeInterval = 5 * time.Second
	EvalInterval   = 10 * time.Second
	// RateWindow is fast-alerts' rate window: a change has left the rules' view once this
	// long has passed (plus AlertLag).
	RateWindow = time.Minute
	// AlertLag bounds how long a change in the servers' counters takes to reach an alert's
	// state: two scrapes (rate needs two samples of a series) and two evaluations (the
	// recording rules, then the alert, may fall in different rounds), plus a margin of 10 s
	// for the reloads and the busy node (what the runs took is in docs/results/e2e.md).
	AlertLag = 2*ScrapeInterval + 2*EvalInterval + 10*time.Second
	// RecordedRate is the recording rule that holds every server pod's calls per second
	// (kustomize/components/prometheus-rule): every alert of the kit reads it.
	RecordedRate = "namespace_pod:grpc_server_handled:rate"
	// WatchedWithin bounds how long a new namespace's pods take to be watched: scraped, and
	// their rates recorded by the namespace's own copy of the rules. The operator writes the
	// scrape configuration (a Secret) and the rules (a ConfigMap) when the PodMonitor and the
	// PrometheusRule appear; the kubelet projects each into Prometheus' pod at its next
	// periodic sync of the pod (every minute plus a jitter of up to half of it:
	// pkg/kubelet/pod_workers.go, workerResyncIntervalJitterFactor), the reloader reloads
	// Prometheus within seconds, and a rate needs two scrapes and an evaluation (20 s). The
	// two files may reach the pod a sync apart (a sync that falls between the operator's
	// two writes), so targets that are up do not mean the rules are loaded: the wait asks
	// for both, and allows two syncs: 2 × 90 + 5 + 20 s, and 35 s of margin.
	WatchedWithin = 4 * time.Minute
)

// Prometheus is a client of the kit's Prometheus API, published on the host by kind-up.
type Prometheus struct {
	URL string
	api promv1.API
}

// prometheusURL reads the host port of Prometheus' API from its Service
// (deploy/kind/prometheus/service.yaml, the one place it is written): kind publishes the
// NodePort on 127.0.0.1.
func prometheusURL(root string) (string, error) {
	f := filepath.Join(root, "deploy", "kind", "prometheus", "service.yaml")
	b, err := os.ReadFile(f)
	if err != nil {
		return "", fmt.Errorf("the Prometheus Service: %w", err)
	}
	var svc corev1.Service
	if err := sigsyaml.Unmarshal(b, &svc); err != nil {
		return "", fmt.Errorf("%s: %w", f, err)
	}
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			return fmt.Sprintf("http://127.0.0.1:%d", p.NodePort), nil
		}
	}
	return "", fmt.Errorf("%s: no nodePort: the suite reaches Prometheus there", f)
}

// NewPrometheus returns a client of the Prometheus at url.
func NewPrometheus(url string) (*Prometheus, error) {
	api, err := promapi.New(url)
	if err != nil {
		return nil, err
	}
	return &Prometheus{URL: url, api: api}, nil
}

// Query runs an instant query at Prometheus' now and wants a vector.
func (p *Prometheus) Query(t testing.TB, q string) model.Vector {
	t.Helper()
	v, err := p.query(q)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (p *Prometheus) query(q string) (model.Vector, error) {
	ctx, cancel := context.WithTimeout(context.Background(), APIRequest)
	defer cancel()
	vec, _, err := promapi.Vector(ctx, p.api, q, time.Time{})
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: %w", p.URL, err)
	}
	return vec, nil
}

// anyOf is a PromQL regular expression that matches exactly one of vals (label values such
// as pod or namespace names, whose dots must not match any character).
func anyOf(vals []string) string {
	quoted := make([]string, len(vals))
	for i, v := range vals {
		quoted[i] = regexp.QuoteMeta(v)
	}
	return strings.Join(quoted, "|")
}

// ByPod is a query's values keyed by their pod label.
func ByPod(v model.Vector) map[string]float64 {
	m := map[string]float64{}
	for _, s := range v {
		m[string(s.Metric["pod"])] = float64(s.Value)
	}
	return m
}

// WaitScraped waits until every Running server pod of the namespaces is a target that is
// up and has a RecordedRate (its counters start at zero, so an idle pod has one too), and
// returns those pods.
func (s *Suite) WaitScraped(t testing.TB, namespaces ...string) []string {
	t.Helper()
	var pods, missing []string
	watched := false
	defer func() { // Eventually's Fatal runs this: say which pods were not watched
		if !watched {
			t.Logf("not watched: %s", strings.Join(missing, ", "))
		}
	}()
	took := Eventually(t, WatchedWithin, Poll, "every server pod of "+strings.Join(namespaces, ", ")+" is an up target with a recorded rate", func() bool {
		pods, missing = pods[:0], missing[:0]
		for _, ns := range namespaces {
			up, err := s.Prometheus.query(fmt.Sprintf("up{namespace=%q} == 1", ns))
			if err != nil {
				t.Log(err)
				return false
			}
			recorded, err := s.Prometheus.query(fmt.Sprintf("count by (pod) (%s{namespace=%q})", RecordedRate, ns))
			if err != nil {
				t.Log(err)
				return false
			}
			isUp, isRecorded := ByPod(up), ByPod(recorded)
			for _, p := range s.Kube.Pods(t, ns, ServerPods) {
				if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
					continue
				}
				pods = append(pods, p.Name)
				_, u := isUp[p.Name]
				_, r := isRecorded[p.Name]
				switch {
				case !u:
					missing = append(missing, ns+"/"+p.Name+" (not an up target)")
				case !r:
					missing = append(missing, ns+"/"+p.Name+" (no "+RecordedRate+")")
				}
			}
		}
		return len(pods) > 0 && len(missing) == 0
	})
	watched = true
	t.Logf("%d server pods of %s are up targets with recorded rates after %s", len(pods), strings.Join(namespaces, ", "), took.Round(time.Second))
	return slices.Sorted(slices.Values(pods))
}

// AlertState is an alert's state for one set of labels, as ALERTS shows it.
type AlertState struct {
	State  string // pending or firing
	Labels model.Metric
}

// Alerts are the alert's pending and firing instances in the namespaces now.
func (s *Suite) Alerts(t testing.TB, alert string, namespaces ...string) []AlertState {
	t.Helper()
	var out []AlertState
	for _, smp := range s.Prometheus.Query(t, fmt.Sprintf("ALERTS{alertname=%q, namespace=~%q}", alert, anyOf(namespaces))) {
		out = append(out, AlertState{State: string(smp.Metric["alertstate"]), Labels: smp.Metric})
	}
	return out
}

// AwaitAlert polls the alert in ns until an instance for which match is true is pending or
// firing, and fails the test if none is within timeout. It returns how long that took and
// the instance.
func (s *Suite) AwaitAlert(t testing.TB, alert, ns string, timeout time.Duration, match func(model.Metric) bool) (time.Duration, AlertState) {
	t.Helper()
	var found AlertState
	took := Eventually(t, timeout, Poll, alert+" pending in "+ns, func() bool {
		for _, a := range s.Alerts(t, alert, ns) {
			if match(a.Labels) {
				found = a
				return true
			}
		}
		return false
	})
	return took, found
}

// QuietAlert polls the alert in the namespaces for d and fails the test if an instance for
// which match is true is pending or firing meanwhile. It watches for the whole of d either
// way, so what the caller does next happens at the time it planned.
func (s *Suite) QuietAlert(t testing.TB, alert string, d time.Duration, match func(model.Metric) bool, namespaces ...string) {
	t.Helper()
	end := time.Now().Add(d)
	reported := false
	for time.Now().Before(end) {
		for _, a := range s.Alerts(t, alert, namespaces...) {
			if !reported && match(a.Labels) {
				t.Errorf("%s in %s: %s for %v, want none", alert, a.Labels["namespace"], a.State, a.Labels)
				reported = true
			}
		}
		time.Sleep(Poll)
	}
}

// AwaitNoAlert polls the alert in ns until no instance is pending or firing, fails the
// test if one still is after timeout, and returns how long it took.
func (s *Suite) AwaitNoAlert(t testing.TB, alert, ns string, timeout time.Duration) time.Duration {
	t.Helper()
	return Eventually(t, timeout, Poll, alert+" cleared in "+ns, func() bool { return len(s.Alerts(t, alert, ns)) == 0 })
}
