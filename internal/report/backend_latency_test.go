package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// Each backend's latency is its own: a slow pod shows in its row, in text and JSON, and
// survives Merge.
func TestLatencyPerBackend(t *testing.T) {
	a, b := NewTally(), NewTally()
	for range 90 {
		a.Add(&pb.Backend{Pod: "fast"}, nil, 2*time.Millisecond)
	}
	for range 10 {
		b.Add(&pb.Backend{Pod: "slow"}, nil, 20*time.Millisecond)
	}
	a.Merge(b)
	s := a.Summary(time.Second)
	if len(s.Backends) != 2 {
		t.Fatalf("backends %+v", s.Backends)
	}
	fast, slow := s.Backends[0], s.Backends[1]
	if fast.Latency == nil || slow.Latency == nil || fast.Latency.P99 < 1.9 || fast.Latency.P99 > 2.1 ||
		slow.Latency.P50 < 19.5 || slow.Latency.P50 > 20.5 || slow.Share != 0.1 {
		t.Fatalf("per-backend latency: fast %+v, slow %+v share %v", fast.Latency, slow.Latency, slow.Share)
	}
	if s.Latency.P99 < 19.5 { // overall p99 follows the slow pod's tenth of the calls
		t.Errorf("overall p99 %.3f, want the slow pod's 20 ms", s.Latency.P99)
	}
	var txt bytes.Buffer
	if err := s.WriteText(&txt); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(txt.String(), "P50 MS") || !strings.Contains(txt.String(), "10.0%  20.0") {
		t.Errorf("text report:\n%s", txt.String())
	}
	var js bytes.Buffer
	if err := s.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Summary
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Backends[1].Latency == nil || back.Backends[1].Latency.P50 != slow.Latency.P50 {
		t.Fatalf("JSON round trip: %v\n%s", err, js.String())
	}
}
