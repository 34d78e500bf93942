package catalog

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

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
		var streams, streamTable []string
		for _, m := range s.Desc.Streams {
			streams = append(streams, m.StreamName)
			kind := ServerStreaming
			if m.ClientStreams {
				kind = BidiStreaming
			}
			if got, err := s.Stream(kind, m.StreamName); err != nil || got.Kind != kind {
				t.Errorf("%s/%s: table kind %q (%v), descriptor %q", s.Key, m.StreamName, got.Kind, err, kind)
			}
		}
		for _, m := range s.Streams {
			streamTable = append(streamTable, m.Name)
		}
		slices.Sort(streams)
		slices.Sort(streamTable)
		if !slices.Equal(streams, streamTable) {
			t.Errorf("%s: table streams %v, descriptor's streaming methods %v", s.Key, streamTable, streams)
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

// Every streaming method of the table opens, numbers its messages from resume_from + 1,
// and names its backend.
func TestOpenEveryStream(t *testing.T) {
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
		for _, m := range s.Streams {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			st, err := m.Open(ctx, cc, StreamOpen{Name: "catalog", ResumeFrom: 41, Interval: 10 * time.Millisecond})
			if err != nil {
				t.Fatalf("%s: %v", s.FullStream(m), err)
			}
			for want := uint64(42); want <= 43; want++ {
				if m.Kind == BidiStreaming {
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
