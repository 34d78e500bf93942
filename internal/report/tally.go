// Package report counts what a run of calls did (which backend served each call, which
// errors happened, how long calls took), renders it as a table or JSON, and checks the
// spread and error assertions the e2e relies on.
package report

import (
	"cmp"
	"slices"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// Backend is who served a call, as named in the reply.
type Backend struct {
	Pod       string `json:"pod"`
	Namespace string `json:"namespace,omitempty"`
	Version   string `json:"version,omitempty"`
	Node      string `json:"node,omitempty"`
	Service   string `json:"service,omitempty"`
}

// Tally accumulates results. It is not safe for concurrent use: give each worker its own
// and Merge them.
type Tally struct {
	backends map[Backend]int64
	errors   map[codes.Code]int64
	examples map[codes.Code]string
	hist     *hdrhistogram.Histogram             // microseconds, every successful call
	perPod   map[Backend]*hdrhistogram.Histogram // microseconds, per backend
	ok, fail int64
}

// Latencies are recorded from 1µs to 1 minute, to 3 significant digits overall and to 2
// per backend (1%: enough to tell a slow pod, at a tenth of the memory, since every
// worker of a run keeps one per backend).
const (
	maxLatencyMicros = int64(time.Minute / time.Microsecond)
	digitsOverall    = 3
	digitsPerBackend = 2
)

// NewTally returns an empty tally.
func NewTally() *Tally {
	return &Tally{
		backends: map[Backend]int64{},
		errors:   map[codes.Code]int64{},
		examples: map[codes.Code]string{},
		hist:     hdrhistogram.New(1, maxLatencyMicros, digitsOverall),
		perPod:   map[Backend]*hdrhistogram.Histogram{},
	}
}

// backendHist is b's latency histogram, made on b's first call.
func (t *Tally) backendHist(b Backend) *hdrhistogram.Histogram {
	h := t.perPod[b]
	if h == nil {
		h = hdrhistogram.New(1, maxLatencyMicros, digitsPerBackend)
		t.perPod[b] = h
	}
	return h
}

// Add records one call: the backend from its reply, or its error.
func (t *Tally) Add(b *pb.Backend, err error, latency time.Duration) {
	if err != nil {
		st := status.Convert(err)
		t.fail++
		t.errors[st.Code()]++
		if _, seen := t.examples[st.Code()]; !seen {
			t.examples[st.Code()] = st.Message()
		}
		return
	}
	t.ok++
	key := Backend{Pod: b.GetPod(), Namespace: b.GetNamespace(), Version: b.GetVersion(), Node: b.GetNode(), Service: b.GetService()}
	t.backends[key]++
	us := max(1, latency.Microseconds())
	_ = t.hist.RecordValue(us) // over a minute is clamped by the histogram's error
	_ = t.backendHist(key).RecordValue(us)
}

// Merge adds o into t.
func (t *Tally) Merge(o *Tally) {
	for k, v := range o.backends {
		t.backends[k] += v
	}
	for k, v := range o.errors {
		t.errors[k] += v
	}
	for k, v := range o.examples {
		if _, seen := t.examples[k]; !seen {
			t.examples[k] = v
		}
	}
	t.hist.Merge(o.hist)
	for k, h := range o.perPod {
		t.backendHist(k).Merge(h)
	}
	t.ok += o.ok
	t.fail += o.fail
}

// Calls is the number of calls recorded.
func (t *Tally) Calls() int64 { return t.ok + t.fail }

// Failed is the number of failed calls recorded.
func (t *Tally) Failed() int64 { return t.fail }

// Summary freezes the tally into the report users and the e2e read.
func (t *Tally) Summary(elapsed time.Duration) Summary {
	s := Summary{
		Calls:     t.ok + t.fail,
		OK:        t.ok,
		Failed:    t.fail,
		ElapsedS:  elapsed.Seconds(),
		ByVersion: map[string]int64{},
	}
	if elapsed > 0 {
		s.PerSecond = float64(s.Calls) / elapsed.Seconds()
	}
	for b, n := range t.backends {
		s.Backends = append(s.Backends, BackendCount{Backend: b, Calls: n, Share: share(n, t.ok), Latency: latency(t.perPod[b])})
		s.ByVersion[b.Version] += n
	}
	slices.SortFunc(s.Backends, func(a, b BackendCount) int {
		return cmp.Or(cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.Version, b.Version), cmp.Compare(a.Node, b.Node))
	})
	for c, n := range t.errors {
		s.Errors = append(s.Errors, ErrorCount{Code: c, Count: n, Example: t.examples[c]})
	}
	slices.SortFunc(s.Errors, func(a, b ErrorCount) int { return cmp.Compare(b.Count, a.Count) })
	if t.ok > 0 {
		s.Latency = latency(t.hist)
	}
	return s
}

// latency is h's percentiles in milliseconds; nil for an empty or missing histogram.
func latency(h *hdrhistogram.Histogram) *Latency {
	if h == nil || h.TotalCount() == 0 {
		return nil
	}
	ms := func(q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1000 }
	return &Latency{P50: ms(50), P90: ms(90), P99: ms(99), P999: ms(99.9), Max: float64(h.Max()) / 1000, Mean: h.Mean() / 1000}
}

func share(n, total int64) float64 {
	if total == 0 {
		return 0
	}
	return float64(n) / float64(total)
}
