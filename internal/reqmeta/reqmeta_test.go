package reqmeta

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"
)

func TestEcho(t *testing.T) {
	if Echo(context.Background()) != nil {
		t.Fatal("no metadata should echo nil")
	}
	md := metadata.Pairs("x-experiment-group", "canary", "x-routed-by", "a", "x-routed-by", "b",
		"authorization", "secret", "user-agent", "grpc-go", "x-long", strings.Repeat("v", 1000))
	got := Echo(metadata.NewIncomingContext(context.Background(), md))
	if got["x-experiment-group"] != "canary" || got["x-routed-by"] != "a, b" || len(got["x-long"]) != MaxValueLen {
		t.Fatalf("echo %v", got)
	}
	if _, leaked := got["authorization"]; leaked || len(got) != 3 {
		t.Fatalf("echoed non x- keys: %v", got)
	}
	many := metadata.MD{}
	for i := range 40 {
		many.Set(fmt.Sprintf("x-k%d", i), "v")
	}
	if n := len(Echo(metadata.NewIncomingContext(context.Background(), many))); n != MaxKeys {
		t.Fatalf("%d keys echoed, want %d", n, MaxKeys)
	}
}
