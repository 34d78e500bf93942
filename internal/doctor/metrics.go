package doctor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/promapi"
)

// The live balance, from the servers' own metrics in Prometheus (-prometheus). The other
// checks read objects and talk to each pod once; these read what the pods did with the
// calls of real clients over the last minutes, so they need no load of their own:
//   - scrape: every Running pod of the Service has a scrape target (an up series with its
//     pod label) and the target is up; else the alerts and the checks below are blind to it.
//   - traffic: calls per pod, judged per Deployment. A pod that gets (almost) nothing
//     while its peers are busy is the first symptom of clients that hold one connection
//     (pick_first, any policy over a ClusterIP Service) or never re-resolve DNS. A canary
//     Deployment that gets a tenth of the calls is its own Deployment: not skew.
//   - errorRate: the share of calls that end in a server error, judged as the kit's alert
//     judges it (KitErrorRate: the same codes, services, window and threshold).
//   - streams: open streams per pod (streaming calls started and not finished), judged
//     per Deployment: streams stay on the pod they opened on.
//
// Only the query endpoint (/api/v1/query) and raw metrics: no recording rule has to be
// loaded, so the checks work against any Prometheus that scrapes the pods. Series are
// mapped to pods by the namespace and pod labels a PodMonitor adds, and pods to
// Deployments through their ReplicaSets (workloads, nodes.go).
//
// What the metrics cannot show: connections. The servers export calls, not HTTP/2
// connections, so a client holding idle connections to one pod only is invisible until it
// sends calls over them. Open streams are the closest thing: long-lived calls, each pinned
// to the connection, hence the pod, it opened on.
//
// The client is internal/promapi (client_golang's api/prometheus/v1), whose typed API
// errors let a refused query (bad_data) and a URL that is not the API (a 404) get
// different fixes (unreachable).

// The metrics checks. Declared here rather than with the others in finding.go, so that
// this file carries the whole feature.
const (
	CheckPrometheus = "prometheus" // the Prometheus server answers the doctor's queries
	CheckScrape     = "scrape"     // every Running pod of the Service has a scrape target that is up
	CheckTraffic    = "traffic"    // calls per pod, per Deployment: idle or skewed pods
	CheckErrorRate  = "errorRate"  // server errors against the kit's alert GrpcServerErrorRateHigh
	CheckStreams    = "streams"    // open streams per pod, per Deployment
)

// The go-grpc-middleware metrics the kit's servers export (serverkit/metrics.go);
// TestQueriedMetricsAreExported holds the names and labels to a real server's /metrics.
const (
	metricHandled = "grpc_server_handled_total" // finished calls, by grpc_code
	metricStarted = "grpc_server_started_total"
)

// How uneven is skewed. Each pod's rate is compared with an even share of its
// Deployment's calls (the total over its judged pods, divided by their number), which is
// what round_robin gives, and what a proxy balancing per call gives, to within a few
// calls per client:
//   - idleShare: under a twentieth of an even share is "no calls": pick_first leaves the
//     pods it did not pick at exactly zero, a client that never re-resolves leaves new
//     pods at zero. A balancer that weighs pods by speed on purpose (weighted_round_robin,
//     least_request: docs/balancing.md) still sends a slow pod calls in proportion to its
//     speed; one it gives under a twentieth of a share is a pod that barely serves, a
//     problem either way. An error: calls go to some pods only, now.
//   - skewShare: under half an even share is skew. Per-call balancing keeps every pod
//     near its share, so half is far outside its noise; a weighing balancer can go there
//     on purpose, which is why it is a warning whose fix says so.
//   - minCallsPerPod: the spread is judged only when an even share holds at least this
//     many calls over the window. Were the calls placed at random (the noisiest per-call
//     balancer, power-of-two choices with no signal), a pod's count would be Poisson with
//     that mean: 50 puts "under half" 3.5 standard deviations away (a chance of 1 in
//     30 000 per pod), while a Deployment of 3 pods needs only half a call per second over
//     5 minutes to be judged.
//   - minStreamsPerPod: the same for open streams, which are few and placed per stream:
//     with 3 per pod on average, every stream on one pod is not the chance placement of a
//     handful of clients that each opened one.
const (
	idleShare        = 0.05
	skewShare        = 0.5
	minCallsPerPod   = 50
	minStreamsPerPod = 3
)

