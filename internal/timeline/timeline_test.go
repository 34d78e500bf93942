package timeline

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var t0 = time.Date(2026, 1, 2, 15, 4, 5, 123456789, time.UTC)

func unavailable() error { return status.Error(codes.Unavailable, "connection refused") }

// TestConcurrentRecord records from many goroutines while others take
// snapshots and mark events; run it with -race.
func TestConcurrentRecord(t *testing.T) {
	const (
		workers = 8
		calls   = 2000 // per worker
	)
	r := New(t0, 250*time.Millisecond)
	pods := []string{"hello-7d9f8c6b5-x2x9k", "hello-7d9f8c6b5-abcde", "hello-7d9f8c6b5-zzzzz"}

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				at := t0.Add(time.Duration(i) * time.Millisecond) // 0 .. 2s
				if i%100 == 99 {
					r.Record(at, "", unavailable())
					continue
				}
				r.Record(at, pods[(w+i)%len(pods)], nil)
			}
		})
	}
	stop := make(chan struct{})
	var snaps sync.WaitGroup
	snaps.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			s := r.Series()
			if got := s.Calls(); got > workers*calls {
				t.Errorf("snapshot has %d calls, more than %d", got, workers*calls)
				return
			}
			r.Mark(time.Now(), "snapshot")
		}
	})
	wg.Wait()
	close(stop)
	snaps.Wait()

	s := r.Series()
	if got, want := s.Calls(), workers*calls; got != want {
		t.Errorf("Calls() = %d, want %d", got, want)
	}
	wantFailed := workers * calls / 100
	if diff := cmp.Diff([]CodeCount{{codes.Unavailable, wantFailed}}, s.FailedByCode()); diff != "" {
		t.Errorf("FailedByCode() (-want +got):\n%s", diff)
	}
	if got := len(s.Failures); got != wantFailed {
		t.Errorf("len(Failures) = %d, want %d", got, wantFailed)
	}
	wantPods := []string{"hello-7d9f8c6b5-abcde", "hello-7d9f8c6b5-x2x9k", "hello-7d9f8c6b5-zzzzz"}
	if diff := cmp.Diff(wantPods, s.Pods); diff != "" {
		t.Errorf("Pods (-want +got):\n%s", diff)
	}
	if got, want := s.Buckets(), 8; got != want { // 0 .. 1.999 s in 250 ms buckets
		t.Errorf("Buckets() = %d, want %d", got, want)
	}
	// Every bucket holds 250 ms × 8 workers = 2000 calls in all.
	for b := range s.Buckets() {
		total := 0.0
		for _, pod := range s.Pods {
			total += s.Rates(pod)[b] * s.Bucket.Seconds()
		}
		for _, p := range s.Points {
			if p.Code != codes.OK && p.Offset == time.Duration(b)*s.Bucket {
				total += float64(p.Calls)
			}
		}
		if total != 2000 {
			t.Errorf("bucket %d holds %v calls, want 2000", b, total)
		}
	}
	for i := 1; i < len(s.Points); i++ {
		if s.Points[i].Offset < s.Points[i-1].Offset {
			t.Fatalf("Points not sorted by offset at %d", i)
		}
	}
}

func TestBucketsAndRates(t *testing.T) {
	r := New(t0, time.Second)
	r.Record(t0.Add(-time.Second), "a", nil) // before start: counted at 0
	r.Record(t0.Add(100*time.Millisecond), "a", nil)
	r.Record(t0.Add(2500*time.Millisecond), "b", nil)
	r.Record(t0.Add(2600*time.Millisecond), "b", nil)
	r.Record(t0.Add(2700*time.Millisecond), "", status.Error(codes.DeadlineExceeded, "slow"))
	r.Record(t0.Add(2800*time.Millisecond), "b", fmt.Errorf("wrapped: %w", status.Error(codes.Unavailable, "draining")))
	r.Record(t0.Add(2900*time.Millisecond), "", fmt.Errorf("plain error"))
	r.Mark(t0.Add(2*time.Second), "pod killed")
	r.Mark(t0.Add(-time.Second), "restart begun")

	s := r.Series()
	want := Series{
		Start:  t0,
		Bucket: time.Second,
		Pods:   []string{"a", "b"},
		Points: []Point{
			{Offset: 0, Pod: "a", Code: codes.OK, Calls: 2},
			{Offset: 2 * time.Second, Pod: "", Code: codes.Unknown, Calls: 1},
			{Offset: 2 * time.Second, Pod: "", Code: codes.DeadlineExceeded, Calls: 1},
			{Offset: 2 * time.Second, Pod: "b", Code: codes.OK, Calls: 2},
			{Offset: 2 * time.Second, Pod: "b", Code: codes.Unavailable, Calls: 1},
		},
		Failures: []Failure{
			{Offset: 2700 * time.Millisecond, Code: codes.DeadlineExceeded},
			{Offset: 2800 * time.Millisecond, Code: codes.Unavailable, Pod: "b"},
			{Offset: 2900 * time.Millisecond, Code: codes.Unknown},
		},
		Events: []Event{
			{Offset: -time.Second, Label: "restart begun"},
			{Offset: 2 * time.Second, Label: "pod killed"},
		},
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("Series() (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]float64{2, 0, 0}, s.Rates("a")); diff != "" {
		t.Errorf("Rates(a) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]float64{0, 0, 2}, s.Rates("b")); diff != "" {
		t.Errorf("Rates(b) (-want +got):\n%s", diff)
	}
	if got := s.Failed(); got != 3 {
		t.Errorf("Failed() = %d, want 3", got)
	}
}

func TestFailuresBounded(t *testing.T) {
	r := New(t0, time.Second)
	const extra = 25
	for i := range MaxFailures + extra {
		r.Record(t0.Add(time.Duration(i)*time.Millisecond), "", unavailable())
	}
	s := r.Series()
	if len(s.Failures) != MaxFailures || s.FailuresDropped != extra {
		t.Errorf("kept %d failures and dropped %d, want %d and %d", len(s.Failures), s.FailuresDropped, MaxFailures, extra)
	}
	if got, want := s.Failed(), MaxFailures+extra; got != want {
		t.Errorf("Failed() = %d, want %d (points count every failure)", got, want)
	}
	if got, want := len(s.Points), s.Buckets(); got != want {
		t.Errorf("%d points for %d buckets, want one per bucket", got, want)
	}
}

func TestNewPanicsOnBadBucket(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New(t0, 0) did not panic")
		}
	}()
	New(t0, 0)
}

