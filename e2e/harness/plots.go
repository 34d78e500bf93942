//go:build e2e

package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/plot"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

// PlotIndex collects the pictures for e2e/out/plots/index.html.
type PlotIndex struct {
	mu      sync.Mutex
	entries []plot.IndexEntry
}

func (p *PlotIndex) add(x plot.IndexEntry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.entries = append(p.entries, x)
}

// Len is how many pictures the index has.
func (p *PlotIndex) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.entries)
}

// Write writes the index page, topologies in order.
func (p *PlotIndex) Write(dir string, order func(a, b string) int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.entries) == 0 {
		return nil
	}
	slices.SortStableFunc(p.entries, func(a, b plot.IndexEntry) int { return order(a.Topology, b.Topology) })
	return plot.Index(dir, p.entries)
}

// Events are what one scenario caused in one topology, for its picture.
type Events struct {
	s        *Suite
	topology string
	events   []mark
	table    *ResultTable // where Record adds its row
}

type mark struct {
	at    time.Time
	label string
}

// NewEvents starts the record of a scenario in topology.
func (s *Suite) NewEvents(topology string) *Events {
	return &Events{s: s, topology: topology, table: s.Resilience}
}

// NewNodeEvents starts the record of a node event in topology: its rows go to the Nodes
// table.
func (s *Suite) NewNodeEvents(topology string) *Events {
	return &Events{s: s, topology: topology, table: s.Nodes}
}

// Mark records an event now, prints it as progress and returns its time.
func (sc *Events) Mark(label string) time.Time {
	now := time.Now()
	sc.MarkAt(now, label)
	return now
}

// MarkAt records an event that happened at at.
func (sc *Events) MarkAt(at time.Time, label string) {
	sc.events = append(sc.events, mark{at, label})
	sc.s.Progressf(sc.topology, "%s", label)
}

// Record adds a row to its table (resilience, or nodes) and draws the load's timeline with the
// scenario's events (a load without a timeline fails the test).
func (sc *Events) Record(t testing.TB, row string, s report.Summary, d time.Duration, note string) {
	t.Helper()
	sc.table.Add(sc.topology, row, s.Failed, d, note)
	if s.Timeline == nil {
		t.Errorf("%s: the load's report has no timeline", row)
		return
	}
	tl := *s.Timeline
	for _, m := range sc.events {
		tl.AddEvent(m.at, m.label)
	}
	rel := filepath.Join(Slug(sc.topology), Slug(row)+".svg")
	if err := os.MkdirAll(filepath.Join(sc.s.Out, "plots", Slug(sc.topology)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := plot.Render(tl, sc.topology+": "+row, filepath.Join(sc.s.Out, "plots", rel)); err != nil {
		t.Errorf("plot %s: %v", row, err)
		return
	}
	caption := fmt.Sprintf("%d calls, %d failed%s", s.Calls, s.Failed, FailedCodes(s))
	if d > 0 {
		caption += fmt.Sprintf("; %.1f s", d.Seconds())
	}
	if note != "" {
		caption += "; " + note
	}
	sc.s.Plots.add(plot.IndexEntry{Topology: sc.topology, Scenario: row, File: rel, Caption: caption})
}

var nonWord = regexp.MustCompile(`[^a-z0-9]+`)

// Slug is s as a file name: lower case, runs of other characters as one '-'.
func Slug(s string) string {
	return strings.Trim(nonWord.ReplaceAllString(strings.ToLower(s), "-"), "-")
}

// FailedCodes names the status codes of failed calls for a table ("; Unavailable 115,
// Unknown 1"), or "" when none failed.
func FailedCodes(s report.Summary) string {
	var parts []string
	for _, er := range s.Errors {
		parts = append(parts, fmt.Sprintf("%s %d", er.Code, er.Count))
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, ", ")
}
