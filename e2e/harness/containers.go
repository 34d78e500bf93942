//go:build e2e

package harness

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/promapi"
)

// What bounds the container figures the kit's Prometheus holds (deploy/kind/prometheus):
//   - CAdvisorScrape: it scrapes every kubelet's /metrics/cadvisor every 15 s
//     (prometheus.yaml's scrapeInterval; the servers' PodMonitor has its own,
//     ScrapeInterval).
//   - CAdvisorLag: a scrape returns the stats the kubelet's cAdvisor collected at its
//     last housekeeping, every 10 s for a container whose stats change and backing off
//     to at most 15 s for one whose do not (the kubelet's maxHousekeepingInterval,
//     pkg/kubelet/cadvisor/cadvisor_linux.go, with dynamic housekeeping on); and the
//     ServiceMonitor stores each sample at its scrape's time, not cAdvisor's. So a sample
//     stored at T holds the counters as they were at some time in [T-15 s, T].
//
// An interval [start, end] is bracketed by the last sample stored at or before start
// (it holds nothing after start) and the first stored at or after end+CAdvisorLag (it holds
// everything up to end): the CPU between them is the interval's, plus the idle use of at
// most CAdvisorScrape+CAdvisorLag on each side.
const (
	CAdvisorScrape = 15 * time.Second
	CAdvisorLag    = 15 * time.Second
)

// Containers names the containers of one component of a call's path as cAdvisor labels
// them: a namespace, a container name, and the pods (none: every pod that has one).
type Containers struct {
	Namespace, Container string
	Pods                 []string
	// New: the containers started inside the interval (a load's client), so they have no
	// sample before it and count from zero, as a new cgroup's CPU counter does. Otherwise
	// a container without a sample before the interval is an error: it was not scraped,
	// or it restarted.
	New bool
}

func (c Containers) selector() string {
	sel := fmt.Sprintf(`namespace=%q, container=%q`, c.Namespace, c.Container)
	if len(c.Pods) > 0 {
		sel += fmt.Sprintf(`, pod=~%q`, anyOf(c.Pods))
	}
	return "{" + sel + "}"
}

func (c Containers) String() string {
	if len(c.Pods) == 0 {
		return c.Namespace + "/*/" + c.Container
	}
	return fmt.Sprintf("%s/%s/%s", c.Namespace, strings.Join(c.Pods, ","), c.Container)
}

// Usage is what cAdvisor recorded of some containers over an interval.
type Usage struct {
	// CPUSeconds: container_cpu_usage_seconds_total's increase between the bracketing
	// samples, summed over the containers.
	CPUSeconds float64
	// MaxWorkingSet: each container's highest container_memory_working_set_bytes in the
	// samples between them, summed over the containers (their footprint together).
	MaxWorkingSet float64
	// Pods is how many pods had the container; From and To, the earliest bracketing sample
	// before the interval and the latest after it (zero From: every container was New).
	Pods     int
	From, To time.Time
}

// Answers fails the test at once, with the fix, when the kit's Prometheus does not
// answer: a lane that needs it should not fail at its first figure.
func (p *Prometheus) Answers(t testing.TB) {
	t.Helper()
	if _, err := p.query("up"); err != nil {
		t.Fatalf("the kit's Prometheus does not answer (make kind-up deploys it: deploy/kind/prometheus): %v", err)
	}
}

// series is one container's samples of one metric, by the labels that name it.
type series struct {
	key     string // pod and cgroup: a restarted container is a new series
	pod     string
	samples []model.SamplePair
}

// samples returns the raw samples of metric for c stored in [from, to].
func (p *Prometheus) samples(ctx context.Context, metric string, c Containers, from, to time.Time) ([]series, error) {
	rng := model.Duration(to.Sub(from).Round(time.Second) + time.Second)
	q := fmt.Sprintf("%s%s[%s]", metric, c.selector(), rng)
	ctx, cancel := context.WithTimeout(ctx, APIRequest)
	defer cancel()
	m, _, err := promapi.Matrix(ctx, p.api, q, to)
	if err != nil {
		return nil, err
	}
	var out []series
	for _, ss := range m {
		var in []model.SamplePair
		for _, sp := range ss.Values {
			if !sp.Timestamp.Time().Before(from) {
				in = append(in, sp)
			}
		}
		out = append(out, series{key: string(ss.Metric["pod"]) + " " + string(ss.Metric["id"]), pod: string(ss.Metric["pod"]), samples: in})
	}
	slices.SortFunc(out, func(a, b series) int { return strings.Compare(a.key, b.key) })
	return out, nil
}

// errNotYet: Prometheus has not stored a sample after the interval for every container.
var errNotYet = errors.New("no sample after the interval yet")