func TestZeroSeries(t *testing.T) {
	var s Series // no bucket: nothing to divide by
	s.Points = []Point{{Offset: time.Second, Pod: "a", Calls: 1}}
	if got := s.Rates("a"); len(got) != 0 || s.Buckets() != 0 {
		t.Errorf("zero-bucket series: Rates = %v, Buckets = %d", got, s.Buckets())
	}
	if err := s.WriteCSV(io.Discard); err != nil {
		t.Error(err)
	}
}

func TestAddEvent(t *testing.T) {
	s := Series{Start: t0, Bucket: time.Second, Events: []Event{{Offset: 5 * time.Second, Label: "later"}}}
	s.AddEvent(t0.Add(2*time.Second), "scale to 5")
	s.AddEvent(t0.Add(5*time.Second), "same time, added later")
	want := []Event{
		{Offset: 2 * time.Second, Label: "scale to 5"},
		{Offset: 5 * time.Second, Label: "later"},
		{Offset: 5 * time.Second, Label: "same time, added later"},
	}
	if diff := cmp.Diff(want, s.Events); diff != "" {
		t.Errorf("Events (-want +got):\n%s", diff)
	}
}

func sample() Series {
	r := New(t0, 250*time.Millisecond)
	for i := range 400 {
		at := t0.Add(time.Duration(i) * 10 * time.Millisecond)
		switch {
		case i%50 == 7:
			r.Record(at, "", unavailable())
		case i < 200:
			r.Record(at, "hello-old-1", nil)
		default:
			r.Record(at, "hello-new-1", nil)
		}
	}
	r.Mark(t0.Add(2*time.Second), `rollout "begun", <now>`)
	r.Mark(t0.Add(-300*time.Millisecond), "before start")
	return r.Series()
}

