// Command certgen writes a throwaway CA and a server certificate for the kit's ingress and
// gateway TLS listeners: ca.crt (give it to clients), tls.crt and tls.key (the Secret).
//
//	go run ./internal/certgen/cmd/certgen -out out/certs -hosts grpc.kit.local,localhost,127.0.0.1
//	kubectl -n NS create secret tls grpc-kit-tls --cert out/certs/tls.crt --key out/certs/tls.key
//
// With -backend-namespace NS it makes the backend certificate of
// kustomize/components/backend-tls instead: valid for the DNS names of the kit's server
// Services in NS (hello-grpc-headless, hello-grpc, goodbye-grpc-headless, goodbye-grpc,
// each as svc, svc.NS, svc.NS.svc and svc.NS.svc.cluster.local), what its README feeds
// to kubectl (make backend-certs NS=...).
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/certgen"
)

func main() {
	out := flag.String("out", "out/certs", "directory to write ca.crt, tls.crt and tls.key to")
	hosts := flag.String("hosts", "grpc.kit.local,*.kit.local,localhost,127.0.0.1", "comma-separated DNS names and IPs the certificate is valid for")
	validFor := flag.Duration("valid-for", 30*24*time.Hour, "validity")
	backendNS := flag.String("backend-namespace", "", "make the backend certificate (components/backend-tls) for the server Services in this namespace; -hosts is then ignored")
	clusterDomain := flag.String("cluster-domain", "cluster.local", "the cluster's DNS domain, with -backend-namespace")
	flag.Parse()
	if *backendNS != "" {
		*hosts = strings.Join(certgen.ServiceNames(*backendNS, *clusterDomain, certgen.BackendServices...), ",")
	}
	if err := run(*out, *hosts, *validFor); err != nil {
		fmt.Fprintf(os.Stderr, "certgen: %v\n", err)
		os.Exit(1)
	}
}

func run(out, hosts string, validFor time.Duration) error {
	var hs []string
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hs = append(hs, h)
		}
	}
	b, err := certgen.Generate(hs, validFor)
	if err != nil {
		return err
	}
	if err := b.Write(out); err != nil {
		return err
	}
	fmt.Printf("wrote %s/ca.crt, tls.crt, tls.key for %s\n", out, strings.Join(hs, ", "))
	return nil
}