// Metrics is what Prometheus said of the Service's pods (-prometheus): the numbers behind
// the scrape, traffic, errorRate and streams findings, for tools that read -json.
type Metrics struct {
	Prometheus string       `json:"prometheus"`
	Window     string       `json:"window"` // of the rates, as PromQL writes it
	Pods       []PodMetrics `json:"pods"`
}

// PodMetrics is one Running pod of the Service, as Prometheus sees it.
type PodMetrics struct {
	Pod      string `json:"pod"`
	Workload string `json:"workload,omitempty"` // "Deployment hello"; empty without a controller
	Ready    bool   `json:"ready"`
	Targets  int    `json:"targets"` // up series with this pod's label
	Up       int    `json:"up"`      // of which are up
	HasCalls bool   `json:"hasCalls"`
	// Calls of the kit's services finished per second over the window, and of those the
	// ones ending in a code the alert counts.
	Calls        float64 `json:"callsPerSecond"`
	ServerErrors float64 `json:"serverErrorsPerSecond"`
	// Share of its workload's calls (0 to 1), over the workload's pods that were judged;
	// absent for pods that were not (not Ready, too young, no data).
	Share       *float64 `json:"share,omitempty"`
	OpenStreams float64  `json:"openStreams"`
}

// checkPrometheusURL is promapi.CheckURL for the -prometheus flag.
func checkPrometheusURL(addr string) error {
	if err := promapi.CheckURL(addr); err != nil {
		return fmt.Errorf("-prometheus %w", err)
	}
	return nil
}

func upQuery(ns string) string { return fmt.Sprintf("up{namespace=%q}", ns) }

// targetsQuery: where Prometheus has targets, asked only when the namespace has none.
const targetsQuery = "count by (namespace) (up)"

// callsQuery: calls finished per second by pod, service and code. The services and the
// window are the alert's (KitErrorRate): the kit's services, not the health probes, and a
// window that spans several scrapes.
func callsQuery(ns string, r ErrorRateRule) string {
	return fmt.Sprintf("sum by (pod, grpc_service, grpc_code) (rate(%s{namespace=%q, grpc_service=~%q}[%s]))",
		metricHandled, ns, r.Services, model.Duration(r.Window))
}

// streamsQuery: streaming calls open on each pod now, started minus finished. Both
// counters come from the same scrape and reset together when the server restarts.
func streamsQuery(ns string, r ErrorRateRule) string {
	sel := fmt.Sprintf(`{namespace=%q, grpc_service=~%q, grpc_type!="unary"}`, ns, r.Services)
	return fmt.Sprintf("sum by (pod) (%s%s) - sum by (pod) (%s%s)", metricStarted, sel, metricHandled, sel)
}

// podSample is what the queries returned for one pod.
type podSample struct {
	targets, up int
	jobs        []string
	calls       map[string]map[string]float64 // grpc_service -> grpc_code -> calls/s
	streams     float64
}

func (s *podSample) total() float64 {
	t := 0.0
	for _, byCode := range s.calls {
		for _, v := range byCode {
			t += v
		}
	}
	return t
}

func (s *podSample) errors(r ErrorRateRule) float64 {
	t := 0.0
	for _, byCode := range s.calls {
		for c, v := range byCode {
			if r.counts(c) {
				t += v
			}
		}
	}
	return t
}

// query runs one instant query at Prometheus' own now (no clock skew between this host
// and Prometheus) and wants a vector.
func (d *Doctor) query(ctx context.Context, q string) (model.Vector, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, d.Cfg.Timeout)
	defer cancel()
	return promapi.Vector(ctx, d.Prometheus, q, time.Time{})
}

