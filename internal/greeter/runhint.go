package greeter

import (
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/hint"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

// runHint is the hint for the calls of a run that failed as e says, while backends served
// the others: what the run as a whole shows first (hint.ForRun: timeouts while other pods
// answer are the signature of a lost node, and the pods the failed calls went to name
// it), else what the status says.
func runHint(target string, e report.ErrorCount, backends []report.BackendCount) string {
	var failedOn []hint.Pod
	for _, b := range backends {
		if n := b.FailedByCode[e.Code]; n > 0 {
			failedOn = append(failedOn, hint.Pod{Name: b.Pod, Node: b.Node, Failed: n})
		}
	}
	if h := hint.ForRun(e.Code, e.Example, len(backends), e.Count, failedOn); h != "" {
		return h
	}
	return hintFor(target, e.Code, e.Example)
}
