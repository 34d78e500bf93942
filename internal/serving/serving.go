// Package serving is the server half of the catalog: the implementation of each of the
// kit's services, registered with the service's generated descriptor, as the
// serverkit.Service that the server binaries, the demo, the bench and the tests serve.
// The client half (descriptors and how to call each method) is package catalog, which
// the greeter links without any of this.
package serving

import (
	"fmt"

	"google.golang.org/grpc"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/goodbye"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/hello"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/reqmeta"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serverkit"
	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// impls builds each service's implementation, by full service name, given the pod's
// identity and the request metadata keys replies echo. A service of the catalog without
// a line here fails this package's tests.
var impls = map[string]func(identity.Identity, reqmeta.Keys) any{
	pb.Hello_ServiceDesc.ServiceName:   func(id identity.Identity, echo reqmeta.Keys) any { return hello.New(id, echo) },
	pb.Goodbye_ServiceDesc.ServiceName: func(id identity.Identity, echo reqmeta.Keys) any { return goodbye.New(id, echo) },
}

// Server is what serverkit serves for svc in a pod with identity id, its replies echoing
// the request metadata keys echo. It panics when svc has no implementation here: a
// programming error the tests catch.
func Server(svc catalog.Service, id identity.Identity, echo reqmeta.Keys) serverkit.Service {
	newImpl, ok := impls[svc.Name()]
	if !ok {
		panic(fmt.Sprintf("serving: no implementation of %s", svc.Name()))
	}
	impl := newImpl(id, echo)
	return serverkit.Service{Name: svc.Name(), Register: func(r grpc.ServiceRegistrar) {
		r.RegisterService(svc.Desc, impl)
	}}
}

// For is Server for svc as the constructor serverkit.Run takes.
func For(svc catalog.Service) func(identity.Identity, reqmeta.Keys) serverkit.Service {
	return func(id identity.Identity, echo reqmeta.Keys) serverkit.Service { return Server(svc, id, echo) }
}