// checkMetrics runs the metrics checks when -prometheus is set. What Prometheus fails to
// answer is a finding, not an error of the diagnosis: the other checks stand.
func (d *Doctor) checkMetrics(ctx context.Context, st *state) error {
	if d.Prometheus == nil {
		return nil
	}
	ns, rule := d.Cfg.Namespace, KitErrorRate()
	if d.Cfg.PrometheusWindow > 0 {
		rule.Window = d.Cfg.PrometheusWindow
	}
	up, warnings, err := d.query(ctx, upQuery(ns))
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("query Prometheus: %w", ctx.Err())
		}
		st.add(d.unreachable(err))
		return nil
	}
	if len(st.pods) == 0 {
		st.add(Finding{Severity: Info, Check: CheckPrometheus,
			Message: fmt.Sprintf("Prometheus at %s answers; the Service has no pods to look up", d.Cfg.Prometheus)})
		return nil
	}
	var running []*corev1.Pod // the pods Prometheus should scrape: they have an IP, and are not going away
	for i := range st.pods {
		p := &st.pods[i]
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			running = append(running, p)
		}
	}
	samples := map[string]*podSample{}
	for _, p := range running {
		samples[p.Name] = &podSample{calls: map[string]map[string]float64{}}
	}
	unlabelled := 0
	for _, s := range up {
		pod := string(s.Metric["pod"])
		if pod == "" {
			unlabelled++
		}
		if ps := samples[pod]; ps != nil {
			ps.targets++
			if s.Value == 1 {
				ps.up++
			}
			if j := string(s.Metric["job"]); j != "" && !slices.Contains(ps.jobs, j) {
				ps.jobs = append(ps.jobs, j)
			}
		}
	}
	calls, w2, errCalls := d.query(ctx, callsQuery(ns, rule))
	streams, w3, errStreams := d.query(ctx, streamsQuery(ns, rule))
	warnings = append(append(warnings, w2...), w3...)
	if err := errors.Join(errCalls, errStreams); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("query Prometheus: %w", ctx.Err())
		}
		st.add(d.unreachable(err))
		return nil
	}
	for _, s := range calls {
		if ps := samples[string(s.Metric["pod"])]; ps != nil && !math.IsNaN(float64(s.Value)) {
			svc, code := string(s.Metric["grpc_service"]), string(s.Metric["grpc_code"])
			if ps.calls[svc] == nil {
				ps.calls[svc] = map[string]float64{}
			}
			ps.calls[svc][code] += float64(s.Value)
		}
	}
	for _, s := range streams {
		if ps := samples[string(s.Metric["pod"])]; ps != nil {
			// A call started and finished between the two counters' collection makes the
			// difference -1 for an instant: open streams are never negative.
			ps.streams = max(float64(s.Value), 0)
		}
	}

	m := &Metrics{Prometheus: d.Cfg.Prometheus, Window: model.Duration(rule.Window).String()}
	st.rep.Metrics = m
	ws := d.workloadsOnce(ctx, st)
	owner := map[string]*workload{}
	for _, w := range ws {
		for _, p := range w.pods {
			owner[p.Name] = w
		}
	}
	var loose *workload // pods without a controller, judged together
	for _, p := range running {
		if owner[p.Name] == nil {
			if loose == nil {
				loose = &workload{kind: "pods", name: "without a controller", replicas: -1}
			}
			loose.pods = append(loose.pods, p)
		}
	}
	if loose != nil {
		ws = append(slices.Clip(ws), loose)
	}
	for _, p := range running {
		s := samples[p.Name]
		pm := PodMetrics{Pod: p.Name, Ready: podReady(p), Targets: s.targets, Up: s.up, HasCalls: len(s.calls) > 0,
			Calls: s.total(), ServerErrors: s.errors(rule), OpenStreams: s.streams}
		if w := owner[p.Name]; w != nil {
			pm.Workload = w.String()
		}
		m.Pods = append(m.Pods, pm)
	}

	scrape, scraped := d.scrapeFindings(ctx, running, samples, len(up), unlabelled)
	f := Finding{Severity: OK, Check: CheckPrometheus,
		Message: fmt.Sprintf("Prometheus at %s answers: %d target(s) in %s, call metrics for %d of %d Running pod(s) of the Service", d.Cfg.Prometheus, len(up), ns, scraped, len(running))}
	if len(warnings) > 0 {
		f.Evidence = append(f.Evidence, "Prometheus warned: "+strings.Join(warnings, "; "))
	}
	st.add(f)
	for _, f := range scrape {
		st.add(f)
	}
	if scraped == 0 {
		st.add(Finding{Severity: Info, Check: CheckTraffic,
			Message: fmt.Sprintf("traffic, errorRate and streams not checked: Prometheus has no call metrics (%s) for any pod of the Service (see scrape)", metricHandled)})
		return nil
	}
	judged := d.checkTraffic(st, ws, samples, m, rule.Window)
	d.checkErrorRate(st, running, samples, rule)
	d.checkStreams(st, judged, samples)
	return nil
}

