//go:build e2e

// Package e2e proves the kit in a live kind cluster (make kind-up): each topology is
// deployed from kustomize/, driven with real traffic by the greeter (from the host through
// the published Traefik ports, and in-cluster for the headless Service), and its spread,
// routing, canary split and ReferenceGrant behaviour are asserted. Run with `make e2e`.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/certgen"
)

var keep = flag.Bool("keep", false, "leave the deployed topologies in the cluster after the run")

// env is what every test needs: the cluster, the binaries, the certificates.
type env struct {
	k       kube
	root    string // repository root
	out     string // e2e/out: reports, certificates, binaries
	greeter string // host greeter binary
	grpcurl string
	caCert  string // CA of the TLS listeners' certificate
	certDir string
}

// The suite shares one environment and one results table; Go tests get no other way to
// receive them than package state.
var (
	e          *env
	results    = newTable()
	resilience = newResilienceTable("failed calls")
	plots      = &plotIndex{}
	suiteStart = time.Now()
	// churn keeps pod churn (rollouts, kills, scaling: RLock, any number at once) and a
	// failover measurement (Lock) apart across the topologies: starting and stopping pods
	// stalled the shared 2-core node for 1–4 s, the whole load through Traefik near zero,
	// and a proxy's failover measured then took 6.7–8.5 s against its 6 s target in three
	// runs of six (2026-12-02).
	churn sync.RWMutex
	// node lets nodeSlots of the parallel tests share the node at once, the longest first.
	node = newNodeGate(nodeSlots, "TestHeadless", "TestHeadlessCapacity", "TestProxylessXDS", "TestGatewayAPI", "TestNginxIngress", "TestDoctor")
)

// nodeSlots: how many of the parallel tests (topologies, doctor) run at once on the one
// 2-core kind node, and go test's own -parallel cannot say which test goes first (the one
// that starts last decides when the suite ends). All four at once overloaded the node
// (exec probes timed out, pods left their Services). The node is CPU-bound well before
// three: with headless split in two and four topologies, three at once took go test
// 1134 s against 1323 s for two at once with headless whole (2026-12-02), at load average
// 35, and the timed figures lost their margins (a proxyless pod served 4.3 s after Ready
// against its 5 s goal, 1.3 s at two; a headless scale-out with a 5 s connection age
// 33.4 s of its 40 s window, 11.0 s at two). That was at 400 calls/s per load. At 200
// (loadRate), three at once took go test 512–590 s in eight runs against 700 s for two at
// once at 400, at a load average of 10–18, every timed figure inside its target (2026-12-02,
// a faster VM than the runs above: two at once at 400 ran at load average 7 there).
const nodeSlots = 3

func TestMain(m *testing.M) {
	flag.Parse()
	var err error
	e, err = setup()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e setup: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := plots.write(filepath.Join(e.out, "plots")); err != nil {
		fmt.Fprintf(os.Stderr, "plots index: %v\n", err)
	} else if len(plots.entries) > 0 {
		fmt.Printf("\n%d plots: %s\n", len(plots.entries), filepath.Join(e.out, "plots", "index.html"))
	}
	writeCapacity()
	for name, text := range map[string]string{"distribution.txt": results.String(), "resilience.txt": resilience.String(), "streams.txt": streamsTable.String()} {
		if text == "" {
			continue
		}
		fmt.Printf("\n%s\n", text)
		if err := os.WriteFile(filepath.Join(e.out, name), []byte(text), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "write %s: %v\n", name, err)
		}
	}
	if !*keep {
		// Topologies stay deployed across tests (the resilience scenarios reuse them); remove
		// them once at the end, and only those this run applied: a focused run
		// (E2E_RUN=TestDoctor) must not remove topologies another run deployed.
		for _, o := range appliedOverlays() {
			e.k.exec("delete", "-k", overlayDir(o), "--ignore-not-found", "--wait=false")
		}
	}
	os.Exit(code)
}

// topologyNames are the kit's topologies (kustomize/overlays/<name>), in the order the
// suite reports them.
func topologyNames() []string { return []string{"headless", "nginx-ingress", "gateway-api", xdsName} }

// byTopology orders a and b by topologyNames.
func byTopology(a, b string) int {
	names := topologyNames()
	return slices.Index(names, a) - slices.Index(names, b)
}

// overlayDir is the e2e's kustomization of a topology: kustomize/overlays/<name> plus the
// components only tests need (e2e/overlays/<name>/kustomization.yaml says which).
func overlayDir(name string) string { return filepath.Join(e.root, "e2e", "overlays", name) }

func setup() (*env, error) {
	// scripts/lib/common.sh is the one place that derives the cache path.
	cache := os.Getenv("KIT_CACHE")
	if cache == "" {
		return nil, fmt.Errorf("KIT_CACHE is not set: run the suite with `make e2e` (or export KIT_CACHE=...)")
	}
	kubeconfig := filepath.Join(cache, "kubeconfig")
	kubectl := filepath.Join(cache, "bin", "kubectl")
	for _, f := range []string{kubeconfig, kubectl} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("%s is missing: create the cluster first with `make kind-up`", f)
		}
	}
	root, err := filepath.Abs("..")
	if err != nil {
		return nil, err
	}
	out := filepath.Join(root, "e2e", "out")
	if err := os.MkdirAll(filepath.Join(out, "bin"), 0o755); err != nil {
		return nil, err
	}
	k, err := newKube(kubectl, kubeconfig)
	if err != nil {
		return nil, err
	}
	ev := &env{k: k, root: root, out: out,
		greeter: filepath.Join(out, "bin", "greeter"), grpcurl: filepath.Join(out, "bin", "grpcurl"),
		certDir: filepath.Join(out, "certs")}
	ev.caCert = filepath.Join(ev.certDir, "ca.crt")

	if b, err := ev.k.exec("get", "--raw", "/readyz"); err != nil {
		return nil, fmt.Errorf("the cluster's API server does not answer (%v: %s): run `make kind-up`", err, b)
	}
	for _, b := range []struct{ out, pkg string }{
		{ev.greeter, "./client/greeter"},
		{ev.grpcurl, "github.com/fullstorydev/grpcurl/cmd/grpcurl"},
	} {
		args := []string{"build", "-o", b.out, b.pkg}
		if strings.Contains(b.pkg, "grpcurl") {
			args = []string{"build", "-modfile=tools/go.mod", "-o", b.out, b.pkg}
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if o, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, o)
		}
	}
	// One throwaway CA and certificate for both TLS hosts; the key never leaves e2e/out.
	bundle, err := certgen.Generate([]string{"grpc-ingress.kit.local", "grpc-gateway.kit.local", "*.kit.local"}, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	if err := bundle.Write(ev.certDir); err != nil {
		return nil, err
	}
	return ev, nil
}

// nodeGate admits parallel tests to the node: at most free at once, and a free place goes
// to the waiting test that comes first in order. Tests released together by t.Parallel
// arrive within milliseconds in no set order, so the first place is given a second after
// the first arrival, when they are all waiting.
type nodeGate struct {
	mu      sync.Mutex
	cond    *sync.Cond
	free    int
	order   []string
	waiting map[string]bool
	settled bool
	timer   *time.Timer
}

func newNodeGate(slots int, order ...string) *nodeGate {
	g := &nodeGate{free: slots, order: order, waiting: map[string]bool{}}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// enter blocks until t may use the node, and gives its place back when t ends.
func (g *nodeGate) enter(t *testing.T) {
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
func (g *nodeGate) next() string {
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
