//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	h "github.com/grpc-k8s-kit/grpc-k8s-kit/e2e/harness"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

func init() {
	register(h.Scenario{Name: "streams: spread", Order: 50, Needs: h.FeatureResilience, Run: streamSpread})
	register(h.Scenario{Name: "streams: rebalance", Order: 90, Needs: h.FeatureResilience, Run: streamsRebalance})
	// Through a proxy, a long stream runs beside every scenario (they act on hello, it on
	// goodbye) and is checked once they are over.
	register(h.Scenario{Name: "streams: long stream", Needs: h.FeatureProxyTimeouts, Beside: longStreams})
}

// Long-lived streams in every topology: how they spread, survive a rolling
// restart and a SIGKILL, rebalance after a scale-out (with STREAM_MAX_AGE, and never
// without it), and, through the proxies, outlive the proxy's timeouts.
const (
	// streamCount bidi streams (ChatHello), each sending and receiving a message every
	// 100 ms: 300 messages/s in each direction.
	streamCount = 30
	// streamMaxAge is STREAM_MAX_AGE in the rebalancing scenario: short, so the scenario
	// is short; the kit's default is 5 minutes.
	streamMaxAge = 15 * time.Second
	// streamConnAge is MAX_CONNECTION_AGE in that scenario (see streamsRebalance).
	streamConnAge = 5 * time.Second
	// streamMaxGap bounds the longest time a stream (across its reopens) went without a
	// message during a rolling restart: the drain ended it, the client backed off (100 ms,
	// jittered) and reopened it on a live pod.
	streamMaxGap = 5 * time.Second
	// killMaxGap bounds it when a server is SIGKILLed: through a proxy a reopened stream
	// can meet the dead pod again until the proxy drops it (the kubelet notices the exit,
	// the EndpointSlice changes: about 6 s for unary calls on a busy node), and the
	// client's backoff doubles with each reopen that delivers nothing.
	killMaxGap = 10 * time.Second
	// longStream is how long the long-stream check keeps its bidi stream open: more than
	// twice Traefik's default 60 s readTimeout, so the default cuts it twice.
	longStream = 160 * time.Second
)

// streamArgs are the greeter flags of a stream load: streamCount bidi streams of the
// topology's hello, progress every 500 ms (the suite counts messages), the JSON report.
func streamArgs(extra ...string) []string {
	return append([]string{"-stream=bidi", "-streams=" + strconv.Itoa(streamCount), "-interval=100ms",
		"-json", "-progress=500ms"}, extra...)
}

// streamNote is a stream load in one line: streams opened and ended, why, the longest gap.
func streamNote(sum report.StreamSummary) string {
	note := fmt.Sprintf("%d messages, %d streams reopened, %d duplicated", sum.Messages, sum.Reconnects, sum.Duplicated)
	if g := sum.LongestGap; g != nil {
		note += fmt.Sprintf(", longest gap %.0f ms", g.Ms)
	}
	// Ends per status code (the report also splits them by message).
	byCode := map[string]int64{}
	var codes []string
	for _, x := range sum.Ends {
		c := x.Code.String()
		if _, ok := byCode[c]; !ok {
			codes = append(codes, c)
		}
		byCode[c] += x.Count
	}
	var ends []string
	for _, c := range codes {
		ends = append(ends, fmt.Sprintf("%s %d", c, byCode[c]))
	}
	if len(ends) > 0 {
		note += "; ends: " + strings.Join(ends, ", ")
	}
	return note
}

// checkStreamsSurvived: every stream came back after its pod went away (its longest gap,
// counted to the end of the run, is at most maxGap) and resumed where it stopped.
func checkStreamsSurvived(t *testing.T, what string, sum report.StreamSummary, maxGap time.Duration) {
	t.Helper()
	if sum.Lost != 0 || sum.Duplicated != 0 {
		t.Errorf("%s: %d messages lost, %d duplicated, want none", what, sum.Lost, sum.Duplicated)
	}
	if g := sum.LongestGap; g == nil || g.Ms > float64(maxGap.Milliseconds()) {
		t.Errorf("%s: longest gap %+v, want ≤ %s", what, g, maxGap)
	}
	if sum.Messages == 0 {
		t.Errorf("%s: no message", what)
	}
}

