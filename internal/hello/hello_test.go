package hello

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/reqmeta"
	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

func TestSayHello(t *testing.T) {
	id := identity.Identity{Pod: "hello-abc", PodIP: "10.0.0.7", Node: "n1", Namespace: "kit", Version: "v2"}
	resp, err := New(id, nil).SayHello(context.Background(), &pb.SayHelloRequest{Name: "Ryo"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetMessage() != "Hello, Ryo!" {
		t.Errorf("message %q", resp.GetMessage())
	}
	b := resp.GetBackend()
	if b.GetPod() != "hello-abc" || b.GetPodIp() != "10.0.0.7" || b.GetNode() != "n1" || b.GetNamespace() != "kit" ||
		b.GetVersion() != "v2" || b.GetService() != pb.Hello_ServiceDesc.ServiceName {
		t.Errorf("backend %v does not carry the identity", b)
	}
}

func TestSayHelloRejectsBadInputAndDeadCallers(t *testing.T) {
	s := New(identity.Identity{Pod: "p"}, nil)
	if _, err := s.SayHello(context.Background(), &pb.SayHelloRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("empty name: %v, want InvalidArgument", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.SayHello(ctx, &pb.SayHelloRequest{Name: "late"}); status.Code(err) != codes.Canceled {
		t.Errorf("cancelled caller: %v, want Canceled", err)
	}
}

func TestSayHelloEchoesCustomMetadata(t *testing.T) {
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-routed-by", "grpc-k8s-kit", "cookie", "no"))
	resp, err := New(identity.Identity{Pod: "p"}, reqmeta.Keys{"x-routed-by"}).SayHello(ctx, &pb.SayHelloRequest{Name: "Ryo"})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetRequestMetadata(); len(got) != 1 || got["x-routed-by"] != "grpc-k8s-kit" {
		t.Fatalf("request_metadata %v, want only x-routed-by", got)
	}
}
