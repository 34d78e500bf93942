package doctor

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/hint"
)

const (
	modePlain = "plaintext (h2c)"
	modeTLS   = "TLS"
)

// probe is what gRPC said about one pod, on the Service's targetPort.
type probe struct {
	pod     string
	port    int
	skipped string // why the pod was not dialled

	clientErr  error  // the first RPC in the client's mode; nil when the transport worked
	refused    bool   // nothing listens on the port
	serverMode string // what the server speaks, when some mode worked

	overall    healthResult            // grpc.health.v1 status of ""
	services   map[string]healthResult // per service
	reflection []string
	reflErr    error
}

func (p *probe) transportOK() bool { return p.serverMode != "" }

// mismatch: the server answers, but not in the client's mode.
func (p *probe) mismatch(clientMode string) bool {
	return p.serverMode != "" && p.serverMode != clientMode
}

func (d *Doctor) clientMode() string {
	if d.Cfg.TLS {
		return modeTLS
	}
	return modePlain
}

// probePods dials every running pod on the Service's targetPort, in the client's mode
// first and, if that fails for a reason other than "nothing listens", in the other mode:
// that is how a TLS mismatch is told apart from a dead port.
func (d *Doctor) probePods(ctx context.Context, st *state) error {
	var wg sync.WaitGroup // each goroutine writes only its own probe; Wait publishes them
	for i := range st.pods {
		pod := &st.pods[i]
		t := resolveTarget(st.port, pod)
		st.targets[pod.Name] = t
		p := &probe{pod: pod.Name, port: t.port}
		st.probes[pod.Name] = p
		switch {
		case t.port == 0:
			p.skipped = "targetPort " + st.port.TargetPort.String() + " is not a port of the pod"
			continue
		case pod.DeletionTimestamp != nil:
			p.skipped = "terminating"
			continue
		case pod.Status.Phase != corev1.PodRunning:
			p.skipped = "phase " + string(pod.Status.Phase)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.probe(ctx, pod, p)
		}()
	}
	wg.Wait()
	return nil
}

func (d *Doctor) probe(ctx context.Context, pod *corev1.Pod, p *probe) {
	mine := d.clientMode()
	other := modePlain
	if mine == modePlain {
		other = modeTLS
	}
	cc, err := d.grpcClient(pod.Namespace, pod.Name, p.port, mine == modeTLS)
	if err != nil {
		p.clientErr = err
		return
	}
	defer cc.Close()
	if h := d.health(ctx, cc, ""); transportFailed(h.err) {
		p.clientErr = h.err
		if strings.Contains(h.err.Error(), "connection refused") {
			p.refused = true
			return
		}
		occ, oerr := d.grpcClient(pod.Namespace, pod.Name, p.port, other == modeTLS)
		if oerr != nil {
			return
		}
		defer occ.Close()
		if h := d.health(ctx, occ, ""); transportFailed(h.err) {
			return
		}
		p.serverMode = other
		cc = occ
	} else {
		p.serverMode = mine
	}

	// The transport works: health overall and per service, and reflection.
	p.overall = d.health(ctx, cc, "")
	names, rerr := d.listServices(ctx, cc)
	p.reflection, p.reflErr = names, rerr
	p.services = map[string]healthResult{}
	for _, n := range servicesToCheck(pod, names) {
		p.services[n] = d.health(ctx, cc, n)
	}
}

// grpcClient makes a client to one pod port through d.Dial. TLS is not verified: the
// doctor asks which protocol the server speaks, not whether its certificate is trusted.
func (d *Doctor) grpcClient(namespace, pod string, port int, useTLS bool) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if useTLS {
		creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}) //nolint:gosec // protocol detection only
	}
	cc, err := grpc.NewClient("passthrough:///"+pod,
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return d.Dial(ctx, namespace, pod, port) }),
	)
	if err != nil {
		return nil, fmt.Errorf("gRPC client for %s/%s:%d: %w", namespace, pod, port, err)
	}
	return cc, nil
}

func (d *Doctor) health(ctx context.Context, cc *grpc.ClientConn, service string) healthResult {
	ctx, cancel := context.WithTimeout(ctx, d.Cfg.Timeout)
	defer cancel()
	r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	return healthResult{status: r.GetStatus(), err: err}
}

// transportFailed: the RPC never reached a gRPC server (as opposed to a server answering
// with an error such as UNIMPLEMENTED or NOT_FOUND, which proves the transport works).
func transportFailed(err error) bool {
	if err == nil {
		return false
	}
	c := status.Code(err)
	return c == codes.Unavailable || c == codes.DeadlineExceeded || c == codes.Unknown || c == codes.Internal
}

// healthResult is one grpc.health.v1 Check answer: a status, or the error instead.
type healthResult struct {
	status healthpb.HealthCheckResponse_ServingStatus
	err    error
}

func (h healthResult) is(s healthpb.HealthCheckResponse_ServingStatus) bool {
	return h.err == nil && h.status == s
}

