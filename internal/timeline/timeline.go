// Package timeline records a load run as a time series: how many calls each
// pod served per time bucket, which calls failed with which gRPC code, and
// scenario events (a restart begun, a pod killed, a rollout done) marked
// along the way.
//
// A Recorder is safe for concurrent use by many callers. Its memory grows
// with the number of buckets × pods (successful calls are counted, not
// stored) plus at most MaxFailures individually kept failed calls, so a long
// run stays bounded. Series takes a snapshot that can be written as CSV or
// JSON (see WriteCSV, WriteJSON) and read back from JSON (ReadJSON), for
// example by an end-to-end test that adds its own events with AddEvent and
// then plots the result.
package timeline

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MaxFailures is how many failed calls a Recorder keeps individually (with
// their exact offset and code). Failed calls past it are still counted in
// the Series' Points and in FailuresDropped.
const MaxFailures = 10000

// Point counts the calls that ended within one bucket, for one pod and code.
//
// Successful calls have Code codes.OK and the serving pod; failed calls have
// their gRPC code and usually an empty Pod (the pod is unknown when a call
// fails before a response). Points with no calls are left out of a Series.
type Point struct {
	// Offset is the start of the bucket, relative to Series.Start.
	Offset time.Duration
	Pod    string
	Code   codes.Code
	// Calls is the number of calls that ended in the bucket; the rate is
	// Calls / Series.Bucket.Seconds().
	Calls int
}

// Failure is one failed call.
type Failure struct {
	// Offset is when the call ended, relative to Series.Start.
	Offset time.Duration
	Code   codes.Code
	// Pod is the pod that answered with the error or, when none did, the pod the call was
	// sent to, if the client knows it (RecordSent).
	Pod string
	// Latency is how long the call took (0 when not recorded): Offset - Latency is when
	// it was sent.
	Latency time.Duration
}

// Event is a labelled moment of a scenario, such as "pod killed".
type Event struct {
	// Offset is relative to Series.Start; it may be negative for an event
	// before the run started.
	Offset time.Duration
	Label  string
}

// CodeCount is the number of calls that ended with one gRPC code.
type CodeCount struct {
	Code  codes.Code
	Calls int
}

// Series is a snapshot of a Recorder, or a series read back by ReadJSON.
type Series struct {
	// Start is the time offsets are relative to.
	Start time.Time
	// Bucket is the width of a bucket; Point offsets are multiples of it.
	Bucket time.Duration
	// Pods are the distinct non-empty pod names of Points, sorted.
	Pods []string
	// Points are sorted by Offset, then Pod, then Code.
	Points []Point
	// Failures are the first MaxFailures failed calls, sorted by Offset.
	Failures []Failure
	// FailuresDropped counts the failed calls not kept in Failures.
	FailuresDropped int
	// Events are sorted by Offset (ties keep the order they were added).
	Events []Event
}

type pointKey struct {
	bucket int64
	pod    string
	code   codes.Code
}

// Recorder accumulates calls and events; create it with New.
type Recorder struct {
	start  time.Time
	bucket time.Duration

	mu       sync.Mutex
	counts   map[pointKey]int
	failures []Failure
	dropped  int
	events   []Event
}

// New returns a Recorder whose offsets count from start and whose calls are
// counted in buckets of the given width (such as 250ms or 1s). It panics if
// bucket is not positive.
func New(start time.Time, bucket time.Duration) *Recorder {
	if bucket <= 0 {
		panic("timeline: bucket must be positive")
	}
	return &Recorder{
		start:  start,
		bucket: bucket,
		counts: make(map[pointKey]int),
	}
}

// Record counts one call that ended at at. pod is the pod that served it
// ("" when unknown, as for most failed calls); err is nil for a success,
// otherwise its gRPC code (status.Code(err)) is kept. A call that ends before
// the recorder's start is counted at offset 0.
func (r *Recorder) Record(at time.Time, pod string, err error) {
	r.RecordSent(at, 0, pod, "", err)
}

// RecordSent is Record for a call whose latency is known and, for a failed call, the pod
// it was sent to (sentTo, "" when unknown; a client that balances itself learns which pod
// answers from which connection): its Failure keeps both, so that a node's loss shows when
// the last call to its pods was sent. The Points count failed calls without sentTo, as
// Record does.
func (r *Recorder) RecordSent(at time.Time, latency time.Duration, pod, sentTo string, err error) {
	off := max(at.Sub(r.start), 0)
	code := status.Code(err)
	key := pointKey{bucket: int64(off / r.bucket), pod: pod, code: code}

	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[key]++
	if code == codes.OK {
		return
	}
	if len(r.failures) < MaxFailures {
		f := Failure{Offset: off, Code: code, Pod: pod, Latency: latency}
		if f.Pod == "" {
			f.Pod = sentTo
		}
		r.failures = append(r.failures, f)
	} else {
		r.dropped++
	}
}

// Mark adds a scenario event at at.
func (r *Recorder) Mark(at time.Time, label string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, Event{Offset: at.Sub(r.start), Label: label})
}

