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
	// The spec's canonical names, as the clients in other languages write them.
	for name, want := range map[string]codes.Code{"UNAVAILABLE": codes.Unavailable, "DEADLINE_EXCEEDED": codes.DeadlineExceeded, "OK": codes.OK} {
		if got, err := Parse(name); err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	for _, bad := range []string{"unavailable", "", "Code(x)", "Teapot", "TEAPOT", "17"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q): no error", bad)
		}
	}
}

func TestCanonical(t *testing.T) {
	for c, want := range map[codes.Code]string{
		codes.OK: "OK", codes.Unavailable: "UNAVAILABLE", codes.InvalidArgument: "INVALID_ARGUMENT",
		codes.DeadlineExceeded: "DEADLINE_EXCEEDED", codes.Canceled: "CANCELLED", codes.DataLoss: "DATA_LOSS", codes.Code(20): "Code(20)",
	} {
		if got := Canonical(c); got != want {
			t.Errorf("Canonical(%v) = %q, want %q", c, got, want)
		}
	}
	// Every known code round-trips through Parse.
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if got, err := Parse(Canonical(c)); err != nil || got != c {
			t.Errorf("Parse(Canonical(%v)) = %v, %v", c, got, err)
		}
	}
}
