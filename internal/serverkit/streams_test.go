package serverkit

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// recvUntilEnd reads a server stream until it ends and returns how many messages came and
// the status it ended with.
func recvUntilEnd(t *testing.T, st interface {
	Recv() (*pb.StreamHellosResponse, error)
}) (int, error) {
	t.Helper()
	n := 0
	for {
		if _, err := st.Recv(); err != nil {
			return n, err
		}
		n++
	}
}

func TestStreamMaxAgeEndsWithReconnect(t *testing.T) {
	r := start(t, func(c *Config) { c.StreamMaxAge = 300 * time.Millisecond })
	t0 := time.Now()
	st, err := pb.NewHelloClient(r.cc).StreamHellos(context.Background(), &pb.StreamHellosRequest{Name: "a", Interval: durationpb.New(20 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	n, err := recvUntilEnd(t, st)
	took := time.Since(t0)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "stream max age reached, reconnect") {
		t.Fatalf("end: %v, want UNAVAILABLE stream max age", err)
	}
	if took < 250*time.Millisecond || took > 3*time.Second || n < 5 {
		t.Fatalf("stream ended after %s with %d messages, want about 300ms ±10%%", took, n)
	}
}

func TestStreamLimits(t *testing.T) {
	r := start(t, func(c *Config) { c.StreamMaxRate, c.MaxStreamsPerConn = 50, 2 })
	c := pb.NewHelloClient(r.cc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A server stream asking for more than the rate.
	st, err := c.StreamHellos(ctx, &pb.StreamHellosRequest{Name: "a", Interval: durationpb.New(time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "--stream-max-rate") {
		t.Fatalf("1ms interval at 50/s: %v, want RESOURCE_EXHAUSTED naming --stream-max-rate", err)
	}
	// Bad input.
	st, err = c.StreamHellos(ctx, &pb.StreamHellosRequest{Name: "a", Interval: durationpb.New(-time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("negative interval: %v, want INVALID_ARGUMENT", err)
	}
	// A bidi client sending faster than the rate.
	chat, err := c.ChatHello(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := 0; i < 200; i++ {
			if chat.Send(&pb.ChatHelloRequest{Name: "flood"}) != nil {
				return
			}
		}
	}()
	for {
		_, err := chat.Recv()
		if err == nil {
			continue
		}
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "messages/s on this stream") {
			t.Fatalf("bidi flood: %v, want RESOURCE_EXHAUSTED", err)
		}
		break
	}
	// Streams per connection: two open, the third refused.
	for i := 0; i < 2; i++ {
		st, err := c.StreamHellos(ctx, &pb.StreamHellosRequest{Name: "held"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	st, err = c.StreamHellos(ctx, &pb.StreamHellosRequest{Name: "third"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "--max-streams-per-conn") {
		t.Fatalf("third stream on a connection limited to 2: %v", err)
	}
	// Unary calls still go through.
	if _, err := c.SayHello(ctx, &pb.SayHelloRequest{Name: "unary"}); err != nil {
		t.Fatal(err)
	}
}

// The drain ends open streams with the reconnect status when GracefulStop begins, so
// they never hold it: the server is down long before its shutdown timeout.
func TestDrainEndsStreams(t *testing.T) {
	r := start(t, func(c *Config) { c.DrainDelay, c.ShutdownTimeout = 300*time.Millisecond, 10*time.Second })
	c := pb.NewHelloClient(r.cc)
	st, err := c.StreamHellos(context.Background(), &pb.StreamHellosRequest{Name: "a", Interval: durationpb.New(20 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	chat, err := c.ChatHello(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := chat.Send(&pb.ChatHelloRequest{Name: "b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := chat.Recv(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	r.cancel()
	if _, err := recvUntilEnd(t, st); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "shutting down, reconnect") {
		t.Fatalf("server stream at drain: %v", err)
	}
	if _, err := chat.Recv(); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "shutting down, reconnect") {
		t.Fatalf("bidi stream at drain: %v", err)
	}
	select {
	case err := <-r.done:
		r.done <- err
		if d := time.Since(t0); err != nil || d > 3*time.Second {
			t.Fatalf("drain with streams open: %v after %s", err, d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("drain held by open streams for 5s")
	}
}

// MaxConnectionAge + grace would cut every stream on a connection at once: a stream
// ends on purpose after its connection's GOAWAY and before that cut, with the reconnect
// status, and the stream reopened goes to a new connection.
func TestStreamEndsBeforeMaxConnectionAgeCut(t *testing.T) {
	if got := connStreamEnd(30*time.Second, 10*time.Second); got != 35*time.Second {
		t.Errorf("30s age, 10s grace: streams end at %s, want 35s (after 33s, before 37s)", got)
	}
	// A long grace: the stream ends connEndMargin before the earliest close (0.9 × age +
	// grace), so it may live its whole STREAM_MAX_AGE.
	if got := connStreamEnd(30*time.Second, DefaultMaxConnectionAgeGrace); got != 27*time.Second+DefaultMaxConnectionAgeGrace-connEndMargin {
		t.Errorf("30s age, %s grace: streams end at %s, want %s", DefaultMaxConnectionAgeGrace, got, 27*time.Second+DefaultMaxConnectionAgeGrace-connEndMargin)
	}
	if got := connStreamEnd(30*time.Second, 0); got != 0 {
		t.Errorf("no grace (grpc-go: unbounded): %s, want no bound", got)
	}
	r := start(t, func(c *Config) {
		c.MaxConnectionAge, c.MaxConnectionAgeGrace, c.StreamMaxAge = time.Second, time.Second, 0
	})
	c := pb.NewHelloClient(r.cc)
	for i := range 2 {
		t0 := time.Now()
		st, err := c.StreamHellos(context.Background(), &pb.StreamHellosRequest{Name: "a", Interval: durationpb.New(50 * time.Millisecond)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = recvUntilEnd(t, st)
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "connection max age reached, reconnect") {
			t.Fatalf("stream %d on a connection with a 1s max age and 1s grace: %v after %s", i, err, time.Since(t0))
		}
		t.Logf("stream %d ended after %s: %v", i, time.Since(t0).Round(time.Millisecond), err)
	}
}
