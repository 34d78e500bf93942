package exitcode

import (
	"errors"
	"flag"
	"fmt"
	"testing"
)

func TestOf(t *testing.T) {
	assertion := MarkCheckFailed(errors.New("assertion failed"))
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, OK},
		{flag.ErrHelp, OK},
		{fmt.Errorf("%w: -port: out of range", ErrUsage), Usage},
		{assertion, CheckFailed},
		{fmt.Errorf("%w: 2 error finding(s)", assertion), CheckFailed},
		{errors.New("connection refused"), Failure},
	} {
		if got := Of(tc.err); got != tc.want {
			t.Errorf("Of(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	if assertion.Error() != "assertion failed" {
		t.Errorf("marking changed the message: %q", assertion.Error())
	}
	if !errors.Is(fmt.Errorf("wrapped: %w", assertion), assertion) {
		t.Error("a marked sentinel is not found by errors.Is through a wrap")
	}
}
