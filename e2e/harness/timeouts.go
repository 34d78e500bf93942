//go:build e2e

package harness

import "time"

// The suite's timeouts, in one place. Each bounds a wait for the cluster, not a figure the
// suite measures (those have their targets beside their scenarios).
const (
	// APIRequest bounds one request to the API server or to Prometheus: a sample, not a wait.
	APIRequest = 30 * time.Second
	// Kubectl bounds one kubectl process (apply, delete, scale ...).
	Kubectl = 5 * time.Minute
	// KubectlStdin bounds a kubectl process fed on stdin (a manifest built by a test).
	KubectlStdin = 2 * time.Minute
	// Rollout bounds `kubectl rollout status` of one Deployment.
	Rollout = 240 * time.Second
	// PodsReady bounds waiting for a Deployment's pods to be exactly the wanted Ready set.
	PodsReady = 3 * time.Minute
	// JobPod bounds waiting for a load Job's pod to exist (the Job controller can take
	// seconds on the busy node).
	JobPod = 2 * time.Minute
	// ContainerStart bounds waiting for a container to start, as kubectl logs
	// --pod-running-timeout=2m.
	ContainerStart = 2 * time.Minute
	// JobDone bounds waiting for an overlay's greeter Job to finish.
	JobDone = 5 * time.Minute
	// JobLinger: a load Job's greeter stays up this long after its report (-linger), so
	// that the suite's log follower has read the last line before the container exits:
	// the kubelet can end a follow at the exit before the last lines, and the pod (its
	// log with it) is gone moments later, as the Job was deleted to stop the load. The
	// follower reads lines within milliseconds of their writing; 2 s is ample, and well
	// inside the pod's 30 s grace period.
	JobLinger = 2 * time.Second
	// LoadSilence fails a load that reports no progress for this long.
	LoadSilence = 2 * time.Minute
	// Greeter bounds one greeter run from the host that is not a load.
	Greeter = 5 * time.Minute
	// PortForward bounds waiting for kubectl port-forward's local port.
	PortForward = 30 * time.Second
	// FirstCalls and Backends bound waiting for an entry point to answer, and to reach
	// every backend.
	FirstCalls = 2 * time.Minute
	Backends   = 3 * time.Minute
	// Poll is the default interval of Eventually.
	Poll = time.Second
)
