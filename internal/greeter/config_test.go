package greeter

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"
)

func parse(t *testing.T, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	return ParseFlags(args, func(k string) string { return env[k] }, io.Discard)
}

func TestDefaults(t *testing.T) {
	c, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Dial.LB != "round_robin" || !c.Dial.Retry || !c.Dial.HealthCheck || c.Dial.HealthService != "helloworld.Hello" ||
		c.Plan.Calls != 1 || c.MultiCall() || c.FullMethod() != "helloworld.Hello/SayHello" {
		t.Fatalf("defaults %+v", c)
	}
}

func TestFlagsAndEnv(t *testing.T) {
	env := map[string]string{"GREETER_TARGET": "dns:///hello-headless.kit.svc.cluster.local:50051", "GREETER_C": "8"}
	c, err := parse(t, env, "-service", "goodbye", "-n", "300", "-H", "x-experiment-group=canary", "-H", "X-Team: blue",
		"-cacert", "ca.pem", "-authority", "grpc.kit.local", "-expect-backends", "3", "-max-skew", "0", "-name-bytes", "10")
	if err != nil {
		t.Fatal(err)
	}
	if c.Dial.Target != env["GREETER_TARGET"] || c.Plan.Concurrency != 8 || c.FullMethod() != "helloworld.Goodbye/SayGoodbye" ||
		c.Dial.HealthService != "helloworld.Goodbye" || !c.Dial.TLS || c.Name != strings.Repeat("x", 10) || !c.MultiCall() {
		t.Fatalf("parsed %+v", c)
	}
	if len(c.Headers) != 2 || c.Headers[0] != (Header{"x-experiment-group", "canary"}) || c.Headers[1] != (Header{"x-team", "blue"}) {
		t.Fatalf("headers %+v", c.Headers)
	}
	if c.Expect.Backends != 3 || c.Expect.MaxSkew != 0 || c.Expect.MaxErrors != -1 {
		t.Fatalf("expect %+v", c.Expect)
	}
}

func TestDurationAloneMeansLoad(t *testing.T) {
	c, err := parse(t, nil, "-duration", "30s")
	if err != nil || c.Plan.Calls != 0 || !c.MultiCall() {
		t.Fatalf("-duration alone: %v calls=%d", err, c.Plan.Calls)
	}
	c, err = parse(t, nil, "-duration", "30s", "-n", "5000")
	if err != nil || c.Plan.Calls != 5000 {
		t.Fatalf("-duration with -n: %v calls=%d", err, c.Plan.Calls)
	}
}

func TestPickFirstTurnsOffHealthCheckUnlessAsked(t *testing.T) {
	c, err := parse(t, nil, "-lb", "pick_first")
	if err != nil || c.Dial.HealthCheck {
		t.Fatalf("pick_first: %v %+v", err, c.Dial)
	}
	if _, err := parse(t, nil, "-lb", "pick_first", "-health-check"); err == nil || !strings.Contains(err.Error(), "needs round_robin") {
		t.Fatalf("explicit health-check with pick_first: %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-service", "howdy"}, `no service "howdy": want hello or goodbye`},
		{[]string{"-method", "SayGoodbye"}, `helloworld.Hello has no method "SayGoodbye"`},
		{[]string{"-expect-code", "Teapot"}, `"Teapot" is not a status code name`},
		{[]string{"-H", "novalue"}, "want key=value"},
		{[]string{"-H", ":authority=x"}, "reserved"},
		{[]string{"-target", "dns://h:1"}, "three slashes"},
		{[]string{"-n", "0"}, "give a number of calls"},
		{[]string{"-c", "0"}, "at least 1"},
		{[]string{"stray"}, "did you mean -target"},
	} {
		_, err := parse(t, nil, tc.args...)
		if err == nil || !errors.Is(err, exitcode.ErrUsage) || !strings.Contains(err.Error(), tc.want) || exitcode.Of(err) != exitcode.Usage {
			t.Errorf("%v: %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
	var usage bytes.Buffer
	if _, err := ParseFlags([]string{"-h"}, func(string) string { return "" }, &usage); !errors.Is(err, flag.ErrHelp) ||
		!strings.Contains(usage.String(), "GREETER_TARGET") || !strings.Contains(usage.String(), "Exit codes") {
		t.Errorf("-h: %v\n%s", err, usage.String())
	}
}

// The errors Run returns carry the documented exit codes.
func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{{ErrAssertionFailed, exitcode.CheckFailed}, {ErrCallsFailed, exitcode.Failure}} {
		if got := exitcode.Of(fmt.Errorf("wrapped: %w", tc.err)); got != tc.want {
			t.Errorf("exit code of %v = %d, want %d", tc.err, got, tc.want)
		}
	}
	if c, err := parse(t, nil, "-expect-code", "InvalidArgument"); err != nil || c.Expect.Code == nil || *c.Expect.Code != codes.InvalidArgument || !c.MultiCall() {
		t.Errorf("-expect-code InvalidArgument: %v %+v", err, c.Expect)
	}
}

func TestStreamFlags(t *testing.T) {
	c, err := parse(t, nil, "-service", "goodbye", "-stream", "bidi", "-streams", "30", "-duration", "1m", "-max-gap", "2s", "-max-lost", "0")
	if err != nil {
		t.Fatal(err)
	}
	if c.Stream.Kind != "bidi" || c.Stream.Method.Name != "ChatGoodbye" || c.Stream.Count != 30 || c.Stream.Duration != time.Minute ||
		c.StreamExpect.MaxGap != 2*time.Second || c.StreamExpect.MaxLost != 0 || c.StreamExpect.MaxDup != -1 || c.Dial.HealthService != "helloworld.Goodbye" {
		t.Fatalf("stream config %+v", c)
	}
	if c, err := parse(t, nil, "-stream", "server", "-method", "StreamHellos"); err != nil || c.Stream.Method.Name != "StreamHellos" || c.Stream.Duration != 0 {
		t.Fatalf("-method StreamHellos: %v %+v", err, c.Stream)
	}
	for _, args := range [][]string{
		{"-stream", "sideways"},
		{"-stream", "bidi", "-method", "StreamHellos"},
		{"-stream", "server", "-method", "SayHello"},
		{"-stream", "server", "-n", "5"},
		{"-stream", "server", "-streams", "0"},
		{"-stream", "server", "-interval", "0s"},
		{"-streams", "3"},
		{"-max-lost", "0", "-n", "3"},
	} {
		if _, err := parse(t, nil, args...); exitcode.Of(err) != exitcode.Usage {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}
