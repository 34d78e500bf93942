package serverkit

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/reqmeta"
)

// ErrUsage marks configuration errors (bad flag or environment value): exit code 2.
var ErrUsage = exitcode.ErrUsage

// Run is the whole life of a server process: config from args and env, identity from the
// downward API, serve until ctx is cancelled, drain. newService builds the one service the
// binary serves, given the identity and the metadata keys replies echo. Logs go to logOut; usage and config errors to usageOut.
func Run(ctx context.Context, name string, args []string, getenv func(string) string,
	logOut, usageOut io.Writer, newService func(identity.Identity, reqmeta.Keys) Service) error {
	cfg, err := Load(name, args, getenv, usageOut)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	id := identity.FromEnv(getenv, cfg.ListenHost)
	svc := newService(id, reqmeta.ParseKeys(cfg.EchoMetadata))
	log := NewLogger(cfg, logOut).With("service", svc.Name, "pod", id.Pod, "version", id.Version)
	srv, err := New(cfg, log, svc)
	if err != nil {
		return err
	}
	return srv.Serve(ctx)
}

// ExitCode maps Run's error to a process exit code (package exitcode): 0 success or -h,
// 2 usage, 1 otherwise.
func ExitCode(err error) int { return exitcode.Of(err) }