// unreachable turns a failed query into the prometheus finding, with what to check.
func (d *Doctor) unreachable(err error) Finding {
	addr := d.Cfg.Prometheus
	f := Finding{Severity: Warning, Check: CheckPrometheus, Evidence: []string{err.Error()}}
	var apiErr *promv1.Error
	var urlErr *url.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Type == promv1.ErrBadData:
		f.Message = fmt.Sprintf("Prometheus at %s refused the doctor's query (%s): traffic, errorRate and streams not checked", addr, apiErr.Msg)
		f.Fix = "a server that speaks the Prometheus API but not all of PromQL (an older Prometheus, a proxy in front of it) may refuse it: run the query in its own UI to see why"
	case errors.As(err, &apiErr):
		f.Message = fmt.Sprintf("%s answered, but not as the Prometheus HTTP API (%s): traffic, errorRate and streams not checked", addr, apiErr.Msg)
		f.Fix = fmt.Sprintf("give -prometheus the server's base URL, the one under which %s/api/v1/query answers (with its path prefix, if it is served under one; not Grafana's or Alertmanager's URL)", strings.TrimRight(addr, "/"))
	case errors.As(err, &urlErr), errors.Is(err, context.DeadlineExceeded):
		f.Message = fmt.Sprintf("Prometheus at %s does not answer: traffic, errorRate and streams not checked", addr)
		f.Fix = "check the URL (scheme, host, port) and that this host reaches it: from outside the cluster, port-forward to it (kubectl -n NAMESPACE port-forward svc/PROMETHEUS 9090) and pass -prometheus http://localhost:9090; a slow server: raise -timeout"
	default:
		f.Message = fmt.Sprintf("Prometheus at %s: %v: traffic, errorRate and streams not checked", addr, err)
	}
	return f
}

