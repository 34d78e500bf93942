// Package hello implements helloworld.Hello.
package hello

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/reqmeta"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/streamkit"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/validate"
	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// Server answers SayHello, StreamHellos and ChatHello and names the backend that served it.
type Server struct {
	pb.UnimplementedHelloServer
	backend *pb.Backend // built once: replies only read it, and marshalling is safe concurrently
	echo    reqmeta.Keys
}

// New returns a Hello server that reports id in every reply and echoes the request
// metadata keys in echo.
func New(id identity.Identity, echo reqmeta.Keys) *Server {
	return &Server{backend: id.Backend(pb.Hello_ServiceDesc.ServiceName), echo: echo}
}

// SayHello greets req.Name.
func (s *Server) SayHello(ctx context.Context, req *pb.SayHelloRequest) (*pb.SayHelloResponse, error) {
	if err := validate.Name(req.GetName()); err != nil {
		return nil, err
	}
	// A caller that has already given up gets its deadline status, not wasted work.
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	return &pb.SayHelloResponse{
		Message:         "Hello, " + req.GetName() + "!",
		Backend:         s.backend,
		RequestMetadata: s.echo.Echo(ctx),
	}, nil
}

// StreamHellos greets req.Name every interval, numbered from req.ResumeFrom + 1.
func (s *Server) StreamHellos(req *pb.StreamHellosRequest, stream grpc.ServerStreamingServer[pb.StreamHellosResponse]) error {
	if err := validate.Name(req.GetName()); err != nil {
		return err
	}
	interval, err := streamkit.Interval(stream.Context(), req.GetInterval())
	if err != nil {
		return err
	}
	msg := "Hello, " + req.GetName() + "!"
	return streamkit.Tick(stream.Context(), interval, req.GetResumeFrom(), func(seq uint64) error {
		return stream.Send(&pb.StreamHellosResponse{Seq: seq, Message: msg, Backend: s.backend})
	})
}

// ChatHello greets every name the client sends, numbered from the first message's
// ResumeFrom + 1.
func (s *Server) ChatHello(stream grpc.BidiStreamingServer[pb.ChatHelloRequest, pb.ChatHelloResponse]) error {
	return streamkit.Chat(stream.Context(), stream.Recv,
		func(m *pb.ChatHelloRequest) error { return validate.Name(m.GetName()) },
		(*pb.ChatHelloRequest).GetResumeFrom,
		func(seq uint64, m *pb.ChatHelloRequest) error {
			return stream.Send(&pb.ChatHelloResponse{Seq: seq, Message: "Hello, " + m.GetName() + "!", Backend: s.backend})
		})
}
