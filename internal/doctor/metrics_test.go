package doctor

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/identity"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/loopfleet"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/promapi"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serverkit"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/serving"
	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// The metrics checks run through the whole diagnosis: the fixture's real servers and fake
// clientset, and a fake Prometheus that answers /api/v1/query with canned vectors for the
// queries the doctor must send, and fails the test on any other.

// The queries, written out here rather than with the doctor's query functions, so that a
// change to what the doctor asks shows in a test. The services and window are the alert's.
func wantQueries() (up, calls, streams string) { return wantQueriesOver(KitErrorRate().Window) }

// wantQueriesOver are the doctor's queries with -prometheus-window window.
func wantQueriesOver(window time.Duration) (up, calls, streams string) {
	r := KitErrorRate()
	svc, w := strconv.Quote(r.Services), model.Duration(window).String()
	up = `up{namespace="kit"}`
	calls = `sum by (pod, grpc_service, grpc_code) (rate(grpc_server_handled_total{namespace="kit", grpc_service=~` + svc + `}[` + w + `]))`
	sel := `{namespace="kit", grpc_service=~` + svc + `, grpc_type!="unary"}`
	streams = `sum by (pod) (grpc_server_started_total` + sel + `) - sum by (pod) (grpc_server_handled_total` + sel + `)`
	return up, calls, streams
}

// promPod is one pod as the fake Prometheus reports it.
type promPod struct {
	name     string
	calls    map[string]float64 // grpc_code -> calls/s of helloworld.Hello
	streams  float64
	down     bool // its target is up 0
	noTarget bool // no up series, no metrics
}

func calls(okPerSec float64) map[string]float64 { return map[string]float64{"OK": okPerSec} }

type fakeProm struct {
	t       *testing.T
	srv     *httptest.Server
	answers map[string]model.Vector
	mu      sync.Mutex
	asked   []string
}

// newFakeProm serves the doctor's three queries for pods in namespace kit.
func newFakeProm(t *testing.T, pods ...promPod) *fakeProm {
	t.Helper()
	return newFakePromOver(t, KitErrorRate().Window, pods...)
}

// newFakePromOver serves the queries of a doctor run with -prometheus-window window.
func newFakePromOver(t *testing.T, window time.Duration, pods ...promPod) *fakeProm {
	t.Helper()
	up, callsQ, streamsQ := wantQueriesOver(window)
	p := &fakeProm{t: t, answers: map[string]model.Vector{up: {}, callsQ: {}, streamsQ: {}}}
	now := model.Now()
	sample := func(v float64, kv ...string) *model.Sample {
		m := model.Metric{}
		for i := 0; i < len(kv); i += 2 {
			m[model.LabelName(kv[i])] = model.LabelValue(kv[i+1])
		}
		return &model.Sample{Metric: m, Value: model.SampleValue(v), Timestamp: now}
	}
	for _, pp := range pods {
		if pp.noTarget {
			continue
		}
		upV := 1.0
		if pp.down {
			upV = 0
		}
		p.answers[up] = append(p.answers[up], sample(upV, "__name__", "up", "namespace", ns, "pod", pp.name,
			"container", "hello", "endpoint", "http", "job", ns+"/grpc-kit", "instance", pp.name+":8080"))
		if pp.down {
			continue
		}
		// Every code at zero, as the servers create their series: the doctor must not
		// count zeros as calls.
		for _, c := range []string{"OK", "InvalidArgument", "Internal", "Unavailable"} {
			p.answers[callsQ] = append(p.answers[callsQ], sample(pp.calls[c], "pod", pp.name, "grpc_service", "helloworld.Hello", "grpc_code", c))
		}
		for c, v := range pp.calls {
			if c != "OK" && c != "InvalidArgument" && c != "Internal" && c != "Unavailable" {
				p.answers[callsQ] = append(p.answers[callsQ], sample(v, "pod", pp.name, "grpc_service", "helloworld.Hello", "grpc_code", c))
			}
		}
		p.answers[streamsQ] = append(p.answers[streamsQ], sample(pp.streams, "pod", pp.name))
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

// queries are the queries asked so far, in order.
func (p *fakeProm) queries() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.asked)
}

