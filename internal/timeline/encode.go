package timeline

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/statuscode"
)

// WriteCSV writes s as one CSV table with the header
//
//	kind,seconds,pod,code,calls_per_second,label
//
// and three kinds of rows, in this order:
//
//   - calls: the rate of one bucket (seconds is the bucket's start) for one
//     pod and code. Every pod gets a row for every bucket, zero included,
//     with code OK; failed calls get rows only for buckets that had some,
//     with their code (such as Unavailable) and usually an empty pod.
//   - failure: one kept failed call (see MaxFailures) at its exact offset,
//     with its code and pod if known; calls_per_second is empty.
//   - event: a scenario event at its offset, with its label.
//
// Seconds and rates are plain decimals (such as 0.25 and 40). To plot the
// rates, keep the rows of kind calls and pivot pod+code into columns.
func (s Series) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	row := func(kind string, off time.Duration, pod, code, rate, label string) {
		// Errors are sticky in csv.Writer; checked once at the end.
		_ = cw.Write([]string{kind, seconds(off), pod, code, rate, label})
	}
	_ = cw.Write([]string{"kind", "seconds", "pod", "code", "calls_per_second", "label"})

	n := s.Buckets()
	ok := make([][]float64, len(s.Pods))
	for i, pod := range s.Pods {
		ok[i] = s.Rates(pod)
	}
	next := 0 // index into s.Points, which are sorted by offset
	for b := range n {
		off := time.Duration(b) * s.Bucket
		for i, pod := range s.Pods {
			row("calls", off, pod, codes.OK.String(), number(ok[i][b]), "")
		}
		for ; next < len(s.Points) && s.Points[next].Offset <= off; next++ {
			if p := s.Points[next]; p.Offset == off && p.Code != codes.OK {
				row("calls", off, p.Pod, p.Code.String(), number(float64(p.Calls)/s.Bucket.Seconds()), "")
			}
		}
	}
	for _, f := range s.Failures {
		row("failure", f.Offset, f.Pod, f.Code.String(), "", "")
	}
	for _, e := range s.Events {
		row("event", e.Offset, "", "", "", e.Label)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("timeline: writing CSV: %w", err)
	}
	return nil
}

func seconds(d time.Duration) string { return number(d.Seconds()) }

