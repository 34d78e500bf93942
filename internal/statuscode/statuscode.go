// Package statuscode reads gRPC status code names back: the greeter's -expect-code, its
// JSON report and its timeline files write codes as codes.Code.String prints them. It also
// writes the spec's canonical names (the servers' admin endpoint takes and shows those).
package statuscode

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"google.golang.org/grpc/codes"
)

// Parse reads a name as codes.Code.String prints it: "Unavailable", "InvalidArgument",
// or "Code(17)" for a number outside the known codes. It also reads the gRPC spec's
// canonical names ("UNAVAILABLE", "INVALID_ARGUMENT"), which the kit's clients in other
// languages write (clients/README.md): every stack but grpc-go prints those.
func Parse(name string) (codes.Code, error) {
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if c.String() == name {
			return c, nil
		}
	}
	var c codes.Code
	if strings.ToUpper(name) == name && c.UnmarshalJSON([]byte(strconv.Quote(name))) == nil {
		return c, nil
	}
	if n, ok := strings.CutPrefix(name, "Code("); ok {
		if n, ok := strings.CutSuffix(n, ")"); ok {
			if v, err := strconv.ParseUint(n, 10, 32); err == nil {
				return codes.Code(v), nil
			}
		}
	}
	return 0, fmt.Errorf("%q is not a status code name such as OK, InvalidArgument, ResourceExhausted, DeadlineExceeded", name)
}

// Canonical writes c as the gRPC spec names it ("UNAVAILABLE", "INVALID_ARGUMENT"), the
// form Parse also reads; a number outside the known codes as codes.Code.String does.
func Canonical(c codes.Code) string {
	switch {
	case c > codes.Unauthenticated:
		return c.String()
	case c == codes.Canceled: // the spec spells it the British way; grpc-go's String does not
		return "CANCELLED"
	}
	name := c.String() // "InvalidArgument"
	var b strings.Builder
	for i, r := range name {
		if i > 0 && unicode.IsUpper(r) && unicode.IsLower(rune(name[i-1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}
