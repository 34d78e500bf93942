package report

import (
	"encoding/json"
	"fmt"

	"google.golang.org/grpc/codes"
)

// ParseCode reads a status code name as codes.Code.String prints it ("Unavailable",
// "InvalidArgument"): the form of -expect-code and of the JSON report.
func ParseCode(name string) (codes.Code, error) {
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if c.String() == name {
			return c, nil
		}
	}
	return 0, fmt.Errorf("%q is not a status code name such as OK, InvalidArgument, ResourceExhausted, DeadlineExceeded", name)
}

// errorCountJSON is ErrorCount on the wire: the code by name.
type errorCountJSON struct {
	Code    string `json:"code"`
	Count   int64  `json:"count"`
	Example string `json:"example"`
	Hint    string `json:"hint,omitempty"`
}

// MarshalJSON writes the code by name.
func (e ErrorCount) MarshalJSON() ([]byte, error) {
	return json.Marshal(errorCountJSON{Code: e.Code.String(), Count: e.Count, Example: e.Example, Hint: e.Hint})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (e *ErrorCount) UnmarshalJSON(b []byte) error {
	var j errorCountJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	c, err := ParseCode(j.Code)
	if err != nil {
		return fmt.Errorf("errors[].code: %w", err)
	}
	*e = ErrorCount{Code: c, Count: j.Count, Example: j.Example, Hint: j.Hint}
	return nil
}
