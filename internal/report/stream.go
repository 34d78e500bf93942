package report

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// StreamSummary is a run of long-lived streams: the shape of `greeter -stream ... -json`.
type StreamSummary struct {
	Target string `json:"target,omitempty"`
	Method string `json:"method,omitempty"`
	LB     string `json:"lb,omitempty"`
	Kind   string `json:"kind"` // server or bidi
	// Streams is how many streams the run kept open at once (each reopened when it ended).
	Streams    int     `json:"streams"`
	IntervalMs float64 `json:"interval_ms"`
	ElapsedS   float64 `json:"elapsed_s"`
	Messages   int64   `json:"messages"`
	// Opened counts streams that delivered at least one message: the first ones and
	// every reopened one.
	Opened int64 `json:"opened"`
	// Reconnects counts the streams that ended during the run (each was reopened); Ends
	// says why.
	Reconnects int64 `json:"reconnects"`
	// Lost is the messages skipped in sequence (a reopened stream that did not resume
	// where the last one stopped); Duplicated the ones received twice.
	Lost       int64           `json:"lost"`
	Duplicated int64           `json:"duplicated"`
	LongestGap *Gap            `json:"longest_gap,omitempty"`
	Backends   []StreamBackend `json:"backends"`
	// Ends: why streams ended, per status code and message (at most 5 messages per
	// code; "(other messages)" counts the rest).
	Ends       []ErrorCount `json:"ends"`
	Assertions []Assertion  `json:"assertions,omitempty"`
}

// StreamBackend is what one pod did: streams opened on it (their share of all opened),
// and messages it sent.
type StreamBackend struct {
	Backend
	Streams  int64   `json:"streams"`
	Share    float64 `json:"share"`
	Messages int64   `json:"messages"`
}

// Gap is the longest time a stream (the client's view: across reopens) went without a
// message, and where: the stream's index, the pods before and after, and when it ended
// (seconds since the run started). A gap still open when the run ended counts too.
type Gap struct {
	Ms      float64 `json:"ms"`
	Stream  int     `json:"stream"`
	FromPod string  `json:"from_pod,omitempty"`
	Pod     string  `json:"pod,omitempty"`
	AtS     float64 `json:"at_s"`
}

// StreamTally accumulates a stream run; safe for concurrent use (messages come at most
// a few thousand a second, so one lock is enough).
type StreamTally struct {
	start time.Time
	// For progress lines, read without the lock.
	messages, open, reconnects atomic.Int64

	mu         sync.Mutex
	opened     map[Backend]int64
	perPod     map[Backend]int64
	ends       map[streamEnd]int64
	reasons    map[codes.Code]int // distinct messages kept per code
	lost, dup  int64
	gap        Gap
	gapD       time.Duration
	tracks     []*StreamTrack
	openedSeen int64
}

// NewStreamTally starts a tally at start.
func NewStreamTally(start time.Time) *StreamTally {
	return &StreamTally{start: start, opened: map[Backend]int64{}, perPod: map[Backend]int64{},
		ends: map[streamEnd]int64{}, reasons: map[codes.Code]int{}}
}

// Progress is messages so far, streams open now, and reconnects so far.
func (t *StreamTally) Progress() (messages, open, reconnects int64) {
	return t.messages.Load(), t.open.Load(), t.reconnects.Load()
}

// StreamTrack follows one of the run's streams across its reopens. Use it from one
// goroutine.
type StreamTrack struct {
	t       *StreamTally
	i       int
	last    uint64
	lastAt  time.Time
	lastPod string
	live    bool // the current stream has delivered a message
}

// Track returns the tracker of stream i, its clock starting now.
func (t *StreamTally) Track(i int, now time.Time) *StreamTrack {
	s := &StreamTrack{t: t, i: i, lastAt: now}
	t.mu.Lock()
	t.tracks = append(t.tracks, s)
	t.mu.Unlock()
	return s
}

// Last is the last seq received: where a reopened stream resumes.
func (s *StreamTrack) Last() uint64 { return s.last }

// Receive records a message of the current stream.
func (s *StreamTrack) Receive(now time.Time, seq uint64, be *pb.Backend) {
	b := backendOf(be)
	t := s.t
	t.messages.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if !s.live {
		s.live = true
		t.open.Add(1)
		t.opened[b]++
		t.openedSeen++
	}
	t.perPod[b]++
	switch {
	case seq > s.last+1:
		t.lost += int64(seq - s.last - 1)
	case seq <= s.last:
		t.dup++
	}
	if seq > s.last {
		s.last = seq
	}
	t.noteGap(s, now, b.Pod)
	s.lastAt, s.lastPod = now, b.Pod
}

