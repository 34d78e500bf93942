package goodbye

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

func TestSayGoodbyeAnswersWithASaying(t *testing.T) {
	s := New(identity.Identity{Pod: "goodbye-1", Version: "v1"}, nil)
	for i := range Sayings {
		s.pick = func(int) int { return i }
		resp, err := s.SayGoodbye(context.Background(), &pb.SayGoodbyeRequest{Name: "Ryo"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetMessage() != "Goodbye, Ryo." || resp.GetBackend().GetPod() != "goodbye-1" || resp.GetBackend().GetService() != pb.Goodbye_ServiceDesc.ServiceName {
			t.Fatalf("reply %v", resp)
		}
		if got := resp.GetSaying(); got.GetText() != Sayings[i].Text || got.GetAuthor() == "" {
			t.Fatalf("saying %v, want %v", got, Sayings[i])
		}
	}
}

func TestSayGoodbyeValidates(t *testing.T) {
	_, err := New(identity.Identity{}, nil).SayGoodbye(context.Background(), &pb.SayGoodbyeRequest{Name: "\x00"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("control character: %v, want InvalidArgument", err)
	}
}
