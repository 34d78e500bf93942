package doctor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/certgen"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/localdns"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serverkit"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serving"
)

// The fixture is a namespace "kit" in a fake clientset whose pods are real Hello servers
// on 127.0.0.x: the pod IP is the loopback address, and the doctor's DialFunc dials
// podIP:port, as an in-cluster dialer would. CoreDNS is a real DNS server on TCP.
const ns = "kit"

type fixture struct {
	t       *testing.T
	port    int // the gRPC port every pod listens on (free on every IP)
	pods    []*corev1.Pod
	servers map[string]*serverkit.Server
	dnsPort int
	records map[string][]string // fully qualified name -> A records
	extra   []runtime.Object
}

var podIPs = []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}

// newFixture starts n Hello servers (TLS when tlsDir is set) and a DNS server.
func newFixture(t *testing.T, n int, serverTLS bool) *fixture {
	t.Helper()
	ips := podIPs[:n]
	if err := localdns.CheckLoopback(ips...); err != nil {
		t.Fatal(err)
	}
	port, err := localdns.FreePortOn(append([]string{"127.0.0.1"}, ips...)...)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, port: port, servers: map[string]*serverkit.Server{}, records: map[string][]string{}}
	var certFile, keyFile string
	if serverTLS {
		b, err := certgen.Generate([]string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := b.Write(dir); err != nil {
			t.Fatal(err)
		}
		certFile, keyFile = dir+"/tls.crt", dir+"/tls.key"
	}
	for i, ip := range ips {
		name := fmt.Sprintf("hello-%d", i+1)
		cfg := serverkit.Config{ListenHost: ip, Port: port, HTTPPort: -1, ShutdownTimeout: time.Second,
			KeepaliveTime: 30 * time.Second, KeepaliveTimeout: 10 * time.Second, KeepaliveMinTime: 5 * time.Second,
			MaxRecvMsgSize: 4096, MaxConcurrentStreams: 100, LogLevel: "error", LogFormat: "text",
			TLSCertFile: certFile, TLSKeyFile: keyFile}
		srv, err := serverkit.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), serving.Server(catalog.Hello(), identity.Identity{Pod: name, PodIP: ip}, nil))
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		f.servers[name] = srv
		f.pods = append(f.pods, helloPod(name, ip, port, true))
	}
	f.startDNS()
	return f
}

func helloPod(name, ip string, port int, ready bool) *corev1.Pod {
	cond := corev1.ConditionTrue
	if !ready {
		cond = corev1.ConditionFalse
	}
	svc := catalog.Hello().Name()
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{
			"app.kubernetes.io/name": "hello", "app.kubernetes.io/component": "server", "app.kubernetes.io/part-of": "grpc-k8s-kit"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:  "hello",
			Ports: []corev1.ContainerPort{{Name: "grpc", ContainerPort: int32(port)}, {Name: "http", ContainerPort: 8080}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
				GRPC: &corev1.GRPCAction{Port: int32(port), Service: &svc}}},
		}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: cond}}},
	}
}

// startDNS serves f.records over TCP on 127.0.0.1, as the CoreDNS pod of the fixture.
func (f *fixture) startDNS() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	f.dnsPort = l.Addr().(*net.TCPAddr).Port
	srv := &dns.Server{Listener: l, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		ips, ok := f.records[strings.ToLower(q.Question[0].Name)]
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		for _, ip := range ips {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP(ip)})
		}
		w.WriteMsg(m) //nolint:errcheck // the test reads what arrives
	})}
	go srv.ActivateAndServe() //nolint:errcheck // ends with Shutdown
	f.t.Cleanup(func() { srv.Shutdown() })
}

// headlessService is the kit's hello-grpc-headless.
func headlessService(name string) *corev1.Service {
	ap := "kubernetes.io/h2c"
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app.kubernetes.io/name": "hello"},
			Ports: []corev1.ServicePort{{Name: "grpc", Port: 50051, TargetPort: intstr.FromString("grpc"), AppProtocol: &ap}}},
	}
}

func clusterIPService(name string) *corev1.Service {
	s := headlessService(name)
	s.Spec.ClusterIP = "10.96.0.42"
	return s
}

// slice is the EndpointSlice of svc for pods, ready as the pods are.
func slice(svc string, pods ...*corev1.Pod) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: svc + "-abc", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for _, p := range pods {
		ready := podReady(p)
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{p.Status.PodIP},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: p.Name, Namespace: ns}})
	}
	return es
}

// setReady marks the fixture's pods (not) Ready, as the kubelet would.
func (f *fixture) setReady(ready bool) {
	for _, p := range f.pods {
		*p = *helloPod(p.Name, p.Status.PodIP, f.port, ready)
	}
}

