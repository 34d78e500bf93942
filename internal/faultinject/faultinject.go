// Package faultinject makes a server fail a fraction of its calls on purpose, with a
// status code chosen while it runs (serverkit's POST /admin/errors): tests of alerting
// make a pod fail the way a broken one would, and the error-rate alert of
// kustomize/components/prometheus-rule must fire for a server-side code (UNAVAILABLE,
// INTERNAL) and stay quiet for a caller's mistake (INVALID_ARGUMENT). Off until set.
//
// The failed calls are spread evenly, not drawn at random: with fraction 0.25 exactly
// every fourth call fails, so a test knows the error ratio any window of calls shows.
package faultinject

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/statuscode"
)

// resolution: fractions are kept in millionths, the finest a Setting may ask for.
const resolution = 1_000_000

// Setting is which calls fail and how.
type Setting struct {
	Code     codes.Code // the status the failed calls end with
	Fraction float64    // of the calls that fail: 0 (off) to 1 (every call)
}

// Off reports whether s fails no call.
func (s Setting) Off() bool { return s.Fraction == 0 }

// Validate reports the first problem of s.
func (s Setting) Validate() error {
	if err := checkFraction(s.Fraction); err != nil {
		return err
	}
	if s.Code > codes.Unauthenticated {
		return fmt.Errorf("error code %d is not a gRPC status code", uint32(s.Code))
	}
	if s.Fraction > 0 && s.Code == codes.OK {
		return fmt.Errorf("OK is not an error: give a code such as UNAVAILABLE, INTERNAL or INVALID_ARGUMENT (fraction=0 turns the knob off)")
	}
	return nil
}

func checkFraction(f float64) error {
	if !(f >= 0 && f <= 1) { // NaN too
		return fmt.Errorf("error fraction %g out of range: want 0 (off) to 1 (every call), e.g. 0.5", f)
	}
	if f > 0 && millionths(f) == 0 {
		return fmt.Errorf("error fraction %g is below one call in a million: use 0 to turn the knob off", f)
	}
	return nil
}

func millionths(f float64) uint64 { return uint64(math.Round(f * resolution)) }

// ParseFraction reads the fraction of calls to fail as the admin endpoint receives it,
// with an error that says what is expected.
func ParseFraction(v string) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("error fraction %q is not a number: want 0 (off) to 1 (every call), e.g. 0.5", v)
	}
	return f, checkFraction(f)
}

// ParseCode reads a status code name as the admin endpoint receives it: the gRPC spec's
// canonical name (UNAVAILABLE) or grpc-go's (Unavailable). OK is refused: it is no error.
func ParseCode(v string) (codes.Code, error) {
	c, err := statuscode.Parse(v)
	if err != nil || c == codes.OK || c > codes.Unauthenticated {
		return 0, fmt.Errorf("error code %q: want a gRPC status code other than OK, e.g. UNAVAILABLE, INTERNAL, INVALID_ARGUMENT", v)
	}
	return c, nil
}

// Knob holds the current Setting and counts the calls it failed; safe for concurrent
// use. The zero Knob is off.
type Knob struct {
	cur      atomic.Pointer[state]
	injected atomic.Uint64
}

// state is one Setting in force, with its own count of calls, so that a new setting
// spreads its failures from its first call.
type state struct {
	set   Setting
	ppm   uint64 // Fraction in millionths
	err   error  // what a failed call returns, built once
	calls atomic.Uint64
}

// Get returns the current setting.
func (k *Knob) Get() Setting {
	if st := k.cur.Load(); st != nil {
		return st.set
	}
	return Setting{}
}

// Injected is the number of calls the knob has failed since the process started.
func (k *Knob) Injected() uint64 { return k.injected.Load() }

// Set changes the setting for the calls that start from now on.
func (k *Knob) Set(s Setting) error {
	if err := s.Validate(); err != nil {
		return err
	}
	st := &state{set: s, ppm: millionths(s.Fraction)}
	if !s.Off() {
		st.err = status.Errorf(s.Code, "error injected by the test knob of the admin endpoint (POST /admin/errors: %s for %s of the calls; fraction=0 turns it off)",
			statuscode.Canonical(s.Code), percent(s.Fraction))
	}
	k.cur.Store(st)
	return nil
}

// Fail returns the error the next call must end with, or nil when it runs as usual.
// Call it once per call: it counts the call.
func (k *Knob) Fail() error {
	st := k.cur.Load()
	if st == nil || st.ppm == 0 {
		return nil
	}
	// Call i (from 0) fails when it takes the count of failures, i × fraction rounded
	// down, one up: ppm = 250 000 fails calls 3, 7, 11, ...
	i := st.calls.Add(1) - 1
	if (i+1)*st.ppm/resolution == i*st.ppm/resolution {
		return nil
	}
	k.injected.Add(1)
	return st.err
}

// report is what GET /admin/errors shows.
type report struct {
	Code     string  `json:"code"`
	Fraction float64 `json:"fraction"`
	Injected uint64  `json:"injected"`
}

// MarshalJSON shows the setting and the calls failed so far, the code written as the
// admin endpoint reads it (UNAVAILABLE).
func (k *Knob) MarshalJSON() ([]byte, error) {
	s := k.Get()
	return json.Marshal(report{Code: statuscode.Canonical(s.Code), Fraction: s.Fraction, Injected: k.Injected()})
}

// percent writes a fraction as a percentage, to six significant digits: 0.07 is "7%".
func percent(f float64) string { return strconv.FormatFloat(f*100, 'g', 6, 64) + "%" }
