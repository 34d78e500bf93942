package loopfleet

import (
	"context"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/loadgen"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serverkit"
	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// Config is serverkit.Load's defaults with the address and args on top: nothing copied.
func TestConfigIsTheServersDefaults(t *testing.T) {
	want, err := serverkit.Load("x", []string{"-listen-host=127.0.0.9", "-port=1234", "-admin"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Config("127.0.0.9", 1234, "-admin")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("Config differs from serverkit.Load (-want +got):\n%s", d)
	}
	if _, err := Config("127.0.0.9", 1234, "-no-such-flag"); err == nil {
		t.Fatal("Config took an unknown flag")
	}
}

// A group of three answers behind its name, round robin spreads over all three, each
// server says who it is, and Close stops them and the DNS server.
func TestGroupBehindAName(t *testing.T) {
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	f, err := New(ips...)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			f.Close()
		}
	})
	svc := catalog.Goodbye()
	target, servers, err := f.Group("goodbye.fleet.test", "", ips, Pod{Service: svc, ID: identity.Identity{Version: "v7"},
		Args: []string{"-http-port=-1", "-drain-delay=0s"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "dns://" + f.DNS().Addr() + "/goodbye.fleet.test:" + strconv.Itoa(f.Port()); target != want {
		t.Fatalf("target %q, want %q", target, want)
	}
	for i, s := range servers {
		if want := (identity.Identity{Pod: "goodbye-" + strconv.Itoa(i+1), PodIP: ips[i], Version: "v7"}); s.ID != want {
			t.Errorf("server %d: identity %+v, want %+v", i, s.ID, want)
		}
	}
	cc, err := dialer.Dial(dialer.Options{Target: target, LB: dialer.RoundRobin, Services: []string{svc.Name()}})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	call := func(ctx context.Context) (*pb.Backend, net.Addr, error) {
		r, err := svc.Methods[0].Call(ctx, cc, "fleet")
		if err != nil {
			return nil, nil, err
		}
		return r.GetBackend(), nil, nil
	}
	if n := loadgen.WarmUp(context.Background(), call, 3, 10*time.Second, time.Second); n != 3 {
		t.Fatalf("%d of 3 servers answered", n)
	}
	cc.Close()
	closed = true
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := servers[0].Stop(); err != nil {
		t.Fatalf("Stop after Close: %v", err)
	}
}
