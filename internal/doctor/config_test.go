package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"
)

func TestParseFlags(t *testing.T) {
	c, err := ParseFlags([]string{"-n", "grpc-kit-doctor", "--service", "hello-grpc", "-port", "50051", "-from-pod", "ns/p", "-tls", "-lb", "pick_first", "-json",
		"-prometheus", "http://localhost:9090/prometheus"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Namespace: "grpc-kit-doctor", Service: "hello-grpc", Port: 50051, FromPod: "ns/p", TLS: true, LB: "pick_first", JSON: true,
		Prometheus: "http://localhost:9090/prometheus", ClusterDomain: "cluster.local", Timeout: 5 * time.Second}
	if c != want {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "-service is required"},
		{[]string{"-service", "x", "-lb", "random"}, `-lb "random"`},
		{[]string{"-service", "x", "-port", "70000"}, "out of range"},
		{[]string{"-service", "x", "-timeout", "0s"}, "must be positive"},
		{[]string{"-service", "x", "extra"}, "unexpected arguments"},
		{[]string{"-nope"}, "not defined"},
		// -prometheus takes the server's base URL; each of these would fail every query.
		{[]string{"-service", "x", "-prometheus", "localhost:9090"}, `-prometheus "localhost:9090": want the server's base URL`},
		{[]string{"-service", "x", "-prometheus", "http://"}, "want the server's base URL"},
		{[]string{"-service", "x", "-prometheus", "ftp://prom:9090"}, "want the server's base URL"},
		{[]string{"-service", "x", "-prometheus", "http://prom:9090/api/v1/query?query=up"}, "want the server's base URL"},
		{[]string{"-service", "x", "-prometheus", "http://prom:90 90"}, "-prometheus"},
		{[]string{"-service", "x", "-prometheus", "http://prom:9090", "-prometheus-window", "-1m"}, "-prometheus-window -1m0s: must be positive"},
		{[]string{"-service", "x", "-prometheus-window", "1m"}, "-prometheus-window needs -prometheus URL"},
	} {
		_, err := ParseFlags(tc.args, &bytes.Buffer{})
		if !errors.Is(err, exitcode.ErrUsage) || exitcode.Of(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
	var usage bytes.Buffer
	if _, err := ParseFlags([]string{"-h"}, &usage); !errors.Is(err, flag.ErrHelp) || !strings.Contains(usage.String(), "Exit codes") || !strings.Contains(usage.String(), "-prometheus URL") {
		t.Errorf("-h: %v\n%s", err, usage.String())
	}
}

// ErrFindings carries exit 3 through the wrap Run puts on it.
func TestExitCodes(t *testing.T) {
	if got := exitcode.Of(fmt.Errorf("%w: 2 error finding(s)", ErrFindings)); got != exitcode.CheckFailed {
		t.Errorf("findings: exit %d, want %d", got, exitcode.CheckFailed)
	}
}

func TestRunBadKubeconfigIsUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "kubeconfig")
	err := Run(context.Background(), Config{Kubeconfig: missing, Service: "x", LB: "round_robin", Timeout: time.Second}, &bytes.Buffer{})
	if exitcode.Of(err) != 2 || !strings.Contains(err.Error(), "kubeconfig") {
		t.Errorf("missing kubeconfig: %v (exit %d), want a usage error naming the kubeconfig", err, exitcode.Of(err))
	}
	bad := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(bad, []byte("apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = Run(context.Background(), Config{Kubeconfig: bad, Service: "x", LB: "round_robin", Timeout: time.Second}, &bytes.Buffer{})
	if exitcode.Of(err) != 2 || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("unknown context: %v (exit %d)", err, exitcode.Of(err))
	}
}

// A Config built in code (the e2e suite's) skips ParseFlags: Run still refuses a bad
// -prometheus as usage, before it asks anything of the cluster.
func TestRunBadPrometheusURLIsUsage(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: kit}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), Config{Kubeconfig: kubeconfig, Service: "x", LB: "round_robin", Timeout: time.Second, Prometheus: "prometheus:9090"}, &bytes.Buffer{})
	if exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), `-prometheus "prometheus:9090"`) {
		t.Errorf("bad -prometheus: %v (exit %d), want a usage error naming it", err, exitcode.Of(err))
	}
}

func TestReportRendering(t *testing.T) {
	var r Report
	r.Subject = Subject{Namespace: "ns", Service: "svc", Port: 50051, LB: "round_robin", TLS: true}
	r.add(Finding{Severity: OK, Check: CheckService, Message: "exists", Evidence: []string{"hidden unless verbose"}})
	r.add(Finding{Severity: Error, Check: CheckTLS, Message: "mismatch", Evidence: []string{"pod-1: tls fails"}, Fix: "drop -tls"})
	r.add(Finding{Severity: Warning, Check: CheckDNS, Message: "stale"})
	if r.Errors != 1 || r.Warnings != 1 {
		t.Fatalf("counts: %d errors %d warnings", r.Errors, r.Warnings)
	}
	var text bytes.Buffer
	if err := r.WriteText(&text, false); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	for _, want := range []string{"Service ns/svc port 50051, client round_robin TLS", "ERROR   tls", "pod-1: tls fails", "fix: drop -tls", "1 error(s), 1 warning(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hidden unless verbose") {
		t.Errorf("ok evidence shown without -v:\n%s", out)
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(js.String(), `"severity": "error"`) {
		t.Errorf("severity should be a name in JSON:\n%s", js.String())
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Findings[1].Severity != Error || back.Errors != 1 || back.Subject != r.Subject {
		t.Errorf("JSON round trip: %+v", back)
	}
	if err := json.Unmarshal([]byte(`{"severity":"fatal"}`), &Finding{}); err == nil {
		t.Error("an unknown severity should not parse")
	}
}
