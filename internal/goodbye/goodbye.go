// Package goodbye implements helloworld.Goodbye: a farewell with a famous saying.
package goodbye

import (
	"context"
	"math/rand/v2"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/reqmeta"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/streamkit"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/validate"
	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// Saying is a famous quotation.
type Saying struct{ Text, Author string }

// Sayings the service picks from.
var Sayings = []Saying{
	{"Parting is such sweet sorrow.", "William Shakespeare"},
	{"All that is gold does not glitter; not all those who wander are lost.", "J. R. R. Tolkien"},
	{"The only thing we have to fear is fear itself.", "Franklin D. Roosevelt"},
	{"I think, therefore I am.", "René Descartes"},
	{"The unexamined life is not worth living.", "Socrates"},
	{"Simplicity is the ultimate sophistication.", "Leonardo da Vinci"},
	{"Stay hungry, stay foolish.", "Stewart Brand"},
	{"Don't communicate by sharing memory; share memory by communicating.", "Rob Pike"},
	{"It does not matter how slowly you go as long as you do not stop.", "Confucius"},
	{"The journey of a thousand miles begins with one step.", "Lao Tzu"},
	{"So long, and thanks for all the fish.", "Douglas Adams"},
	{"We shall not cease from exploration.", "T. S. Eliot"},
}

// Server answers SayGoodbye, StreamGoodbyes and ChatGoodbye and names the backend that served it.
type Server struct {
	pb.UnimplementedGoodbyeServer
	backend *pb.Backend // built once: replies only read it, and marshalling is safe concurrently
	echo    reqmeta.Keys
	pick    func(n int) int
}

// New returns a Goodbye server that reports id, echoes the request metadata keys in
// echo, and picks sayings at random.
func New(id identity.Identity, echo reqmeta.Keys) *Server {
	return &Server{backend: id.Backend(pb.Goodbye_ServiceDesc.ServiceName), echo: echo, pick: rand.IntN}
}

// SayGoodbye bids req.Name farewell.
func (s *Server) SayGoodbye(ctx context.Context, req *pb.SayGoodbyeRequest) (*pb.SayGoodbyeResponse, error) {
	if err := validate.Name(req.GetName()); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	say := Sayings[s.pick(len(Sayings))]
	return &pb.SayGoodbyeResponse{
		Message:         "Goodbye, " + req.GetName() + ".",
		Saying:          &pb.Saying{Text: say.Text, Author: say.Author},
		Backend:         s.backend,
		RequestMetadata: s.echo.Echo(ctx),
	}, nil
}

// StreamGoodbyes bids req.Name farewell every interval, numbered from req.ResumeFrom + 1.
func (s *Server) StreamGoodbyes(req *pb.StreamGoodbyesRequest, stream grpc.ServerStreamingServer[pb.StreamGoodbyesResponse]) error {
	if err := validate.Name(req.GetName()); err != nil {
		return err
	}
	interval, err := streamkit.Interval(stream.Context(), req.GetInterval())
	if err != nil {
		return err
	}
	msg := "Goodbye, " + req.GetName() + "."
	return streamkit.Tick(stream.Context(), interval, req.GetResumeFrom(), func(seq uint64) error {
		return stream.Send(&pb.StreamGoodbyesResponse{Seq: seq, Message: msg, Backend: s.backend})
	})
}

// ChatGoodbye bids farewell to every name the client sends, numbered from the first
// message's ResumeFrom + 1.
func (s *Server) ChatGoodbye(stream grpc.BidiStreamingServer[pb.ChatGoodbyeRequest, pb.ChatGoodbyeResponse]) error {
	return streamkit.Chat(stream.Context(), stream.Recv,
		func(m *pb.ChatGoodbyeRequest) error { return validate.Name(m.GetName()) },
		(*pb.ChatGoodbyeRequest).GetResumeFrom,
		func(seq uint64, m *pb.ChatGoodbyeRequest) error {
			return stream.Send(&pb.ChatGoodbyeResponse{Seq: seq, Message: "Goodbye, " + m.GetName() + ".", Backend: s.backend})
		})
}