// usage computes Usage for c over [start, end] from what Prometheus holds now.
func (p *Prometheus) usage(ctx context.Context, c Containers, start, end time.Time) (Usage, error) {
	// A sample before start: one scrape interval back, more should scrapes be missed (the
	// last one counts, however many there are). After the end: CAdvisorLag, then up to a
	// scrape interval.
	from, after := start.Add(-4*CAdvisorScrape), end.Add(CAdvisorLag)
	to := time.Now()
	cpu, err := p.samples(ctx, "container_cpu_usage_seconds_total", c, from, to)
	if err != nil {
		return Usage{}, err
	}
	if len(cpu) == 0 {
		// A container that started moments ago may not have been scraped yet.
		return Usage{}, fmt.Errorf("%s: %w: no container_cpu_usage_seconds_total series between %s and %s", c, errNotYet, from.Format(time.TimeOnly), to.Format(time.TimeOnly))
	}
	var u Usage
	pods := map[string]bool{}
	windows := map[string][2]model.Time{}
	for _, s := range cpu {
		var before, past *model.SamplePair
		for i := range s.samples {
			sp := &s.samples[i]
			if !sp.Timestamp.Time().After(start) {
				before = sp
			}
			if past == nil && !sp.Timestamp.Time().Before(after) {
				past = sp
			}
		}
		if past == nil {
			return Usage{}, fmt.Errorf("%s, pod %s: %w (stored at or after %s)", c, s.pod, errNotYet, after.Format(time.TimeOnly))
		}
		base, since := model.SampleValue(0), model.Time(0)
		switch {
		case before != nil:
			base, since = before.Value, before.Timestamp
		case !c.New:
			return Usage{}, fmt.Errorf("%s, pod %s: no sample at or before the interval's start %s: not scraped then, or restarted since", c, s.pod, start.Format(time.TimeOnly))
		}
		if past.Value < base {
			return Usage{}, fmt.Errorf("%s, pod %s: the CPU counter went down (%v to %v): the container restarted", c, s.pod, base, past.Value)
		}
		u.CPUSeconds += float64(past.Value - base)
		pods[s.pod] = true
		windows[s.key] = [2]model.Time{since, past.Timestamp}
		if since != 0 && (u.From.IsZero() || since.Time().Before(u.From)) {
			u.From = since.Time()
		}
		if past.Timestamp.Time().After(u.To) {
			u.To = past.Timestamp.Time()
		}
	}
	u.Pods = len(pods)
	mem, err := p.samples(ctx, "container_memory_working_set_bytes", c, from, to)
	if err != nil {
		return Usage{}, err
	}
	for _, s := range mem {
		w, ok := windows[s.key]
		if !ok {
			continue
		}
		top := 0.0
		for _, sp := range s.samples {
			if sp.Timestamp > w[0] && sp.Timestamp <= w[1] {
				top = max(top, float64(sp.Value))
			}
		}
		u.MaxWorkingSet += top
	}
	return u, nil
}

// WaitUsage returns c's Usage over [start, end] once Prometheus has stored the samples
// that bracket it: a scrape at or after end+CAdvisorLag, so at most CAdvisorLag plus a
// scrape interval after end, and timeout (a few more intervals) for a scrape that is late
// or missed. The containers must still run until then: a container that exits takes its
// series with it.
func (p *Prometheus) WaitUsage(t testing.TB, c Containers, start, end time.Time, timeout time.Duration) Usage {
	t.Helper()
	deadline := end.Add(CAdvisorLag + timeout)
	for {
		u, err := p.usage(context.Background(), c, start, end)
		switch {
		case err == nil:
			return u
		case !errors.Is(err, errNotYet):
			t.Fatalf("container figures: %v", err)
		case time.Now().After(deadline):
			t.Fatalf("container figures: %v, %s after the interval's end", err, CAdvisorLag+timeout)
		}
		time.Sleep(time.Second)
	}
}

// WaitContainersScraped waits until Prometheus holds a CPU sample of every container of c (of at
// least one when c names no pods), so that an interval starting now has a sample before
// it: a pod that has just started is first scraped up to a scrape interval and cAdvisor's
// next housekeeping later.
func (p *Prometheus) WaitContainersScraped(t testing.TB, c Containers, timeout time.Duration) {
	t.Helper()
	var seen []string
	Eventually(t, timeout, time.Second, fmt.Sprintf("Prometheus has scraped %s", c), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), APIRequest)
		defer cancel()
		vec, _, err := promapi.Vector(ctx, p.api, "container_cpu_usage_seconds_total"+c.selector(), time.Time{})
		if err != nil {
			t.Fatalf("container figures: %v", err)
		}
		seen = seen[:0]
		for _, s := range vec {
			if pod := string(s.Metric["pod"]); !slices.Contains(seen, pod) {
				seen = append(seen, pod)
			}
		}
		if len(c.Pods) == 0 {
			return len(seen) > 0
		}
		return len(seen) == len(c.Pods)
	})
}