func number(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// jsonVersion is the format version WriteJSON writes and ReadJSON accepts.
const jsonVersion = 1

type jsonSeries struct {
	Version         int           `json:"version"`
	Start           time.Time     `json:"start"`
	BucketSeconds   float64       `json:"bucket_seconds"`
	Pods            []string      `json:"pods"`
	Points          []jsonPoint   `json:"points"`
	Failures        []jsonFailure `json:"failures"`
	FailuresDropped int           `json:"failures_dropped"`
	Events          []jsonEvent   `json:"events"`
}

type jsonPoint struct {
	Seconds float64 `json:"seconds"`
	Pod     string  `json:"pod,omitempty"`
	Code    string  `json:"code,omitempty"` // omitted for OK
	Calls   int     `json:"calls"`
}

type jsonFailure struct {
	Seconds   float64 `json:"seconds"`
	Code      string  `json:"code"`
	Pod       string  `json:"pod,omitempty"`
	LatencyMs float64 `json:"latency_ms,omitempty"`
}

type jsonEvent struct {
	Seconds float64 `json:"seconds"`
	Label   string  `json:"label"`
}

// WriteJSON writes s as one JSON object:
//
//	{"version":1, "start":"2026-01-02T15:04:05.123Z", "bucket_seconds":0.25,
//	 "pods":["hello-…"],
//	 "points":[{"seconds":0.25,"pod":"hello-…","calls":10},
//	           {"seconds":0.5,"code":"Unavailable","calls":2}],
//	 "failures":[{"seconds":0.61,"code":"Unavailable"}], "failures_dropped":0,
//	 "events":[{"seconds":3.5,"label":"pod killed"}]}
//
// Offsets are in seconds since start; codes are names as codes.Code.String
// gives them ("Unavailable"), and a point's code is left out when it is OK.
// A point's rate is calls / bucket_seconds. ReadJSON reads it back.
func (s Series) WriteJSON(w io.Writer) error {
	js := jsonSeries{
		Version:         jsonVersion,
		Start:           s.Start,
		BucketSeconds:   s.Bucket.Seconds(),
		Pods:            nonNil(s.Pods),
		Points:          make([]jsonPoint, 0, len(s.Points)),
		Failures:        make([]jsonFailure, 0, len(s.Failures)),
		FailuresDropped: s.FailuresDropped,
		Events:          make([]jsonEvent, 0, len(s.Events)),
	}
	for _, p := range s.Points {
		jp := jsonPoint{Seconds: p.Offset.Seconds(), Pod: p.Pod, Calls: p.Calls}
		if p.Code != codes.OK {
			jp.Code = p.Code.String()
		}
		js.Points = append(js.Points, jp)
	}
	for _, f := range s.Failures {
		js.Failures = append(js.Failures, jsonFailure{Seconds: f.Offset.Seconds(), Code: f.Code.String(), Pod: f.Pod,
			LatencyMs: float64(f.Latency) / float64(time.Millisecond)})
	}
	for _, e := range s.Events {
		js.Events = append(js.Events, jsonEvent{Seconds: e.Offset.Seconds(), Label: e.Label})
	}
	enc := json.NewEncoder(w)
	if err := enc.Encode(js); err != nil {
		return fmt.Errorf("timeline: writing JSON: %w", err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ReadJSON reads a Series that WriteJSON wrote. It checks the format version,
// the bucket width, the offsets (points must start a bucket at or after 0)
// and the code names, and sorts the series as Recorder.Series does.
func ReadJSON(r io.Reader) (Series, error) {
	var js jsonSeries
	dec := json.NewDecoder(r)
	if err := dec.Decode(&js); err != nil {
		return Series{}, fmt.Errorf("timeline: reading JSON: %w", err)
	}
	if js.Version != jsonVersion {
		return Series{}, fmt.Errorf("timeline: reading JSON: version %d, want %d", js.Version, jsonVersion)
	}
	bucket, err := duration(js.BucketSeconds)
	if err != nil || bucket <= 0 {
		return Series{}, fmt.Errorf("timeline: reading JSON: bucket_seconds %v is not a positive duration", js.BucketSeconds)
	}
	s := Series{
		Start:           js.Start,
		Bucket:          bucket,
		FailuresDropped: js.FailuresDropped,
	}
	for i, jp := range js.Points {
		off, err := duration(jp.Seconds)
		if err != nil || off < 0 || off%bucket != 0 {
			return Series{}, fmt.Errorf("timeline: reading JSON: point %d: seconds %v is not the start of a bucket", i, jp.Seconds)
		}
		code := codes.OK
		if jp.Code != "" {
			if code, err = statuscode.Parse(jp.Code); err != nil {
				return Series{}, fmt.Errorf("timeline: reading JSON: point %d: %w", i, err)
			}
		}
		if jp.Calls < 0 {
			return Series{}, fmt.Errorf("timeline: reading JSON: point %d: negative calls %d", i, jp.Calls)
		}
		s.Points = append(s.Points, Point{Offset: off, Pod: jp.Pod, Code: code, Calls: jp.Calls})
	}
	for i, jf := range js.Failures {
		off, err := duration(jf.Seconds)
		if err != nil {
			return Series{}, fmt.Errorf("timeline: reading JSON: failure %d: %w", i, err)
		}
		code, err := statuscode.Parse(jf.Code)
		if err != nil {
			return Series{}, fmt.Errorf("timeline: reading JSON: failure %d: %w", i, err)
		}
		lat, err := duration(jf.LatencyMs / 1000)
		if err != nil {
			return Series{}, fmt.Errorf("timeline: reading JSON: failure %d latency: %w", i, err)
		}
		s.Failures = append(s.Failures, Failure{Offset: off, Code: code, Pod: jf.Pod, Latency: lat})
	}
	for i, je := range js.Events {
		off, err := duration(je.Seconds)
		if err != nil {
			return Series{}, fmt.Errorf("timeline: reading JSON: event %d: %w", i, err)
		}
		s.Events = append(s.Events, Event{Offset: off, Label: je.Label})
	}
	s.normalize()
	return s, nil
}

// duration converts seconds to a Duration, rounding to the nanosecond.
func duration(sec float64) (time.Duration, error) {
	ns := math.Round(sec * 1e9)
	if math.IsNaN(ns) || math.Abs(ns) > math.MaxInt64/2 {
		return 0, fmt.Errorf("seconds %v out of range", sec)
	}
	return time.Duration(ns), nil
}

// MarshalJSON is WriteJSON, so a Series can sit inside another JSON document (the
// greeter's -json report with -timeline -).
func (s Series) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	if err := s.WriteJSON(&b); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// UnmarshalJSON is ReadJSON.
func (s *Series) UnmarshalJSON(b []byte) error {
	got, err := ReadJSON(bytes.NewReader(b))
	if err != nil {
		return err
	}
	*s = got
	return nil
}
