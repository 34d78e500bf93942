//go:build e2e

package harness

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

// DistributionTable collects row → pod → calls for the closing summary
// (e2e/out/distribution.txt).
type DistributionTable struct {
	mu   sync.Mutex
	rows []distRow
}

type distRow struct {
	topology, pod, version string
	calls                  int64
	share                  float64
}

// Add records a run's calls per pod under row, and its failed calls if any.
func (tb *DistributionTable) Add(row string, s report.Summary) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, b := range s.Backends {
		tb.rows = append(tb.rows, distRow{row, b.Pod, b.Version, b.Calls, b.Share})
	}
	if s.Failed > 0 {
		tb.rows = append(tb.rows, distRow{row, fmt.Sprintf("(failed: %d)", s.Failed), "", s.Failed, 0})
	}
}

func (tb *DistributionTable) String() string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.rows) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("| topology | pod | version | calls | share |\n|---|---|---|---:|---:|\n")
	rows := slices.Clone(tb.rows)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].topology < rows[j].topology })
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %.1f%% |\n", r.topology, r.pod, r.version, r.calls, 100*r.share)
	}
	return b.String()
}

// ResultTable: scenario × topology → a count (failed calls, lost messages), seconds, note.
type ResultTable struct {
	count string // what the count column counts
	mu    sync.Mutex
	rows  []resultRow
}

type resultRow struct {
	topology, scenario, note string
	count                    int64
	seconds                  time.Duration
}

// NewResultTable is an empty table whose count column is named count.
func NewResultTable(count string) *ResultTable { return &ResultTable{count: count} }

// Add records one row; d ≤ 0 prints as "–".
func (r *ResultTable) Add(topology, scenario string, count int64, d time.Duration, note string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, resultRow{topology, scenario, note, count, d})
}

// String is the table in Markdown; the topologies run at once, so rows are sorted by
// order, each topology's in its own order.
func (r *ResultTable) String(order func(a, b string) int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.rows) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| scenario | topology | %s | seconds | note |\n|---|---|---:|---:|---|\n", r.count)
	rows := slices.Clone(r.rows)
	slices.SortStableFunc(rows, func(a, b resultRow) int { return order(a.topology, b.topology) })
	for _, x := range rows {
		secs := "–"
		if x.seconds > 0 {
			secs = fmt.Sprintf("%.1f", x.seconds.Seconds())
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s |\n", x.scenario, x.topology, x.count, secs, x.note)
	}
	return b.String()
}

// CapacityTable is the table of the slow-pod runs (e2e/out/capacity.txt).
type CapacityTable struct {
	mu   sync.Mutex
	rows []capacityRow
}

type capacityRow struct {
	topology, line string
}

// Add records one run: its policy, what the pods were, and the slow pod's share when one
// was slow ("" when all were fast).
func (c *CapacityTable) Add(topology, policy, pods string, s report.Summary, slow string) {
	share := "–"
	if slow != "" {
		share = fmt.Sprintf("%.1f%%", 100*BackendShare(s, slow))
	}
	lat := LatencyOf(s)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rows = append(c.rows, capacityRow{topology, fmt.Sprintf("| %s | %s | %s | %d | %.0f | %.1f | %.1f | %s |",
		topology, policy, pods, s.Calls, s.PerSecond, lat.P50, lat.P99, share)})
}

func (c *CapacityTable) String(order func(a, b string) int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.rows) == 0 {
		return ""
	}
	rows := slices.Clone(c.rows)
	slices.SortStableFunc(rows, func(a, b capacityRow) int { return order(a.topology, b.topology) })
	var b strings.Builder
	b.WriteString("| topology | policy | pods | calls | calls/s | p50 ms | p99 ms | slow pod's share |\n|---|---|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		b.WriteString(r.line + "\n")
	}
	return b.String()
}

// BackendShare is pod's share of the successful calls of s.
func BackendShare(s report.Summary, pod string) float64 {
	if s.OK == 0 {
		return 0
	}
	for _, b := range s.Backends {
		if b.Pod == pod {
			return float64(b.Calls) / float64(s.OK)
		}
	}
	return 0
}

// LatencyOf is the run's latency, zero when no call succeeded (the report then has none).
func LatencyOf(s report.Summary) report.Latency {
	if s.Latency == nil {
		return report.Latency{}
	}
	return *s.Latency
}