func (p *fakeProm) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/query" {
		p.t.Errorf("fake Prometheus: request to %s, want /api/v1/query", r.URL.Path)
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		p.t.Errorf("fake Prometheus: %v", err)
	}
	q := r.Form.Get("query")
	p.mu.Lock()
	p.asked = append(p.asked, q)
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	v, ok := p.answers[q]
	if !ok {
		p.t.Errorf("fake Prometheus: unexpected query %q", q)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"status":"error","errorType":"bad_data","error":"the fake knows no such query"}`)
		return
	}
	if v == nil {
		v = model.Vector{}
	}
	if err := json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": "vector", "result": v}}); err != nil {
		p.t.Errorf("fake Prometheus: %v", err)
	}
}

// deployment makes pods the pods of Deployment name (through ReplicaSet name-abc) and
// returns the two objects.
func deployment(name string, pods ...*corev1.Pod) []runtime.Object {
	replicas := int32(len(pods))
	rs := name + "-abc"
	for _, p := range pods {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs, Controller: ptrTo(true)}}
	}
	return []runtime.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: helloLabels}}},
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: rs, Namespace: ns,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: name, Controller: ptrTo(true)}}},
			Spec: appsv1.ReplicaSetSpec{Replicas: &replicas}},
	}
}

// promDiagnose diagnoses the fixture's headless Service with -prometheus addr, the
// fixture's pods in Deployment hello unless objs put them elsewhere.
func promDiagnose(t *testing.T, f *fixture, addr string, objs ...runtime.Object) Report {
	t.Helper()
	return promDiagnoseCfg(t, f, Config{Prometheus: addr}, objs...)
}

// promDiagnoseCfg is promDiagnose with more of the doctor's flags than -prometheus.
func promDiagnoseCfg(t *testing.T, f *fixture, cfg Config, objs ...runtime.Object) Report {
	t.Helper()
	addr := cfg.Prometheus
	svc := headlessService("hello-grpc-headless")
	f.records[fqdn(svc.Name)] = f.readyIPs()
	if len(objs) == 0 {
		objs = deployment("hello", f.pods...)
	}
	// The kit's budget: the pods now have a Deployment, and the pdb check wants one.
	objs = append(objs, kitPDB(int32(len(f.pods)), int32(len(f.pods))))
	d := f.doctor(svc.Name, cfg, append(objs, svc, slice(svc.Name, f.pods...))...)
	var err error
	if d.Prometheus, err = promapi.New(addr); err != nil {
		t.Fatal(err)
	}
	return diagnose(t, d)
}

func evidence(f *Finding) string { return strings.Join(f.Evidence, "\n") }

func TestMetricsBalanced(t *testing.T) {
	f := newFixture(t, 3, false)
	p := newFakeProm(t, promPod{name: "hello-1", calls: calls(10)}, promPod{name: "hello-2", calls: calls(11)}, promPod{name: "hello-3", calls: calls(9)})
	rep := promDiagnose(t, f, p.srv.URL)
	noErrors(t, rep)
	if rep.Warnings != 0 {
		t.Errorf("balanced calls: want no warning, got:\n%s", dump(rep))
	}
	for _, c := range []string{CheckPrometheus, CheckScrape, CheckTraffic, CheckErrorRate} {
		if w := worst(rep, c); w == nil || w.Severity != OK {
			t.Errorf("check %s: want ok, got %+v", c, w)
		}
	}
	only(t, rep, CheckTraffic, OK, "Deployment hello: 30 calls/s over 5m")
	if w := worst(rep, CheckStreams); w != nil {
		t.Errorf("no open stream: want no streams finding, got %+v", w)
	}
	up, callsQ, streamsQ := wantQueries()
	if asked := p.queries(); !slices.Equal(asked, []string{up, callsQ, streamsQ}) {
		t.Errorf("queries asked:\n%s", strings.Join(asked, "\n"))
	}
	if rep.Subject.Prometheus != p.srv.URL || !strings.Contains(dump(rep), "metrics from "+p.srv.URL) {
		t.Errorf("the report should name the Prometheus it asked:\n%s", dump(rep))
	}
	// The numbers behind the findings, for -json readers (the e2e suite).
	m := rep.Metrics
	if m == nil || len(m.Pods) != 3 || m.Window != "5m" {
		t.Fatalf("metrics: %+v", m)
	}
	for _, pm := range m.Pods {
		if pm.Workload != "Deployment hello" || pm.Up != 1 || !pm.HasCalls || pm.Share == nil || *pm.Share < 0.29 || *pm.Share > 0.37 {
			t.Errorf("pod metrics: %+v", pm)
		}
	}
}

// -prometheus-window: the rates over the window of the user's rule, and the pods judged
// once Ready for that long.
func TestMetricsWindow(t *testing.T) {
	f := newFixture(t, 3, false)
	p := newFakePromOver(t, 90*time.Second, promPod{name: "hello-1", calls: calls(30)}, promPod{name: "hello-2"}, promPod{name: "hello-3"})
	rep := promDiagnoseCfg(t, f, Config{Prometheus: p.srv.URL, PrometheusWindow: 90 * time.Second})
	onlyError(t, rep, CheckTraffic, "2 of 3 Ready pods get no calls")
	if asked := p.queries(); len(asked) < 2 || !strings.Contains(asked[1], "[1m30s])") {
		t.Errorf("queries asked:\n%s", strings.Join(asked, "\n"))
	}
	if rep.Metrics == nil || rep.Metrics.Window != "1m30s" {
		t.Errorf("metrics: %+v", rep.Metrics)
	}
}

// The first symptom of pick_first, or of a client that never re-resolves: one pod busy,
// the others idle.
func TestMetricsPickFirstSkew(t *testing.T) {
	f := newFixture(t, 3, false)
	p := newFakeProm(t, promPod{name: "hello-1", calls: calls(30)}, promPod{name: "hello-2"}, promPod{name: "hello-3"})
	rep := promDiagnose(t, f, p.srv.URL)
	e := onlyError(t, rep, CheckTraffic, "2 of 3 Ready pods get no calls (hello-2, hello-3), the others take them all (hello-1 100%)")
	if ev := evidence(&e); !strings.Contains(ev, "hello-2: 0 calls/s, 0% (even share 33%)") || !strings.Contains(e.Fix, "round_robin") {
		t.Errorf("evidence and fix:\n%s", dump(rep))
	}
}

func TestMetricsSkewIsAWarning(t *testing.T) {
	f := newFixture(t, 3, false)
	p := newFakeProm(t, promPod{name: "hello-1", calls: calls(20)}, promPod{name: "hello-2", calls: calls(20)}, promPod{name: "hello-3", calls: calls(5)})
	rep := promDiagnose(t, f, p.srv.URL)
	noErrors(t, rep)
	w := only(t, rep, CheckTraffic, Warning, "hello-3 11% get under half an even share (33% each with 3 pods)")
	if !strings.Contains(w.Fix, "weighted_round_robin") {
		t.Errorf("the fix should name the balancers that skew on purpose: %s", w.Fix)
	}
}

// A canary Deployment at a tenth of the calls is judged on its own, not as a starved pod
// of hello.
func TestMetricsCanaryIsNotSkew(t *testing.T) {
	f := newFixture(t, 3, false)
	p := newFakeProm(t, promPod{name: "hello-1", calls: calls(9)}, promPod{name: "hello-2", calls: calls(9)}, promPod{name: "hello-3", calls: calls(2)})
	objs := append(deployment("hello", f.pods[0], f.pods[1]), deployment("hello-v2", f.pods[2])...)
	rep := promDiagnose(t, f, p.srv.URL, objs...)
	noErrors(t, rep)
	if rep.Warnings != 0 {
		t.Errorf("a canary at 10%%: want no warning, got:\n%s", dump(rep))
	}
	w := only(t, rep, CheckTraffic, OK, "Deployment hello: 18 calls/s over 5m, 90% of the Service's")
	if !strings.Contains(w.Message, "Deployment hello-v2: 2 calls/s over 5m, 10% of the Service's (1 pod(s) judged)") {
		t.Errorf("the canary's share: %s", w.Message)
	}

	// The same 10% inside one Deployment is skew.
	rep = promDiagnose(t, f, p.srv.URL, deployment("hello", f.pods...)...)
	only(t, rep, CheckTraffic, Warning, "hello-3 10% get under half an even share")
}

func TestMetricsErrorRate(t *testing.T) {
	rule := KitErrorRate()
	f := newFixture(t, 3, false)
	pods := func(code string, share float64) []promPod {
		var out []promPod
		for _, name := range []string{"hello-1", "hello-2", "hello-3"} {
			out = append(out, promPod{name: name, calls: map[string]float64{"OK": 10 * (1 - share), code: 10 * share}})
		}
		return out
	}
	// Above the alert's threshold.
	rep := promDiagnose(t, f, newFakeProm(t, pods("Internal", 2*rule.Ratio)...).srv.URL)
	e := onlyError(t, rep, CheckErrorRate, fmt.Sprintf("%.1f%% of helloworld.Hello calls on the Service's pods end in a server error", 200*rule.Ratio))
	if !strings.Contains(e.Message, rule.Alert) || !strings.Contains(evidence(&e), "Internal 3/s of 30 calls/s") || !strings.Contains(evidence(&e), "hello-1 10% of 10/s") {
		t.Errorf("message and evidence:\n%s", dump(rep))
	}
	// A code the alert counts that the fake does not start at zero.
	rep = promDiagnose(t, f, newFakeProm(t, pods("DeadlineExceeded", 2*rule.Ratio)...).srv.URL)
	onlyError(t, rep, CheckErrorRate, "end in a server error")

	// Under it.
	rep = promDiagnose(t, f, newFakeProm(t, pods("Unavailable", rule.Ratio/2)...).srv.URL)
	noErrors(t, rep)
	only(t, rep, CheckErrorRate, OK, fmt.Sprintf("%.2g%% of 30 calls/s", 50*rule.Ratio))

	// INVALID_ARGUMENT is the caller's doing: not counted, however many.
	rep = promDiagnose(t, f, newFakeProm(t, pods("InvalidArgument", 0.5)...).srv.URL)
	noErrors(t, rep)
	w := only(t, rep, CheckErrorRate, OK, "0% of 30 calls/s")
	if !strings.Contains(evidence(w), "not counted, the caller's doing: InvalidArgument 15/s") {
		t.Errorf("the evidence should show what was left out:\n%s", dump(rep))
	}
}

func TestMetricsPodWithoutTarget(t *testing.T) {
	f := newFixture(t, 3, false)
	p := newFakeProm(t, promPod{name: "hello-1", calls: calls(10)}, promPod{name: "hello-2", calls: calls(10)}, promPod{name: "hello-3", noTarget: true})
	rep := promDiagnose(t, f, p.srv.URL)
	noErrors(t, rep)
	w := only(t, rep, CheckScrape, Warning, "no scrape target for 1 of 3 Running pod(s) of the Service (hello-3)")
	if ev := evidence(w); !strings.Contains(ev, "hello-3: labels app.kubernetes.io/component: server") || !strings.Contains(ev, "containerPorts grpc=") ||
		!strings.Contains(ev, "by jobs kit/grpc-kit") || !strings.Contains(w.Fix, "podmonitor.yaml") {
		t.Errorf("evidence and fix:\n%s", dump(rep))
	}
	// The traffic is judged on the pods Prometheus sees.
	w = only(t, rep, CheckTraffic, OK, "Deployment hello: 20 calls/s")
	if !strings.Contains(evidence(w), "not judged, no call metrics in Prometheus (see scrape): hello-3") {
		t.Errorf("traffic evidence should name the pod left out: %v", w.Evidence)
	}

	// A target whose scrapes fail.
	p = newFakeProm(t, promPod{name: "hello-1", calls: calls(10)}, promPod{name: "hello-2", calls: calls(10)}, promPod{name: "hello-3", down: true})
	rep = promDiagnose(t, f, p.srv.URL)
	w = only(t, rep, CheckScrape, Warning, "every scrape fails (up 0)")
	if !strings.Contains(evidence(w), "hello-3 (1 target(s), none up)") {
		t.Errorf("evidence: %v", w.Evidence)
	}
}

func TestMetricsNamespaceNotScraped(t *testing.T) {
	f := newFixture(t, 3, false)
	p := newFakeProm(t, promPod{name: "hello-1", noTarget: true}, promPod{name: "hello-2", noTarget: true}, promPod{name: "hello-3", noTarget: true})
	p.answers[targetsQuery] = model.Vector{{Metric: model.Metric{"namespace": "monitoring"}, Value: 4, Timestamp: model.Now()}}
	rep := promDiagnose(t, f, p.srv.URL)
	noErrors(t, rep)
	w := only(t, rep, CheckScrape, Warning, "no scrape target for 3 of 3")
	if ev := evidence(w); !strings.Contains(ev, "Prometheus scrapes nothing in kit") || !strings.Contains(ev, "namespaces with targets: monitoring (4)") {
		t.Errorf("evidence should say where Prometheus does scrape:\n%s", dump(rep))
	}
	only(t, rep, CheckTraffic, Info, "not checked")
}

// Prometheus down: a finding that names the URL and what to check, and the rest of the
// diagnosis as without -prometheus.
func TestMetricsPrometheusDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + l.Addr().String()
	l.Close() // nothing listens there now: connection refused
	f := newFixture(t, 3, false)
	rep := promDiagnose(t, f, addr)
	noErrors(t, rep)
	w := only(t, rep, CheckPrometheus, Warning, "Prometheus at "+addr+" does not answer")
	if !strings.Contains(evidence(w), "connection refused") || !strings.Contains(w.Fix, "port-forward") {
		t.Errorf("evidence and fix:\n%s", dump(rep))
	}
	for _, c := range []string{CheckScrape, CheckTraffic, CheckErrorRate, CheckStreams} {
		if w := worst(rep, c); w != nil {
			t.Errorf("nothing to say about %s without Prometheus: %+v", c, w)
		}
	}
	if w := worst(rep, CheckHealth); w == nil || w.Severity != OK {
		t.Errorf("the other checks stand: %+v", w)
	}
}

// A URL that answers, but not as the Prometheus API (a Grafana, a missing path prefix).
func TestMetricsNotPrometheus(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	f := newFixture(t, 1, false)
	rep := promDiagnose(t, f, srv.URL)
	noErrors(t, rep)
	w := only(t, rep, CheckPrometheus, Warning, "answered, but not as the Prometheus HTTP API")
	if !strings.Contains(w.Fix, srv.URL+"/api/v1/query") {
		t.Errorf("fix: %s", w.Fix)
	}
}

func TestMetricsStreamsOnOnePod(t *testing.T) {
	f := newFixture(t, 3, false)
	p := newFakeProm(t, promPod{name: "hello-1", calls: calls(10), streams: 30}, promPod{name: "hello-2", calls: calls(10)}, promPod{name: "hello-3", calls: calls(10)})
	rep := promDiagnose(t, f, p.srv.URL)
	noErrors(t, rep)
	w := only(t, rep, CheckStreams, Warning, "Deployment hello: 30 open streams, 2 of 3 pods hold under half an even share (hello-2, hello-3)")
	if !strings.Contains(w.Fix, "STREAM_MAX_AGE") {
		t.Errorf("fix: %s", w.Fix)
	}

	p = newFakeProm(t, promPod{name: "hello-1", calls: calls(10), streams: 10}, promPod{name: "hello-2", calls: calls(10), streams: 9}, promPod{name: "hello-3", calls: calls(10), streams: 11})
	only(t, promDiagnose(t, f, p.srv.URL), CheckStreams, OK, "30 open streams over 3 pods")
}

// A pod Ready for less than the window has a rate diluted by the time before clients
// found it: not judged yet.
func TestMetricsYoungPodNotJudged(t *testing.T) {
	f := newFixture(t, 3, false)
	f.pods[2].Status.Conditions[0].LastTransitionTime = metav1.NewTime(time.Now().Add(-time.Minute))
	p := newFakeProm(t, promPod{name: "hello-1", calls: calls(15)}, promPod{name: "hello-2", calls: calls(15)}, promPod{name: "hello-3"})
	rep := promDiagnose(t, f, p.srv.URL)
	noErrors(t, rep)
	w := only(t, rep, CheckTraffic, OK, "Deployment hello: 30 calls/s")
	if !strings.Contains(evidence(w), "not judged, Ready for less than the 5m window: hello-3 (Ready for 1m") {
		t.Errorf("evidence: %v", w.Evidence)
	}
}

// Too few calls to tell skew from chance: info.
func TestMetricsTooFewCalls(t *testing.T) {
	f := newFixture(t, 3, false)
	p := newFakeProm(t, promPod{name: "hello-1", calls: calls(0.1)}, promPod{name: "hello-2"}, promPod{name: "hello-3"})
	rep := promDiagnose(t, f, p.srv.URL)
	noErrors(t, rep)
	only(t, rep, CheckTraffic, Info, "too few calls to judge the spread over 3 pods (at least 0.5 calls/s")
}

// One fault, one error: round_robin over a ClusterIP Service is the balancing check's
// error, and the idle pods the metrics show are its consequence.
func TestMetricsSkewExplainedByBalancing(t *testing.T) {
	f := newFixture(t, 3, false)
	p := newFakeProm(t, promPod{name: "hello-1", calls: calls(30)}, promPod{name: "hello-2"}, promPod{name: "hello-3"})
	svc := clusterIPService("hello-grpc")
	f.records[fqdn(svc.Name)] = []string{svc.Spec.ClusterIP}
	d := f.doctor(svc.Name, Config{Prometheus: p.srv.URL}, append(deployment("hello", f.pods...), svc, slice(svc.Name, f.pods...))...)
	var err error
	if d.Prometheus, err = promapi.New(p.srv.URL); err != nil {
		t.Fatal(err)
	}
	rep := diagnose(t, d)
	onlyError(t, rep, CheckBalancing, "round_robin over a ClusterIP Service")
	only(t, rep, CheckTraffic, Info, "what the balancing finding says the client does")
}

// The names and labels the doctor queries are what the kit's servers export: a real
// server's /metrics, with a call made and a stream open.
func TestQueriedMetricsAreExported(t *testing.T) {
	cfg := serverkit.Config{ListenHost: "127.0.0.1", Port: 0, HTTPPort: 0, ShutdownTimeout: time.Second,
		KeepaliveTime: 30 * time.Second, KeepaliveTimeout: 10 * time.Second, KeepaliveMinTime: 5 * time.Second,
		MaxRecvMsgSize: 4096, MaxConcurrentStreams: 100, LogLevel: "error", LogFormat: "text"}
	srv, err := loopfleet.Serve(cfg, nil, serving.Server(catalog.Hello(), identity.Identity{Pod: "hello-1"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	ctx := t.Context() // done before the cleanups: the open stream ends before the drain

	cc, err := grpc.NewClient(srv.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	hello := pb.NewHelloClient(cc)
	if _, err := hello.SayHello(ctx, &pb.SayHelloRequest{Name: "doctor"}); err != nil {
		t.Fatal(err)
	}
	stream, err := hello.StreamHellos(ctx, &pb.StreamHellosRequest{Name: "doctor"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}

	resp, err := http.Get("http://" + srv.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	rule := KitErrorRate()
	kit := regexp.MustCompile("^(?:" + rule.Services + ")$")
	// sums the kit's series of a metric whose labels match keep.
	sum := func(name string, keep func(map[string]string) bool) float64 {
		fam := fams[name]
		if fam == nil {
			t.Fatalf("/metrics has no %s", name)
		}
		total := 0.0
		for _, m := range fam.Metric {
			l := map[string]string{}
			for _, lp := range m.Label {
				l[lp.GetName()] = lp.GetValue()
			}
			for _, want := range []string{"grpc_service", "grpc_type"} {
				if _, ok := l[want]; !ok {
					t.Fatalf("%s has no label %s: %v", name, want, l)
				}
			}
			if kit.MatchString(l["grpc_service"]) && keep(l) {
				total += m.GetCounter().GetValue()
			}
		}
		return total
	}
	streaming := func(l map[string]string) bool { return l["grpc_type"] != "unary" }
	if open := sum(metricStarted, streaming) - sum(metricHandled, streaming); open != 1 {
		t.Errorf("started minus handled over the streaming methods: %v, want the 1 open stream", open)
	}
	if ok := sum(metricHandled, func(l map[string]string) bool { return l["grpc_code"] == "OK" && l["grpc_type"] == "unary" }); ok != 1 {
		t.Errorf("handled unary OK calls of the kit's services: %v, want 1", ok)
	}
	// Every code the alert counts is a grpc_code value the server writes.
	for _, c := range rule.CodeNames() {
		found := false
		sum(metricHandled, func(l map[string]string) bool {
			found = found || l["grpc_code"] == c
			return false
		})
		if !found {
			t.Errorf("no %s series with grpc_code=%q", metricHandled, c)
		}
	}
}
