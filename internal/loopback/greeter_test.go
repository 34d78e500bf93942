package loopback

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// -timeline: the series the greeter writes agrees with its own report, in the JSON report
// and in a CSV file.
func TestGreeterTimeline(t *testing.T) {
	c, _ := threeBackends(t, nil)
	out, err := runGreeter(t, "-target", c.target, "-duration", "2s", "-c", "3", "-warmup", "5s", "-expect-backends", "3",
		"-json", "-timeline", "-", "-timeline-bucket", "250ms")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var s report.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Timeline == nil {
		t.Fatalf("report without a timeline: %v\n%s", err, out)
	}
	tl := s.Timeline
	if int64(tl.Calls()) != s.Calls || len(tl.Pods) != 3 || tl.Bucket != 250*time.Millisecond || tl.Buckets() < 8 {
		t.Fatalf("timeline: %d calls over %v in %d buckets of %s; report: %d calls", tl.Calls(), tl.Pods, tl.Buckets(), tl.Bucket, s.Calls)
	}
	for _, b := range s.Backends {
		sum := 0.0
		for _, r := range tl.Rates(b.Pod) {
			sum += r * tl.Bucket.Seconds()
		}
		if int64(sum+0.5) != b.Calls {
			t.Errorf("%s: timeline sums to %.0f calls, report says %d", b.Pod, sum, b.Calls)
		}
	}

	file := filepath.Join(t.TempDir(), "run.csv")
	if _, err := runGreeter(t, "-target", c.target, "-n", "30", "-timeline", file); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(mustOpen(t, file)).ReadAll()
	if err != nil || len(rows) < 2 || rows[0][0] != "kind" {
		t.Fatalf("CSV %s: %v %v", file, err, rows)
	}
	if _, err := greeter.ParseFlags([]string{"-timeline", "-"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("-timeline - without -json: no usage error")
	}
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
