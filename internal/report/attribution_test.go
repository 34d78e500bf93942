package report

import (
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

func addr(s string) net.Addr { a, _ := net.ResolveTCPAddr("tcp", s); return a }

// Failed calls are attributed to the pod that answered from their connection's address;
// an address several pods answered from (a proxy) and an address no pod answered from get
// nothing; last_sent_unix is the last call sent, answered or not, across workers' tallies.
func TestFailedCallsAttributedByAddress(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	timeout := status.Error(codes.DeadlineExceeded, "context deadline exceeded")
	a, b := NewTally(), NewTally() // two workers
	pod1, pod3 := &pb.Backend{Pod: "pod-1", Node: "n1"}, &pb.Backend{Pod: "pod-3", Node: "n3"}
	a.Record(Call{Start: at(0), Latency: 10 * time.Millisecond, Backend: pod1, Peer: addr("10.0.0.1:50051")})
	a.Record(Call{Start: at(1), Latency: time.Millisecond, Backend: pod3, Peer: addr("10.0.0.3:50051")})
	b.Record(Call{Start: at(2), Latency: time.Second, Err: timeout, Peer: addr("10.0.0.3:50051")})
	b.Record(Call{Start: at(5), Latency: time.Second, Err: timeout, Peer: addr("10.0.0.3:50051")})
	b.Record(Call{Start: at(3), Latency: time.Millisecond, Backend: pod1, Peer: addr("10.0.0.1:50051")})
	// Through a proxy: two pods answer from one address, its failure is nobody's.
	b.Record(Call{Start: at(4), Latency: time.Millisecond, Backend: pod1, Peer: addr("10.0.0.9:443")})
	b.Record(Call{Start: at(4), Latency: time.Millisecond, Backend: pod3, Peer: addr("10.0.0.9:443")})
	b.Record(Call{Start: at(6), Latency: time.Second, Err: timeout, Peer: addr("10.0.0.9:443")})
	// No pod ever answered from it; and a call that never got a connection.
	b.Record(Call{Start: at(7), Err: status.Error(codes.Unavailable, "refused"), Peer: addr("10.0.0.7:50051")})
	b.Record(Call{Start: at(8), Err: status.Error(codes.Unavailable, "no ready backend")})
	a.Merge(b)
	s := a.Summary(10 * time.Second)

	if len(s.Backends) != 2 || s.Failed != 5 || s.OK != 5 {
		t.Fatalf("summary %+v", s)
	}
	p1, p3 := s.Backends[0], s.Backends[1]
	if p1.Pod != "pod-1" || p1.FailedByCode != nil || p1.Failed() != 0 || p1.LastSentUnix != unix(at(4)) || p1.FirstUnix != unix(at(0.01)) {
		t.Errorf("pod-1: %+v", p1)
	}
	if p3.Pod != "pod-3" || p3.Failed() != 2 || p3.FailedByCode[codes.DeadlineExceeded] != 2 || p3.LastSentUnix != unix(at(5)) || p3.FirstUnix != unix(at(1.001)) {
		t.Errorf("pod-3: %+v", p3)
	}

	var js bytes.Buffer
	if err := s.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"failed_by_code": {`, `"DeadlineExceeded": 2`, `"last_sent_unix": 1800000005`, `"first_unix": 1800000000.01`} {
		if !strings.Contains(js.String(), want) {
			t.Errorf("JSON lacks %s:\n%s", want, js.String())
		}
	}
	var back Summary
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Backends[1].FailedByCode[codes.DeadlineExceeded] != 2 || back.Backends[1].LastSentUnix != p3.LastSentUnix {
		t.Fatalf("JSON round trip: %v %+v", err, back.Backends)
	}
	if err := json.Unmarshal([]byte(`{"DEADLINE_EXCEEDED":3,"Unavailable":1}`), &back.Backends[0].FailedByCode); err != nil ||
		back.Backends[0].Failed() != 4 {
		t.Errorf("codes named as other clients name them: %v %+v", err, back.Backends[0].FailedByCode)
	}
	var txt bytes.Buffer
	s.WriteText(&txt)
	if !strings.Contains(txt.String(), "FAILED") {
		t.Errorf("text report without the FAILED column:\n%s", txt.String())
	}

	// Without addresses (Add: no attribution, no times) nothing changes in the report.
	plain := tally(map[string]int{"a": 2}, "v1", 1).Summary(time.Second)
	js.Reset()
	plain.WriteJSON(&js)
	txt.Reset()
	plain.WriteText(&txt)
	if strings.Contains(js.String(), "failed_by_code") || strings.Contains(js.String(), "_unix") || strings.Contains(txt.String(), "FAILED") {
		t.Errorf("a report without attribution shows it:\n%s\n%s", js.String(), txt.String())
	}
}
