// Package probe is the servers' probe mode, `hello probe` (`/app probe` in the image): one
// grpc.health.v1 Check against the server in the same container, for an exec readiness or
// liveness probe. The images are FROM scratch (no shell, no grpc_health_probe), and the
// kubelet's native gRPC probe speaks TLS only with grpc.mode: TLS, an alpha field of
// Kubernetes 1.37 that does not verify the certificate; this speaks TLS anywhere and
// trusts exactly the server's own certificate.
//
// Defaults come from the server's own environment, so in a manifest the probe is just
// ["/app", "probe"]: the port is PORT, the host LISTEN_HOST (else 127.0.0.1), the service
// the binary's own, and TLS is spoken when TLS_CERT_FILE is set.
//
// Exit codes (package exitcode): 0 SERVING; 1 NOT_SERVING, SERVICE_UNKNOWN, nothing
// listening, no answer in time; 2 bad flags.
package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/hint"
)

// Command is the first argument that puts a server binary in probe mode.
const Command = "probe"

// Config of one probe.
type Config struct {
	Addr    string        // host:port of the gRPC server
	Service string        // grpc.health.v1 service name; "" is the server's overall status
	Timeout time.Duration // bound of the whole check: dial, handshake and the RPC

	TLS        bool   // speak TLS
	CertFile   string // trust exactly this certificate (the server's own, TLS_CERT_FILE)
	CAFile     string // or verify the server's chain against this CA
	ServerName string // name verified with CAFile (default: the host of Addr)
	SkipVerify bool   // or do not verify at all
}

// Parse reads the probe's flags (args after "probe") with defaults from the server's
// environment. service is the binary's own service, the default of -service. Errors are
// marked exitcode.ErrUsage.
func Parse(name, service string, args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	port := getenv("PORT")
	if port == "" {
		port = "50051"
	}
	host := getenv("LISTEN_HOST")
	if host == "" {
		host = "127.0.0.1"
	}
	var c Config
	fs := flag.NewFlagSet(name+" "+Command, flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.Usage = func() {
		fmt.Fprintf(usage, "usage: %s %s [flags]\n\nChecks grpc.health.v1 of the server in this container and exits 0 (SERVING),\n1 (NOT_SERVING, SERVICE_UNKNOWN, unreachable) or 2 (bad flags). Defaults come from\nthe server's environment: PORT, LISTEN_HOST, TLS_CERT_FILE.\n\n", name, Command)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.Addr, "addr", net.JoinHostPort(host, port), "gRPC address to check (default from LISTEN_HOST, else 127.0.0.1, and PORT)")
	fs.StringVar(&c.Service, "service", service, `grpc.health.v1 service name; "" checks the server's overall status`)
	fs.DurationVar(&c.Timeout, "timeout", time.Second, "bound of the whole check (keep it under the probe's timeoutSeconds)")
	fs.BoolVar(&c.TLS, "tls", false, "speak TLS (on by default when TLS_CERT_FILE is set)")
	fs.StringVar(&c.CertFile, "tls-cert-file", getenv("TLS_CERT_FILE"), "trust exactly this certificate: the one the server serves (default TLS_CERT_FILE)")
	fs.StringVar(&c.CAFile, "tls-ca", "", "verify the server's certificate against this CA (PEM) instead")
	fs.StringVar(&c.ServerName, "tls-server-name", "", "name to verify with -tls-ca (default: the host of -addr)")
	fs.BoolVar(&c.SkipVerify, "tls-insecure-skip-verify", false, "speak TLS without verifying the server's certificate")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("%w: %w", exitcode.ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%w: unexpected arguments %q: %s %s takes flags only", exitcode.ErrUsage, fs.Args(), name, Command)
	}
	if c.CertFile != "" && !c.TLS {
		c.TLS = true
	}
	if err := c.validate(); err != nil {
		return Config{}, fmt.Errorf("%w: %w", exitcode.ErrUsage, err)
	}
	return c, nil
}

func (c Config) validate() error {
	var errs []error
	if _, p, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("-addr %q: want host:port: %w", c.Addr, err))
	} else if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		errs = append(errs, fmt.Errorf("-addr %q: port %q is not 1-65535 (PORT=%q?)", c.Addr, p, p))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("-timeout %s: must be positive", c.Timeout))
	}
	trust := 0
	for _, set := range []bool{c.CAFile != "", c.SkipVerify} {
		if set {
			trust++
		}
	}
	switch {
	case trust > 1:
		errs = append(errs, errors.New("-tls-ca and -tls-insecure-skip-verify contradict: verify with a CA, or do not verify"))
	case !c.TLS && (trust > 0 || c.ServerName != ""):
		errs = append(errs, errors.New("-tls-ca, -tls-server-name and -tls-insecure-skip-verify need TLS: add -tls (or set TLS_CERT_FILE)"))
	case c.TLS && trust == 0 && c.CertFile == "":
		errs = append(errs, errors.New("-tls: say how to trust the server: -tls-cert-file (TLS_CERT_FILE, the server's own certificate), -tls-ca FILE, or -tls-insecure-skip-verify"))
	}
	if c.ServerName != "" && c.CAFile == "" {
		errs = append(errs, errors.New("-tls-server-name is only used with -tls-ca"))
	}
	return errors.Join(errs...)
}

