package report

import (
	"encoding/json"
	"fmt"

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
