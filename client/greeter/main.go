// Command greeter calls helloworld.Hello or helloworld.Goodbye, balances over every
// backend a dns:/// name resolves to, and reports how the calls spread over pods. With
// -expect-backends, -max-skew and -max-errors it exits 3 when the spread or errors are
// off, which is how the e2e suite uses it. Run greeter -h for every flag.
//
// `greeter doctor -service NAME ...` diagnoses a Service in a live cluster instead (see
// internal/doctor): a subcommand of the same binary, so the image that runs the client
// also carries its troubleshooting tool.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/doctor"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/greeter"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	go func() { <-ctx.Done(); stop() }() // Ctrl-C ends the run with a report; a second one kills
	name, err := "greeter", error(nil)
	if len(os.Args) > 1 && os.Args[1] == "doctor" {
		name, err = "greeter doctor", runDoctor(ctx, os.Args[2:])
	} else {
		err = runGreeter(ctx, os.Args[1:])
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	}
	os.Exit(exitcode.Of(err))
}

func runGreeter(ctx context.Context, args []string) error {
	cfg, err := greeter.ParseFlags(args, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	return greeter.Run(ctx, cfg, os.Stdout, os.Stderr)
}

func runDoctor(ctx context.Context, args []string) error {
	cfg, err := doctor.ParseFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	return doctor.Run(ctx, cfg, os.Stdout)
}
