package report

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

// The report every client in another language writes (clients/README.md, the contract) is
// read by this package's parser: the example in the contract decodes, field by field.
func TestClientsContractExampleDecodes(t *testing.T) {
	b, err := os.ReadFile("../../clients/README.md")
	if err != nil {
		t.Fatal(err)
	}
	var example string
	for _, block := range strings.Split(string(b), "```json")[1:] {
		block, _, _ = strings.Cut(block, "```")
		if strings.Contains(block, `"backends"`) {
			example = block
		}
	}
	if example == "" {
		t.Fatal("clients/README.md has no json block with a report")
	}
	var s Summary
	dec := json.NewDecoder(strings.NewReader(example))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("the contract's report does not decode: %v\n%s", err, example)
	}
	if s.Calls != 300 || s.OK != 300 || len(s.Backends) != 1 || s.Backends[0].Pod != "hello-abc" || s.Backends[0].FirstUnix == 0 {
		t.Errorf("calls/backends: %+v", s)
	}
	if len(s.Errors) != 1 || s.Errors[0].Code != codes.Unavailable || s.Errors[0].Count != 2 {
		t.Errorf("errors: %+v", s.Errors)
	}
	if s.Client == nil || s.Client.Language != "python" || !s.Client.Retries {
		t.Errorf("client: %+v", s.Client)
	}
}
