package hint

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

// The node-loss signature: DEADLINE_EXCEEDED while other backends answered. Without
// answers from anyone, or with another code, the run adds nothing. When the client knows
// where the failed calls went, the hint names the pods, most first.
func TestForRun(t *testing.T) {
	for _, tc := range []struct {
		code     codes.Code
		answered int
		failedOn []Pod
		want     []string
	}{
		{codes.DeadlineExceeded, 2, nil, []string{"calls timed out while other backends answered: ", "node was lost", "-keepalive=10s", "keepalive-min-time",
			"-timeout", "-outlier-detection", "-keepalive=0", "retry with a new deadline"}},
		{codes.DeadlineExceeded, 1, nil, []string{"node was lost"}},
		{codes.DeadlineExceeded, 3, []Pod{{"hello-1", "n1", 2}, {"hello-3", "n2", 118}}, []string{
			"calls timed out while other backends answered, 118 of 120 sent to pod hello-3 (node n2), 2 to pod hello-1 (node n1): the signature"}},
		{codes.DeadlineExceeded, 5, []Pod{{"a", "", 1}, {"b", "", 1}, {"c", "", 1}, {"d", "", 1}, {"e", "", 1}}, []string{
			"1 of 120 sent to pod a, 1 to pod b, 1 to pod c, and 2 more pods: "}},
		{codes.DeadlineExceeded, 0, nil, nil}, // every call failed: many causes
		{codes.Unavailable, 2, []Pod{{"hello-3", "n2", 5}}, nil},
		{codes.OK, 3, nil, nil},
	} {
		got := ForRun(tc.code, "context deadline exceeded", tc.answered, 120, tc.failedOn)
		if (len(tc.want) == 0) != (got == "") {
			t.Errorf("ForRun(%s, %d, %v) = %q, want a hint: %v", tc.code, tc.answered, tc.failedOn, got, len(tc.want) > 0)
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("ForRun(%s, %d, %v) does not mention %q: %s", tc.code, tc.answered, tc.failedOn, w, got)
			}
		}
	}
	if ForRun(codes.DeadlineExceeded, "", 2, 10, nil) != NodeLoss {
		t.Error("without attribution ForRun is not NodeLoss")
	}
}
