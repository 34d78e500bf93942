package hint

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/keepalivepolicy"
)

// Some causes show only against the rest of a run: a status code that, alone, has many
// causes names one when other backends answered meanwhile. The greeter's report counts
// errors per status code and the calls each backend served and, when it knows where a
// failed call went (the address of its connection is one only that pod answered from),
// the failed calls of each pod: ForRun reads those.

// Pod is a backend of a run as the hint names it, with the calls of one status code that
// were sent to it and failed.
type Pod struct {
	Name, Node string
	Failed     int64
}

// ForRun is the hint for the failed calls of a run of many calls: failed of them ended
// with code and message msg while answered distinct backends served others. failedOn
// names the pods those calls went to, when the client knew (none through a proxy). ""
// when the run adds nothing to For.
func ForRun(code codes.Code, msg string, answered int, failed int64, failedOn []Pod) string {
	if code != codes.DeadlineExceeded || answered == 0 {
		return ""
	}
	return nodeLoss(sentTo(failed, failedOn))
}

// sentTo says where the failed calls went: ", 118 of 120 sent to pod hello-3 (node n2),
// 2 to pod hello-1 (node n1)"; the three pods with the most, "" for none.
func sentTo(failed int64, pods []Pod) string {
	if len(pods) == 0 {
		return ""
	}
	pods = slices.Clone(pods)
	slices.SortFunc(pods, func(a, b Pod) int { return cmp.Or(cmp.Compare(b.Failed, a.Failed), cmp.Compare(a.Name, b.Name)) })
	var parts []string
	for i, p := range pods {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more pods", len(pods)-3))
			break
		}
		where := "pod " + p.Name
		if p.Node != "" {
			where += " (node " + p.Node + ")"
		}
		if i == 0 {
			parts = append(parts, fmt.Sprintf("%d of %d sent to %s", p.Failed, failed, where))
		} else {
			parts = append(parts, fmt.Sprintf("%d to %s", p.Failed, where))
		}
	}
	return ", " + strings.Join(parts, ", ")
}

// nodeLoss is the node-loss hint with where (sentTo) after its first words.
func nodeLoss(where string) string {
	return "calls timed out while other backends answered" + where + ": " + nodeLossWhy
}

// NodeLoss is the hint for calls that end DEADLINE_EXCEEDED while other backends answer,
// when the client does not know where they went.
var NodeLoss = nodeLoss("")

// nodeLossWhy: one backend takes calls and never answers. A pod whose node died or was
// cut off does exactly that: nothing closes the client's connection to it (no FIN, no
// RST), so the connection stays READY and the balancer keeps giving it calls, each of
// which waits out its deadline, until something closes it.
var nodeLossWhy = fmt.Sprintf("the signature of a backend that stopped answering without closing its connection, most often a pod whose node was lost (powered off, partitioned, frozen) or a frozen pod. "+
	"Nothing closes the connection, so the balancer keeps giving that pod calls, each of which waits out its deadline. "+
	"The greeter's defaults bound it: outlier detection (-outlier-detection) ejects the pod once most of its calls fail, within the deadline plus two -outlier-interval, if each pod gets at least -outlier-request-volume calls per interval; "+
	"keepalive (-keepalive=10s -keepalive-timeout=2s; the servers' keepalive-min-time, KEEPALIVE_MIN_TIME, must allow it: %s on the kit's servers) closes the dead connection within -keepalive plus -keepalive-timeout. "+
	"Without them (-keepalive=0, -outlier-detection=false, a client that has neither) the pod keeps its share until TCP gives up, minutes later. "+
	"Set the deadline (-timeout) from the call's p99: it bounds what each call loses and how long the pod keeps getting calls; "+
	"a retry with a new deadline goes to another pod (idempotent methods only: the retry policy cannot retry a call whose deadline is spent). "+
	"A pod that is only slow looks alike: compare the pods' latency.", keepalivepolicy.MinTime)