// mode is "TLS" or "plaintext", for messages.
func (c Config) mode() string {
	if c.TLS {
		return "TLS"
	}
	return "plaintext"
}

// Check asks the server once. It returns nil when the service is SERVING and an error
// that says what it saw otherwise (exit 1).
func Check(ctx context.Context, c Config) error {
	creds, err := c.credentials()
	if err != nil {
		return err
	}
	cc, err := grpc.NewClient("passthrough:///"+c.Addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fmt.Errorf("gRPC client for %s: %w", c.Addr, err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	// Fail fast (gRPC's default): a refused port or a failed handshake ends the check at
	// once with its cause, instead of waiting out the timeout.
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: c.Service})
	what := fmt.Sprintf("service %q at %s (%s)", c.Service, c.Addr, c.mode())
	if c.Service == "" {
		what = fmt.Sprintf("overall health at %s (%s)", c.Addr, c.mode())
	}
	switch st := resp.GetStatus(); {
	case err == nil && st == healthpb.HealthCheckResponse_SERVING:
		return nil
	case err == nil:
		return fmt.Errorf("%s is %s", what, st)
	case status.Code(err) == codes.NotFound:
		return fmt.Errorf("%s is SERVICE_UNKNOWN: the server has no health status by that name (-service)", what)
	case status.Code(err) == codes.Unimplemented:
		return fmt.Errorf("%s: the server does not implement grpc.health.v1", what)
	case status.Code(err) == codes.DeadlineExceeded:
		return fmt.Errorf("%s: no answer within %s (server stuck or overloaded?)", what, c.Timeout)
	default:
		msg := fmt.Sprintf("%s: unreachable: %s", what, cause(err))
		if h := hint.ForError(err); h != "" {
			msg += " (hint: " + h + ")"
		}
		return errors.New(msg)
	}
}

func (c Config) credentials() (credentials.TransportCredentials, error) {
	if !c.TLS {
		return insecure.NewCredentials(), nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case c.SkipVerify:
		cfg.InsecureSkipVerify = true //nolint:gosec // asked for with -tls-insecure-skip-verify
	case c.CAFile != "":
		pool, err := loadPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
		cfg.ServerName = c.ServerName
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(c.Addr)
		}
	default:
		// Pin: the server in this container must present the very certificate it was
		// given. No CA and no name needed (the certificate names the Service, not
		// 127.0.0.1), and a stranger on the port does not pass.
		want, err := leaf(c.CertFile)
		if err != nil {
			return nil, err
		}
		cfg.InsecureSkipVerify = true //nolint:gosec // replaced by VerifyConnection's pin
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !cs.PeerCertificates[0].Equal(want) {
				return fmt.Errorf("the server does not present the certificate in %s", c.CertFile)
			}
			return nil
		}
	}
	return credentials.NewTLS(cfg), nil
}

func loadPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// leaf is the first certificate of a PEM file.
func leaf(file string) (*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("certificate file: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("certificate file %s: no PEM certificate in it", file)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certificate file %s: %w", file, err)
	}
	return cert, nil
}

// Run is the whole probe mode: parse args (what follows "probe"), check, and print one
// line on success to stdout. Errors follow package exitcode: usage errors exit 2, every
// failed check exits 1.
func Run(ctx context.Context, name, service string, args []string, getenv func(string) string, stdout, usage io.Writer) error {
	c, err := Parse(name, service, args, getenv, usage)
	if err != nil {
		return err
	}
	if err := Check(ctx, c); err != nil {
		return fmt.Errorf("%s: %w", Command, err)
	}
	what := fmt.Sprintf("%q", c.Service)
	if c.Service == "" {
		what = "overall health"
	}
	_, err = fmt.Fprintf(stdout, "%s %s: %s SERVING at %s (%s)\n", name, Command, what, c.Addr, c.mode())
	return err
}

// cause is the part of a gRPC transport error that names the cause, without grpc-go's
// wrapping ("connection error: desc = \"transport: ...\"").
func cause(err error) string {
	msg := status.Convert(err).Message()
	msg = strings.TrimPrefix(msg, `connection error: desc = "`)
	msg = strings.TrimSuffix(msg, `"`)
	msg = strings.TrimPrefix(msg, "transport: ")
	return strings.TrimPrefix(msg, "Error while dialing: ")
}
