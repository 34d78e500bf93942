package certgen

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A real TLS handshake on loopback: a client trusting only the CA accepts the server for
// every listed host, and rejects an unlisted one.
func TestHandshake(t *testing.T) {
	b, err := Generate([]string{"grpc.kit.local", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(b.Cert, b.Key)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b.CACert) {
		t.Fatal("CA PEM does not parse")
	}
	for name, wantOK := range map[string]bool{"grpc.kit.local": true, "127.0.0.1": true, "other.example": false} {
		c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: name})
		if wantOK && err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !wantOK && err == nil {
			t.Errorf("%s: handshake accepted a name not in the certificate", name)
		}
		if c != nil {
			c.Close()
		}
	}
}

func TestWriteAndErrors(t *testing.T) {
	if _, err := Generate(nil, time.Hour); err == nil {
		t.Fatal("no hosts accepted")
	}
	b, _ := Generate([]string{"x.kit.local"}, time.Hour)
	dir := filepath.Join(t.TempDir(), "certs")
	if err := b.Write(dir); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "tls.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("tls.key: %v %v", st, err)
	}
}

func TestServiceNames(t *testing.T) {
	got := ServiceNames("kit", "cluster.local", "hello-grpc")
	want := []string{"hello-grpc", "hello-grpc.kit", "hello-grpc.kit.svc", "hello-grpc.kit.svc.cluster.local"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("got %v, want %v", got, want)
		}
	}
}
