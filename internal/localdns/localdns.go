// Package localdns is a tiny authoritative DNS server for loopback demos and tests: it
// answers A queries for names you set with the addresses you set, so a real gRPC client
// can resolve dns://SERVER/name:port to several 127.0.0.x backends, like a headless
// Kubernetes Service resolves to its pods.
package localdns

import (
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// Server answers A (and empty AAAA) queries from an in-memory table.
type Server struct {
	mu      sync.RWMutex
	records map[string][]net.IP // fully qualified, lower case
	srv     *dns.Server
	addr    string
}

// Start serves DNS over UDP on addr (e.g. "127.0.0.1:0").
func Start(addr string) (*Server, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("localdns: listen %s: %w", addr, err)
	}
	s := &Server{records: map[string][]net.IP{}, addr: pc.LocalAddr().String()}
	started := make(chan struct{})
	s.srv = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve), NotifyStartedFunc: func() { close(started) }}
	go s.srv.ActivateAndServe() //nolint:errcheck // returns when Close shuts it down
	<-started
	return s, nil
}

// Addr is the server's host:port, for targets like dns://ADDR/name:port.
func (s *Server) Addr() string { return s.addr }

// Set replaces the addresses name resolves to. No addresses means NXDOMAIN.
func (s *Server) Set(name string, ips ...string) error {
	parsed := make([]net.IP, 0, len(ips))
	for _, ip := range ips {
		p := net.ParseIP(ip).To4()
		if p == nil {
			return fmt.Errorf("localdns: %q is not an IPv4 address", ip)
		}
		parsed = append(parsed, p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(parsed) == 0 {
		delete(s.records, fqdn(name))
	} else {
		s.records[fqdn(name)] = parsed
	}
	return nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Shutdown() }

func fqdn(name string) string { return dns.Fqdn(strings.ToLower(name)) }

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	for _, q := range req.Question {
		s.mu.RLock()
		ips, ok := s.records[fqdn(q.Name)]
		s.mu.RUnlock()
		if !ok {
			m.Rcode = dns.RcodeNameError
			continue
		}
		if q.Qtype != dns.TypeA {
			continue // NOERROR with no answer: the name exists, without that record type
		}
		for _, ip := range ips {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
				A:   ip,
			})
		}
	}
	_ = w.WriteMsg(m)
}