// Series returns a snapshot of what was recorded so far. The Recorder can
// go on recording; the snapshot shares no memory with it.
func (r *Recorder) Series() Series {
	r.mu.Lock()
	s := Series{
		Start:           r.start,
		Bucket:          r.bucket,
		Points:          make([]Point, 0, len(r.counts)),
		Failures:        slices.Clone(r.failures),
		FailuresDropped: r.dropped,
		Events:          slices.Clone(r.events),
	}
	for k, n := range r.counts {
		s.Points = append(s.Points, Point{
			Offset: time.Duration(k.bucket) * r.bucket,
			Pod:    k.pod,
			Code:   k.code,
			Calls:  n,
		})
	}
	r.mu.Unlock()

	s.normalize()
	return s
}

// normalize sorts Points, Failures and Events and derives Pods from Points.
func (s *Series) normalize() {
	slices.SortFunc(s.Points, func(a, b Point) int {
		return cmp.Or(cmp.Compare(a.Offset, b.Offset), cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.Code, b.Code))
	})
	slices.SortStableFunc(s.Failures, func(a, b Failure) int { return cmp.Compare(a.Offset, b.Offset) })
	slices.SortStableFunc(s.Events, func(a, b Event) int { return cmp.Compare(a.Offset, b.Offset) })
	s.Pods = s.Pods[:0]
	for _, p := range s.Points {
		if p.Pod != "" {
			s.Pods = append(s.Pods, p.Pod)
		}
	}
	slices.Sort(s.Pods)
	s.Pods = slices.Compact(s.Pods)
}

// AddEvent adds an event at at (its offset counted from s.Start), keeping
// Events sorted. It is meant for a Series read back with ReadJSON, for
// example to mark what a test did while the recorded program ran. Offsets
// use the wall clock when s.Start came from a file, so at and s.Start should
// come from clocks that agree.
func (s *Series) AddEvent(at time.Time, label string) {
	s.Events = append(s.Events, Event{Offset: at.Sub(s.Start), Label: label})
	slices.SortStableFunc(s.Events, func(a, b Event) int { return cmp.Compare(a.Offset, b.Offset) })
}

// Buckets returns the number of buckets from offset 0 through the last
// bucket holding a Point.
func (s Series) Buckets() int {
	if len(s.Points) == 0 || s.Bucket <= 0 {
		return 0
	}
	last := slices.MaxFunc(s.Points, func(a, b Point) int { return cmp.Compare(a.Offset, b.Offset) })
	return int(last.Offset/s.Bucket) + 1
}

// Rates returns, for each of the Buckets, the rate in calls per second of
// the successful calls that pod served (zero where it served none).
func (s Series) Rates(pod string) []float64 {
	rates := make([]float64, s.Buckets())
	if len(rates) == 0 {
		return rates
	}
	for _, p := range s.Points {
		if i := int(p.Offset / s.Bucket); p.Pod == pod && p.Code == codes.OK && i >= 0 && i < len(rates) {
			rates[i] += float64(p.Calls) / s.Bucket.Seconds()
		}
	}
	return rates
}

// Calls returns the number of calls recorded, successful or not.
func (s Series) Calls() int {
	n := 0
	for _, p := range s.Points {
		n += p.Calls
	}
	return n
}

// FailedByCode counts the failed calls per code, sorted by code. Unlike
// Failures it includes the failed calls past MaxFailures.
func (s Series) FailedByCode() []CodeCount {
	by := map[codes.Code]int{}
	for _, p := range s.Points {
		if p.Code != codes.OK {
			by[p.Code] += p.Calls
		}
	}
	out := make([]CodeCount, 0, len(by))
	for c, n := range by {
		out = append(out, CodeCount{Code: c, Calls: n})
	}
	slices.SortFunc(out, func(a, b CodeCount) int { return cmp.Compare(a.Code, b.Code) })
	return out
}

// Failed returns the number of failed calls, including those past
// MaxFailures.
func (s Series) Failed() int {
	n := 0
	for _, c := range s.FailedByCode() {
		n += c.Calls
	}
	return n
}
