package loopback

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/greeter"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

// runGreeter runs the greeter command as the CLI does, on these args.
func runGreeter(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cfg, err := greeter.ParseFlags(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatalf("flags %v: %v", args, err)
	}
	var out bytes.Buffer
	err = greeter.Run(context.Background(), cfg, &out, io.Discard)
	return out.String(), err
}

// The command the e2e relies on: JSON report, assertions and exit codes, end to end.
func TestGreeterCommand(t *testing.T) {
	c, _ := threeBackends(t, nil)

	out, err := runGreeter(t, "-target", c.target, "-n", "300", "-c", "3", "-warmup", "5s",
		"-expect-backends", "3", "-max-skew", "0", "-max-errors", "0", "-json")
	if err != nil {
		t.Fatalf("round robin run: %v\n%s", err, out)
	}
	var s report.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("-json output: %v\n%s", err, out)
	}
	if s.OK != 300 || len(s.Backends) != 3 || s.Backends[0].Calls != 100 || !report.Passed(s.Assertions) || len(s.Assertions) != 3 {
		t.Fatalf("summary %+v", s)
	}

	// pick_first with the round robin expectations: exit code 3 and a FAIL line.
	out, err = runGreeter(t, "-target", c.target, "-lb", "pick_first", "-n", "30", "-expect-backends", "3")
	if !errors.Is(err, greeter.ErrAssertionFailed) || exitcode.Of(err) != exitcode.CheckFailed || !strings.Contains(out, "FAIL expect-backends: 1 backends served calls, want 3") {
		t.Fatalf("pick_first assertion: err=%v\n%s", err, out)
	}

	// One call prints the reply and who served it.
	out, err = runGreeter(t, "-target", c.target, "-service", "hello", "-name", "Ryo")
	if err != nil || !strings.Contains(out, `"Hello, Ryo!"`) || !strings.Contains(out, "served by pod hello-") {
		t.Fatalf("single call: %v\n%s", err, out)
	}

	// Bad input through the CLI: a clear status, exit code 1.
	_, err = runGreeter(t, "-target", c.target, "-name-bytes", "300")
	if exitcode.Of(err) != exitcode.Failure || !strings.Contains(err.Error(), "InvalidArgument") || !strings.Contains(err.Error(), "at most 256 bytes") {
		t.Fatalf("over-long name: %v", err)
	}

	// A name that resolves to nothing: the hint names the cause.
	c.dns.Set("empty.kit.test")
	_, err = runGreeter(t, "-target", strings.Replace(c.target, c.name, "empty.kit.test", 1), "-timeout", "2s")
	if err == nil || !strings.Contains(err.Error(), "hint:") {
		t.Fatalf("unknown name: %v", err)
	}
}

// -expect-code turns bad-input checks into assertions: exit 0 when every call got the code.
func TestGreeterExpectCode(t *testing.T) {
	c, _ := threeBackends(t, nil)
	for _, tc := range []struct {
		args []string
		code string
	}{
		{[]string{"-name", ""}, "InvalidArgument"},
		{[]string{"-name-bytes", "300"}, "InvalidArgument"},
		{[]string{"-name-bytes", "5000"}, "ResourceExhausted"},
		{[]string{"-timeout", "1us"}, "DeadlineExceeded"},
	} {
		args := append([]string{"-target", c.target, "-n", "3", "-expect-code", tc.code, "-json"}, tc.args...)
		if out, err := runGreeter(t, args...); err != nil {
			t.Errorf("%v: %v\n%s", tc.args, err, out)
		}
	}
	if _, err := runGreeter(t, "-target", c.target, "-n", "3", "-expect-code", "InvalidArgument"); exitcode.Of(err) != exitcode.CheckFailed {
		t.Errorf("good calls passed -expect-code InvalidArgument: %v", err)
	}
}