func streamGapSeconds(sum report.StreamSummary) time.Duration {
	if sum.LongestGap == nil {
		return 0
	}
	return time.Duration(sum.LongestGap.Ms * float64(time.Millisecond))
}

// streamSpread: 30 streams opened at once go to every pod. A headless client with
// round_robin and every connection up (the warm-up) opens them exactly 10/10/10; a proxy
// balances each stream as one request, so its share is close to even.
func streamSpread(t *testing.T, s *h.Suite, tp h.Topology) {
	sum := s.StartLoad(t, tp, "streams: spread", streamArgs("-duration=6s", "-quiet")...).StreamResult(t)
	pods := s.HelloPods(t, tp.Namespace)
	var counts []string
	for _, p := range pods {
		n := streamsOn(sum, p)
		counts = append(counts, strconv.FormatInt(n, 10))
		// Even is 10 per pod (9 where a canary route sends 10 % to v2, drawn at random).
		// Exactly 10 where round robin spreads them over the 3 v1 pods alone.
		low, high := int64(5), int64(15)
		if tp.Spread == h.SpreadExact && tp.Backends == 3 {
			low, high = streamCount/3, streamCount/3
		}
		if n < low || n > high {
			t.Errorf("%s: %d of %d streams opened on %s, want %d–%d", tp.Name, n, streamCount, p, low, high)
		}
	}
	if sum.Reconnects != 0 {
		t.Errorf("%s: %d streams ended in 6 s: %s", tp.Name, sum.Reconnects, streamNote(sum))
	}
	s.Streams.Add(tp.Name, "30 streams opened at once: streams per hello v1 pod", sum.Lost, 0, strings.Join(counts, " / "))
}

func streamsOn(sum report.StreamSummary, pod string) int64 {
	for _, b := range sum.Backends {
		if b.Pod == pod {
			return b.Streams
		}
	}
	return 0
}

// streamWindow is how long after a scale-out 3 → 5 the streams get to reach the new pods:
// a headless client learns them within a connection's age (streamConnAge; it re-resolves
// DNS when a connection closes, and only then), every stream then ends within 1.1 × its
// max age, and 20 s for the pods to start (a new pod's first unary call comes 11–27 s
// after the scale command on the node shared by three tests; docs/results/e2e.md). The
// negative control watches as long.
const streamWindow = (streamConnAge+streamMaxAge)*11/10 + 20*time.Second

// rebalanceEnv is what streamsRebalance needs of hello: STREAM_MAX_AGE=streamMaxAge, and
// MAX_CONNECTION_AGE=streamConnAge (but for the proxyless topology, whose clients istiod
// tells of new pods: its servers keep the overlay's 5 minutes, and only STREAM_MAX_AGE
// moves its streams), so a headless client knows the new pods within seconds; the kit's
// 6 m grace keeps every stream on its old connection until its own max age ends it. The
// rolling restart sets them.
func rebalanceEnv(tp h.Topology) []string {
	env := []string{"STREAM_MAX_AGE=" + streamMaxAge.String()}
	if tp.Discovery != h.DiscoveryXDS {
		env = append(env, "MAX_CONNECTION_AGE="+streamConnAge.String())
	}
	return env
}

