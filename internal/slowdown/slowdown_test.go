package slowdown

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestParseAndValidate(t *testing.T) {
	if d, err := ParseDuration("latency", "20ms"); err != nil || d != 20*time.Millisecond {
		t.Fatalf("20ms: %v %v", d, err)
	}
	for _, tc := range []struct{ in, want string }{
		{"abc", `slow latency "abc" is not a duration: want e.g. 20ms`},
		{"20", `"20" is not a duration`},
		{"-1ms", "out of range"},
		{"2m", "out of range"},
	} {
		if _, err := ParseDuration("latency", tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseDuration(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
	err := Setting{Latency: -time.Second, CPU: 2 * Max}.Validate()
	if err == nil || !strings.Contains(err.Error(), "slow latency") || !strings.Contains(err.Error(), "slow cpu") {
		t.Errorf("Validate names both bad durations: %v", err)
	}
}

func TestKnob(t *testing.T) {
	k := New(Setting{})
	if !k.Get().Off() {
		t.Fatal("zero setting is not off")
	}
	t0 := time.Now()
	if err := k.Apply(context.Background()); err != nil || time.Since(t0) > 10*time.Millisecond {
		t.Fatalf("off knob: %v after %s", err, time.Since(t0))
	}
	if err := k.Set(Setting{Latency: 30 * time.Millisecond, CPU: 5 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	if err := k.Apply(context.Background()); err != nil || time.Since(t0) < 35*time.Millisecond {
		t.Fatalf("30ms + 5ms knob: %v after %s", err, time.Since(t0))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if err := k.Apply(ctx); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("deadline shorter than the latency: %v, want DeadlineExceeded", err)
	}
	if err := k.Set(Setting{Latency: -1}); err == nil || k.Get().Latency != 30*time.Millisecond {
		t.Fatalf("a bad setting was taken: %v %+v", err, k.Get())
	}
	b, _ := json.Marshal(k.Get())
	if string(b) != `{"latency":"30ms","cpu":"5ms"}` {
		t.Fatalf("JSON %s", b)
	}
}
