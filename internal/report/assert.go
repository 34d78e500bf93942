package report

import (
	"fmt"

	"google.golang.org/grpc/codes"
)

// Expect is what a run must show. Negative values mean "not asserted".
type Expect struct {
	Backends  int         // exactly this many distinct backends served calls
	MaxSkew   float64     // Skew() at most this (0 = exact round robin)
	MaxErrors int64       // at most this many failed calls
	Code      *codes.Code // every call ended with this status code (nil = not asserted)
}

// NoExpect asserts nothing.
func NoExpect() Expect { return Expect{Backends: -1, MaxSkew: -1, MaxErrors: -1} }

// Assertion is one checked expectation.
type Assertion struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Check evaluates e against s.
func Check(s Summary, e Expect) []Assertion {
	var out []Assertion
	if e.Backends >= 0 {
		n := len(s.Backends)
		out = append(out, Assertion{"expect-backends", n == e.Backends,
			fmt.Sprintf("%d backends served calls, want %d", n, e.Backends)})
	}
	if e.MaxSkew >= 0 {
		k := s.Skew()
		ok := k <= e.MaxSkew+1e-9 && s.OK > 0
		out = append(out, Assertion{"max-skew", ok,
			fmt.Sprintf("skew %.3f over %d ok calls, allowed %.3f", k, s.OK, e.MaxSkew)})
	}
	if e.MaxErrors >= 0 {
		out = append(out, Assertion{"max-errors", s.Failed <= e.MaxErrors,
			fmt.Sprintf("%d failed calls, allowed %d", s.Failed, e.MaxErrors)})
	}
	if e.Code != nil {
		n := s.Count(*e.Code)
		out = append(out, Assertion{"expect-code", s.Calls > 0 && n == s.Calls,
			fmt.Sprintf("%d of %d calls ended with %s", n, s.Calls, *e.Code)})
	}
	return out
}

// Passed reports whether every assertion held.
func Passed(as []Assertion) bool {
	for _, a := range as {
		if !a.OK {
			return false
		}
	}
	return true
}

// Count is how many calls of s ended with code (OK counts the successful ones).
func (s Summary) Count(code codes.Code) int64 {
	if code == codes.OK {
		return s.OK
	}
	n := int64(0)
	for _, er := range s.Errors {
		if er.Code == code {
			n += er.Count
		}
	}
	return n
}
