// Package exitcode is the exit-code convention every binary of the kit follows, so
// scripts and the e2e suite read them the same way:
//
//	0  success (and -h)
//	1  a runtime failure: the tool could not do its job (no server, no API server)
//	2  usage: a bad flag or environment value
//	3  a check failed: the tool did its job and what it checked is wrong (greeter
//	   assertions, doctor's error findings)
package exitcode

import (
	"errors"
	"flag"
)

// The codes.
const (
	OK          = 0
	Failure     = 1
	Usage       = 2
	CheckFailed = 3
)

// ErrUsage marks bad flags or environment values: wrap it, fmt.Errorf("%w: ...", ErrUsage).
var ErrUsage = errors.New("usage")

// MarkCheckFailed returns err marked as exit 3, with err's message unchanged.
func MarkCheckFailed(err error) error { return checkFailed{err} }

type checkFailed struct{ error }

func (c checkFailed) Unwrap() error { return c.error }

// Of maps an error to its exit code.
func Of(err error) int {
	var cf checkFailed
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return OK
	case errors.Is(err, ErrUsage):
		return Usage
	case errors.As(err, &cf):
		return CheckFailed
	default:
		return Failure
	}
}
