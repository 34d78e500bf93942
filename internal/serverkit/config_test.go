package serverkit

import (
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/reqmeta"
)

func TestLoadDefaults(t *testing.T) {
	c, err := Load("hello", nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 50051 || c.HTTPPort != 8080 || c.MaxConnectionAge != 30*time.Second || c.MaxRecvMsgSize != 4096 ||
		c.DrainDelay != 5*time.Second || c.LogFormat != "json" || c.AdminEnabled ||
		c.StreamMaxAge != 5*time.Minute || c.StreamMaxRate != 100 || c.MaxStreamsPerConn != 500 {
		t.Fatalf("defaults %+v", c)
	}
}

func TestLoadEnvAndFlags(t *testing.T) {
	env := map[string]string{"PORT": "6000", "MAX_CONNECTION_AGE": "2m", "ADMIN": "true", "LOG_LEVEL": "debug", "STREAM_MAX_AGE": "0"}
	c, err := Load("hello", []string{"-port=7000", "-http-port", "-1"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 7000 || c.HTTPPort != -1 || c.MaxConnectionAge != 2*time.Minute || !c.AdminEnabled || c.LogLevel != "debug" || c.StreamMaxAge != 0 {
		t.Fatalf("got %+v", c)
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	_, err := Load("hello", []string{"-port=70000", "-http-port=70000", "-tls-cert-file=a.pem", "-log-level=loud", "-drain-delay=-1s"},
		func(string) string { return "" }, io.Discard)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"port 70000 out of range", "http-port 70000", "tls-cert-file and tls-key-file go together", `log-level "loud"`, "drain-delay is negative"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := Load("hello", []string{"extra"}, func(string) string { return "" }, io.Discard); err == nil || !strings.Contains(err.Error(), "unexpected arguments") {
		t.Errorf("positional argument: %v", err)
	}
}

// Every way Load and Run reject their input exits 2; -h exits 0; a server that cannot
// bind its port exits 1.
func TestExitCode(t *testing.T) {
	noEnv := func(string) string { return "" }
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want int
	}{
		{"unparsable flag", []string{"-port=x"}, nil, exitcode.Usage},
		{"unknown flag", []string{"-nope"}, nil, exitcode.Usage},
		{"unparsable env", nil, map[string]string{"MAX_CONNECTION_AGE": "soon"}, exitcode.Usage},
		{"invalid value", []string{"-port=70000"}, nil, exitcode.Usage},
		{"positional argument", []string{"extra"}, nil, exitcode.Usage},
		{"help", []string{"-h"}, nil, exitcode.OK},
	} {
		getenv := noEnv
		if tc.env != nil {
			getenv = func(k string) string { return tc.env[k] }
		}
		_, err := Load("hello", tc.args, getenv, io.Discard)
		if got := exitcode.Of(err); got != tc.want {
			t.Errorf("Load %s: %v, exit %d, want %d", tc.name, err, got, tc.want)
		}
		err = Run(context.Background(), "hello", tc.args, getenv, io.Discard, io.Discard, testService)
		if got := exitcode.Of(err); got != tc.want {
			t.Errorf("Run %s: %v, exit %d, want %d", tc.name, err, got, tc.want)
		}
	}
	// A runtime failure: the gRPC port is taken.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	port := strconv.Itoa(lis.Addr().(*net.TCPAddr).Port)
	err = Run(context.Background(), "hello", []string{"-listen-host=127.0.0.1", "-port=" + port, "-http-port=-1"}, noEnv, io.Discard, io.Discard, testService)
	if got := exitcode.Of(err); err == nil || got != exitcode.Failure {
		t.Errorf("Run on a taken port: %v, exit %d, want %d", err, got, exitcode.Failure)
	}
}

func testService(identity.Identity, reqmeta.Keys) Service {
	return Service{Name: "test.Service", Register: func(grpc.ServiceRegistrar) {}}
}