// noteGap keeps the longest gap; t.mu held.
func (t *StreamTally) noteGap(s *StreamTrack, now time.Time, pod string) {
	if d := now.Sub(s.lastAt); d > t.gapD {
		t.gapD = d
		t.gap = Gap{Ms: float64(d) / float64(time.Millisecond), Stream: s.i, FromPod: s.lastPod, Pod: pod, AtS: now.Sub(t.start).Seconds()}
	}
}

// Ended records that the current stream ended with err (io.EOF: the server ended it
// with OK), to be reopened.
func (s *StreamTrack) Ended(err error) {
	t := s.t
	code, msg := codes.OK, "the server ended the stream with OK"
	if !errors.Is(err, io.EOF) {
		st := status.Convert(err)
		code, msg = st.Code(), st.Message()
	}
	t.reconnects.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.live {
		s.live = false
		t.open.Add(-1)
	}
	key := streamEnd{code, msg}
	if _, seen := t.ends[key]; !seen {
		if t.reasons[code] >= maxReasonsPerCode {
			key.msg = "" // the code's other messages, counted together
		} else {
			t.reasons[code]++
		}
	}
	t.ends[key]++
}

// streamEnd is one reason streams ended: a code and its message. Ends are counted per
// message (a max age and a drain are both UNAVAILABLE and worth telling apart), up to
// maxReasonsPerCode messages per code, the rest together.
type streamEnd struct {
	code codes.Code
	msg  string
}

const maxReasonsPerCode = 5

// StreamSummary freezes the tally at now, the end of the run: a stream that has been
// silent since its last message counts that silence as a gap.
func (t *StreamTally) StreamSummary(now time.Time) StreamSummary {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.tracks {
		t.noteGap(s, now, "")
	}
	s := StreamSummary{
		ElapsedS: now.Sub(t.start).Seconds(), Messages: t.messages.Load(), Opened: t.openedSeen,
		Reconnects: t.reconnects.Load(), Lost: t.lost, Duplicated: t.dup,
	}
	if t.gapD > 0 {
		g := t.gap
		s.LongestGap = &g
	}
	pods := map[Backend]bool{}
	for b := range t.perPod {
		pods[b] = true
	}
	for b := range pods {
		s.Backends = append(s.Backends, StreamBackend{Backend: b, Streams: t.opened[b], Share: share(t.opened[b], t.openedSeen), Messages: t.perPod[b]})
	}
	slices.SortFunc(s.Backends, func(a, b StreamBackend) int {
		return cmp.Or(cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.Version, b.Version), cmp.Compare(a.Node, b.Node))
	})
	for e, n := range t.ends {
		ex := e.msg
		if ex == "" {
			ex = "(other messages)"
		}
		s.Ends = append(s.Ends, ErrorCount{Code: e.code, Count: n, Example: ex})
	}
	slices.SortFunc(s.Ends, func(a, b ErrorCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Code, b.Code), cmp.Compare(a.Example, b.Example))
	})
	return s
}

func backendOf(b *pb.Backend) Backend {
	return Backend{Pod: b.GetPod(), Namespace: b.GetNamespace(), Version: b.GetVersion(), Node: b.GetNode(), Service: b.GetService()}
}

// Skew of the streams opened per pod, as Summary.Skew for calls.
func (s StreamSummary) Skew() float64 {
	if len(s.Backends) == 0 || s.Opened == 0 {
		return 0
	}
	mean := float64(s.Opened) / float64(len(s.Backends))
	worst := 0.0
	for _, b := range s.Backends {
		worst = max(worst, math.Abs(float64(b.Streams)-mean)/mean)
	}
	return worst
}

// EndCount is how many streams ended with code.
func (s StreamSummary) EndCount(code codes.Code) int64 {
	n := int64(0)
	for _, e := range s.Ends {
		if e.Code == code {
			n += e.Count
		}
	}
	return n
}

// StreamExpect is what a stream run must show, besides Expect's backends and skew
// (which apply to the streams opened per pod). Negative (or 0 for MaxGap) = not asserted.
type StreamExpect struct {
	MaxGap        time.Duration // the longest gap between two messages of a stream
	MaxLost       int64
	MaxDup        int64
	MaxReconnects int64 // streams that ended during the run, whatever the reason
}