// scrapeFindings are the scrape check's findings: the Running pods Prometheus has no
// target for, or whose targets are down, or whose targets carry no call metrics. It also
// returns how many pods have call metrics.
func (d *Doctor) scrapeFindings(ctx context.Context, running []*corev1.Pod, samples map[string]*podSample, targets, unlabelled int) ([]Finding, int) {
	ns := d.Cfg.Namespace
	var out []Finding
	var missing, down, noCalls []string
	var missingEv []string
	jobs := map[string]bool{}
	for _, p := range running {
		s := samples[p.Name]
		for _, j := range s.jobs {
			jobs[j] = true
		}
		switch {
		case s.targets == 0:
			missing = append(missing, p.Name)
			missingEv = append(missingEv, fmt.Sprintf("%s: labels %s; containerPorts %s", p.Name, labelsInline(p.Labels), containerPorts(p)))
		case s.up == 0:
			down = append(down, fmt.Sprintf("%s (%d target(s), none up)", p.Name, s.targets))
		case len(s.calls) == 0:
			noCalls = append(noCalls, p.Name)
		}
	}
	scraped := len(running) - len(missing) - len(down) - len(noCalls)
	where := fmt.Sprintf("kustomize/components/prometheus-rule/podmonitor.yaml is the kit's PodMonitor; for yours: kubectl -n %s get podmonitors -o yaml", ns)
	if len(missing) > 0 {
		f := Finding{Severity: Warning, Check: CheckScrape,
			Message: fmt.Sprintf("Prometheus has no scrape target for %d of %d Running pod(s) of the Service (%s): their calls are not counted, so the alerts and the checks below do not see them",
				len(missing), len(running), strings.Join(missing, ", ")),
			Evidence: missingEv,
			Fix:      "a PodMonitor in " + ns + " must select these pods' labels and name a containerPort they have, and Prometheus must select that PodMonitor (its podMonitorSelector and podMonitorNamespaceSelector must match the PodMonitor's labels and namespace). " + where}
		switch {
		case targets == 0:
			f.Evidence = append(f.Evidence, fmt.Sprintf("%s: no series: Prometheus scrapes nothing in %s", upQuery(ns), ns))
			if vec, _, err := d.query(ctx, targetsQuery); err == nil {
				var in []string
				for _, s := range vec {
					in = append(in, fmt.Sprintf("%s (%s)", orDash(string(s.Metric["namespace"])), s.Value))
				}
				slices.Sort(in)
				f.Evidence = append(f.Evidence, "namespaces with targets: "+orNone(in))
			}
		case unlabelled == targets:
			f.Evidence = append(f.Evidence, fmt.Sprintf("%s: %d series, none with a pod label: scraped by a config that does not label series by pod as a PodMonitor does", upQuery(ns), targets))
		default:
			f.Evidence = append(f.Evidence, fmt.Sprintf("%s: %d series, by jobs %s", upQuery(ns), targets, orNone(slices.Sorted(maps.Keys(jobs)))))
		}
		out = append(out, f)
	}
	if len(down) > 0 {
		out = append(out, Finding{Severity: Warning, Check: CheckScrape,
			Message:  fmt.Sprintf("Prometheus scrapes %d pod(s) of the Service and every scrape fails (up 0): their calls are not counted", len(down)),
			Evidence: down,
			Fix:      "the target's last error is on Prometheus' /targets page: a port or path where the server's metrics are not, or a NetworkPolicy that drops Prometheus' scrapes. " + where})
	}
	if len(noCalls) > 0 {
		out = append(out, Finding{Severity: Warning, Check: CheckScrape,
			Message: fmt.Sprintf("Prometheus scrapes %s but has no rate of %s{grpc_service=~%q} for them: a scrape of another endpoint than the gRPC server's metrics, or a pod scraped fewer than twice so far",
				strings.Join(noCalls, ", "), metricHandled, KitErrorRate().Services),
			Fix: "the kit's servers export the counter from start, at zero for every method: check that the PodMonitor scrapes the server's own /metrics, or run the doctor again after two scrape intervals. " + where})
	}
	if scraped == len(running) {
		out = append(out, Finding{Severity: OK, Check: CheckScrape,
			Message: fmt.Sprintf("every Running pod of the Service is scraped and has call metrics (%d pod(s), job %s)", len(running), orNone(slices.Sorted(maps.Keys(jobs))))})
	}
	return out, scraped
}

// judgedPods are the pods of one workload whose calls are compared.
type judgedPods struct {
	w      *workload
	pods   []*corev1.Pod
	young  []string // Ready for less than the window: their rate is diluted by the time before clients found them
	unseen []string // Ready, but Prometheus has no call metrics for them
}

