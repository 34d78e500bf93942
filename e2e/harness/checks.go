//go:build e2e

package harness

import (
	"strings"
	"testing"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

// CheckSpread asserts every backend's share is within tol of an even split over want pods.
func CheckSpread(t testing.TB, what string, s report.Summary, want int, tol float64) {
	t.Helper()
	if s.Failed != 0 {
		t.Errorf("%s: %d calls failed: %+v", what, s.Failed, s.Errors)
	}
	if len(s.Backends) != want {
		t.Errorf("%s: %d backends served calls, want %d: %+v", what, len(s.Backends), want, s.Backends)
	}
	if k := s.Skew(); k > tol {
		t.Errorf("%s: skew %.3f > %.3f: %+v", what, k, tol, s.Backends)
	}
}

// CheckRouting asserts every call was answered by the expected service on pods whose
// names start with podPrefix.
func CheckRouting(t testing.TB, what string, s report.Summary, service, podPrefix string) {
	t.Helper()
	for _, b := range s.Backends {
		if b.Service != service || !strings.HasPrefix(b.Pod, podPrefix) {
			t.Errorf("%s: %d calls answered by %s (service %s), want only %s pods of %s", what, b.Calls, b.Pod, b.Service, podPrefix, service)
		}
	}
}

// NoFailures: a pod removal (rolling restart, scale in) costs no call.
func NoFailures(t testing.TB, what string, s report.Summary) {
	t.Helper()
	if s.Failed != 0 {
		t.Errorf("%s: %d of %d calls failed: %+v", what, s.Failed, s.Calls, s.Errors)
	}
}

// LastServed is the end of the last timeline bucket ending by until in which pod answered
// a call. Calls are counted when they end, so it is when the pod's last call before until
// was answered, to the bucket's width.
func LastServed(s report.Summary, pod string, until time.Time) (time.Time, bool) {
	tl := s.Timeline
	if tl == nil || tl.Bucket <= 0 {
		return time.Time{}, false
	}
	var last time.Time
	for i, r := range tl.Rates(pod) {
		if end := tl.Start.Add(time.Duration(i+1) * tl.Bucket); r > 0 && !end.After(until) {
			last = end
		}
	}
	return last, !last.IsZero()
}

// FirstServed is the end of the first timeline bucket in which pod answered a call.
func FirstServed(s report.Summary, pod string) (time.Time, bool) {
	return FirstServedAfter(s, pod, time.Time{})
}

// FirstServedAfter is the end of the first timeline bucket starting at or after since in
// which pod answered a call.
func FirstServedAfter(s report.Summary, pod string, since time.Time) (time.Time, bool) {
	tl := s.Timeline
	if tl == nil || tl.Bucket <= 0 {
		return time.Time{}, false
	}
	for i, r := range tl.Rates(pod) {
		if start := tl.Start.Add(time.Duration(i) * tl.Bucket); r > 0 && !start.Before(since) {
			return start.Add(tl.Bucket), true
		}
	}
	return time.Time{}, false
}
