package report

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// Two streams: one resumes correctly across a reopen on another pod, one skips and
// repeats; the tally counts streams and messages per pod, lost, duplicated, ends and the
// longest gap, and the assertions read them.
func TestStreamTally(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	a, b := &pb.Backend{Pod: "a"}, &pb.Backend{Pod: "b"}
	tl := NewStreamTally(t0)
	s0, s1 := tl.Track(0, t0), tl.Track(1, t0)
	s0.Receive(at(10), 1, a)
	s0.Receive(at(110), 2, a)
	s0.Ended(status.Error(codes.Unavailable, "stream max age reached, reconnect"))
	s0.Receive(at(900), 3, b) // resumed: a gap of 790ms, nothing lost
	s1.Receive(at(20), 1, b)
	s1.Receive(at(120), 4, b) // 2 lost
	s1.Receive(at(220), 4, b) // 1 duplicate
	s1.Ended(io.EOF)
	s := tl.StreamSummary(at(1000))

	if s.Messages != 6 || s.Opened != 3 || s.Reconnects != 2 || s.Lost != 2 || s.Duplicated != 1 {
		t.Fatalf("summary %+v", s)
	}
	if g := s.LongestGap; g == nil || g.Ms != 790 || g.Stream != 0 || g.FromPod != "a" || g.Pod != "b" {
		t.Fatalf("longest gap %+v, want 790ms on stream 0 from a to b", g)
	}
	if len(s.Backends) != 2 || s.Backends[0].Streams != 1 || s.Backends[1].Streams != 2 || s.Backends[1].Messages != 4 {
		t.Fatalf("backends %+v", s.Backends)
	}
	if s.EndCount(codes.Unavailable) != 1 || s.EndCount(codes.OK) != 1 {
		t.Fatalf("ends %+v", s.Ends)
	}
	as := CheckStreams(s, Expect{Backends: 2, MaxSkew: -1, MaxErrors: -1}, StreamExpect{MaxGap: time.Second, MaxLost: 0, MaxDup: 1, MaxReconnects: -1})
	want := map[string]bool{"expect-backends": true, "max-gap": true, "max-lost": false, "max-dup": true}
	for _, a := range as {
		if want[a.Name] != a.OK {
			t.Errorf("%s: ok=%v (%s)", a.Name, a.OK, a.Detail)
		}
	}
	var text, js bytes.Buffer
	s.Assertions = as
	if err := s.WriteText(&text); err != nil || !strings.Contains(text.String(), "longest gap between two messages: 790ms on stream 0 (a → b)") ||
		!strings.Contains(text.String(), "FAIL max-lost: 2 messages lost, allowed 0") {
		t.Fatalf("text: %v\n%s", err, text.String())
	}
	if err := s.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back StreamSummary
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Lost != 2 || back.Ends[0].Code != codes.Unavailable && back.Ends[0].Code != codes.OK {
		t.Fatalf("JSON round trip: %v %+v", err, back)
	}
}

// Ends are told apart by message (a max age and a drain are both UNAVAILABLE), up to 5
// messages per code.
func TestStreamEndsPerReason(t *testing.T) {
	tl := NewStreamTally(time.Now())
	tr := tl.Track(0, time.Now())
	tr.Ended(status.Error(codes.Unavailable, "stream max age reached, reconnect"))
	tr.Ended(status.Error(codes.Unavailable, "stream max age reached, reconnect"))
	tr.Ended(status.Error(codes.Unavailable, "server is shutting down, reconnect"))
	for i := range 6 {
		tr.Ended(status.Errorf(codes.Internal, "cut %d", i))
	}
	s := tl.StreamSummary(time.Now())
	if len(s.Ends) != 2+6 || s.Ends[0].Count != 2 || s.EndCount(codes.Unavailable) != 3 || s.EndCount(codes.Internal) != 6 {
		t.Fatalf("ends %+v", s.Ends)
	}
}