// checkTraffic judges the spread of calls over each workload's pods and returns the pods
// it judged, for the streams check.
func (d *Doctor) checkTraffic(st *state, ws []*workload, samples map[string]*podSample, m *Metrics, window time.Duration) []judgedPods {
	now := time.Now()
	var groups []judgedPods
	for _, w := range ws {
		g := judgedPods{w: w}
		for _, p := range w.pods {
			s := samples[p.Name]
			// Not an endpoint (not Ready, terminating): no calls are expected.
			if s == nil || !podReady(p) || p.DeletionTimestamp != nil {
				continue
			}
			if len(s.calls) == 0 {
				g.unseen = append(g.unseen, p.Name)
				continue
			}
			if since := readySince(p); !since.IsZero() && now.Sub(since) < window {
				g.young = append(g.young, fmt.Sprintf("%s (Ready for %s)", p.Name, now.Sub(since).Round(time.Second)))
				continue
			}
			g.pods = append(g.pods, p)
		}
		if len(g.pods) > 0 || len(g.young) > 0 || len(g.unseen) > 0 {
			groups = append(groups, g)
		}
	}
	service := 0.0
	for _, g := range groups {
		for _, p := range g.pods {
			service += samples[p.Name].total()
		}
	}
	var ok []string
	var okEv []string
	for _, g := range groups {
		n := len(g.pods)
		total := 0.0
		for _, p := range g.pods {
			total += samples[p.Name].total()
		}
		if n > 0 && total > 0 {
			for _, p := range g.pods {
				share := samples[p.Name].total() / total
				for i := range m.Pods {
					if m.Pods[i].Pod == p.Name {
						m.Pods[i].Share = &share
					}
				}
			}
		}
		ofService := ""
		if service > 0 && len(groups) > 1 {
			ofService = fmt.Sprintf(", %.0f%% of the Service's", 100*total/service)
		}
		head := fmt.Sprintf("%s: %s calls/s over %s%s", g.w, perSec(total), model.Duration(window), ofService)
		ev := podLines(g.pods, samples, total, n)
		if len(g.young) > 0 {
			ev = append(ev, fmt.Sprintf("not judged, Ready for less than the %s window: %s", model.Duration(window), strings.Join(g.young, ", ")))
		}
		if len(g.unseen) > 0 {
			ev = append(ev, "not judged, no call metrics in Prometheus (see scrape): "+strings.Join(g.unseen, ", "))
		}
		if g.w.note != "" {
			ev = append(ev, g.w.note)
		}
		need := float64(minCallsPerPod*n) / window.Seconds()
		switch {
		case n < 2:
			ok = append(ok, fmt.Sprintf("%s (%d pod(s) judged)", head, n))
			okEv = append(okEv, ev...)
			continue
		case total < need:
			st.add(Finding{Severity: Info, Check: CheckTraffic,
				Message:  fmt.Sprintf("%s: too few calls to judge the spread over %d pods (at least %s calls/s: %d calls per pod in the window)", head, n, perSec(need), minCallsPerPod),
				Evidence: ev})
			continue
		}
		even := total / float64(n)
		var idle, low, busy []string
		for _, p := range g.pods {
			r := samples[p.Name].total()
			switch {
			case r < idleShare*even:
				idle = append(idle, p.Name)
			case r < skewShare*even:
				low = append(low, fmt.Sprintf("%s %.0f%%", p.Name, 100*r/total))
			default:
				busy = append(busy, fmt.Sprintf("%s %.0f%%", p.Name, 100*r/total))
			}
		}
		evenPct := fmt.Sprintf("%.0f%%", 100/float64(n))
		switch {
		case len(idle) > 0:
			f := Finding{Severity: Error, Check: CheckTraffic,
				Message: fmt.Sprintf("%s: %d of %d Ready pods get no calls (%s), the others take them all (%s): clients hold one connection (pick_first, or any policy over a ClusterIP Service) or never re-resolve DNS, so the pods they did not pick stay idle",
					head, len(idle), n, strings.Join(idle, ", "), strings.Join(append(busy, low...), ", ")),
				Evidence: ev,
				Fix:      `direct clients: dial the headless Service with round_robin (greeter -lb round_robin; loadBalancingConfig [{"round_robin":{}}]), and keep the servers' MAX_CONNECTION_AGE so clients re-resolve and reach new pods (docs/streams.md); calls through a proxy (Gateway, Ingress, mesh): the proxy balances per call, see the balancing and route findings; greeter -target against the same Service shows where one client's calls go`}
			if st.causes[causeOnePod] {
				f.Severity, f.Fix = Info, ""
				f.Message = fmt.Sprintf("%s: %d of %d Ready pods get no calls (%s): what the balancing finding says the client does", head, len(idle), n, strings.Join(idle, ", "))
			}
			st.add(f)
		case len(low) > 0:
			st.add(Finding{Severity: Warning, Check: CheckTraffic,
				Message:  fmt.Sprintf("%s: skewed: %s get under half an even share (%s each with %d pods)", head, strings.Join(low, ", "), evenPct, n),
				Evidence: ev,
				Fix:      "clients using weighted_round_robin or least_request send a slow pod fewer calls on purpose (docs/balancing.md): compare the pods' latency (grpc_server_handling_seconds); otherwise few clients that each hold one connection (pick_first, a ClusterIP Service) spread their calls by connection, not by call: round_robin over the headless Service"})
		default:
			ok = append(ok, fmt.Sprintf("%s, every pod within half of an even share (%s)", head, evenPct))
			okEv = append(okEv, ev...)
		}
	}
	if len(ok) > 0 {
		st.add(Finding{Severity: OK, Check: CheckTraffic, Message: "calls spread: " + strings.Join(ok, "; "), Evidence: okEv})
	}
	return groups
}

