package streamkit

import (
	"context"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestInterval(t *testing.T) {
	limited := WithLimits(context.Background(), Limits{MaxRate: 100, Flag: "--stream-max-rate"})
	for _, tc := range []struct {
		ctx  context.Context
		in   *durationpb.Duration
		want time.Duration
		code codes.Code
	}{
		{limited, nil, DefaultInterval, codes.OK},
		{limited, durationpb.New(10 * time.Millisecond), 10 * time.Millisecond, codes.OK},
		{limited, durationpb.New(9 * time.Millisecond), 0, codes.ResourceExhausted},
		{context.Background(), durationpb.New(time.Microsecond), time.Microsecond, codes.OK},
		{limited, durationpb.New(0), 0, codes.InvalidArgument},
		{limited, durationpb.New(-time.Second), 0, codes.InvalidArgument},
		{limited, &durationpb.Duration{Seconds: 1, Nanos: -1}, 0, codes.InvalidArgument},
	} {
		got, err := Interval(tc.ctx, tc.in)
		if got != tc.want || status.Code(err) != tc.code {
			t.Errorf("Interval(%v) = %s, %v; want %s, %s", tc.in, got, err, tc.want, tc.code)
		}
	}
}

func TestBucket(t *testing.T) {
	t0 := time.Now()
	b := NewBucket(10)
	n := 0
	for b.Take(t0) {
		n++
	}
	if n != 10 {
		t.Fatalf("burst of %d, want 10", n)
	}
	if !b.Take(t0.Add(150*time.Millisecond)) || b.Take(t0.Add(150*time.Millisecond)) {
		t.Fatal("after 150ms at 10/s: want exactly one more token")
	}
	if slow := NewBucket(0.5); !slow.Take(time.Now()) {
		t.Fatal("a rate under 1/s refuses the first message")
	}
	if free := NewBucket(0); !free.Take(t0) || !free.Take(t0) {
		t.Fatal("rate 0 is unlimited")
	}
}

type msg struct{ name string }

// Chat numbers replies from the first message's resume point, validates each message,
// and ends nil when the client closes its side.
func TestChat(t *testing.T) {
	in := []*msg{{"a"}, {"b"}, {""}}
	i := 0
	recv := func() (*msg, error) {
		if i == len(in) {
			return nil, io.EOF
		}
		i++
		return in[i-1], nil
	}
	check := func(m *msg) error {
		if m.name == "" {
			return status.Error(codes.InvalidArgument, "empty")
		}
		return nil
	}
	var seqs []uint64
	reply := func(seq uint64, _ *msg) error { seqs = append(seqs, seq); return nil }
	err := Chat(context.Background(), recv, check, func(*msg) uint64 { return 41 }, reply)
	if status.Code(err) != codes.InvalidArgument || len(seqs) != 2 || seqs[0] != 42 || seqs[1] != 43 {
		t.Fatalf("Chat: %v, seqs %v; want InvalidArgument after 42, 43", err, seqs)
	}
	in, i, seqs = []*msg{{"a"}}, 0, nil
	if err := Chat(context.Background(), recv, check, func(*msg) uint64 { return 0 }, reply); err != nil || len(seqs) != 1 || seqs[0] != 1 {
		t.Fatalf("Chat to EOF: %v, seqs %v", err, seqs)
	}
}
