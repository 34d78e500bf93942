package loopback

import (
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/hint"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/timeline"
)

// One of three servers takes calls and does not answer within the deadline, as a pod on
// a lost node does (its connection stays up, nothing comes back): the greeter's report
// counts its calls as DEADLINE_EXCEEDED while the other two answer, and gives them the
// node-loss hint. A loopback server cannot lose its node; a long added latency looks the
// same from the client, which is why the hint names the slow pod too.
func TestTimeoutsWhileOthersAnswerGetTheNodeLossHint(t *testing.T) {
	c, bs := startGroup(t, "nodeloss.kit.test", "pod", []string{"127.0.0.24", "127.0.0.25", "127.0.0.26"}, nil)
	bs[2].setSlow(t, "10s")
	out, err := runGreeter(t, "-target", c.target, "-n", "30", "-c", "3", "-timeout", "300ms", "-quiet", "-json", "-timeline", "-")
	if err != nil {
		t.Fatalf("greeter: %v\n%s", err, out)
	}
	var s report.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("-json output: %v\n%s", err, out)
	}
	if len(s.Backends) != 2 || len(s.Errors) != 1 || s.Errors[0].Code != codes.DeadlineExceeded {
		t.Fatalf("want 2 backends answering and DEADLINE_EXCEEDED only, got %+v", s)
	}
	// The timeline counts the timed-out calls as the report does (a call that ends at its
	// deadline is a failure, not a call cut short by the user).
	if s.Timeline == nil || s.Timeline.Calls() != int(s.Calls) || len(s.Timeline.FailedByCode()) != 1 ||
		s.Timeline.FailedByCode()[0] != (timeline.CodeCount{Code: codes.DeadlineExceeded, Calls: int(s.Errors[0].Count)}) {
		t.Errorf("timeline: %d calls, failed %+v; report: %d calls, %+v", s.Timeline.Calls(), s.Timeline.FailedByCode(), s.Calls, s.Errors)
	}
	if s.Errors[0].Hint != hint.NodeLoss || !strings.Contains(s.Errors[0].Hint, "-keepalive=10s") {
		t.Errorf("want the node-loss hint, got %q", s.Errors[0].Hint)
	}
}