func (h healthResult) unimplemented() bool { return status.Code(h.err) == codes.Unimplemented }

// String is the status as the evidence lines print it.
func (h healthResult) String() string {
	switch {
	case h.err == nil:
		return h.status.String()
	case status.Code(h.err) == codes.NotFound:
		return "SERVICE_UNKNOWN"
	case h.unimplemented():
		return "UNIMPLEMENTED"
	default:
		return "error: " + firstLine(h.err)
	}
}

// notServing: the overall status or some service's is NOT_SERVING.
func (p *probe) notServing() bool {
	if p.overall.is(healthpb.HealthCheckResponse_NOT_SERVING) {
		return true
	}
	for _, h := range p.services {
		if h.is(healthpb.HealthCheckResponse_NOT_SERVING) {
			return true
		}
	}
	return false
}

// healthLine is "overall SERVING, helloworld.Hello NOT_SERVING"; with onlyBad, the
// statuses other than SERVING.
func (p *probe) healthLine(onlyBad bool) string {
	var parts []string
	add := func(name string, h healthResult) {
		if !onlyBad || !h.is(healthpb.HealthCheckResponse_SERVING) {
			parts = append(parts, name+" "+h.String())
		}
	}
	add("overall", p.overall)
	for _, n := range sortedKeys(p.services) {
		add(n, p.services[n])
	}
	return strings.Join(parts, ", ")
}

func (d *Doctor) listServices(ctx context.Context, cc *grpc.ClientConn) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, d.Cfg.Timeout)
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	defer stream.CloseSend()
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		return nil, err
	}
	r, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range r.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	sort.Strings(names)
	return names, nil
}

// servicesToCheck: the application services reflection lists, plus the service the
// readiness probe checks (what decides whether the pod is an endpoint).
func servicesToCheck(pod *corev1.Pod, listed []string) []string {
	var out []string
	for _, n := range listed {
		if !infrastructure(n) {
			out = append(out, n)
		}
	}
	for _, c := range pod.Spec.Containers {
		if p := c.ReadinessProbe; p != nil && p.GRPC != nil && p.GRPC.Service != nil && *p.GRPC.Service != "" && !slices.Contains(out, *p.GRPC.Service) {
			out = append(out, *p.GRPC.Service)
		}
	}
	sort.Strings(out)
	return out
}

// infrastructure: a service a gRPC server carries beside its own, with no health status
// of its own: grpc-go's (health, reflection, channelz, ...) and the ORCA load-report
// service weighted_round_robin clients stream from (gRFC A51).
func infrastructure(service string) bool {
	return strings.HasPrefix(service, "grpc.") || strings.HasPrefix(service, "xds.service.orca.")
}

// reportProbes turns the probes into tls, grpc, health and reflection findings.
func (d *Doctor) reportProbes(_ context.Context, st *state) error {
	var dialled, ok, mismatched, failed []*probe
	for _, pod := range st.pods {
		p := st.probes[pod.Name]
		switch {
		case p.skipped != "" || p.refused:
			continue // ports (or endpoints, for pods not running) said why
		case p.mismatch(d.clientMode()):
			mismatched = append(mismatched, p)
		case p.transportOK():
			ok = append(ok, p)
		default:
			failed = append(failed, p)
		}
		dialled = append(dialled, p)
	}
	if len(dialled) == 0 {
		if len(st.pods) > 0 && !st.causes[causePorts] {
			st.add(Finding{Severity: Info, Check: CheckGRPC, Message: "no pod could be dialled (none running)"})
		}
		return nil
	}
	mine := d.clientMode()
	switch {
	case len(mismatched) > 0:
		server := mismatched[0].serverMode
		f := Finding{Severity: Error, Check: CheckTLS,
			Message: fmt.Sprintf("%s client against a %s server: the handshake fails on %d of %d pod(s), calls fail with UNAVAILABLE", mine, server, len(mismatched), len(dialled))}
		for _, p := range mismatched {
			f.Evidence = append(f.Evidence, fmt.Sprintf("%s:%d: %s fails (%s); %s works", p.pod, p.port, mine, cause(p.clientErr), server))
		}
		if mine == modeTLS {
			f.Fix = "the server is plaintext: drop -tls/-cacert/-insecure from the client (grpc.WithTransportCredentials(insecure.NewCredentials())), or serve TLS (TLS_CERT_FILE, TLS_KEY_FILE)"
		} else {
			f.Fix = "the server speaks TLS: give the client TLS credentials (greeter -tls -cacert CA), or serve plaintext"
		}
		st.add(f)
		st.causes[causeTLS] = true
	case len(ok) > 0:
		st.add(Finding{Severity: OK, Check: CheckTLS, Message: fmt.Sprintf("client and server agree: %s on %d pod(s)", mine, len(ok))})
	}
	if len(failed) > 0 {
		f := Finding{Severity: Error, Check: CheckGRPC,
			Message: fmt.Sprintf("%d of %d pod(s) do not answer gRPC on the targetPort in either plaintext or TLS", len(failed), len(dialled))}
		for _, p := range failed {
			f.Evidence = append(f.Evidence, fmt.Sprintf("%s:%d: %s", p.pod, p.port, cause(p.clientErr)))
		}
		f.Fix = hint.ForError(failed[0].clientErr)
		if f.Fix == "" {
			f.Fix = "check that the port is the gRPC port (not the HTTP one) and the server's logs (kubectl logs)"
		}
		st.add(f)
	}
	d.reportHealth(st, append(ok, mismatched...))
	d.reportReflection(st, append(ok, mismatched...))
	return nil
}

