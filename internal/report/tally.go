// Package report counts what a run of calls did (which backend served each call, which
// errors happened, how long calls took), renders it as a table or JSON, and checks the
// spread and error assertions the e2e relies on.
package report

import (
	"cmp"
	"net"
	"slices"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// Backend is who served a call, as named in the reply.
type Backend struct {
	Pod       string `json:"pod"`
	Namespace string `json:"namespace,omitempty"`
	Version   string `json:"version,omitempty"`
	Node      string `json:"node,omitempty"`
	Service   string `json:"service,omitempty"`
}

// Tally accumulates results. It is not safe for concurrent use: give each worker its own
// and Merge them.
type Tally struct {
	backends map[Backend]int64
	errors   map[codes.Code]int64
	examples map[codes.Code]string
	hist     *hdrhistogram.Histogram             // microseconds, every successful call
	perPod   map[Backend]*hdrhistogram.Histogram // microseconds, per backend
	times    map[Backend]*backendTimes           // from the replies, calls recorded with a Start
	peers    map[string]*peerCalls               // by the address of the connection, when known
	ok, fail int64
}

// Call is one finished call as a Tally records it.
type Call struct {
	// Start is when the call was sent; zero: the call's times are not recorded.
	Start   time.Time
	Latency time.Duration
	// Backend is who answered, from the reply; nil when the call failed.
	Backend *pb.Backend
	// Peer is the address of the connection the call went on, when the caller knows it
	// (grpc.Peer): for a failed call too, once a connection was picked. A failed call is
	// attributed to the backend that answered other calls from that address.
	Peer net.Addr
	Err  error
}

// backendTimes are one backend's times, from the calls it answered.
type backendTimes struct {
	firstAnswer time.Time // when its first reply arrived
	lastSent    time.Time // when the last call it answered was sent
}

// peerCalls is what went to one address: who answered from it, the calls that failed on
// it, and when the last call was sent to it.
type peerCalls struct {
	answered map[Backend]bool
	failed   map[codes.Code]int64
	lastSent time.Time
}

func (p *peerCalls) merge(o *peerCalls) {
	for b := range o.answered {
		p.answered[b] = true
	}
	for c, n := range o.failed {
		p.failed[c] += n
	}
	p.lastSent = latest(p.lastSent, o.lastSent)
}

// latest is the later of a and b, a zero time being none; earliest the earlier.
func latest(a, b time.Time) time.Time {
	if a.IsZero() || b.After(a) {
		return b
	}
	return a
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// Latencies are recorded from 1µs to 1 minute, to 3 significant digits overall and to 2
// per backend (1%: enough to tell a slow pod, at a tenth of the memory, since every
// worker of a run keeps one per backend).
const (
	maxLatencyMicros = int64(time.Minute / time.Microsecond)
	digitsOverall    = 3
	digitsPerBackend = 2
)

// NewTally returns an empty tally.
func NewTally() *Tally {
	return &Tally{
		backends: map[Backend]int64{},
		errors:   map[codes.Code]int64{},
		examples: map[codes.Code]string{},
		hist:     hdrhistogram.New(1, maxLatencyMicros, digitsOverall),
		perPod:   map[Backend]*hdrhistogram.Histogram{},
		times:    map[Backend]*backendTimes{},
		peers:    map[string]*peerCalls{},
	}
}

// peer is addr's record, made on its first call.
func (t *Tally) peer(addr string) *peerCalls {
	p := t.peers[addr]
	if p == nil {
		p = &peerCalls{answered: map[Backend]bool{}, failed: map[codes.Code]int64{}}
		t.peers[addr] = p
	}
	return p
}

// backendTimes is b's times, made on its first call.
func (t *Tally) backendTimes(b Backend) *backendTimes {
	bt := t.times[b]
	if bt == nil {
		bt = &backendTimes{}
		t.times[b] = bt
	}
	return bt
}

// backendHist is b's latency histogram, made on b's first call.
func (t *Tally) backendHist(b Backend) *hdrhistogram.Histogram {
	h := t.perPod[b]
	if h == nil {
		h = hdrhistogram.New(1, maxLatencyMicros, digitsPerBackend)
		t.perPod[b] = h
	}
	return h
}

// Add records one call without its times or address: the backend from its reply, or its
// error.
func (t *Tally) Add(b *pb.Backend, err error, latency time.Duration) {
	t.Record(Call{Backend: b, Err: err, Latency: latency})
}

// Record records one call.
func (t *Tally) Record(c Call) {
	var peer *peerCalls
	if c.Peer != nil {
		peer = t.peer(c.Peer.String())
		peer.lastSent = latest(peer.lastSent, c.Start)
	}
	if c.Err != nil {
		st := status.Convert(c.Err)
		t.fail++
		t.errors[st.Code()]++
		if _, seen := t.examples[st.Code()]; !seen {
			t.examples[st.Code()] = st.Message()
		}
		if peer != nil {
			peer.failed[st.Code()]++
		}
		return
	}
	t.ok++
	b := c.Backend
	key := Backend{Pod: b.GetPod(), Namespace: b.GetNamespace(), Version: b.GetVersion(), Node: b.GetNode(), Service: b.GetService()}
	t.backends[key]++
	us := max(1, c.Latency.Microseconds())
	_ = t.hist.RecordValue(us) // over a minute is clamped by the histogram's error
	_ = t.backendHist(key).RecordValue(us)
	if peer != nil {
		peer.answered[key] = true
	}
	if !c.Start.IsZero() {
		bt := t.backendTimes(key)
		bt.firstAnswer = earliest(bt.firstAnswer, c.Start.Add(c.Latency))
		bt.lastSent = latest(bt.lastSent, c.Start)
	}
}

// Merge adds o into t.
func (t *Tally) Merge(o *Tally) {
	for k, v := range o.backends {
		t.backends[k] += v
	}
	for k, v := range o.errors {
		t.errors[k] += v
	}
	for k, v := range o.examples {
		if _, seen := t.examples[k]; !seen {
			t.examples[k] = v
		}
	}
	t.hist.Merge(o.hist)
	for k, h := range o.perPod {
		t.backendHist(k).Merge(h)
	}
	for k, ot := range o.times {
		bt := t.backendTimes(k)
		bt.firstAnswer = earliest(bt.firstAnswer, ot.firstAnswer)
		bt.lastSent = latest(bt.lastSent, ot.lastSent)
	}
	for addr, op := range o.peers {
		t.peer(addr).merge(op)
	}
	t.ok += o.ok
	t.fail += o.fail
}

// Calls is the number of calls recorded.
func (t *Tally) Calls() int64 { return t.ok + t.fail }

// Failed is the number of failed calls recorded.
func (t *Tally) Failed() int64 { return t.fail }

// Summary freezes the tally into the report users and the e2e read.
func (t *Tally) Summary(elapsed time.Duration) Summary {
	s := Summary{
		Calls:     t.ok + t.fail,
		OK:        t.ok,
		Failed:    t.fail,
		ElapsedS:  elapsed.Seconds(),
		ByVersion: map[string]int64{},
	}
	if elapsed > 0 {
		s.PerSecond = float64(s.Calls) / elapsed.Seconds()
	}
	attributed := t.attribute()
	for b, n := range t.backends {
		bc := BackendCount{Backend: b, Calls: n, Share: share(n, t.ok), Latency: latency(t.perPod[b])}
		lastSent := time.Time{}
		if bt := t.times[b]; bt != nil {
			bc.FirstUnix = unix(bt.firstAnswer)
			lastSent = bt.lastSent
		}
		if a := attributed[b]; a != nil {
			lastSent = latest(lastSent, a.lastSent)
			if len(a.failed) > 0 {
				bc.FailedByCode = a.failed
			}
		}
		bc.LastSentUnix = unix(lastSent)
		s.Backends = append(s.Backends, bc)
		s.ByVersion[b.Version] += n
	}
	slices.SortFunc(s.Backends, func(a, b BackendCount) int {
		return cmp.Or(cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.Version, b.Version), cmp.Compare(a.Node, b.Node))
	})
	for c, n := range t.errors {
		s.Errors = append(s.Errors, ErrorCount{Code: c, Count: n, Example: t.examples[c]})
	}
	slices.SortFunc(s.Errors, func(a, b ErrorCount) int { return cmp.Compare(b.Count, a.Count) })
	if t.ok > 0 {
		s.Latency = latency(t.hist)
	}
	return s
}

// attribution is what the calls sent to one backend's addresses add to its replies.
type attribution struct {
	failed   CodeCounts
	lastSent time.Time
}

// attribute gives each address's calls to the one backend that answered from it. An
// address more than one backend answered from (a proxy in front of them all, or a pod IP
// reused by a later pod) is not one backend's: its failed calls are attributed to none.
func (t *Tally) attribute() map[Backend]*attribution {
	out := map[Backend]*attribution{}
	for _, p := range t.peers {
		if len(p.answered) != 1 {
			continue
		}
		for b := range p.answered {
			a := out[b]
			if a == nil {
				a = &attribution{failed: CodeCounts{}}
				out[b] = a
			}
			for c, n := range p.failed {
				a.failed[c] += n
			}
			a.lastSent = latest(a.lastSent, p.lastSent)
		}
	}
	return out
}

// unix is t in Unix seconds, 0 for the zero time (omitted from the JSON).
func unix(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// latency is h's percentiles in milliseconds; nil for an empty or missing histogram.
func latency(h *hdrhistogram.Histogram) *Latency {
	if h == nil || h.TotalCount() == 0 {
		return nil
	}
	ms := func(q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1000 }
	return &Latency{P50: ms(50), P90: ms(90), P99: ms(99), P999: ms(99.9), Max: float64(h.Max()) / 1000, Mean: h.Mean() / 1000}
}

func share(n, total int64) float64 {
	if total == 0 {
		return 0
	}
	return float64(n) / float64(total)
}