func TestJSONRoundTrip(t *testing.T) {
	s := sample()
	s.AddEvent(t0.Add(3333333333*time.Nanosecond), "rollout done")
	var buf bytes.Buffer
	if err := s.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"code":"Unavailable"`) {
		t.Errorf("JSON does not name codes: %s", buf.String())
	}
	got, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s, got); diff != "" {
		t.Errorf("round trip (-wrote +read):\n%s", diff)
	}

	empty := New(t0, time.Second).Series()
	buf.Reset()
	if err := empty.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	got, err = ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(empty, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("empty round trip (-wrote +read):\n%s", diff)
	}
}

func TestReadJSONErrors(t *testing.T) {
	for name, in := range map[string]string{
		"not JSON":        `{`,
		"version":         `{"version":2,"bucket_seconds":1}`,
		"zero bucket":     `{"version":1,"bucket_seconds":0}`,
		"off bucket":      `{"version":1,"bucket_seconds":1,"points":[{"seconds":0.5,"pod":"a","calls":1}]}`,
		"negative point":  `{"version":1,"bucket_seconds":1,"points":[{"seconds":-1,"pod":"a","calls":1}]}`,
		"negative calls":  `{"version":1,"bucket_seconds":1,"points":[{"seconds":1,"pod":"a","calls":-1}]}`,
		"unknown code":    `{"version":1,"bucket_seconds":1,"failures":[{"seconds":1,"code":"Nope"}]}`,
		"bad point code":  `{"version":1,"bucket_seconds":1,"points":[{"seconds":1,"code":"Nope","calls":1}]}`,
		"huge event time": `{"version":1,"bucket_seconds":1,"events":[{"seconds":1e300,"label":"x"}]}`,
	} {
		if _, err := ReadJSON(strings.NewReader(in)); err == nil {
			t.Errorf("%s: ReadJSON(%s) succeeded", name, in)
		} else if !strings.HasPrefix(err.Error(), "timeline: reading JSON") {
			t.Errorf("%s: error %q lacks context", name, err)
		}
	}
}

func TestWriteCSV(t *testing.T) {
	s := sample()
	var buf bytes.Buffer
	if err := s.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("CSV does not parse: %v\n%s", err, buf.String())
	}
	if diff := cmp.Diff([]string{"kind", "seconds", "pod", "code", "calls_per_second", "label"}, rows[0]); diff != "" {
		t.Fatalf("header (-want +got):\n%s", diff)
	}
	kinds := map[string]int{}
	sum := map[string]float64{} // pod/code -> calls
	for _, row := range rows[1:] {
		kinds[row[0]]++
		if row[0] == "calls" {
			var rate float64
			if _, err := fmt.Sscan(row[4], &rate); err != nil {
				t.Fatalf("row %v: rate: %v", row, err)
			}
			sum[row[2]+"/"+row[3]] += rate * 0.25
		}
	}
	// 4 s in 250 ms buckets = 16 buckets; two pods get a row in every one;
	// failures (every 500 ms) fall into 8 buckets.
	if want := map[string]int{"calls": 16*2 + 8, "failure": 8, "event": 2}; !cmp.Equal(want, kinds) {
		t.Errorf("row kinds = %v, want %v", kinds, want)
	}
	want := map[string]float64{"hello-old-1/OK": 196, "hello-new-1/OK": 196, "/Unavailable": 8}
	if diff := cmp.Diff(want, sum, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Errorf("calls per pod/code (-want +got):\n%s", diff)
	}
	// Spot-check exact rows.
	text := strings.Join(flatten(rows), "\n")
	for _, line := range []string{
		"calls|0|hello-new-1|OK|0|",
		"calls|0|hello-old-1|OK|96|",
		"calls|0||Unavailable|4|",
		"failure|0.07||Unavailable||",
		`event|-0.3||||before start`,
		`event|2||||rollout "begun", <now>`,
	} {
		if !strings.Contains(text, line) {
			t.Errorf("CSV lacks row %q:\n%s", line, text)
		}
	}
}

func flatten(rows [][]string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = strings.Join(r, "|")
	}
	return out
}

// A Series inside another JSON document round-trips through MarshalJSON/UnmarshalJSON.
func TestSeriesEmbedsInJSON(t *testing.T) {
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	r := New(start, time.Second)
	r.Record(start.Add(1500*time.Millisecond), "hello-1", nil)
	r.Record(start.Add(2500*time.Millisecond), "", status.Error(codes.Unavailable, "gone"))
	r.Mark(start.Add(2*time.Second), "pod killed")
	type doc struct {
		Calls    int     `json:"calls"`
		Timeline *Series `json:"timeline,omitempty"`
	}
	s := r.Series()
	b, err := json.Marshal(doc{Calls: 2, Timeline: &s})
	if err != nil {
		t.Fatal(err)
	}
	var back doc
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if back.Timeline == nil || back.Timeline.Calls() != 2 || back.Timeline.Failed() != 1 || len(back.Timeline.Events) != 1 {
		t.Fatalf("round trip: %+v from %s", back.Timeline, b)
	}
}

// A failed call recorded with the pod it was sent to and its latency keeps both in its
// Failure, through JSON too; its Point stays pod-less, and a pod's answer wins over sentTo.
func TestRecordSent(t *testing.T) {
	start := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	r := New(start, time.Second)
	deadline := status.Error(codes.DeadlineExceeded, "deadline")
	r.RecordSent(start.Add(3*time.Second), time.Second, "", "pod-b", deadline)
	r.RecordSent(start.Add(4*time.Second), 2*time.Millisecond, "pod-a", "pod-b", status.Error(codes.InvalidArgument, "bad"))
	r.RecordSent(start.Add(5*time.Second), 3*time.Millisecond, "pod-a", "pod-a", nil)
	s := r.Series()
	want := []Failure{
		{Offset: 3 * time.Second, Code: codes.DeadlineExceeded, Pod: "pod-b", Latency: time.Second},
		{Offset: 4 * time.Second, Code: codes.InvalidArgument, Pod: "pod-a", Latency: 2 * time.Millisecond},
	}
	if !slices.Equal(s.Failures, want) {
		t.Fatalf("failures %+v, want %+v", s.Failures, want)
	}
	if got := s.Rates("pod-b"); slices.ContainsFunc(got, func(r float64) bool { return r != 0 }) || !slices.Equal(s.Pods, []string{"pod-a"}) {
		t.Errorf("pod-b answered nothing: rates %v, pods %v", got, s.Pods)
	}
	var b bytes.Buffer
	if err := s.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(&b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Failures, want) {
		t.Errorf("after JSON: %+v, want %+v", back.Failures, want)
	}
}
