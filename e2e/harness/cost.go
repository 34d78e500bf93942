//go:build e2e

package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/plot"
)

// The components on a call's path whose CPU and memory the cost lane measures, in the
// order of the table's columns.
const (
	RoleClient       = "client"
	RoleServers      = "servers"
	RoleProxy        = "proxy"
	RoleControlPlane = "control plane"
)

// CostRoles are the roles in the order of the table's columns and the plot's layers.
func CostRoles() []string {
	return []string{RoleClient, RoleServers, RoleProxy, RoleControlPlane}
}

// CostRow is one topology under the cost lane's fixed load.
type CostRow struct {
	Topology      string
	Calls, Failed int64
	P50, P99      float64 // milliseconds, of the successful calls
	// Parts are the figures of the components on this topology's path, by role; a role
	// that is not on it is absent (printed "–").
	Parts map[string]Usage
	// Goals is the verdict on the goals for this row, or a note ("baseline").
	Goals string
}

// PerCall10k is role's CPU-seconds per 10 000 calls, and whether the role is on the path.
func (r CostRow) PerCall10k(role string) (float64, bool) {
	u, ok := r.Parts[role]
	if !ok || r.Calls == 0 {
		return 0, false
	}
	return u.CPUSeconds / float64(r.Calls) * 10_000, true
}

// CostTable is the cost lane's table (e2e/out/cost.txt), rows in the order added.
type CostTable struct {
	mu   sync.Mutex
	load string
	rows []CostRow
}

// SetLoad describes the load every row had, for the line above the table.
func (c *CostTable) SetLoad(load string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.load = load
}

// Add records one topology's row.
func (c *CostTable) Add(r CostRow) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rows = append(c.rows, r)
}

// Rows are the rows so far.
func (c *CostTable) Rows() []CostRow {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.rows)
}

func (c *CostTable) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.rows) == 0 {
		return ""
	}
	var b strings.Builder
	if c.load != "" {
		b.WriteString(c.load + "\n\n")
	}
	b.WriteString("| topology | calls | failed | p50 ms | p99 ms | CPU-s / 10k calls: client | servers | proxy | control plane | proxy ÷ servers | max memory MiB: client | servers | proxy | control plane | server pods | goals |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range c.rows {
		cells := []string{r.Topology, fmt.Sprint(r.Calls), fmt.Sprint(r.Failed), fmt.Sprintf("%.3f", r.P50), fmt.Sprintf("%.3f", r.P99)}
		for _, role := range CostRoles() {
			if v, ok := r.PerCall10k(role); ok {
				cells = append(cells, fmt.Sprintf("%.2f", v))
			} else {
				cells = append(cells, "–")
			}
		}
		proxy, okP := r.PerCall10k(RoleProxy)
		servers, okS := r.PerCall10k(RoleServers)
		if okP && okS && servers > 0 {
			cells = append(cells, fmt.Sprintf("%.2f", proxy/servers))
		} else {
			cells = append(cells, "–")
		}
		for _, role := range CostRoles() {
			if u, ok := r.Parts[role]; ok {
				cells = append(cells, fmt.Sprintf("%.1f", u.MaxWorkingSet/(1<<20)))
			} else {
				cells = append(cells, "–")
			}
		}
		cells = append(cells, fmt.Sprint(r.Parts[RoleServers].Pods), r.Goals)
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	return b.String()
}

// WriteCostPlot draws the cost table as stacked bars, CPU-seconds per 10 000 calls by
// component with each topology's p50 and p99 under its bar, into
// e2e/out/plots/cost/cpu-per-call.svg, and adds it to the plot index.
func (s *Suite) WriteCostPlot() error {
	rows := s.Cost.Rows()
	if len(rows) == 0 {
		return nil
	}
	var groups []string
	var stacks []plot.Stack
	for _, role := range CostRoles() {
		st := plot.Stack{Label: role}
		present := false
		for _, r := range rows {
			v, ok := r.PerCall10k(role)
			present = present || ok
			st.Values = append(st.Values, v)
		}
		if present {
			stacks = append(stacks, st)
		}
	}
	for _, r := range rows {
		groups = append(groups, fmt.Sprintf("%s\np50 %.2f ms\np99 %.2f ms", r.Topology, r.P50, r.P99))
	}
	rel := filepath.Join("cost", "cpu-per-call.svg")
	if err := os.MkdirAll(filepath.Join(s.Out, "plots", "cost"), 0o755); err != nil {
		return err
	}
	if err := plot.StackedBars("CPU per call by component, the same load through each topology", "CPU-seconds per 10 000 calls",
		groups, stacks, filepath.Join(s.Out, "plots", rel)); err != nil {
		return err
	}
	s.Plots.add(plot.IndexEntry{Topology: "cost", Scenario: "CPU per call by component", File: rel, Caption: s.Cost.loadLine()})
	return nil
}

func (c *CostTable) loadLine() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.load
}
