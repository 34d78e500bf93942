package loopback

import (
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
)

// grpcurl itself (built from the version pinned in tools/go.mod) against the real hello
// and goodbye binaries: the session docs/services.md documents.
func TestGrpcurlSession(t *testing.T) {
	grpcurl := buildBinary(t, "grpcurl", "github.com/fullstorydev/grpcurl/cmd/grpcurl", "-modfile=tools/go.mod")
	for _, svc := range []struct{ bin, service, method, reply string }{
		{"hello", "helloworld.Hello", "helloworld.Hello.SayHello", "Hello, Ryo!"},
		{"goodbye", "helloworld.Goodbye", "helloworld.Goodbye/SayGoodbye", "Goodbye, Ryo."},
	} {
		t.Run(svc.bin, func(t *testing.T) {
			addr := startProcess(t, buildBinary(t, svc.bin, "./services/"+svc.bin), "127.0.0.41")
			grpcurlRun := func(args ...string) string {
				t.Helper()
				out, err := exec.Command(grpcurl, append([]string{"-plaintext"}, args...)...).CombinedOutput()
				if err != nil {
					t.Fatalf("grpcurl %v: %v\n%s", args, err, out)
				}
				return string(out)
			}

			list := strings.Fields(grpcurlRun(addr, "list"))
			for _, want := range []string{svc.service, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
				if !slices.Contains(list, want) {
					t.Errorf("grpcurl list = %v, missing %s", list, want)
				}
			}
			if d := grpcurlRun(addr, "describe", svc.service); !strings.Contains(d, "is a service") || !strings.Contains(d, "rpc Say") {
				t.Errorf("grpcurl describe %s:\n%s", svc.service, d)
			}
			if d := grpcurlRun(addr, "describe", "helloworld.Backend"); !strings.Contains(d, "pod_ip") {
				t.Errorf("grpcurl describe helloworld.Backend lacks pod_ip:\n%s", d)
			}
			var reply struct {
				Message string
				Backend struct{ Pod, Version, Service string }
			}
			out := grpcurlRun("-d", `{"name":"Ryo"}`, addr, svc.method)
			if err := json.Unmarshal([]byte(out), &reply); err != nil {
				t.Fatalf("grpcurl call output is not JSON: %v\n%s", err, out)
			}
			if reply.Message != svc.reply || reply.Backend.Pod != "grpcurl-pod" || reply.Backend.Service != svc.service {
				t.Errorf("grpcurl call reply %+v, want message %q from grpcurl-pod", reply, svc.reply)
			}
			health := grpcurlRun("-d", `{"service":"`+svc.service+`"}`, addr, "grpc.health.v1.Health/Check")
			if !strings.Contains(health, "SERVING") {
				t.Errorf("health check: %s", health)
			}
			// A bad request gets a clear InvalidArgument through grpcurl too.
			bad, err := exec.Command(grpcurl, "-plaintext", "-d", `{"name":""}`, addr, svc.method).CombinedOutput()
			if err == nil || !strings.Contains(string(bad), "InvalidArgument") || !strings.Contains(string(bad), "name is required") {
				t.Errorf("empty name via grpcurl: err=%v\n%s", err, bad)
			}
		})
	}
}

// Old grpcurl and other tools speak reflection v1alpha; new ones v1. Both must list.
func TestReflectionV1AndV1alpha(t *testing.T) {
	addr := startProcess(t, buildBinary(t, "hello", "./services/hello"), "127.0.0.42")
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	s1, err := reflectionv1.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	r1, err := s1.Recv()
	if err != nil {
		t.Fatalf("reflection v1: %v", err)
	}
	s1.CloseSend()

	s2, err := reflectionv1alpha.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Send(&reflectionv1alpha.ServerReflectionRequest{MessageRequest: &reflectionv1alpha.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	r2, err := s2.Recv()
	if err != nil {
		t.Fatalf("reflection v1alpha: %v", err)
	}
	s2.CloseSend()

	var names1, names2 []string
	for _, s := range r1.GetListServicesResponse().GetService() {
		names1 = append(names1, s.GetName())
	}
	for _, s := range r2.GetListServicesResponse().GetService() {
		names2 = append(names2, s.GetName())
	}
	if !slices.Contains(names1, "helloworld.Hello") || !slices.Equal(names1, names2) {
		t.Fatalf("v1 lists %v, v1alpha lists %v: want the same, with helloworld.Hello", names1, names2)
	}
}

// startProcess runs a server binary on ip with a free port and returns its gRPC address
// once it accepts connections.
func startProcess(t *testing.T, bin, ip string) string {
	t.Helper()
	port := freePortOn(t, ip)
	cmd := exec.Command(bin)
	cmd.Env = []string{"LISTEN_HOST=" + ip, "PORT=" + itoa(port), "HTTP_PORT=-1", "POD_NAME=grpcurl-pod", "DRAIN_DELAY=0s"}
	cmd.Stdout, cmd.Stderr = io.Discard, t.Output()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := ip + ":" + itoa(port)
	waitListening(t, addr)
	return addr
}
