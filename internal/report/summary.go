package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"google.golang.org/grpc/codes"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/timeline"
)

// Summary of a run: the shape of `greeter -json`.
type Summary struct {
	Target     string           `json:"target,omitempty"`
	Method     string           `json:"method,omitempty"`
	LB         string           `json:"lb,omitempty"`
	Calls      int64            `json:"calls"`
	OK         int64            `json:"ok"`
	Failed     int64            `json:"failed"`
	ElapsedS   float64          `json:"elapsed_s"`
	PerSecond  float64          `json:"per_second"`
	Backends   []BackendCount   `json:"backends"`
	ByVersion  map[string]int64 `json:"by_version"`
	Errors     []ErrorCount     `json:"errors"`
	Latency    *Latency         `json:"latency_ms,omitempty"`
	Assertions []Assertion      `json:"assertions,omitempty"`
	// Timeline is the run over time (greeter -timeline -): calls per second per pod and
	// the failed calls.
	Timeline *timeline.Series `json:"timeline,omitempty"`
	// Client is the stack that made the calls, when it is not the greeter: a client of the
	// kit in another language (clients/README.md) writes this same report.
	Client *Client `json:"client,omitempty"`
}

// Client names the gRPC stack of a client in another language and the settings it ran with.
type Client struct {
	Language   string  `json:"language"`
	GRPC       string  `json:"grpc"` // the stack's version
	Policy     string  `json:"policy"`
	Retries    bool    `json:"retries"`
	Health     bool    `json:"health"`
	KeepaliveS float64 `json:"keepalive_s"`
	// DNSMinResolveS: the shortest interval between DNS re-resolutions it was given (0:
	// the stack's default).
	DNSMinResolveS float64 `json:"dns_min_resolve_s"`
}

// BackendCount is how many successful calls one backend served, its share of them, and
// how long they took: a slow pod shows here, and with a policy that follows capacity
// (weighted_round_robin, least_request) its share falls.
type BackendCount struct {
	Backend
	Calls   int64    `json:"calls"`
	Share   float64  `json:"share"`
	Latency *Latency `json:"latency_ms,omitempty"`
	// FirstUnix is when the backend first answered, in Unix seconds (it dates a client's
	// first call to a new pod).
	FirstUnix float64 `json:"first_unix,omitempty"`
	// LastSentUnix is when the last call sent to the backend started, answered or not, in
	// Unix seconds: after a node loss, when the client stopped sending the lost pod calls.
	// A failed call counts here and in FailedByCode when the client knows where it went:
	// the address of its connection (the greeter asks grpc-go for it with every call) is
	// one that only this backend answered from. Through a proxy every call goes to the
	// proxy's address and every pod answers from it, so no failed call is attributed and
	// this is the last successful call. The greeter writes it and FailedByCode; the
	// clients in other languages need not (clients/README.md).
	LastSentUnix float64 `json:"last_sent_unix,omitempty"`
	// FailedByCode counts the failed calls attributed to the backend (as LastSentUnix
	// says), by status code; they are also in the report's errors. Absent when none.
	FailedByCode CodeCounts `json:"failed_by_code,omitempty"`
}

// Failed is the number of failed calls attributed to the backend.
func (b BackendCount) Failed() int64 {
	var n int64
	for _, c := range b.FailedByCode {
		n += c
	}
	return n
}

// ErrorCount is how many calls failed with one status code, with a sample message and,
// when the kit recognises the cause, a hint.
// It is written to JSON with the code by name (code.go).
type ErrorCount struct {
	Code    codes.Code
	Count   int64
	Example string
	Hint    string
}

// Latency percentiles of successful calls, in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// Skew is how far the busiest or idlest backend is from an even share, relative to the
// even share: 0 is a perfect spread; 0.1 means some backend is 10% off its fair share.
func (s Summary) Skew() float64 {
	if len(s.Backends) == 0 || s.OK == 0 {
		return 0
	}
	mean := float64(s.OK) / float64(len(s.Backends))
	worst := 0.0
	for _, b := range s.Backends {
		worst = max(worst, math.Abs(float64(b.Calls)-mean)/mean)
	}
	return worst
}

// WriteJSON writes s as indented JSON.
func (s Summary) WriteJSON(w io.Writer) error { return writeJSON(w, s) }

// writeJSON is the reports' JSON form: indented, one document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// WriteText writes the human report: the distribution table, errors, latency, assertions.
func (s Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d calls to %s via %s (%s): %d ok, %d failed in %.2fs (%.0f calls/s)\n\n",
		s.Calls, s.Method, s.Target, s.LB, s.OK, s.Failed, s.ElapsedS, s.PerSecond)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	// FAILED: the failed calls attributed to each pod, when any were.
	attributed := slices.ContainsFunc(s.Backends, func(b BackendCount) bool { return b.Failed() > 0 })
	failedCol := func(h string) string {
		if attributed {
			return h + "\t"
		}
		return ""
	}
	fmt.Fprintln(tw, "POD\tVERSION\tNODE\tCALLS\tSHARE\tP50 MS\tP99 MS\t"+failedCol("FAILED"))
	for _, be := range s.Backends {
		p50, p99 := "-", "-"
		if l := be.Latency; l != nil {
			p50, p99 = fmt.Sprintf("%.3f", l.P50), fmt.Sprintf("%.3f", l.P99)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.1f%%\t%s\t%s\t%s\n", be.Pod, be.Version, dash(be.Node), be.Calls, 100*be.Share, p50, p99,
			failedCol(strconv.FormatInt(be.Failed(), 10)))
	}
	tw.Flush()
	if len(s.Backends) > 1 {
		fmt.Fprintf(&b, "\n%d backends, skew %.3f (0 = perfectly even)\n", len(s.Backends), s.Skew())
	}
	if len(s.Errors) > 0 {
		fmt.Fprintln(&b, "\nERRORS")
		for _, e := range s.Errors {
			fmt.Fprintf(&b, "  %-18s %6d  e.g. %s\n", e.Code.String(), e.Count, e.Example)
			if e.Hint != "" {
				fmt.Fprintf(&b, "  %-18s         hint: %s\n", "", e.Hint)
			}
		}
	}
	if l := s.Latency; l != nil {
		fmt.Fprintf(&b, "\nlatency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n", l.P50, l.P90, l.P99, l.P999, l.Max)
	}
	if len(s.Assertions) > 0 {
		fmt.Fprintln(&b, "\nASSERTIONS")
		for _, a := range s.Assertions {
			mark := "ok  "
			if !a.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(&b, "  %s %s: %s\n", mark, a.Name, a.Detail)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
