package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

func tally(counts map[string]int, version string, failures int) *Tally {
	t := NewTally()
	for pod, n := range counts {
		for range n {
			t.Add(&pb.Backend{Pod: pod, Version: version}, nil, time.Millisecond)
		}
	}
	for range failures {
		t.Add(nil, status.Error(codes.Unavailable, "no healthy upstream"), 0)
	}
	return t
}

func TestSummaryAndAssertions(t *testing.T) {
	tl := tally(map[string]int{"a": 100, "b": 100, "c": 100}, "v1", 0)
	s := tl.Summary(time.Second)
	if s.Calls != 300 || s.OK != 300 || s.Skew() != 0 || len(s.Backends) != 3 || s.Backends[0].Pod != "a" || s.ByVersion["v1"] != 300 {
		t.Fatalf("summary %+v", s)
	}
	if a := Check(s, Expect{Backends: 3, MaxSkew: 0, MaxErrors: 0}); !Passed(a) || len(a) != 3 {
		t.Fatalf("exact spread fails: %+v", a)
	}

	skewed := tally(map[string]int{"a": 120, "b": 90, "c": 90}, "v1", 2).Summary(time.Second)
	if k := skewed.Skew(); k < 0.199 || k > 0.201 {
		t.Fatalf("skew %v, want 0.2", k)
	}
	a := Check(skewed, Expect{Backends: 4, MaxSkew: 0.1, MaxErrors: 1})
	if Passed(a) {
		t.Fatal("skewed run passed")
	}
	for _, x := range a {
		if x.OK {
			t.Errorf("%s should fail: %s", x.Name, x.Detail)
		}
	}
	if Passed(Check(skewed, Expect{Backends: 3, MaxSkew: 0.25, MaxErrors: 2})) != true {
		t.Error("within tolerance should pass")
	}
	if len(Check(skewed, NoExpect())) != 0 {
		t.Error("NoExpect asserted something")
	}
}

func TestMergeAndErrors(t *testing.T) {
	a, b := tally(map[string]int{"x": 2}, "v1", 1), tally(map[string]int{"x": 1, "y": 3}, "v2", 0)
	b.Add(nil, errors.New("not a status"), 0)
	a.Merge(b)
	s := a.Summary(2 * time.Second)
	if s.Calls != 8 || s.Failed != 2 || s.PerSecond != 4 {
		t.Fatalf("merged %+v", s)
	}
	if len(s.Errors) != 2 || s.Errors[0].Count != 1 {
		t.Fatalf("errors %+v", s.Errors)
	}
	if s.ByVersion["v1"] != 2 || s.ByVersion["v2"] != 4 {
		t.Fatalf("by version %v", s.ByVersion)
	}
	if s.Latency == nil || s.Latency.P50 < 0.9 || s.Latency.P50 > 1.1 {
		t.Fatalf("latency %+v, want p50 ≈ 1ms", s.Latency)
	}
}

func TestRender(t *testing.T) {
	s := tally(map[string]int{"hello-1": 2, "hello-2": 1}, "v1", 1).Summary(time.Second)
	s.Target, s.Method, s.LB = "dns:///h:1", "helloworld.Hello/SayHello", "round_robin"
	s.Assertions = Check(s, Expect{Backends: 2, MaxSkew: -1, MaxErrors: 0})
	var txt bytes.Buffer
	if err := s.WriteText(&txt); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"4 calls to helloworld.Hello/SayHello", "hello-1", "66.7%", "Unavailable", "no healthy upstream", "FAIL max-errors", "ok   expect-backends"} {
		if !strings.Contains(txt.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, txt.String())
		}
	}
	var js bytes.Buffer
	if err := s.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Summary
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.OK != 3 || back.Backends[0].Pod != "hello-1" || back.Errors[0].Code != codes.Unavailable ||
		!strings.Contains(js.String(), `"code": "Unavailable"`) {
		t.Fatalf("JSON round trip: %v %+v", err, back)
	}
}

func TestExpectCode(t *testing.T) {
	expect := func(c codes.Code) Expect { e := NoExpect(); e.Code = &c; return e }
	s := tally(nil, "v1", 5).Summary(time.Second)
	if !Passed(Check(s, expect(codes.Unavailable))) {
		t.Fatal("5 Unavailable calls do not pass expect-code Unavailable")
	}
	if Passed(Check(s, expect(codes.InvalidArgument))) {
		t.Fatal("Unavailable calls pass expect-code InvalidArgument")
	}
	okRun := tally(map[string]int{"a": 3}, "v1", 0).Summary(time.Second)
	if !Passed(Check(okRun, expect(codes.OK))) {
		t.Fatal("successful calls do not pass expect-code OK")
	}
}

func TestErrorCountJSONRejectsUnknownCodes(t *testing.T) {
	var e ErrorCount
	if err := json.Unmarshal([]byte(`{"code":"Teapot","count":1}`), &e); err == nil || !strings.Contains(err.Error(), "Teapot") {
		t.Errorf("unknown code in JSON: %v", err)
	}
}
