package localdns

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The standard library resolver pointed at the server, as grpc-go's dns resolver does.
func resolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

func TestResolveAndUpdate(t *testing.T) {
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Set("hello.kit.test", "127.0.0.2", "127.0.0.3"); err != nil {
		t.Fatal(err)
	}
	r := resolver(s.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	got, err := r.LookupHost(ctx, "Hello.Kit.Test")
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"127.0.0.2", "127.0.0.3"}) {
		t.Fatalf("lookup: %v %v", got, err)
	}
	s.Set("hello.kit.test", "127.0.0.4")
	if got, err := r.LookupHost(ctx, "hello.kit.test"); err != nil || !slices.Equal(got, []string{"127.0.0.4"}) {
		t.Fatalf("after update: %v %v", got, err)
	}
	s.Set("hello.kit.test")
	if _, err := r.LookupHost(ctx, "hello.kit.test"); err == nil {
		t.Fatal("removed name still resolves")
	}
	if err := s.Set("x", "::1"); err == nil {
		t.Fatal("IPv6 accepted")
	}
}

func TestFreePortOn(t *testing.T) {
	port, err := FreePortOn("127.0.0.51", "127.0.0.52")
	if err != nil || port == 0 {
		t.Fatalf("FreePortOn: %d %v", port, err)
	}
	for _, ip := range []string{"127.0.0.51", "127.0.0.52"} {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("port %d not free on %s: %v", port, ip, err)
		}
		l.Close()
	}
	if _, err := FreePortOn(); err == nil {
		t.Fatal("no addresses accepted")
	}
}

func TestCheckLoopback(t *testing.T) {
	if err := CheckLoopback(LoopbackAddrs()...); err != nil {
		t.Fatal(err)
	}
	// 192.0.2.1 (TEST-NET-1) is on no interface of a test machine: the error says what to do.
	err := CheckLoopback("127.0.0.2", "192.0.2.1")
	if err == nil || !strings.Contains(err.Error(), "cannot listen on 192.0.2.1") || !strings.Contains(err.Error(), "ifconfig lo0 alias") {
		t.Errorf("unbindable address: %v", err)
	}
}
