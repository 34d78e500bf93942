//go:build e2e

package harness

import (
	"sync"
	"testing"
	"time"
)

// NodeGate admits parallel tests to the node: at most free at once, and a free place goes
// to the waiting test that comes first in order. Tests released together by t.Parallel
// arrive within milliseconds in no set order, so the first place is given a second after
// the first arrival, when they are all waiting.
type NodeGate struct {
	mu      sync.Mutex
	cond    *sync.Cond
	free    int
	order   []string
	waiting map[string]bool
	settled bool
	timer   *time.Timer
}

// NewNodeGate lets slots tests onto the node at once, in order first.
func NewNodeGate(slots int, order ...string) *NodeGate {
	g := &NodeGate{free: slots, order: order, waiting: map[string]bool{}}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// Enter blocks until t may use the node, and gives its place back when t ends.
func (g *NodeGate) Enter(t testing.TB) {
	name := t.Name()
	g.mu.Lock()
	g.waiting[name] = true
	if g.timer == nil {
		g.timer = time.AfterFunc(time.Second, func() {
			g.mu.Lock()
			g.settled = true
			g.cond.Broadcast()
			g.mu.Unlock()
		})
	}
	for !g.settled || g.free == 0 || g.next() != name {
		g.cond.Wait()
	}
	delete(g.waiting, name)
	g.free--
	g.cond.Broadcast()
	g.mu.Unlock()
	t.Cleanup(func() {
		g.mu.Lock()
		g.free++
		g.cond.Broadcast()
		g.mu.Unlock()
	})
}

// next is the waiting test that goes first: the earliest in order, else any.
func (g *NodeGate) next() string {
	for _, n := range g.order {
		if g.waiting[n] {
			return n
		}
	}
	for n := range g.waiting {
		return n
	}
	return ""
}
