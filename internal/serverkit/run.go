package serverkit

import (
	"context"
	"io"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/reqmeta"
)

// Run is the whole life of a server process: config from args and env, identity from the
// downward API, serve until ctx is cancelled, drain. newService builds the one service the
// binary serves, given the identity and the metadata keys replies echo. Logs go to logOut;
// usage and config errors to usageOut. Errors follow package exitcode: a bad flag or
// environment value is marked exitcode.ErrUsage (exit 2).
func Run(ctx context.Context, name string, args []string, getenv func(string) string,
	logOut, usageOut io.Writer, newService func(identity.Identity, reqmeta.Keys) Service) error {
	cfg, err := Load(name, args, getenv, usageOut)
	if err != nil {
		return err // flag.ErrHelp, or marked exitcode.ErrUsage
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
