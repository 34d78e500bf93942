package loopback

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/hint"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/timeline"
)

// One of three servers takes calls and does not answer within the deadline, as a pod on
// a lost node does (its connection stays up, nothing comes back): the greeter's report
// counts its calls as DEADLINE_EXCEEDED while the other two answer, and gives them the
// node-loss hint. A loopback server cannot lose its node; a long added latency looks the
// same from the client, which is why the hint names the slow pod too.
func TestTimeoutsWhileOthersAnswerGetTheNodeLossHint(t *testing.T) {
	c, bs := startGroup(t, "nodeloss.kit.test", "pod", []string{"127.0.0.24", "127.0.0.25", "127.0.0.26"}, nil)
	bs[2].setSlow(t, "10s")
	out, err := runGreeter(t, "-target", c.target, "-n", "30", "-c", "3", "-timeout", "300ms", "-quiet", "-json", "-timeline", "-")
	if err != nil {
		t.Fatalf("greeter: %v\n%s", err, out)
	}
	var s report.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("-json output: %v\n%s", err, out)
	}
	if len(s.Backends) != 2 || len(s.Errors) != 1 || s.Errors[0].Code != codes.DeadlineExceeded {
		t.Fatalf("want 2 backends answering and DEADLINE_EXCEEDED only, got %+v", s)
	}
	// The timeline counts the timed-out calls as the report does (a call that ends at its
	// deadline is a failure, not a call cut short by the user).
	if s.Timeline == nil || s.Timeline.Calls() != int(s.Calls) || len(s.Timeline.FailedByCode()) != 1 ||
		s.Timeline.FailedByCode()[0] != (timeline.CodeCount{Code: codes.DeadlineExceeded, Calls: int(s.Errors[0].Count)}) {
		t.Errorf("timeline: %d calls, failed %+v; report: %d calls, %+v", s.Timeline.Calls(), s.Timeline.FailedByCode(), s.Calls, s.Errors)
	}
	if s.Errors[0].Hint != hint.NodeLoss || !strings.Contains(s.Errors[0].Hint, "-keepalive=10s") {
		t.Errorf("want the node-loss hint, got %q", s.Errors[0].Hint)
	}
}

// frozenNode is three Hello servers behind one name, the third through a freezer: a
// headless Service whose pod-3 is on a node about to freeze.
func frozenNode(t *testing.T, name string, ips [4]string) (target string, fr *freezer) {
	t.Helper()
	f := newFleet(t, ips[:]...)
	for i, ip := range ips[:3] {
		startBackend(t, f, ip, "pod-"+itoa(i+1), nil)
	}
	port := itoa(f.Port())
	fr = startFreezer(t, net.JoinHostPort(ips[3], port), net.JoinHostPort(ips[2], port))
	// pod-3 answers from the freezer's address: that is its address for the client.
	return newCluster(t, f, name, ips[0], ips[1], ips[3]).target, fr
}

// freezeRun runs the greeter on target with args (and -json, -quiet) and freezes fr
// after a while: long enough for the warm-up and for pod-3 to answer counted calls, so
// that the client knows its address. It returns the report, when fr froze, and when the
// greeter returned.
func freezeRun(t *testing.T, target string, fr *freezer, after time.Duration, args ...string) (s report.Summary, frozen, returned time.Time) {
	t.Helper()
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := runGreeterArgs(append([]string{"-target", target, "-warmup", "5s", "-expect-backends", "3", "-json", "-quiet"}, args...))
		done <- result{out, err}
	}()
	time.Sleep(after)
	frozen = fr.freeze()
	r := <-done
	returned = time.Now()
	if err := json.Unmarshal([]byte(r.out), &s); err != nil {
		t.Fatalf("greeter: %v; -json output: %v\n%s", r.err, err, r.out)
	}
	return s, frozen, returned
}

