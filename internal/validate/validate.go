// Package validate holds the input rules shared by the Hello and Goodbye services.
package validate

import (
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MaxNameBytes bounds a name. Far below the server's MaxRecvMsgSize, so an over-long name
// gets a precise InvalidArgument rather than a transport-level ResourceExhausted.
const MaxNameBytes = 256

// Name checks a caller-supplied name. The error is a gRPC InvalidArgument status whose
// message says what is wrong and what is allowed.
func Name(name string) error {
	switch {
	case name == "":
		return status.Error(codes.InvalidArgument, "name is required: send a non-empty name, e.g. {\"name\":\"Ryo\"}")
	case len(name) > MaxNameBytes:
		return status.Errorf(codes.InvalidArgument, "name is %d bytes long: at most %d bytes are allowed", len(name), MaxNameBytes)
	case !utf8.ValidString(name):
		return status.Error(codes.InvalidArgument, "name is not valid UTF-8")
	}
	blank := true
	for i, r := range name {
		if unicode.IsControl(r) {
			return status.Errorf(codes.InvalidArgument, "name has a control character (%U) at byte %d", r, i)
		}
		if !unicode.IsSpace(r) {
			blank = false
		}
	}
	if blank {
		return status.Error(codes.InvalidArgument, "name is only whitespace: send a visible name")
	}
	return nil
}
