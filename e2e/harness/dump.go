//go:build e2e

package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// DumpIfFailed writes what the cluster knows of namespaces to e2e/out/<test>/<namespace>/
// when t has failed, the way the Kubernetes e2e framework and `kind export logs` do:
// events, every object's state, pod descriptions, the EndpointSlices, and the logs of each
// pod (and of its previous container, after a restart). Call it with defer at the top of a
// test, so it runs before the test's cleanups put things back.
func (s *Suite) DumpIfFailed(t testing.TB, namespaces ...string) {
	t.Helper()
	if !t.Failed() {
		return
	}
	dir := filepath.Join(s.Out, "failures", Slug(t.Name()))
	for _, ns := range namespaces {
		if err := s.dumpNamespace(t, filepath.Join(dir, ns), ns); err != nil {
			t.Logf("dump of namespace %s: %v", ns, err)
		}
	}
	t.Logf("the state of %s when the test failed: %s", strings.Join(namespaces, ", "), dir)
}

func (s *Suite) dumpNamespace(t testing.TB, dir, ns string) error {
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return err
	}
	// kubectl's own words for each, so a reader can rerun the command; a failed command's
	// error is written in its place.
	for file, args := range map[string][]string{
		"events.txt":          {"-n", ns, "get", "events", "--sort-by=.lastTimestamp", "-o", "wide"},
		"objects.txt":         {"-n", ns, "get", "all,ingress,networkpolicy,poddisruptionbudget", "-o", "wide"},
		"pods.txt":            {"-n", ns, "describe", "pods"},
		"endpointslices.yaml": {"-n", ns, "get", "endpointslices", "-o", "yaml"},
	} {
		s.dumpCommand(filepath.Join(dir, file), args...)
	}
	for _, p := range s.Kube.Pods(t, ns, "") {
		s.dumpCommand(filepath.Join(dir, "logs", p.Name+".log"), "-n", ns, "logs", p.Name, "--all-containers", "--prefix", "--timestamps")
		for _, c := range p.Status.ContainerStatuses {
			if c.RestartCount > 0 {
				s.dumpCommand(filepath.Join(dir, "logs", p.Name+"."+c.Name+".previous.log"), "-n", ns, "logs", p.Name, "-c", c.Name, "--previous", "--timestamps")
			}
		}
	}
	return nil
}

// dumpCommand writes kubectl's output to file, headed by the command.
func (s *Suite) dumpCommand(file string, args ...string) {
	out, err := s.Kube.Exec(args...)
	head := "$ kubectl " + strings.Join(args, " ") + "\n"
	if err != nil {
		head += fmt.Sprintf("(failed: %v)\n", err)
	}
	if werr := os.WriteFile(file, append([]byte(head), out...), 0o644); werr != nil {
		fmt.Fprintf(os.Stderr, "write %s: %v\n", file, werr)
	}
}
