package catalog

import (
	"context"
	"net"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
)

// Every method in the table exists in its generated descriptor, and every unary method of
// the descriptor is in the table (a new RPC without its line fails here).
func TestTableMatchesDescriptors(t *testing.T) {
	for _, s := range All() {
		var unary []string
		for _, m := range s.Desc.Methods {
			unary = append(unary, m.MethodName)
		}
		var table []string
		for _, m := range s.Methods {
			table = append(table, m.Name)
		}
		slices.Sort(unary)
		slices.Sort(table)
		if !slices.Equal(unary, table) {
			t.Errorf("%s: table methods %v, descriptor's unary methods %v", s.Key, table, unary)
		}
		if got, err := Lookup(s.Key); err != nil || got.Name() != s.Name() {
			t.Errorf("Lookup(%q) = %v, %v", s.Key, got.Name(), err)
		}
	}
	if _, err := Lookup("nope"); err == nil {
		t.Error("Lookup of an unknown key: no error")
	}
	if _, err := Hello().Method("SayNothing"); err == nil {
		t.Error("Method of an unknown name: no error")
	}
}

// Each service registered from the table answers each of its methods on a real listener,
// naming itself in the reply.
func TestServeAndCallEveryMethod(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	for _, s := range All() {
		s.Server(identity.Identity{Pod: "p-" + s.Key}, nil).Register(srv)
	}
	go srv.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	for _, s := range All() {
		for _, m := range s.Methods {
			r, err := m.Call(context.Background(), cc, "catalog")
			if err != nil {
				t.Errorf("%s: %v", s.FullMethod(m), err)
				continue
			}
			if b := r.GetBackend(); b.GetPod() != "p-"+s.Key || b.GetService() != s.Name() {
				t.Errorf("%s: backend %v, want pod p-%s service %s", s.FullMethod(m), b, s.Key, s.Name())
			}
		}
	}
}
