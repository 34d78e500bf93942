package validate

import (
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestName(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		wantOK   bool
		wantMsg  string
	}{
		{"plain", "Ryo", true, ""},
		{"unicode", "Søren Kierkegaard 漢字", true, ""},
		{"inner spaces", "Ada Lovelace", true, ""},
		{"max length", strings.Repeat("a", MaxNameBytes), true, ""},
		{"empty", "", false, "name is required"},
		{"too long", strings.Repeat("a", MaxNameBytes+1), false, "257 bytes long: at most 256"},
		{"invalid utf8", "a\xffb", false, "not valid UTF-8"},
		{"newline", "a\nb", false, "control character (U+000A) at byte 1"},
		{"nul", "\x00", false, "control character"},
		{"blank", " \t ", false, "control character"},
		{"spaces only", "   ", false, "only whitespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Name(tc.in)
			if tc.wantOK {
				if err != nil {
					t.Fatalf("Name(%q) = %v, want ok", tc.in, err)
				}
				return
			}
			st, ok := status.FromError(err)
			if !ok || st.Code() != codes.InvalidArgument {
				t.Fatalf("Name(%q) = %v, want InvalidArgument", tc.in, err)
			}
			if !strings.Contains(st.Message(), tc.wantMsg) {
				t.Fatalf("Name(%q) message %q, want it to contain %q", tc.in, st.Message(), tc.wantMsg)
			}
		})
	}
}

// FuzzName: never panics; accepts exactly the names the rules describe; every rejection is
// InvalidArgument with a message.
func FuzzName(f *testing.F) {
	for _, s := range []string{"Ryo", "", " ", "a\nb", "\xff", strings.Repeat("é", 200), "\u200b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := Name(s)
		valid := s != "" && len(s) <= MaxNameBytes && utf8.ValidString(s) && strings.TrimSpace(s) != "" &&
			!strings.ContainsFunc(s, isControl)
		if valid != (err == nil) {
			t.Fatalf("Name(%q) = %v, but the rules say valid=%v", s, err, valid)
		}
		if err != nil {
			st, _ := status.FromError(err)
			if st.Code() != codes.InvalidArgument || st.Message() == "" {
				t.Fatalf("Name(%q) = %v, want InvalidArgument with a message", s, err)
			}
		}
	})
}

func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }
