//go:build e2e

package harness

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// SumCounter reads Prometheus text exposition from r and sums the counter metric over
// its series whose labels include every pair of match.
func SumCounter(r io.Reader, metric string, match map[string]string) (float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return 0, fmt.Errorf("parse metrics: %w", err)
	}
	f, ok := families[metric]
	if !ok {
		return 0, nil // no series yet: nothing counted
	}
	var sum float64
	for _, m := range f.GetMetric() {
		if !hasLabels(m, match) {
			continue
		}
		if m.GetCounter() == nil {
			return 0, fmt.Errorf("metric %s is a %s, not a counter", metric, f.GetType())
		}
		sum += m.GetCounter().GetValue()
	}
	return sum, nil
}

// Gauge reads Prometheus text exposition from r: the value of the gauge metric's first
// series whose labels include every pair of match, and whether there is one.
func Gauge(r io.Reader, metric string, match map[string]string) (v float64, found bool, err error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return 0, false, fmt.Errorf("parse metrics: %w", err)
	}
	for _, m := range families[metric].GetMetric() {
		if !hasLabels(m, match) {
			continue
		}
		if m.GetGauge() == nil {
			return 0, false, fmt.Errorf("metric %s is a %s, not a gauge", metric, families[metric].GetType())
		}
		return m.GetGauge().GetValue(), true, nil
	}
	return 0, false, nil
}

func hasLabels(m *dto.Metric, match map[string]string) bool {
	for name, want := range match {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				found = l.GetValue() == want
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// FeatureGate is whether each Kubernetes component of the cluster has the feature gate
// name on, from the kubernetes_feature_enabled gauge every component serves: the API
// server's own /metrics and every node's kubelet's, through the API server's node proxy.
// Keys are "kube-apiserver" and "kubelet NODE". A component whose metrics lack the gate
// (a version that does not know it) fails the test.
func (s *Suite) FeatureGate(t testing.TB, name string) map[string]bool {
	t.Helper()
	paths := map[string]string{"kube-apiserver": "/metrics"}
	for _, n := range s.Kube.Nodes(t) {
		paths["kubelet "+n] = "/api/v1/nodes/" + n + "/proxy/metrics"
	}
	out := map[string]bool{}
	for who, path := range paths {
		b, err := s.Kube.Exec("get", "--raw", path)
		if err != nil {
			t.Fatalf("%s: kubectl get --raw %s: %v: %s", who, path, err, b)
		}
		v, found, err := Gauge(bytes.NewReader(b), "kubernetes_feature_enabled", map[string]string{"name": name})
		if err != nil || !found {
			t.Fatalf("%s: no kubernetes_feature_enabled{name=%q} in %s (%v): a version without that gate?", who, name, path, err)
		}
		out[who] = v == 1
	}
	return out
}

// Counter is a pod's grpc_server_* counter for method (summed over its other labels), from
// its own /metrics through the API server's pod proxy (no port-forward needed).
func (s *Suite) Counter(ns, pod, metric, method string) (int64, error) {
	out, err := s.Kube.PodProxy("GET", ns, pod, AdminPort, "metrics")
	if err != nil {
		return 0, fmt.Errorf("%w: %s", err, out) // err names the pod and the path
	}
	v, err := SumCounter(bytes.NewReader(out), metric, map[string]string{"grpc_method": method})
	if err != nil {
		return 0, fmt.Errorf("%s/%s: %w", ns, pod, err)
	}
	return int64(v), nil
}

// Handled is how many SayHello calls a pod has answered.
func (s *Suite) Handled(ns, pod string) (int64, error) {
	return s.Counter(ns, pod, "grpc_server_handled_total", "SayHello")
}
