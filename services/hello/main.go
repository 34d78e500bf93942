// Command hello serves helloworld.Hello on gRPC (default :50051) with health, reflection,
// Prometheus metrics and admin on the HTTP port (default :8080). Run with -h for every
// flag and its environment variable.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/hello"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/reqmeta"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serverkit"
	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	go func() { <-ctx.Done(); stop() }() // a second signal kills at once
	err := run(ctx)
	if code := serverkit.ExitCode(err); code != 0 {
		fmt.Fprintf(os.Stderr, "hello: %v\n", err)
		os.Exit(code)
	}
}

func run(ctx context.Context) error {
	return serverkit.Run(ctx, "hello", os.Args[1:], os.Getenv, os.Stdout, os.Stderr,
		func(id identity.Identity, echo reqmeta.Keys) serverkit.Service {
			return serverkit.Service{Name: hello.ServiceName, Register: func(r grpc.ServiceRegistrar) {
				pb.RegisterHelloServer(r, hello.New(id, echo))
			}}
		})
}
