// Package slowdown makes a server slow on purpose, for demos and tests of load balancing:
// every call waits an added latency and, optionally, burns CPU first. The setting comes
// from the environment at start and can be changed while the server runs (serverkit's
// POST /admin/slow). The VM's kernel has no netem, so the delay has to come from the
// server; coming from inside the handler chain, it also counts in the server's own load
// reports (ORCA), as a really slow pod's calls would.
package slowdown

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/status"
)

// Max bounds each duration: a longer delay would outlast any sensible call deadline,
// so it is far more likely a typo (50s for 50ms) than a wish.
const Max = time.Minute

// Setting is what each call costs on top of its real work.
type Setting struct {
	Latency time.Duration `json:"-"` // the call waits this long (sleeping: no CPU used)
	CPU     time.Duration `json:"-"` // the call spins on a CPU this long (wall time) before that
}

// settingJSON is Setting on the wire: durations as Go strings ("20ms").
type settingJSON struct {
	Latency string `json:"latency"`
	CPU     string `json:"cpu"`
}

// MarshalJSON writes the durations as "20ms", the form the admin endpoint reads.
func (s Setting) MarshalJSON() ([]byte, error) {
	return json.Marshal(settingJSON{Latency: s.Latency.String(), CPU: s.CPU.String()})
}

// Off reports whether s adds nothing.
func (s Setting) Off() bool { return s.Latency == 0 && s.CPU == 0 }

// Validate reports every bad duration of s.
func (s Setting) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"latency", s.Latency}, {"cpu", s.CPU}} {
		if err := check(d.name, d.v); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func check(name string, d time.Duration) error {
	if d < 0 || d > Max {
		return fmt.Errorf("slow %s %s out of range: want 0 (off) to %s, e.g. 20ms", name, d, Max)
	}
	return nil
}

// ParseDuration reads one duration of a Setting as the admin endpoint receives it, with
// an error that says what is expected.
func ParseDuration(name, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("slow %s %q is not a duration: want e.g. 20ms, 1.5s, or 0 for off", name, v)
	}
	return d, check(name, d)
}

// Knob holds the current Setting; safe for concurrent use. The zero Knob is off.
type Knob struct {
	latency, cpu atomic.Int64 // nanoseconds
}

// New returns a Knob set to s (validated by the caller's config checks).
func New(s Setting) *Knob {
	k := &Knob{}
	k.latency.Store(int64(s.Latency))
	k.cpu.Store(int64(s.CPU))
	return k
}

// Get returns the current setting.
func (k *Knob) Get() Setting {
	return Setting{Latency: time.Duration(k.latency.Load()), CPU: time.Duration(k.cpu.Load())}
}

// Set changes the setting for calls that start from now on.
func (k *Knob) Set(s Setting) error {
	if err := s.Validate(); err != nil {
		return err
	}
	k.latency.Store(int64(s.Latency))
	k.cpu.Store(int64(s.CPU))
	return nil
}

// Apply costs the current setting: CPU first, then the latency. When ctx ends first
// (the caller's deadline, or it went away) it returns that as a status error, as a
// handler would, so the call is not answered after its caller gave up.
func (k *Knob) Apply(ctx context.Context) error {
	if cpu := time.Duration(k.cpu.Load()); cpu > 0 {
		burn(ctx, cpu)
	}
	if lat := time.Duration(k.latency.Load()); lat > 0 {
		t := time.NewTimer(lat)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	return nil
}

// burn spins for d of wall time (or until ctx ends). On a busy machine the goroutine
// may be descheduled part of that time: d is an upper bound on the CPU used.
func burn(ctx context.Context, d time.Duration) {
	end := time.Now().Add(d)
	for i := 0; time.Now().Before(end); i++ {
		if i%1024 == 0 && ctx.Err() != nil {
			return
		}
	}
}
