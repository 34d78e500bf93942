// Package catalog is the one table of the kit's gRPC services as a client sees them:
// their descriptors and how to call each method. The servers, the greeter, the bench and
// the demo all read it, so adding a unary RPC is its proto, its handler and one Method
// line here, a streaming RPC its proto, its handler and one StreamMethod line
// (stream.go); adding a service is one Service entry here and its implementation in
// package serving.
//
// It links no server code (package serving holds the implementations, package serverkit
// the server framework), so the greeter does not either; client/greeter's tests check it.
// Names come from the generated ServiceDesc: nothing here spells "helloworld.Hello".
package catalog

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// Service is one gRPC service of the kit.
type Service struct {
	// Key is the short name: the greeter's -service value, the server binary and the
	// Kubernetes app name.
	Key string
	// Desc is the generated descriptor; Desc.ServiceName is the full name, which is also
	// the name its health status is reported under.
	Desc *grpc.ServiceDesc
	// Methods are the unary methods the greeter can call; the first is the default.
	Methods []Method
	// Streams are the streaming methods the greeter can open (greeter -stream).
	Streams []StreamMethod
}

// Method is one unary method and how to call it with a name.
type Method struct {
	Name string // as in the proto, e.g. "SayHello"
	Call func(ctx context.Context, cc grpc.ClientConnInterface, name string, opts ...grpc.CallOption) (Reply, error)
}

// Reply is what every reply of the kit carries: the backend that served it.
type Reply interface {
	proto.Message
	GetBackend() *pb.Backend
}

// Name is the full service name, e.g. helloworld.Hello.
func (s Service) Name() string { return s.Desc.ServiceName }

// FullMethod is "service/method" as grpcurl and logs write it.
func (s Service) FullMethod(m Method) string { return s.Desc.ServiceName + "/" + m.Name }

// Method returns the method called name, or the default one when name is "".
func (s Service) Method(name string) (Method, error) {
	if name == "" {
		return s.Methods[0], nil
	}
	var names []string
	for _, m := range s.Methods {
		if m.Name == name {
			return m, nil
		}
		names = append(names, m.Name)
	}
	return Method{}, fmt.Errorf("%s has no method %q: want %s", s.Name(), name, strings.Join(names, " or "))
}

// All is every service of the kit, in a fixed order.
func All() []Service { return []Service{Hello(), Goodbye()} }

// Hello is helloworld.Hello.
func Hello() Service {
	return Service{
		Key:  "hello",
		Desc: &pb.Hello_ServiceDesc,
		Methods: []Method{
			{Name: "SayHello", Call: func(ctx context.Context, cc grpc.ClientConnInterface, name string, opts ...grpc.CallOption) (Reply, error) {
				return pb.NewHelloClient(cc).SayHello(ctx, &pb.SayHelloRequest{Name: name}, opts...)
			}},
		},
		Streams: []StreamMethod{
			serverStream("StreamHellos", func(ctx context.Context, cc grpc.ClientConnInterface, o StreamOpen, opts ...grpc.CallOption) (grpc.ServerStreamingClient[pb.StreamHellosResponse], error) {
				return pb.NewHelloClient(cc).StreamHellos(ctx, &pb.StreamHellosRequest{Name: o.Name, ResumeFrom: o.ResumeFrom, Interval: o.interval()}, opts...)
			}),
			bidiStream("ChatHello", pb.HelloClient.ChatHello, pb.NewHelloClient, func(o StreamOpen) *pb.ChatHelloRequest {
				return &pb.ChatHelloRequest{Name: o.Name, ResumeFrom: o.ResumeFrom}
			}),
		},
	}
}

// Goodbye is helloworld.Goodbye.
func Goodbye() Service {
	return Service{
		Key:  "goodbye",
		Desc: &pb.Goodbye_ServiceDesc,
		Methods: []Method{
			{Name: "SayGoodbye", Call: func(ctx context.Context, cc grpc.ClientConnInterface, name string, opts ...grpc.CallOption) (Reply, error) {
				return pb.NewGoodbyeClient(cc).SayGoodbye(ctx, &pb.SayGoodbyeRequest{Name: name}, opts...)
			}},
		},
		Streams: []StreamMethod{
			serverStream("StreamGoodbyes", func(ctx context.Context, cc grpc.ClientConnInterface, o StreamOpen, opts ...grpc.CallOption) (grpc.ServerStreamingClient[pb.StreamGoodbyesResponse], error) {
				return pb.NewGoodbyeClient(cc).StreamGoodbyes(ctx, &pb.StreamGoodbyesRequest{Name: o.Name, ResumeFrom: o.ResumeFrom, Interval: o.interval()}, opts...)
			}),
			bidiStream("ChatGoodbye", pb.GoodbyeClient.ChatGoodbye, pb.NewGoodbyeClient, func(o StreamOpen) *pb.ChatGoodbyeRequest {
				return &pb.ChatGoodbyeRequest{Name: o.Name, ResumeFrom: o.ResumeFrom}
			}),
		},
	}
}

// Lookup finds a service by Key.
func Lookup(key string) (Service, error) {
	for _, s := range All() {
		if s.Key == key {
			return s, nil
		}
	}
	return Service{}, fmt.Errorf("no service %q: want %s", key, strings.Join(Keys(), " or "))
}

// Keys are the services' short names.
func Keys() []string {
	var ks []string
	for _, s := range All() {
		ks = append(ks, s.Key)
	}
	return ks
}

// Names are the services' full names.
func Names() []string {
	var ns []string
	for _, s := range All() {
		ns = append(ns, s.Name())
	}
	return ns
}
