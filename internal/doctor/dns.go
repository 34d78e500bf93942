package doctor

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// checkDNS asks the cluster's DNS what the client's name resolves to and compares it with
// what the client should get: the ready pod IPs for a headless Service, the ClusterIP
// otherwise.
//
// The question goes to a CoreDNS pod over TCP through port-forward rather than from a
// short-lived pod: no image to pull, no pod to schedule and clean up, no Pod Security or
// RBAC for creating pods, and the answer comes from the server every pod's resolver ends
// up asking. What it skips is the pod's resolv.conf (search path, ndots) and the kube-dns
// Service's virtual IP; the name asked is fully qualified, as the kit's targets are.
func (d *Doctor) checkDNS(ctx context.Context, st *state) error {
	if st.svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	name := fmt.Sprintf("%s.%s.svc.%s.", st.svc.Name, st.svc.Namespace, strings.TrimSuffix(d.Cfg.ClusterDomain, "."))
	pod, port, err := d.corednsPod(ctx)
	if err != nil {
		st.add(Finding{Severity: Warning, Check: CheckDNS, Message: "DNS not checked: " + err.Error(),
			Fix: "the doctor asks a kube-system pod labelled k8s-app=kube-dns; check that CoreDNS runs"})
		return nil
	}
	got, rcode, err := d.lookupA(ctx, pod, port, name)
	if err != nil {
		st.add(Finding{Severity: Warning, Check: CheckDNS, Message: fmt.Sprintf("DNS not checked: query %s at %s: %s", name, pod, firstLine(err))})
		return nil
	}
	slices.Sort(got)
	answer := orNone(got)
	if rcode != dns.RcodeSuccess {
		answer = dns.RcodeToString[rcode]
	}
	evidence := []string{fmt.Sprintf("%s A? at kube-system/%s: %s", name, pod, answer)}

	var want []string
	what := "the ready pod IPs"
	if headless(st.svc) {
		for _, e := range st.eps {
			if e.ready || st.svc.Spec.PublishNotReadyAddresses {
				want = append(want, e.ip)
			}
		}
	} else {
		want, what = []string{st.svc.Spec.ClusterIP}, "the ClusterIP"
	}
	slices.Sort(want)
	evidence = append(evidence, fmt.Sprintf("expected %s: %s", what, orNone(want)))
	target := fmt.Sprintf("dns:///%s:%d", strings.TrimSuffix(name, "."), st.port.Port)
	switch {
	case slices.Equal(got, want) && len(got) == 0:
		sev, msg := Warning, fmt.Sprintf("%s resolves to nothing (%s): no ready endpoint", target, answer)
		if st.causes[causeSelector] || st.causes[causeNoReady] || st.causes[causePorts] {
			sev, msg = Info, msg+", as explained above"
		}
		st.add(Finding{Severity: sev, Check: CheckDNS, Message: msg, Evidence: evidence})
	case slices.Equal(got, want) && headless(st.svc):
		st.add(Finding{Severity: OK, Check: CheckDNS, Message: fmt.Sprintf("%s resolves to the %d ready pod IP(s)", target, len(got)), Evidence: evidence})
	case slices.Equal(got, want):
		st.add(Finding{Severity: OK, Check: CheckDNS, Message: fmt.Sprintf("%s resolves to the ClusterIP %s (one address: the client sees one backend)", target, got[0]), Evidence: evidence})
	case len(got) == 0:
		st.add(Finding{Severity: Error, Check: CheckDNS,
			Message:  fmt.Sprintf("%s resolves to nothing (%s) although the Service has %s", target, answer, orNone(want)),
			Evidence: evidence, Fix: "check CoreDNS's logs and its kubernetes plugin (cluster domain: -cluster-domain)"})
	default:
		// DNS lags the EndpointSlices by up to the record TTL (5 s by default in CoreDNS):
		// a difference is worth a warning, not an error.
		st.add(Finding{Severity: Warning, Check: CheckDNS,
			Message:  fmt.Sprintf("%s resolves to %s, not %s (DNS lags endpoint changes by its TTL; run again)", target, answer, what),
			Evidence: evidence})
	}
	return nil
}

// corednsPod picks a ready CoreDNS pod and its DNS-over-TCP container port.
func (d *Doctor) corednsPod(ctx context.Context) (string, int, error) {
	list, err := d.Kube.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
	if err != nil {
		return "", 0, fmt.Errorf("list CoreDNS pods: %w", err)
	}
	for _, p := range list.Items {
		if !podReady(&p) || p.DeletionTimestamp != nil {
			continue
		}
		port := 53
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Protocol == corev1.ProtocolTCP && (cp.Name == "dns-tcp" || cp.ContainerPort == 53) {
					port = int(cp.ContainerPort)
				}
			}
		}
		return p.Name, port, nil
	}
	return "", 0, fmt.Errorf("no ready CoreDNS pod (kube-system, k8s-app=kube-dns)")
}

// lookupA asks pod for name's A records over TCP through d.Dial.
func (d *Doctor) lookupA(ctx context.Context, pod string, port int, name string) ([]string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, d.Cfg.Timeout)
	defer cancel()
	conn, err := d.Dial(ctx, "kube-system", pod, port)
	if err != nil {
		return nil, 0, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // the stream has no deadlines
	defer stop()
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	c := &dns.Conn{Conn: conn} // not a PacketConn: TCP framing
	if err := c.WriteMsg(q); err != nil {
		return nil, 0, fmt.Errorf("send: %w", err)
	}
	r, err := c.ReadMsg()
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, fmt.Errorf("no answer in %s", d.Cfg.Timeout)
		}
		return nil, 0, fmt.Errorf("read: %w", err)
	}
	var ips []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			ips = append(ips, a.A.String())
		}
	}
	return ips, r.Rcode, nil
}
