//go:build e2e

package harness

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/certgen"
)

// Suite is what every test receives: the cluster, the binaries, the certificates, the
// results tables, the node gate and the churn lock. One is made by Setup in TestMain.
type Suite struct {
	Kube    *Kube
	Root    string // repository root
	Out     string // e2e/out: reports, certificates, binaries, plots, failure dumps
	Greeter string // host greeter binary
	Grpcurl string
	CACert  string // CA of the TLS listeners' certificate
	// ClientsImage is the image of the clients in other languages (clients/), built and
	// loaded by make e2e; Docker is the engine's CLI that runs it on the host.
	ClientsImage string
	Docker       string
	CertDir      string
	// Keep leaves the deployed topologies in the cluster after the run (-keep).
	Keep bool
	// Prometheus is the kit's Prometheus (deploy/kind/prometheus), through its host port.
	Prometheus *Prometheus

	// The closing tables: calls per pod, the resilience scenarios, the streams, the slow pod.
	Distribution *DistributionTable
	Resilience   *ResultTable
	Streams      *ResultTable
	Capacity     *CapacityTable
	// Clients: the clients in other languages, per language and scenario.
	Clients *ResultTable
	// Nodes: the node events (drain, frozen, cut off), per topology and client settings.
	Nodes *ResultTable
	// Metrics: what the kit's Prometheus saw, and when its alerts went pending and cleared.
	Metrics *ResultTable
	// Cost: the cost lane's figures, per topology under one fixed load.
	Cost  *CostTable
	Plots *PlotIndex
	// Gate admits the parallel tests to the node (NodeGate).
	Gate *NodeGate

	start time.Time
	// order is the topologies' order in every table and the plot index.
	order []string
	// churn keeps pod churn (Churning: any number at once) and a timed measurement
	// (Timing: alone) apart across the tests: starting and stopping pods stalls the
	// shared node for seconds, and a failover timed then measures the stall.
	churn sync.RWMutex

	mu       sync.Mutex
	applied  map[string]bool // e2e/overlays/<name> this run applied: the only ones Close deletes
	rendered map[string]func() ([]byte, error)
	loads    int
}

// Config is what Setup needs to know of the suite.
type Config struct {
	Keep bool
	// Order is the topologies' names in the order the tables report them.
	Order []string
	// Slots is how many tests the gate lets onto the node at once; GateOrder, which of the
	// waiting tests goes first (t.Name()).
	Slots     int
	GateOrder []string
}

// Setup checks the cluster answers, builds the greeter and grpcurl for the host, and makes
// the suite's throwaway TLS certificate.
func Setup(cfg Config) (*Suite, error) {
	// scripts/lib/common.sh is the one place that derives the cache path.
	cache := os.Getenv("KIT_CACHE")
	if cache == "" {
		return nil, fmt.Errorf("KIT_CACHE is not set: run the suite with `make e2e` (or export KIT_CACHE=...)")
	}
	// scripts/lib/versions.sh names the image; e2e.sh builds it and passes the name on.
	clientsImage := os.Getenv("KIT_CLIENTS_IMAGE")
	if clientsImage == "" {
		return nil, fmt.Errorf("KIT_CLIENTS_IMAGE is not set: run the suite with `make e2e`, which builds that image")
	}
	docker := os.Getenv("DOCKER")
	if docker == "" {
		docker = "docker"
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
	k, err := NewKube(kubectl, kubeconfig)
	if err != nil {
		return nil, err
	}
	s := &Suite{Kube: k, Root: root, Out: out, Keep: cfg.Keep,
		Greeter: filepath.Join(out, "bin", "greeter"), Grpcurl: filepath.Join(out, "bin", "grpcurl"),
		CertDir: filepath.Join(out, "certs"), ClientsImage: clientsImage, Docker: docker,
		Distribution: &DistributionTable{}, Resilience: NewResultTable("failed calls"),
		Streams: NewResultTable("messages lost"), Clients: NewResultTable("failed calls"),
		Nodes: NewResultTable("failed calls"), Metrics: NewResultTable("pods"), Cost: &CostTable{},
		Capacity: &CapacityTable{}, Plots: &PlotIndex{},
		Gate:  NewNodeGate(cfg.Slots, cfg.GateOrder...),
		start: time.Now(), order: cfg.Order,
		applied: map[string]bool{}, rendered: map[string]func() ([]byte, error){}}
	s.CACert = filepath.Join(s.CertDir, "ca.crt")
	promURL, err := prometheusURL(root)
	if err != nil {
		return nil, err
	}
	if s.Prometheus, err = NewPrometheus(promURL); err != nil {
		return nil, err
	}

	if b, err := k.Exec("get", "--raw", "/readyz"); err != nil {
		return nil, fmt.Errorf("the cluster's API server does not answer (%v: %s): run `make kind-up`", err, b)
	}
	for _, b := range [][]string{
		{"build", "-o", s.Greeter, "./client/greeter"},
		{"build", "-modfile=tools/go.mod", "-o", s.Grpcurl, "github.com/fullstorydev/grpcurl/cmd/grpcurl"},
	} {
		cmd := exec.Command("go", b...)
		cmd.Dir = root
		if o, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go %v: %v\n%s", b, err, o)
		}
	}
	// One throwaway CA and certificate for both TLS hosts; the key never leaves e2e/out.
	bundle, err := certgen.Generate([]string{"grpc-ingress.kit.local", "grpc-gateway.kit.local", "*.kit.local"}, 24*time.Hour)
	if err != nil {
		return nil, err
	}
	if err := bundle.Write(s.CertDir); err != nil {
		return nil, err
	}
	if err := k.waitTerminatingNamespaces(namespacesGoneWithin); err != nil {
		return nil, err
	}
	return s, nil
}