// readyIPs is what CoreDNS answers for a headless Service over f's ready pods.
func (f *fixture) readyIPs() []string {
	var ips []string
	for _, p := range f.pods {
		if podReady(p) {
			ips = append(ips, p.Status.PodIP)
		}
	}
	return ips
}

// doctor builds the clientset from the fixture plus objs and returns a Doctor for svc.
func (f *fixture) doctor(svc string, cfg Config, objs ...runtime.Object) *Doctor {
	dnsPod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "coredns-1", Namespace: "kube-system", Labels: map[string]string{"k8s-app": "kube-dns"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "coredns", Ports: []corev1.ContainerPort{
			{Name: "dns", ContainerPort: int32(f.dnsPort), Protocol: corev1.ProtocolUDP},
			{Name: "dns-tcp", ContainerPort: int32(f.dnsPort), Protocol: corev1.ProtocolTCP}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.0.1", Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	all := []runtime.Object{dnsPod,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"kubernetes.io/metadata.name": ns}}}}
	all = append(all, decoys(f.port)...)
	for _, p := range f.pods {
		all = append(all, p)
	}
	all = append(all, objs...)
	all = append(all, f.extra...)
	kube := fake.NewClientset(all...)
	ips := map[string]string{}
	for _, o := range all {
		if p, ok := o.(*corev1.Pod); ok {
			ips[p.Namespace+"/"+p.Name] = p.Status.PodIP
		}
	}
	if cfg.LB == "" {
		cfg.LB = "round_robin"
	}
	cfg.Namespace, cfg.Service, cfg.ClusterDomain, cfg.Timeout = ns, svc, "cluster.local", 3*time.Second
	return &Doctor{Kube: kube, Cfg: cfg, Dial: func(ctx context.Context, namespace, pod string, port int) (net.Conn, error) {
		ip, ok := ips[namespace+"/"+pod]
		if !ok {
			return nil, fmt.Errorf("no pod %s/%s", namespace, pod)
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	}}
}

// diagnose runs d and fails the test on a diagnosis error.
func diagnose(t *testing.T, d *Doctor) Report {
	t.Helper()
	rep, err := d.Diagnose(context.Background())
	if err != nil {
		t.Fatalf("Diagnose: %v", err)
	}
	return rep
}

// onlyError asserts that rep has exactly one error finding, from check, whose message
// contains want, and returns it.
func onlyError(t *testing.T, rep Report, check, want string) Finding {
	t.Helper()
	var errs []Finding
	for _, f := range rep.Findings {
		if f.Severity == Error {
			errs = append(errs, f)
		}
	}
	if len(errs) != 1 || errs[0].Check != check || !strings.Contains(errs[0].Message, want) {
		t.Fatalf("want exactly one error from %s containing %q, got:\n%s", check, want, dump(rep))
	}
	if rep.Errors != 1 {
		t.Errorf("Report.Errors = %d, want 1", rep.Errors)
	}
	return errs[0]
}

func noErrors(t *testing.T, rep Report) {
	t.Helper()
	if rep.Errors != 0 {
		t.Fatalf("want no error finding, got:\n%s", dump(rep))
	}
}

// worst is the most severe finding of check (nil if none).
func worst(rep Report, check string) *Finding {
	var w *Finding
	for i, f := range rep.Findings {
		if f.Check == check && (w == nil || f.Severity > w.Severity) {
			w = &rep.Findings[i]
		}
	}
	return w
}

func dump(rep Report) string {
	var b strings.Builder
	rep.WriteText(&b, true) //nolint:errcheck // strings.Builder does not fail
	return b.String()
}

func fqdn(svc string) string { return svc + "." + ns + ".svc.cluster.local." }

// decoys are objects the doctor's label selectors must leave out (it lists through them,
// and client-go's fake clientset applies label selectors as an API server does): a Ready
// pod of another app in the namespace, a Ready kube-system pod that is not CoreDNS, and an
// EndpointSlice of another Service. Were any picked, the fixture's counts would be off and
// the DNS check would dial a port where nothing listens.
func decoys(port int) []runtime.Object {
	other := helloPod("goodbye-1", "127.0.0.250", port, true)
	other.Labels["app.kubernetes.io/name"] = "goodbye"
	notDNS := helloPod("metrics-server-1", "127.0.0.251", port, true)
	notDNS.Namespace, notDNS.Labels = "kube-system", map[string]string{"k8s-app": "metrics-server"}
	return []runtime.Object{other, notDNS, slice("goodbye-grpc-headless", other)}
}
