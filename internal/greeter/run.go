package greeter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver/dns"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/catalog"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/loadgen"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/timeline"
	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// Exit conditions besides usage errors.
var (
	ErrCallsFailed     = errors.New("calls failed")                               // exit 1
	ErrAssertionFailed = exitcode.MarkCheckFailed(errors.New("assertion failed")) // exit 3
)

// Run executes c: one call printed in full, many calls summarised in a report, or a run
// of long-lived streams (stream.go).
func Run(ctx context.Context, c Config, stdout, stderr io.Writer) error {
	if c.PrintServiceConfig {
		sc, err := dialer.ServiceConfig(c.Dial)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, sc)
		return err
	}
	if c.Linger > 0 {
		// Not cut short by ctx: the run is over (often because of SIGTERM) and the report
		// written; what is left is for the log's readers (bounded by the caller: a pod's
		// grace period ends in SIGKILL).
		defer time.Sleep(c.Linger)
	}
	if c.DNSMinResolve > 0 {
		dns.SetMinResolutionInterval(c.DNSMinResolve) // process-wide; set before the client is made
	}
	cc, err := dialer.Dial(c.Dial)
	if err != nil {
		return fmt.Errorf("%w: %w", exitcode.ErrUsage, err)
	}
	defer cc.Close()

	if c.XDSDump {
		return xdsDump(ctx, c, cc, stdout)
	}

	var md metadata.MD
	for _, h := range c.Headers {
		md = metadata.Join(md, metadata.Pairs(h.Key, h.Value))
	}
	var opts []grpc.CallOption
	if c.WaitForReady {
		opts = append(opts, grpc.WaitForReady(true))
	}
	if c.Stream.Kind != "" {
		return streams(ctx, c, cc, md, opts, stdout, stderr)
	}
	if !c.MultiCall() {
		return single(ctx, c, cc, md, opts, stdout)
	}
	return many(ctx, c, cc, md, opts, stdout, stderr)
}

// NewCall returns a function calling method once with name. reply, when not nil,
// receives every reply message. The function returns the address of the connection the
// call went on, for a failed call too once it had one (grpc.Peer): the report attributes
// failed calls to pods with it.
func NewCall(cc grpc.ClientConnInterface, method catalog.Method, name string, md metadata.MD, reply func(proto.Message), opts ...grpc.CallOption) loadgen.CallFunc {
	opts = slices.Clip(opts) // each call appends its own grpc.Peer: never into a shared array
	return func(ctx context.Context) (*pb.Backend, net.Addr, error) {
		if md.Len() > 0 {
			ctx = metadata.NewOutgoingContext(ctx, md)
		}
		var p peer.Peer
		msg, err := method.Call(ctx, cc, name, append(opts, grpc.Peer(&p))...)
		if err != nil {
			return nil, p.Addr, err
		}
		if reply != nil {
			reply(msg)
		}
		return msg.GetBackend(), p.Addr, nil
	}
}

func single(ctx context.Context, c Config, cc grpc.ClientConnInterface, md metadata.MD, opts []grpc.CallOption, stdout io.Writer) error {
	var got proto.Message
	call := NewCall(cc, c.Method, c.Name, md, func(m proto.Message) { got = m }, opts...)
	ctx, cancel := context.WithTimeout(ctx, c.Plan.Timeout)
	defer cancel()
	t0 := time.Now()
	b, _, err := call(ctx)
	lat := time.Since(t0)
	if err != nil {
		if h := callHint(c.Dial.Target, err); h != "" {
			err = fmt.Errorf("%w\nhint: %s", err, h)
		}
		return fmt.Errorf("%w: %s %s: %w", ErrCallsFailed, c.FullMethod(), c.Dial.Target, err)
	}
	out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(got)
	if err != nil {
		return err
	}
	if c.JSON {
		_, err = fmt.Fprintln(stdout, string(out))
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\nserved by pod %s (version %s, node %s, ip %s) in %s\n",
		out, b.GetPod(), b.GetVersion(), orDash(b.GetNode()), b.GetPodIp(), lat.Round(10*time.Microsecond))
	return err
}

