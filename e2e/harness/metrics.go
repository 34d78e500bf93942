//go:build e2e

package harness

import (
	"bytes"
	"fmt"
	"io"

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
series:
	for _, m := range f.GetMetric() {
		for name, want := range match {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == name {
					found = l.GetValue() == want
					break
				}
			}
			if !found {
				continue series
			}
		}
		if m.GetCounter() == nil {
			return 0, fmt.Errorf("metric %s is a %s, not a counter", metric, f.GetType())
		}
		sum += m.GetCounter().GetValue()
	}
	return sum, nil
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
