// Package certgen makes the kit's TLS material: a throwaway self-signed CA and a server
// certificate it signs, for the ingress and gateway TLS listeners. The CA key is never
// written anywhere, and nothing it makes is committed: run it per cluster.
package certgen

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Bundle is PEM-encoded TLS material.
type Bundle struct {
	CACert []byte // what clients trust (greeter -cacert, grpcurl -cacert)
	Cert   []byte // server certificate (Secret key tls.crt)
	Key    []byte // server private key (Secret key tls.key)
}

// Generate makes a CA and a server certificate valid for hosts (DNS names or IPs).
func Generate(hosts []string, validFor time.Duration) (Bundle, error) {
	if len(hosts) == 0 {
		return Bundle{}, errors.New("certgen: no hosts: name at least one DNS name or IP")
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Bundle{}, fmt.Errorf("certgen: CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "grpc-k8s-kit throwaway CA", Organization: []string{"grpc-k8s-kit"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return Bundle{}, fmt.Errorf("certgen: CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return Bundle{}, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Bundle{}, fmt.Errorf("certgen: server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0], Organization: []string{"grpc-k8s-kit"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validFor),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return Bundle{}, fmt.Errorf("certgen: server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Bundle{}, err
	}
	return Bundle{
		CACert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Cert:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// Write stores b as ca.crt, tls.crt and tls.key (0600) in dir.
func (b Bundle) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for name, data := range map[string][]byte{"ca.crt": b.CACert, "tls.crt": b.Cert, "tls.key": b.Key} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return fmt.Errorf("certgen: write %s: %w", name, err)
		}
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// BackendServices are the Services of the kit's servers (kustomize/base) whose names a
// backend certificate carries (kustomize/components/backend-tls): clients verify the host
// of their target, so the headless Services' names for round_robin clients, the
// ClusterIP Services' for proxies.
var BackendServices = []string{"hello-grpc-headless", "hello-grpc", "goodbye-grpc-headless", "goodbye-grpc"}

// ServiceNames are the DNS names of services in namespace, in every form a client may
// write: svc, svc.ns, svc.ns.svc and svc.ns.svc.<clusterDomain>.
func ServiceNames(namespace, clusterDomain string, services ...string) []string {
	var names []string
	for _, s := range services {
		names = append(names, s, s+"."+namespace, s+"."+namespace+".svc", s+"."+namespace+".svc."+clusterDomain)
	}
	return names
}
