package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
)

// StreamKind is how a streaming method streams.
type StreamKind string

// The kinds, as greeter -stream names them.
const (
	ServerStreaming StreamKind = "server" // one request, then messages every interval
	BidiStreaming   StreamKind = "bidi"   // a reply to every message the client sends
)

// StreamMethod is one streaming method and how to open it.
type StreamMethod struct {
	Name string // as in the proto, e.g. "StreamHellos"
	Kind StreamKind
	Open func(ctx context.Context, cc grpc.ClientConnInterface, o StreamOpen, opts ...grpc.CallOption) (Stream, error)
}

// StreamOpen is what a client asks when it opens (or reopens) a stream.
type StreamOpen struct {
	Name       string
	ResumeFrom uint64        // the last seq received, 0 for a new stream
	Interval   time.Duration // server streams: between two messages; 0 = the server's default
}

func (o StreamOpen) interval() *durationpb.Duration {
	if o.Interval == 0 {
		return nil
	}
	return durationpb.New(o.Interval)
}

// StreamReply is what every streamed message of the kit carries.
type StreamReply interface {
	Reply
	GetSeq() uint64
}

// Stream is an open stream of either kind.
type Stream interface {
	// Send sends the next message of a bidi stream (the first carries ResumeFrom); an
	// error on a server stream.
	Send() error
	Recv() (StreamReply, error)
	CloseSend() error
}

// Stream returns the streaming method of kind, or called name when name is not "".
func (s Service) Stream(kind StreamKind, name string) (StreamMethod, error) {
	var names []string
	for _, m := range s.Streams {
		if (name == "" && m.Kind == kind) || (name != "" && m.Name == name) {
			return m, nil
		}
		names = append(names, m.Name+" ("+string(m.Kind)+")")
	}
	if name == "" {
		return StreamMethod{}, fmt.Errorf("%s has no %s streaming method", s.Name(), kind)
	}
	return StreamMethod{}, fmt.Errorf("%s has no streaming method %q: want %s", s.Name(), name, strings.Join(names, " or "))
}

// FullStream is "service/method" of a streaming method.
func (s Service) FullStream(m StreamMethod) string { return s.Desc.ServiceName + "/" + m.Name }

// serverStream is the table line of a server-streaming method, given its generated call.
func serverStream[Resp any, PResp interface {
	*Resp
	StreamReply
}](name string, open func(context.Context, grpc.ClientConnInterface, StreamOpen, ...grpc.CallOption) (grpc.ServerStreamingClient[Resp], error)) StreamMethod {
	return StreamMethod{Name: name, Kind: ServerStreaming, Open: func(ctx context.Context, cc grpc.ClientConnInterface, o StreamOpen, opts ...grpc.CallOption) (Stream, error) {
		st, err := open(ctx, cc, o, opts...)
		if err != nil {
			return nil, err
		}
		return serverStreamClient[Resp, PResp]{st}, nil
	}}
}

type serverStreamClient[Resp any, PResp interface {
	*Resp
	StreamReply
}] struct {
	st grpc.ServerStreamingClient[Resp]
}

func (s serverStreamClient[Resp, PResp]) Send() error {
	return errors.New("a server stream takes no messages from the client")
}

func (s serverStreamClient[Resp, PResp]) Recv() (StreamReply, error) {
	m, err := s.st.Recv()
	if err != nil {
		return nil, err
	}
	return PResp(m), nil
}

func (s serverStreamClient[Resp, PResp]) CloseSend() error { return s.st.CloseSend() }

// bidiStream is the table line of a bidi method, given its generated client method and
// constructor and how to build a message from the open request.
func bidiStream[C any, Req any, Resp any, PResp interface {
	*Resp
	StreamReply
}](name string, method func(C, context.Context, ...grpc.CallOption) (grpc.BidiStreamingClient[Req, Resp], error),
	newClient func(grpc.ClientConnInterface) C, msg func(StreamOpen) *Req) StreamMethod {
	return StreamMethod{Name: name, Kind: BidiStreaming, Open: func(ctx context.Context, cc grpc.ClientConnInterface, o StreamOpen, opts ...grpc.CallOption) (Stream, error) {
		st, err := method(newClient(cc), ctx, opts...)
		if err != nil {
			return nil, err
		}
		return &bidiStreamClient[Req, Resp, PResp]{st: st, first: msg(o), next: msg(StreamOpen{Name: o.Name})}, nil
	}}
}

type bidiStreamClient[Req any, Resp any, PResp interface {
	*Resp
	StreamReply
}] struct {
	st          grpc.BidiStreamingClient[Req, Resp]
	first, next *Req
	sent        bool
}

func (s *bidiStreamClient[Req, Resp, PResp]) Send() error {
	m := s.next
	if !s.sent {
		m, s.sent = s.first, true
	}
	return s.st.Send(m)
}

func (s *bidiStreamClient[Req, Resp, PResp]) Recv() (StreamReply, error) {
	m, err := s.st.Recv()
	if err != nil {
		return nil, err
	}
	return PResp(m), nil
}

func (s *bidiStreamClient[Req, Resp, PResp]) CloseSend() error { return s.st.CloseSend() }
