package report

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Progress is one progress record of a running greeter: a unary load counts calls, a
// stream load messages. With -json the greeter writes each as one JSON line on stderr
// ({"progress":{...}}), which ParseProgress reads back: the contract between the greeter
// and whatever follows it (the e2e suite, a script), with no parsing of prose.
type Progress struct {
	// Unary loads.
	Calls  int64 `json:"calls,omitempty"`
	Failed int64 `json:"failed,omitempty"`
	// Stream loads.
	Messages   int64 `json:"messages,omitempty"`
	Open       int64 `json:"open,omitempty"`
	Reconnects int64 `json:"reconnects,omitempty"`

	ElapsedS float64 `json:"elapsed_s"`
	// Planned run, when there is one: DurationS for a timed run, PlannedCalls for -n.
	DurationS    float64 `json:"duration_s,omitempty"`
	PlannedCalls int64   `json:"planned_calls,omitempty"`
}

// progressLine is the JSON line's shape: one key, so that a progress record can never be
// mistaken for a report (which has no "progress" key) and the reverse.
type progressLine struct {
	Progress *Progress `json:"progress"`
}

// Count is what the load counts: calls, or for a stream load messages.
func (p Progress) Count() int64 { return max(p.Calls, p.Messages) }

// JSONLine is the record as the greeter writes it with -json, without the newline.
func (p Progress) JSONLine() string {
	b, _ := json.Marshal(progressLine{&p}) // no type in Progress can fail to marshal
	return string(b)
}

// Text is the record for people: "progress: 1200 calls, 0 failed, 200 calls/s, 6s elapsed".
func (p Progress) Text(stream bool) string {
	el := time.Duration(p.ElapsedS * float64(time.Second)).Round(time.Second)
	var line string
	if stream {
		line = fmt.Sprintf("progress: %d messages, %d streams open, %d reconnects, %s elapsed", p.Messages, p.Open, p.Reconnects, el)
	} else {
		rate := 0.0
		if p.ElapsedS > 0 {
			rate = float64(p.Calls) / p.ElapsedS
		}
		line = fmt.Sprintf("progress: %d calls, %d failed, %.0f calls/s, %s elapsed", p.Calls, p.Failed, rate, el)
	}
	switch {
	case p.DurationS > 0:
		line += fmt.Sprintf(" of %s", time.Duration(p.DurationS*float64(time.Second)))
	case p.PlannedCalls > 0:
		line += fmt.Sprintf(", %.0f%% done", 100*float64(p.Calls)/float64(p.PlannedCalls))
	}
	return line
}

// ParseProgress reads one line written by JSONLine; ok is false for any other line (a
// report's, a log's).
func ParseProgress(line string) (p Progress, ok bool) {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, `{"progress":`) {
		return Progress{}, false
	}
	var pl progressLine
	if err := json.Unmarshal([]byte(line), &pl); err != nil || pl.Progress == nil {
		return Progress{}, false
	}
	return *pl.Progress, true
}
