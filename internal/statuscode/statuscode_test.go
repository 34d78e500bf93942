package statuscode

import (
	"testing"

	"google.golang.org/grpc/codes"
)

func TestParseReadsWhatStringWrites(t *testing.T) {
	for c := codes.OK; c <= codes.Unauthenticated+3; c++ {
		if got, err := Parse(c.String()); err != nil || got != c {
			t.Errorf("Parse(%q) = %v, %v", c.String(), got, err)
		}
	}
	for _, bad := range []string{"UNAVAILABLE", "unavailable", "", "Code(x)", "Teapot"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q): no error", bad)
		}
	}
}
