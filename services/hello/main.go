// Command hello serves helloworld.Hello on gRPC (default :50051) with health, reflection,
// Prometheus metrics and admin on the HTTP port (default :8080). Run with -h for every
// flag and its environment variable; "hello probe" checks a running server's health (exec probes).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/probe"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serverkit"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serving"
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
	// "hello probe": the exec probe (no shell, no grpc_health_probe in the image).
	if len(os.Args) > 1 && os.Args[1] == probe.Command {
		return probe.Run(ctx, svc.Key, svc.Name(), os.Args[2:], os.Getenv, os.Stdout, os.Stderr)
	}
	return serverkit.Run(ctx, svc.Key, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, serving.For(svc))
}