func many(ctx context.Context, c Config, cc grpc.ClientConnInterface, md metadata.MD, opts []grpc.CallOption, stdout, stderr io.Writer) error {
	call := NewCall(cc, c.Method, c.Name, md, nil, opts...)
	if c.Verbose {
		inner := call
		call = func(ctx context.Context) (*pb.Backend, net.Addr, error) {
			b, addr, err := inner(ctx)
			if err != nil {
				fmt.Fprintf(stderr, "call: %v\n", err)
			} else {
				fmt.Fprintf(stderr, "call: served by %s (%s)\n", b.GetPod(), b.GetVersion())
			}
			return b, addr, err
		}
	}
	var progress func(loadgen.Progress)
	if !c.Quiet {
		progress = func(p loadgen.Progress) {
			writeProgress(stderr, c.JSON, false, report.Progress{Calls: p.Done, Failed: p.Failed,
				ElapsedS: p.Elapsed.Seconds(), DurationS: c.Plan.Duration.Seconds(), PlannedCalls: int64(c.Plan.Calls)})
		}
	}
	if c.Warmup > 0 {
		warmup(ctx, c, NewCall(cc, c.Method, c.Name, md, nil, opts...), stderr)
	}
	var rec *timeline.Recorder
	if c.Timeline != "" {
		rec = timeline.New(time.Now(), c.TimelineBucket)
		inner := call
		var sent sentTo
		call = func(cctx context.Context) (*pb.Backend, net.Addr, error) {
			t0 := time.Now()
			b, addr, err := inner(cctx)
			// As the tally: calls cut by Ctrl-C (the run's ctx) are not counted. Not the
			// call's own cctx: it is done too when the call's deadline passed, and those
			// calls, DEADLINE_EXCEEDED, are counted.
			if ctx.Err() == nil {
				end := time.Now()
				rec.RecordSent(end, end.Sub(t0), b.GetPod(), sent.pod(addr, b.GetPod()), err)
			}
			return b, addr, err
		}
	}
	tally, elapsed, err := loadgen.Run(ctx, c.Plan, call, c.ProgressEvery, progress)
	if err != nil {
		return fmt.Errorf("%w: %w", exitcode.ErrUsage, err)
	}
	s := tally.Summary(elapsed)
	if rec != nil {
		series := rec.Series()
		if c.Timeline == "-" {
			s.Timeline = &series
		} else if err := writeTimeline(c.Timeline, series); err != nil {
			return err
		}
	}
	s.Target, s.Method, s.LB = c.Dial.Target, c.FullMethod(), c.Dial.LB
	for i := range s.Errors {
		s.Errors[i].Hint = runHint(c.Dial.Target, s.Errors[i], s.Backends)
	}
	s.Assertions = report.Check(s, c.Expect)
	if err := writeReport(stdout, c.JSON, s); err != nil {
		return err
	}
	switch {
	case !report.Passed(s.Assertions):
		return ErrAssertionFailed
	case c.Expect.Code != nil:
		return nil // failures were asked for, and they came
	case s.Calls > 0 && s.OK == 0:
		return fmt.Errorf("%w: all %d calls failed", ErrCallsFailed, s.Calls)
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	return nil
}

// warmup makes uncounted calls until c.Expect.Backends distinct backends have answered
// (if set) or c.Warmup has passed (loadgen.WarmUp says why).
func warmup(ctx context.Context, c Config, call loadgen.CallFunc, stderr io.Writer) {
	seen := loadgen.WarmUp(ctx, call, c.Expect.Backends, c.Warmup, c.Plan.Timeout)
	if !c.Quiet {
		fmt.Fprintf(stderr, "warmup: %d backends answered\n", seen)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeTimeline writes series to path: CSV for a .csv name, JSON otherwise.
func writeTimeline(path string, series timeline.Series) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("-timeline: %w", err)
	}
	write := series.WriteJSON
	if strings.EqualFold(filepath.Ext(path), ".csv") {
		write = series.WriteCSV
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("-timeline %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("-timeline %s: %w", path, err)
	}
	return nil
}

// printable is what the greeter prints at the end of a run; -json picks the form.
type printable interface {
	WriteJSON(io.Writer) error
	WriteText(io.Writer) error
}

func writeReport(w io.Writer, asJSON bool, r printable) error {
	if asJSON {
		return r.WriteJSON(w)
	}
	return r.WriteText(w)
}

// writeProgress writes one progress record on stderr: a JSON line with -json (the
// machine-readable contract, report.ParseProgress), else a line for people.
func writeProgress(w io.Writer, asJSON, stream bool, p report.Progress) {
	if asJSON {
		fmt.Fprintln(w, p.JSONLine())
		return
	}
	fmt.Fprintln(w, p.Text(stream))
}

// sentTo learns, as calls end, which pod answers from which connection address, so that
// the timeline can name the pod a failed call was sent to (the report attributes them the
// same way, at the end of the run). An address more than one pod answered from (a proxy in
// front of them) names none.
type sentTo struct {
	mu     sync.Mutex
	byAddr map[string]string // "" once two pods answered from it
}

// pod records that answered (the reply's pod, "" for a failed call) came from addr, and
// returns the one pod known to answer from addr.
func (s *sentTo) pod(addr net.Addr, answered string) string {
	if addr == nil {
		return ""
	}
	a := addr.String()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byAddr == nil {
		s.byAddr = map[string]string{}
	}
	known, seen := s.byAddr[a]
	if answered != "" {
		switch {
		case !seen:
			s.byAddr[a] = answered
		case known != answered:
			s.byAddr[a] = ""
		}
		return s.byAddr[a]
	}
	return known
}