// NoStreamExpect asserts nothing.
func NoStreamExpect() StreamExpect { return StreamExpect{MaxLost: -1, MaxDup: -1, MaxReconnects: -1} }

// CheckStreams evaluates e and se against s.
func CheckStreams(s StreamSummary, e Expect, se StreamExpect) []Assertion {
	var out []Assertion
	if e.Backends >= 0 {
		n := 0
		for _, b := range s.Backends {
			if b.Streams > 0 {
				n++
			}
		}
		out = append(out, Assertion{"expect-backends", n == e.Backends, fmt.Sprintf("streams opened on %d backends, want %d", n, e.Backends)})
	}
	if e.MaxSkew >= 0 {
		k := s.Skew()
		out = append(out, Assertion{"max-skew", k <= e.MaxSkew+1e-9 && s.Opened > 0,
			fmt.Sprintf("skew %.3f of %d streams opened, allowed %.3f", k, s.Opened, e.MaxSkew)})
	}
	if se.MaxGap > 0 {
		got := 0.0
		where := ""
		if g := s.LongestGap; g != nil {
			got = g.Ms
			where = fmt.Sprintf(" (stream %d, %s → %s, at %.1fs)", g.Stream, dash(g.FromPod), dash(g.Pod), g.AtS)
		}
		out = append(out, Assertion{"max-gap", got <= float64(se.MaxGap)/float64(time.Millisecond) && s.Messages > 0,
			fmt.Sprintf("longest gap %.0fms%s, allowed %s", got, where, se.MaxGap)})
	}
	if se.MaxLost >= 0 {
		out = append(out, Assertion{"max-lost", s.Lost <= se.MaxLost, fmt.Sprintf("%d messages lost, allowed %d", s.Lost, se.MaxLost)})
	}
	if se.MaxDup >= 0 {
		out = append(out, Assertion{"max-dup", s.Duplicated <= se.MaxDup, fmt.Sprintf("%d messages duplicated, allowed %d", s.Duplicated, se.MaxDup)})
	}
	if se.MaxReconnects >= 0 {
		out = append(out, Assertion{"max-reconnects", s.Reconnects <= se.MaxReconnects, fmt.Sprintf("%d streams ended and were reopened, allowed %d", s.Reconnects, se.MaxReconnects)})
	}
	return out
}

// WriteJSON writes s as indented JSON.
func (s StreamSummary) WriteJSON(w io.Writer) error { return writeJSON(w, s) }

// WriteText writes the human report: streams and messages per pod, why streams ended,
// the longest gap, lost and duplicated messages, assertions.
func (s StreamSummary) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s streams of %s via %s (%s), a message every %gms, %.2fs: %d messages, %d streams opened, %d reconnects, %d lost, %d duplicated\n\n",
		s.Streams, s.Kind, s.Method, s.Target, s.LB, s.IntervalMs, s.ElapsedS, s.Messages, s.Opened, s.Reconnects, s.Lost, s.Duplicated)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "POD\tVERSION\tNODE\tSTREAMS\tSHARE\tMESSAGES\t")
	for _, be := range s.Backends {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.1f%%\t%d\t\n", be.Pod, be.Version, dash(be.Node), be.Streams, 100*be.Share, be.Messages)
	}
	tw.Flush()
	if len(s.Backends) > 1 {
		fmt.Fprintf(&b, "\n%d backends, stream skew %.3f (0 = perfectly even)\n", len(s.Backends), s.Skew())
	}
	if len(s.Ends) > 0 {
		fmt.Fprintln(&b, "\nSTREAM ENDS (each stream was reopened)")
		for _, e := range s.Ends {
			fmt.Fprintf(&b, "  %-18s %6d  %s\n", e.Code.String(), e.Count, e.Example)
			if e.Hint != "" {
				fmt.Fprintf(&b, "  %-18s         hint: %s\n", "", e.Hint)
			}
		}
	}
	if g := s.LongestGap; g != nil {
		fmt.Fprintf(&b, "\nlongest gap between two messages: %.0fms on stream %d (%s → %s) at %.1fs\n", g.Ms, g.Stream, dash(g.FromPod), dash(g.Pod), g.AtS)
	}
	if len(s.Assertions) > 0 {
		fmt.Fprintln(&b, "\nASSERTIONS")
		for _, a := range s.Assertions {
			mark := "ok  "
			if !a.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(&b, "  %s %s: %s\n", mark, a.Name, a.Detail)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
