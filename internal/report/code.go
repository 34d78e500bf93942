package report

import (
	"encoding/json"
	"fmt"

	"google.golang.org/grpc/codes"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/statuscode"
)

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
	c, err := statuscode.Parse(j.Code)
	if err != nil {
		return fmt.Errorf("errors[].code: %w", err)
	}
	*e = ErrorCount{Code: c, Count: j.Count, Example: j.Example, Hint: j.Hint}
	return nil
}

// CodeCounts counts calls by status code. In JSON it is an object keyed by the codes'
// names, as ErrorCount writes them: {"DeadlineExceeded": 12}.
type CodeCounts map[codes.Code]int64

// MarshalJSON writes the codes by name.
func (c CodeCounts) MarshalJSON() ([]byte, error) {
	m := make(map[string]int64, len(c))
	for code, n := range c {
		m[code.String()] = n
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads what MarshalJSON writes (and codes named as the other clients name
// them, DEADLINE_EXCEEDED).
func (c *CodeCounts) UnmarshalJSON(b []byte) error {
	var m map[string]int64
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*c = make(CodeCounts, len(m))
	for name, n := range m {
		code, err := statuscode.Parse(name)
		if err != nil {
			return fmt.Errorf("failed_by_code: %w", err)
		}
		(*c)[code] += n
	}
	return nil
}