func (d *Doctor) reportHealth(st *state, reached []*probe) {
	if len(reached) == 0 {
		return
	}
	var notServingReady, notServingUnready, unknown, unimpl []string
	serving := 0
	for _, p := range reached {
		pod := st.pod(p.pod)
		bad := p.healthLine(true)
		line := p.pod + ": " + bad
		switch {
		case p.overall.unimplemented():
			unimpl = append(unimpl, p.pod)
		case bad == "":
			serving++
		case p.notServing() && !podReady(pod):
			notServingUnready = append(notServingUnready, line)
		case p.notServing():
			notServingReady = append(notServingReady, line)
		default:
			unknown = append(unknown, line)
		}
	}
	if len(unimpl) > 0 {
		st.add(Finding{Severity: Warning, Check: CheckHealth,
			Message:  "the server does not implement grpc.health.v1: gRPC readiness probes and client-side health checking cannot work",
			Evidence: unimpl, Fix: "register the standard health service (google.golang.org/grpc/health) and set its statuses"})
	}
	if len(notServingUnready) > 0 {
		f := Finding{Severity: Warning, Check: CheckHealth,
			Message:  fmt.Sprintf("%d pod(s) report NOT_SERVING and are not Ready", len(notServingUnready)),
			Evidence: notServingUnready,
			Fix:      "find out why the servers report NOT_SERVING (draining, a failed dependency, POST /admin/health?status=SERVING on the kit's HTTP port)"}
		if st.causes[causeNoReady] {
			f.Severity, f.Message = Info, f.Message+": the cause of the endpoints finding"
		}
		st.add(f)
	}
	if len(notServingReady) > 0 {
		st.add(Finding{Severity: Warning, Check: CheckHealth,
			Message:  fmt.Sprintf("%d Ready pod(s) report NOT_SERVING: the readiness probe has not caught up, or checks another service", len(notServingReady)),
			Evidence: notServingReady,
			Fix:      "make the readiness probe a gRPC probe on the service clients call (readinessProbe.grpc.service)"})
	}
	if len(unknown) > 0 {
		st.add(Finding{Severity: Warning, Check: CheckHealth,
			Message:  "health statuses other than SERVING",
			Evidence: unknown,
			Fix:      "SERVICE_UNKNOWN: the server has no status for that name; a client with healthCheckConfig for it never picks the pod"})
	}
	if serving > 0 {
		names := []string{"overall"}
		names = append(names, sortedKeys(reached[0].services)...)
		st.add(Finding{Severity: OK, Check: CheckHealth, Message: fmt.Sprintf("SERVING (%s) on %d of %d pod(s)", strings.Join(names, ", "), serving, len(reached))})
	}
}

func (d *Doctor) reportReflection(st *state, reached []*probe) {
	if len(reached) == 0 {
		return
	}
	p := reached[0]
	if p.reflErr != nil {
		sev := Info
		msg := "reflection is not served: grpcurl and similar tools need the .proto files (-proto)"
		if status.Code(p.reflErr) != codes.Unimplemented {
			sev, msg = Warning, "reflection failed: "+firstLine(p.reflErr)
		}
		st.add(Finding{Severity: sev, Check: CheckReflection, Message: msg})
		return
	}
	st.add(Finding{Severity: OK, Check: CheckReflection, Message: fmt.Sprintf("%s lists %s", p.pod, strings.Join(p.reflection, ", "))})
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// cause shortens a dial error to the part that names the cause: gRPC's wrapping and, for a
// refused port-forward, the CRI's network-namespace details go.
func cause(err error) string {
	msg := firstLine(err)
	msg = strings.TrimPrefix(msg, `connection error: desc = "`)
	msg = strings.TrimSuffix(strings.TrimSpace(msg), `"`)
	msg = strings.TrimPrefix(msg, "transport: ")
	if i := strings.Index(msg, "dial tcp"); i >= 0 && strings.Contains(msg[i:], "connection refused") {
		via := ""
		if strings.Contains(msg, "port-forward") {
			via = " (inside the pod, through port-forward)"
		}
		j := strings.Index(msg[i:], "connection refused")
		msg = msg[i:i+j+len("connection refused")] + via
	}
	return msg
}

// firstLine shortens gRPC's nested error texts to the part that names the cause.
func firstLine(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	if st, ok := status.FromError(err); ok {
		msg = st.Message()
	}
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return msg
}