func podLines(pods []*corev1.Pod, samples map[string]*podSample, total float64, n int) []string {
	var ev []string
	for _, p := range pods {
		r := samples[p.Name].total()
		share := 0.0
		if total > 0 {
			share = r / total
		}
		ev = append(ev, fmt.Sprintf("%s: %s calls/s, %.0f%% (even share %.0f%%)", p.Name, perSec(r), 100*share, 100/float64(n)))
	}
	return ev
}

// readySince is when p last became Ready (zero when unknown).
func readySince(p *corev1.Pod) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

// perSec writes a rate with the digits that matter: three significant ones, none after
// the point from 100 up.
func perSec(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// checkErrorRate judges each service's share of server errors over the Service's pods as
// the alert does over its namespace: the same codes, window and threshold.
func (d *Doctor) checkErrorRate(st *state, running []*corev1.Pod, samples map[string]*podSample, rule ErrorRateRule) {
	type tally struct {
		total, errs float64
		byCode      map[string]float64 // non-OK codes
		byPod       map[string][2]float64
	}
	bySvc := map[string]*tally{}
	for _, p := range running {
		for svc, byCode := range samples[p.Name].calls {
			t := bySvc[svc]
			if t == nil {
				t = &tally{byCode: map[string]float64{}, byPod: map[string][2]float64{}}
				bySvc[svc] = t
			}
			pt := t.byPod[p.Name]
			for code, v := range byCode {
				t.total += v
				pt[1] += v
				if code != "OK" {
					t.byCode[code] += v
				}
				if rule.counts(code) {
					t.errs += v
					pt[0] += v
				}
			}
			t.byPod[p.Name] = pt
		}
	}
	threshold := fmt.Sprintf("%g%%", 100*rule.Ratio)
	var ok, okEv []string
	for _, svc := range slices.Sorted(maps.Keys(bySvc)) {
		t := bySvc[svc]
		if t.total == 0 {
			ok = append(ok, fmt.Sprintf("%s: no calls over %s", svc, model.Duration(rule.Window)))
			continue
		}
		ratio := t.errs / t.total
		var counted, other []string
		for _, c := range slices.Sorted(maps.Keys(t.byCode)) {
			if t.byCode[c] == 0 {
				continue
			}
			if rule.counts(c) {
				counted = append(counted, fmt.Sprintf("%s %s/s", c, perSec(t.byCode[c])))
			} else {
				other = append(other, fmt.Sprintf("%s %s/s", c, perSec(t.byCode[c])))
			}
		}
		ev := []string{fmt.Sprintf("server errors (%s): %s of %s calls/s", rule.codeList(), orNone(counted), perSec(t.total))}
		if len(other) > 0 {
			ev = append(ev, "not counted, the caller's doing: "+strings.Join(other, ", "))
		}
		if ratio <= rule.Ratio {
			ok = append(ok, fmt.Sprintf("%s: %.2g%% of %s calls/s", svc, 100*ratio, perSec(t.total)))
			okEv = append(okEv, ev...)
			continue
		}
		var pods []string
		for _, name := range slices.Sorted(maps.Keys(t.byPod)) {
			pt := t.byPod[name]
			if pt[1] > 0 {
				pods = append(pods, fmt.Sprintf("%s %.0f%% of %s/s", name, 100*pt[0]/pt[1], perSec(pt[1])))
			}
		}
		ev = append(ev, "by pod: "+strings.Join(pods, ", "),
			fmt.Sprintf("the alert judges every pod of the namespace serving %s; this is the Service's pods", svc))
		fix := fmt.Sprintf("read the failing pods' logs (kubectl -n %s logs POD: the kit's servers log server errors at warn and error); one pod failing alone: replace it (kubectl delete pod); every pod since a rollout: roll back (kubectl rollout undo)", d.Cfg.Namespace)
		if t.byCode[codes.Unimplemented.String()] > 0 {
			fix += "; Unimplemented: clients call a method these servers do not have (a client built from a newer proto)"
		}
		st.add(Finding{Severity: Error, Check: CheckErrorRate,
			Message: fmt.Sprintf("%.1f%% of %s calls on the Service's pods end in a server error over the last %s, above the %s at which the kit's alert %s fires: the callers see failed calls",
				100*ratio, svc, model.Duration(rule.Window), threshold, rule.Alert),
			Evidence: ev, Fix: fix})
	}
	if len(ok) > 0 {
		st.add(Finding{Severity: OK, Check: CheckErrorRate,
			Message:  fmt.Sprintf("server errors at or under the %s of the alert %s: %s", threshold, rule.Alert, strings.Join(ok, "; ")),
			Evidence: okEv})
	}
}

// checkStreams judges open streams per pod over the pods the traffic check judged: a
// stream stays on the pod it opened on until it ends.
func (d *Doctor) checkStreams(st *state, groups []judgedPods, samples map[string]*podSample) {
	for _, g := range groups {
		n := len(g.pods)
		total := 0.0
		for _, p := range g.pods {
			total += samples[p.Name].streams
		}
		if n < 2 || total < float64(minStreamsPerPod*n) {
			continue
		}
		even := total / float64(n)
		var low, lines []string
		for _, p := range g.pods {
			s := samples[p.Name].streams
			lines = append(lines, fmt.Sprintf("%s: %.0f open stream(s)", p.Name, s))
			if s < skewShare*even {
				low = append(low, p.Name)
			}
		}
		if len(low) == 0 {
			st.add(Finding{Severity: OK, Check: CheckStreams,
				Message: fmt.Sprintf("%s: %.0f open streams over %d pods, every pod within half of an even share", g.w, total, n), Evidence: lines})
			continue
		}
		st.add(Finding{Severity: Warning, Check: CheckStreams,
			Message: fmt.Sprintf("%s: %.0f open streams, %d of %d pods hold under half an even share (%s): a stream stays on the pod it opened on until it ends, so the others carry that load",
				g.w, total, len(low), n, strings.Join(low, ", ")),
			Evidence: lines,
			Fix:      "clients that open every stream over one connection (pick_first, a ClusterIP Service) pin them to one pod: round_robin over the headless Service; after a rollout or a scale-out streams move only as they end: the servers' STREAM_MAX_AGE and MAX_CONNECTION_AGE bound how long that takes (docs/streams.md)"})
	}
}
