package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// The client links no server code: not the server framework, not the services'
// implementations, not the slow-pod knob, not the server middleware. The greeter image
// and binary stay the client's size, and a change that pulls the server in through a
// shared package (a constant, a table) fails here instead of going unnoticed.
func TestClientLinksNoServerCode(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("this test runs `go list -deps` and needs the go command on PATH: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		var stderr []byte
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -deps .: %v\n%s", err, stderr)
	}
	forbidden := []string{
		"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serverkit",
		"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serving",
		"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/slowdown",
		"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/hello",
		"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/goodbye",
		"github.com/grpc-ecosystem/go-grpc-middleware", // and everything under it
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps . listed %d packages, too few to be the greeter's: %q", len(deps), deps)
	}
	for _, dep := range deps {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("client/greeter depends on server code %s", dep)
			}
		}
	}
	if t.Failed() {
		t.Log(`which package pulls it in: go list -deps -f '{{.ImportPath}}: {{join .Imports " "}}' ./client/greeter | grep NAME`)
	}
}