// namespacesGoneWithin bounds how long a run waits for the namespaces an earlier run (or
// the lane before it) deleted: the namespace controller deletes their pods, which may
// take their whole grace period (40 s in the templates), then the rest; 3 minutes leaves
// the busy machine more than twice that, twice over. Setup prints how long it waited.
const namespacesGoneWithin = 3 * time.Minute

// Close writes the plot index and the tables (printed, and into e2e/out), and unless Keep,
// deletes the overlays this run applied: a focused run (E2E_RUN=TestDoctor) must not
// remove topologies another run deployed. Every error is reported, none stops the rest.
func (s *Suite) Close() []error {
	var errs []error
	if err := s.Plots.Write(filepath.Join(s.Out, "plots"), s.byTopology); err != nil {
		errs = append(errs, fmt.Errorf("plots index: %w", err))
	} else if n := s.Plots.Len(); n > 0 {
		fmt.Printf("\n%d plots: %s\n", n, filepath.Join(s.Out, "plots", "index.html"))
	}
	for _, f := range []struct{ name, text string }{
		{"capacity.txt", s.Capacity.String(s.byTopology)},
		{"distribution.txt", s.Distribution.String()},
		{"resilience.txt", s.Resilience.String(s.byTopology)},
		{"streams.txt", s.Streams.String(s.byTopology)},
		{"clients.txt", s.Clients.String(s.byTopology)},
		{"nodes.txt", s.Nodes.String(s.byTopology)},
		{"metrics.txt", s.Metrics.String(s.byTopology)},
		{"cost.txt", s.Cost.String()},
	} {
		if f.text == "" {
			continue
		}
		fmt.Printf("\n%s\n", f.text)
		if err := os.WriteFile(filepath.Join(s.Out, f.name), []byte(f.text), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", f.name, err))
		}
	}
	if !s.Keep {
		// Topologies stay deployed across tests (the scenarios reuse them); remove them once
		// at the end.
		s.mu.Lock()
		applied := slices.Sorted(maps.Keys(s.applied))
		s.mu.Unlock()
		for _, o := range applied {
			if out, err := s.Kube.Exec("delete", "-k", s.OverlayDir(o), "--ignore-not-found", "--wait=false"); err != nil {
				errs = append(errs, fmt.Errorf("delete overlay %s: %v: %s", o, err, out))
			}
		}
	}
	return errs
}

// OverlayDir is an e2e kustomization: e2e/overlays/<name>, a topology's overlay plus the
// components only tests need.
func (s *Suite) OverlayDir(name string) string { return filepath.Join(s.Root, "e2e", "overlays", name) }

// Apply applies e2e/overlays/<overlay> (kubectl apply -k, with extra flags such as a label
// selector) and records it for Close to delete.
func (s *Suite) Apply(t testing.TB, overlay string, extra ...string) {
	t.Helper()
	s.mu.Lock()
	s.applied[overlay] = true
	s.mu.Unlock()
	s.Kube.Run(t, append([]string{"apply", "-k", s.OverlayDir(overlay)}, extra...)...)
}

// Render is the e2e overlay rendered by kubectl kustomize, once per run: every in-cluster
// load copies a Job from it.
func (s *Suite) Render(overlay string) ([]byte, error) {
	s.mu.Lock()
	f, ok := s.rendered[overlay]
	if !ok {
		f = sync.OnceValues(func() ([]byte, error) {
			out, err := s.Kube.Exec("kustomize", s.OverlayDir(overlay))
			if err != nil {
				return nil, fmt.Errorf("kubectl kustomize %s: %v: %s", s.OverlayDir(overlay), err, out)
			}
			return out, nil
		})
		s.rendered[overlay] = f
	}
	s.mu.Unlock()
	return f()
}

// Progressf prints one line of progress, so `make e2e` never sits silent for minutes.
func (s *Suite) Progressf(topology, format string, args ...any) {
	el := time.Since(s.start).Round(time.Second)
	fmt.Printf("[e2e %02d:%02d] %s: %s\n", int(el.Minutes()), int(el.Seconds())%60, topology, fmt.Sprintf(format, args...))
}

// byTopology orders two topology names as Config.Order does (unknown names last).
func (s *Suite) byTopology(a, b string) int {
	ia, ib := slices.Index(s.order, a), slices.Index(s.order, b)
	if ia < 0 {
		ia = len(s.order)
	}
	if ib < 0 {
		ib = len(s.order)
	}
	return ia - ib
}

// Churning holds the churn lock for pod churn (rollouts, kills, scaling: any number at
// once); Timing holds it alone, for a measurement. Each returns its release, which the end
// of the test also calls: a scenario that fails half-way must not leave the other tests
// waiting.
func (s *Suite) Churning(t testing.TB) (release func()) {
	return hold(t, s.churn.RLock, s.churn.RUnlock)
}
func (s *Suite) Timing(t testing.TB) (release func()) { return hold(t, s.churn.Lock, s.churn.Unlock) }

func hold(t testing.TB, lock, unlock func()) func() {
	lock()
	var once sync.Once
	release := func() { once.Do(unlock) }
	t.Cleanup(release)
	return release
}

func (s *Suite) nextLoad() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loads++
	return s.loads
}
