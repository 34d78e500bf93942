//go:build e2e

package e2e

import (
	"testing"

	h "github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/statuscode"
)

func init() {
	register(h.Scenario{Name: "bad input", Order: 10, Needs: h.FeatureResilience, Run: badInput})
}

// badInput: malformed calls get their status code through every entry point, no pod
// restarts, and the servers still serve.
func badInput(t *testing.T, s *h.Suite, tp h.Topology) {
	before := s.Restarts(t, tp.Namespace)
	cases := []struct {
		name string
		args []string
		code string
	}{
		{"empty name", []string{"-name="}, "InvalidArgument"},
		{"over-long name", []string{"-name-bytes=300"}, "InvalidArgument"},
		{"oversized message", []string{"-name-bytes=5000"}, "ResourceExhausted"},
		{"expired deadline", []string{"-timeout=1us"}, "DeadlineExceeded"},
	}
	sums := make([]report.Summary, len(cases))
	if tp.Entry.InCluster {
		// Four Jobs at once: each pays its pod start-up, not one after the other.
		loads := make([]*h.Load, len(cases))
		for i, c := range cases {
			loads[i] = s.JobLoad(t, tp, "bad input: "+c.name, append(c.args, "-n=20", "-expect-code="+c.code, "-json", "-quiet")...)
		}
		for i, l := range loads {
			sums[i] = l.Result(t)
		}
	} else {
		for i, c := range cases {
			var code int
			sums[i], code = s.Greet(t, append(proxyArgs(s, tp), append(c.args, "-n", "20", "-expect-code", c.code)...)...)
			if code != 0 {
				t.Errorf("%s: exit %d", c.name, code)
			}
		}
	}
	for i, c := range cases {
		sum := sums[i]
		if !report.Passed(sum.Assertions) || sum.Calls != 20 {
			t.Errorf("%s through %s: want 20 × %s, got %+v", c.name, tp.Name, c.code, sum.Errors)
		}
		s.Resilience.Add(tp.Name, "bad input: "+c.name+" → "+c.code, sum.Calls-countCode(sum, c.code), 0, "")
	}
	if after := s.Restarts(t, tp.Namespace); after != before {
		t.Errorf("pods restarted after bad input: %d restarts before, %d after", before, after)
	}
	// And they still serve.
	var sum report.Summary
	if tp.Entry.InCluster {
		sum = s.JobLoad(t, tp, "after bad input", "-n=30", "-json", "-quiet").Result(t)
	} else {
		sum, _ = s.Greet(t, append(proxyArgs(s, tp), "-n", "30")...)
	}
	if sum.Failed != 0 || sum.Calls != 30 {
		t.Errorf("after bad input: %d of %d good calls failed", sum.Failed, sum.Calls)
	}
}

func countCode(sum report.Summary, name string) int64 {
	c, err := statuscode.Parse(name)
	if err != nil {
		return 0
	}
	return sum.Count(c)
}

// proxyArgs aim a host greeter at a proxied topology's entry with retries off: a call's
// status is the server's (or the proxy's), not a retry's.
func proxyArgs(s *h.Suite, tp h.Topology) []string {
	return append(s.HostArgs(tp.Entry), "-retry=false")
}
