package hint

import (
	"fmt"

	"google.golang.org/grpc/codes"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/keepalivepolicy"
)

// Some causes show only against the rest of a run: a status code that, alone, has many
// causes names one when other backends answered meanwhile. The greeter's report counts
// errors per status code and the calls each backend served, not which backend a failed
// call went to (a call that never got an answer names no pod), so that is what ForRun
// reads.

// ForRun is the hint for the calls of a run of many that failed with code and message
// msg, while answered distinct backends served the others; "" when the run adds nothing
// to For.
func ForRun(code codes.Code, msg string, answered int) string {
	if code == codes.DeadlineExceeded && answered > 0 {
		return NodeLoss
	}
	return ""
}

// NodeLoss is the hint for calls that end DEADLINE_EXCEEDED while other backends answer:
// one backend takes calls and never answers. A pod whose node died or was cut off does
// exactly that: nothing closes the client's connection to it (no FIN, no RST), so the
// connection stays READY and round_robin keeps giving it its share of the calls, each of
// which waits out its deadline, until TCP gives up minutes later.
var NodeLoss = fmt.Sprintf("calls timed out while other backends answered: the signature of a backend that stopped answering without closing its connection, most often a pod whose node was lost (powered off, partitioned) or a frozen pod. "+
	"The client keeps the dead connection and round_robin keeps sending it calls until TCP gives up, minutes later. "+
	"Fix it in the client: keepalive finds the dead connection in seconds (-keepalive=10s; the servers' keepalive-min-time, KEEPALIVE_MIN_TIME, must allow it: %s on the kit's servers); "+
	"a per-call deadline (-timeout) bounds what each call loses; outlier ejection (outlier_detection in the service config, or a mesh) takes the backend out after a few failures; "+
	"a retry with a new deadline goes to another pod (idempotent methods only: the retry policy cannot retry a call whose deadline is spent). "+
	"A pod that is only slow looks alike: compare the pods' latency.", keepalivepolicy.MinTime)
