package reqmeta

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"
)

func TestEcho(t *testing.T) {
	ks := ParseKeys(" X-Experiment-Group, x-routed-by,,x-long, x-absent ")
	if len(ks) != 4 || ks[0] != "x-experiment-group" {
		t.Fatalf("ParseKeys: %q", ks)
	}
	if ks.Echo(context.Background()) != nil {
		t.Fatal("no metadata should echo nil")
	}
	md := metadata.Pairs("x-experiment-group", "canary", "x-routed-by", "a", "x-routed-by", "b",
		"authorization", "secret", "x-long", strings.Repeat("v", 1000))
	got := ks.Echo(metadata.NewIncomingContext(context.Background(), md))
	if got["x-experiment-group"] != "canary" || got["x-routed-by"] != "a, b" || len(got["x-long"]) != MaxValueLen {
		t.Fatalf("echo %v", got)
	}
	if _, leaked := got["authorization"]; leaked || len(got) != 3 {
		t.Fatalf("echoed keys not asked for: %v", got)
	}
}
