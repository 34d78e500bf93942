package serving

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
)

// Every service of the catalog has an implementation here, and nothing else does.
func TestEveryServiceImplemented(t *testing.T) {
	names := map[string]bool{}
	for _, s := range catalog.All() {
		names[s.Name()] = true
		if _, ok := impls[s.Name()]; !ok {
			t.Errorf("%s (catalog key %q) has no implementation in impls", s.Name(), s.Key)
		}
	}
	for name := range impls {
		if !names[name] {
			t.Errorf("impls implements %s, which the catalog does not list", name)
		}
	}
}

// Each service registered from the table answers each of its methods on a real listener,
// naming itself in the reply.
func TestServeAndCallEveryMethod(t *testing.T) {
	cc := serveEverything(t)
	for _, s := range catalog.All() {
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

// Every streaming method of the table opens, numbers its messages from resume_from + 1,
// and names its backend.
func TestOpenEveryStream(t *testing.T) {
	cc := serveEverything(t)
	for _, s := range catalog.All() {
		for _, m := range s.Streams {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			st, err := m.Open(ctx, cc, catalog.StreamOpen{Name: "catalog", ResumeFrom: 41, Interval: 10 * time.Millisecond})
			if err != nil {
				t.Fatalf("%s: %v", s.FullStream(m), err)
			}
			for want := uint64(42); want <= 43; want++ {
				if m.Kind == catalog.BidiStreaming {
					if err := st.Send(); err != nil {
						t.Fatalf("%s send: %v", s.FullStream(m), err)
					}
				}
				r, err := st.Recv()
				if err != nil {
					t.Fatalf("%s recv: %v", s.FullStream(m), err)
				}
				if r.GetSeq() != want || r.GetBackend().GetPod() != "p-"+s.Key {
					t.Errorf("%s: seq %d from %s, want %d from p-%s", s.FullStream(m), r.GetSeq(), r.GetBackend().GetPod(), want, s.Key)
				}
			}
			cancel()
		}
	}
}

// serveEverything registers every service of the table on one server on a loopback
// listener, each naming itself p-<key>, and returns a client connection to it.
func serveEverything(t *testing.T) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	for _, s := range catalog.All() {
		Server(s, identity.Identity{Pod: "p-" + s.Key}, nil).Register(srv)
	}
	go srv.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}