// streamsRebalance: hello, with rebalanceEnv, scales 3 → 5 under streams: every stream
// ends within 1.1 × its max age and reopens wherever the balancer sends it now, so the new
// pods get their share. With -keep, RestoreAfter puts the overlay's settings back. The
// negative control is streamsStay, beside the scale-out without STREAM_MAX_AGE.
func streamsRebalance(t *testing.T, s *h.Suite, tp h.Topology) {
	label := fmt.Sprintf("scale out 3 → 5, STREAM_MAX_AGE=%s: every new pod got streams", streamMaxAge)
	release := s.Churning(t)
	s.Kube.Run(t, "-n", tp.Namespace, "scale", "deploy/hello", "--replicas=3") // whatever a failed step left
	s.WaitPodsReady(t, tp.Namespace, 3)
	release()
	have := map[string]bool{}
	for _, v := range s.Kube.Deployment(t, tp.Namespace, "hello").Spec.Template.Spec.Containers[0].Env {
		have[v.Name+"="+v.Value] = true
	}
	for _, want := range rebalanceEnv(tp) {
		if !have[want] {
			t.Fatalf("hello lacks %s, which the rolling restart sets (did it fail?)", want)
		}
	}

	before := s.HelloPods(t, tp.Namespace)
	l := s.StartLoad(t, tp, "streams: "+label, streamArgs()...)
	l.WaitCalls(t, 20*streamCount) // 2 s of messages: every stream is open
	release = s.Churning(t)
	scaled := time.Now()
	s.Progressf(tp.Name, "streams: scale to 5 (STREAM_MAX_AGE=%s)", streamMaxAge)
	s.Kube.Run(t, "-n", tp.Namespace, "scale", "deploy/hello", "--replicas=5")
	// Until both new pods got a stream, and every stream ended at least once since the
	// scale-out, so the share of reopened streams on the new pods says where they go now.
	newPods, got := watchNewPodStreams(t, s, tp, before, scaled, streamWindow, func(got map[string]time.Duration) bool {
		return len(got) == 2 && time.Since(scaled) >= streamMaxAge*11/10
	})
	release()
	l.StopNow()
	sum := l.StreamResult(t)
	var worst time.Duration
	for _, d := range got {
		worst = max(worst, d)
	}
	var onNew int64
	for _, b := range sum.Backends {
		if slices.Contains(newPods, b.Pod) {
			onNew += b.Streams
		}
	}
	note := fmt.Sprintf("%d of 2 new pods got streams within %s", len(got), streamWindow.Round(time.Second))
	if reopened := sum.Opened - streamCount; reopened > 0 {
		// Every stream opened before the scale-out, on the 3 old pods.
		note += fmt.Sprintf("; %d of the %d streams reopened went to them (%.0f %%; 2 of 5 pods: 40 %%)",
			onNew, reopened, 100*float64(onNew)/float64(reopened))
	}
	note += "; " + streamNote(sum)
	t.Logf("%s: %s", label, note)
	s.Streams.Add(tp.Name, label, sum.Lost, worst, note)
	if len(got) != 2 {
		t.Errorf("%s: %d of 2 new pods got a stream within %s", label, len(got), streamWindow)
	}
	if sum.Lost != 0 || sum.Duplicated != 0 {
		t.Errorf("%s: %d lost, %d duplicated messages", label, sum.Lost, sum.Duplicated)
	}

	release = s.Churning(t)
	defer release()
	s.Kube.Run(t, "-n", tp.Namespace, "scale", "deploy/hello", "--replicas=3")
	s.WaitPodsReady(t, tp.Namespace, 3)
}

// streamsStay is the negative control of streamsRebalance, beside a scale-out 3 → 5
// without STREAM_MAX_AGE (scaleOutIn; headless with a 5 s MAX_CONNECTION_AGE, so the
// client knows the new pods and sends them its unary calls): the streams l opened before
// the scale-out stay where they are, and no new pod gets one, until live (when both new
// pods had served calls; 0 if they did not) plus 1.1 × streamMaxAge: by then every stream
// would have ended and reopened at least once with both new pods live, had STREAM_MAX_AGE
// been set. At most streamsRebalance's window.
func streamsStay(t *testing.T, s *h.Suite, tp h.Topology, l *h.Load, before []string, scaled time.Time, live time.Duration) {
	label := "scale out 3 → 5, no STREAM_MAX_AGE (negative control): streams on new pods"
	window := streamWindow
	if live > 0 {
		window = min(window, live+streamMaxAge*11/10)
	}
	_, got := watchNewPodStreams(t, s, tp, before, scaled, window, func(map[string]time.Duration) bool { return false })
	l.StopNow()
	sum := l.StreamResult(t)
	note := fmt.Sprintf("%d of 2 new pods got streams within %s; %s", len(got), window.Round(time.Second), streamNote(sum))
	t.Logf("%s: %s", label, note)
	s.Streams.Add(tp.Name, label, sum.Lost, 0, note)
	if len(got) != 0 || sum.Reconnects != 0 {
		t.Errorf("%s: without STREAM_MAX_AGE no stream should move, but %d new pods got streams and %d streams ended", label, len(got), sum.Reconnects)
	}
}

