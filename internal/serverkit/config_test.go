package serverkit

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestLoadDefaults(t *testing.T) {
	c, err := Load("hello", nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 50051 || c.HTTPPort != 8080 || c.MaxConnectionAge != 30*time.Second || c.MaxRecvMsgSize != 4096 ||
		c.DrainDelay != 5*time.Second || c.LogFormat != "json" || c.AdminEnabled {
		t.Fatalf("defaults %+v", c)
	}
}

func TestLoadEnvAndFlags(t *testing.T) {
	env := map[string]string{"PORT": "6000", "MAX_CONNECTION_AGE": "2m", "ADMIN": "true", "LOG_LEVEL": "debug"}
	c, err := Load("hello", []string{"-port=7000", "-http-port", "-1"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 7000 || c.HTTPPort != -1 || c.MaxConnectionAge != 2*time.Minute || !c.AdminEnabled || c.LogLevel != "debug" {
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

func TestExitCode(t *testing.T) {
	_, err := Load("hello", []string{"-port=x"}, func(string) string { return "" }, io.Discard)
	if err == nil {
		t.Fatal("want an error for -port=x")
	}
	for _, tc := range []struct {
		err  error
		want int
	}{{nil, 0}, {ErrUsage, 2}, {io.EOF, 1}} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