// pod3 is the frozen pod's line of s: it must have answered before the freeze (else the
// client never learned its address and nothing can be attributed to it).
func pod3(t *testing.T, s report.Summary, frozen time.Time) report.BackendCount {
	t.Helper()
	for _, b := range s.Backends {
		if b.Pod == "pod-3" {
			if b.FirstUnix == 0 || unixTime(b.FirstUnix).After(frozen) || b.LastSentUnix == 0 {
				t.Fatalf("pod-3 first answered at %v, the freeze was at %v: freeze later", unixTime(b.FirstUnix), frozen)
			}
			return b
		}
	}
	t.Fatalf("pod-3 never answered: %+v", s.Backends)
	return report.BackendCount{}
}

func unixTime(s float64) time.Time { return time.Unix(0, int64(s*1e9)) }

// The load of the frozen-node tests: 150 calls/s over 3 pods, 50/s each, so every pod
// finishes 25 calls per outlier-detection interval of 0.5s, over -outlier-request-volume
// (10); 32 callers, since each call to the frozen pod holds its caller for the whole
// deadline (300ms: 15 callers at once for pod-3).
var frozenLoad = []string{"-rate", "150", "-c", "32", "-timeout", "300ms"}

// A node freezes under pod-3 (its connection stays open, nothing comes back) while the
// greeter runs with its defaults. Outlier detection ejects pod-3, and no call is sent to
// it later than the mechanism's bound after the freeze, while the run goes on for
// seconds: the calls sent to it from the freeze on fail at their deadline D (300ms), the
// sweep interval I (0.5s) in which they start to fail may hold too few of them, the next
// holds nothing else, and the sweep at its end ejects pod-3: D + 2I = 1.3s. The margin,
// 1s, is for timers and goroutines running late on a loaded 2-core machine (the sweep,
// the picker update, a call whose recorded start came before its pick). Keepalive
// (10s + 2s) plays no part within the run.
func TestFrozenNodeEjectedByOutlierDetection(t *testing.T) {
	t.Parallel()
	target, fr := frozenNode(t, "frozen-od.kit.test", [4]string{"127.0.0.14", "127.0.0.15", "127.0.0.16", "127.0.0.17"})
	s, frozen, returned := freezeRun(t, target, fr, 2*time.Second, append(frozenLoad, "-duration", "7s")...)
	p := pod3(t, s, frozen)
	const deadline, interval, margin = 300 * time.Millisecond, 500 * time.Millisecond, time.Second
	bound := frozen.Add(deadline + 2*interval + margin)
	last := unixTime(p.LastSentUnix)
	t.Logf("frozen at %s; last call sent to pod-3 %+.3fs after (bound %+.3fs); the greeter returned %+.3fs after; pod-3's failed calls: %v; %d of %d calls failed",
		frozen.Format("15:04:05.000"), last.Sub(frozen).Seconds(), bound.Sub(frozen).Seconds(), returned.Sub(frozen).Seconds(), p.FailedByCode, s.Failed, s.Calls)
	if p.FailedByCode[codes.DeadlineExceeded] == 0 {
		t.Errorf("no DEADLINE_EXCEEDED attributed to pod-3: %+v; errors %+v", p, s.Errors)
	}
	if last.After(bound) {
		t.Errorf("a call went to the frozen pod-3 %.3fs after the freeze, bound %.3fs", last.Sub(frozen).Seconds(), bound.Sub(frozen).Seconds())
	}
	if returned.Sub(bound) < 2*time.Second {
		t.Fatalf("the run ended %.3fs after the bound: too soon to show anything", returned.Sub(bound).Seconds())
	}
}