// watchNewPodStreams samples, every 500 ms until window after scaled or until done, which
// hello pods not in before exist and when each first had a ChatHello stream (its
// grpc_server_started_total).
func watchNewPodStreams(t *testing.T, s *h.Suite, tp h.Topology, before []string, scaled time.Time, window time.Duration, done func(map[string]time.Duration) bool) ([]string, map[string]time.Duration) {
	t.Helper()
	var newPods []string
	got := map[string]time.Duration{}
	for time.Since(scaled) < window && !done(got) {
		time.Sleep(500 * time.Millisecond) // the sampling period of the measurement
		for _, p := range s.HelloPods(t, tp.Namespace) {
			if slices.Contains(before, p) {
				continue
			}
			if !slices.Contains(newPods, p) {
				newPods = append(newPods, p)
			}
			if _, ok := got[p]; ok {
				continue
			}
			if n, err := s.Counter(tp.Namespace, p, "grpc_server_started_total", "ChatHello"); err == nil && n > 0 {
				got[p] = time.Since(scaled)
			}
		}
	}
	return newPods, got
}

// longStreams starts, through a proxy, one bidi Goodbye stream for longStream on the kit's
// entry point and one on Traefik's "stock-timeouts" entry point (its defaults, reached by
// port-forward), while the topology's other scenarios run (they act on hello; goodbye's
// connections' 6 m grace lets a stream outlive them). It returns the check, to run once
// the streams are over.
func longStreams(t *testing.T, s *h.Suite, tp h.Topology) func(t *testing.T) {
	args := func(base []string) []string {
		return append(base, "-service=goodbye", "-stream=bidi", "-streams=1", "-interval=1s",
			"-duration="+longStream.String(), "-json", "-progress=10s")
	}
	kit := s.HostLoad(t, tp.Name+": long stream, the kit's entry point", args(proxyArgs(s, tp))...)
	stockAddr := s.Kube.PortForward(t, traefikNS, "deploy/traefik", 8001)
	stock := s.HostLoad(t, tp.Name+": long stream, Traefik's defaults", args(s.HostArgs(tp.Entry.Via(stockAddr, false)))...)
	started := time.Now()
	return func(t *testing.T) {
		if left := longStream - time.Since(started); left > 0 {
			s.Progressf(tp.Name, "long streams: %s left", left.Round(time.Second))
		}
		ks, ss := kit.StreamResult(t), stock.StreamResult(t)
		label := fmt.Sprintf("one bidi stream for %s, the kit's readTimeout (10m)", longStream)
		s.Streams.Add(tp.Name, label, ks.Lost, 0, streamNote(ks))
		if ks.Reconnects != 0 || ks.Messages < int64(longStream/time.Second)*9/10 {
			t.Errorf("%s: the stream ended %d times, %d messages: %s", label, ks.Reconnects, ks.Messages, streamNote(ks))
		}
		// The negative control: Traefik's default readTimeout cuts the stream 60 s after it
		// opened, so in 160 s it ends twice (at 60 s, and 60 s after it reopened).
		label = fmt.Sprintf("one bidi stream for %s, Traefik's default readTimeout (negative control)", longStream)
		s.Streams.Add(tp.Name, label, ss.Lost, 0, streamNote(ss))
		t.Logf("%s: %s", label, streamNote(ss))
		if ss.Reconnects != 2 {
			t.Errorf("%s: the stream ended %d times, want 2 (cut at 60 s, twice): %s", label, ss.Reconnects, streamNote(ss))
		}
	}
}
