package greeter

import (
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/hint"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/report"
)

// runHint is the hint for the calls of a run that failed as e says, while answered
// backends served the others: what the run as a whole shows first (hint.ForRun: timeouts
// while other pods answer are the signature of a lost node), else what the status says.
func runHint(target string, e report.ErrorCount, answered int) string {
	if h := hint.ForRun(e.Code, e.Example, answered); h != "" {
		return h
	}
	return hintFor(target, e.Code, e.Example)
}
