package hint

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

// The node-loss signature: DEADLINE_EXCEEDED while other backends answered. Without
// answers from anyone, or with another code, the run adds nothing.
func TestForRun(t *testing.T) {
	for _, tc := range []struct {
		code     codes.Code
		msg      string
		answered int
		want     []string
	}{
		{codes.DeadlineExceeded, "context deadline exceeded", 2, []string{"other backends answered", "node was lost", "-keepalive=10s", "keepalive-min-time", "-timeout", "outlier", "retry with a new deadline"}},
		{codes.DeadlineExceeded, "context deadline exceeded", 1, []string{"node was lost"}},
		{codes.DeadlineExceeded, "context deadline exceeded", 0, nil}, // every call failed: many causes
		{codes.Unavailable, "connection refused", 2, nil},
		{codes.OK, "", 3, nil},
	} {
		got := ForRun(tc.code, tc.msg, tc.answered)
		if (len(tc.want) == 0) != (got == "") {
			t.Errorf("ForRun(%s, %q, %d) = %q, want a hint: %v", tc.code, tc.msg, tc.answered, got, len(tc.want) > 0)
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("ForRun(%s, %q, %d) does not mention %q: %s", tc.code, tc.msg, tc.answered, w, got)
			}
		}
	}
}
