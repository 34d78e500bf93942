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

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serverkit"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	go func() { <-ctx.Done(); stop() }() // a second signal kills at once
	err := run(ctx)
	if code := exitcode.Of(err); code != 0 {
		fmt.Fprintf(os.Stderr, "hello: %v\n", err)
		os.Exit(code)
	}
}

func run(ctx context.Context) error {
	svc := catalog.Hello()
	return serverkit.Run(ctx, svc.Key, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, svc.Server)
}