// The negative control: with keepalive and outlier detection off, nothing takes the
// frozen pod-3 out, and calls keep going to it until the end of the run. The last one
// starts at most the deadline (the greeter waits for calls in flight) plus a margin of
// 1s (pod-3 gets a call every 20ms at this rate) before the greeter returns.
func TestFrozenNodeKeepsCallsWithoutKeepaliveOrOutlierDetection(t *testing.T) {
	t.Parallel()
	target, fr := frozenNode(t, "frozen-none.kit.test", [4]string{"127.0.0.18", "127.0.0.19", "127.0.0.20", "127.0.0.27"})
	s, frozen, returned := freezeRun(t, target, fr, 2*time.Second, append(frozenLoad, "-duration", "5s", "-keepalive=0", "-outlier-detection=false")...)
	p := pod3(t, s, frozen)
	last := unixTime(p.LastSentUnix)
	t.Logf("frozen at %s; last call sent to pod-3 %+.3fs after; the greeter returned %+.3fs after; pod-3's failed calls: %v",
		frozen.Format("15:04:05.000"), last.Sub(frozen).Seconds(), returned.Sub(frozen).Seconds(), p.FailedByCode)
	if last.Before(returned.Add(-300*time.Millisecond - time.Second)) {
		t.Errorf("the last call to pod-3 was %.3fs before the greeter returned: something took it out", returned.Sub(last).Seconds())
	}
	var e *report.ErrorCount
	for i := range s.Errors {
		if s.Errors[i].Code == codes.DeadlineExceeded {
			e = &s.Errors[i]
		}
	}
	if e == nil || p.FailedByCode[codes.DeadlineExceeded] != e.Count {
		t.Fatalf("pod-3's DEADLINE_EXCEEDED %v, the run's %+v: every timed-out call went to pod-3", p.FailedByCode, s.Errors)
	}
	if want := fmt.Sprintf("calls timed out while other backends answered, %d of %d sent to pod pod-3: ", e.Count, e.Count); !strings.Contains(e.Hint, want) {
		t.Errorf("hint does not name pod-3 (%q): %s", want, e.Hint)
	}
}

// Keepalive alone (outlier detection off, keepalive at the greeter's defaults) closes the
// connection to the frozen pod-3, and no call goes to it afterwards: the greeter's
// connection read its last bytes from pod-3 at the freeze, pings Time (10s) later, and
// closes the connection Timeout (2s) after that, unanswered. So the close comes after
// Time and at most Time + Timeout + 1s after the freeze (margin: timers and goroutines
// late on a loaded machine), and the reconnection, to a node that never answers, never
// becomes ready. Takes 17s.
func TestFrozenNodeConnectionClosedByKeepalive(t *testing.T) {
	t.Parallel()
	target, fr := frozenNode(t, "frozen-ka.kit.test", [4]string{"127.0.0.28", "127.0.0.29", "127.0.0.30", "127.0.0.36"})
	s, frozen, returned := freezeRun(t, target, fr, 2*time.Second, append(frozenLoad, "-duration", "17s", "-outlier-detection=false")...)
	p := pod3(t, s, frozen)
	const kaTime, kaTimeout, margin = 10 * time.Second, 2 * time.Second, time.Second
	closed, ok := fr.clientClosed()
	last := unixTime(p.LastSentUnix)
	t.Logf("frozen at %s; the greeter closed its connection to pod-3 %+.3fs after (ok %v); last call sent to pod-3 %+.3fs after; returned %+.3fs after; pod-3's failed calls: %v",
		frozen.Format("15:04:05.000"), closed.Sub(frozen).Seconds(), ok, last.Sub(frozen).Seconds(), returned.Sub(frozen).Seconds(), p.FailedByCode)
	if !ok {
		t.Fatalf("the greeter never closed its connection to the frozen pod-3 (the run went on %.3fs after the freeze)", returned.Sub(frozen).Seconds())
	}
	if d := closed.Sub(frozen); d < kaTime || d > kaTime+kaTimeout+margin {
		t.Errorf("connection closed %.3fs after the freeze, want %s to %s (keepalive time, + timeout + margin)", d.Seconds(), kaTime, kaTime+kaTimeout+margin)
	}
	if d := last.Sub(frozen); d > kaTime+kaTimeout+margin {
		t.Errorf("a call went to pod-3 %.3fs after the freeze, after its connection closed", d.Seconds())
	}
	if returned.Sub(frozen) < kaTime+kaTimeout+margin+time.Second {
		t.Fatalf("the run ended %.3fs after the freeze: too soon to show anything", returned.Sub(frozen).Seconds())
	}
}
