package dialer

import (
	"errors"
	"fmt"
	"time"
)

// Outlier holds the knobs of outlier detection (gRFC A50, grpc-go's
// outlier_detection_experimental) with failure-percentage ejection, the one algorithm the
// kit uses. Every Interval it looks at the calls each backend finished during the last
// interval; a backend with at least RequestVolume of them, more than Threshold percent of
// them failed, while at least MinimumHosts backends had RequestVolume calls, is ejected
// for BaseEjectionTime (times the number of ejections in a row), unless MaxEjectionPercent
// of the backends are already out. An ejected backend looks TRANSIENT_FAILURE to the
// policy it wraps, which stops picking it.
//
// What counts as a failure (grpc-go v1.85.0): every attempt that was given a connection
// reports its end to the policy with its error (stream.go:1355), and outlier detection
// counts it a success when that error is nil and a failure otherwise
// (internal/xds/balancer/outlierdetection/balancer.go:470-474): any status but OK, the
// server's own (INVALID_ARGUMENT, RESOURCE_EXHAUSTED included) and the client's
// (DEADLINE_EXCEEDED, CANCELLED) alike, each attempt of a retried call on its own. A call
// that got no connection (no backend ready: UNAVAILABLE at once, or its deadline passed
// while it waited for one) is never counted: the pick failed before there was a backend
// to blame (picker_wrapper.go:124-134, 157-176). A pick whose backend turned out not to
// be ready any more is reported as a success with nothing sent, then picked again
// (picker_wrapper.go:190-193).
//
// DefaultOutlier sizes it for the kit's deployments, 2 to 5 pods, so that a pod on a lost
// node, which takes calls and never answers, leaves the rotation soon after its first
// calls time out.
type Outlier struct {
	Enabled bool
	// Interval between two sweeps (A50's default: 10s).
	Interval time.Duration
	// BaseEjectionTime is how long an ejected backend stays out, times the number of
	// ejections in a row (A50's default: 30s).
	BaseEjectionTime time.Duration
	// MaxEjectionPercent: no ejection while at least this percentage of the backends is
	// ejected (A50's default: 10; the first ejection is always allowed).
	MaxEjectionPercent int
	// Threshold: a backend whose failed calls were more than this percentage of its calls
	// in the interval is an outlier (A50's default: 85).
	Threshold int
	// MinimumHosts: no sweep unless at least this many backends had RequestVolume calls
	// in the interval (A50's default: 5).
	MinimumHosts int
	// RequestVolume: the calls a backend must have finished in the interval to be judged
	// (A50's default: 50).
	RequestVolume int
}

// DefaultOutlier is the kit's outlier detection. With a per-call deadline D, a backend
// that stops answering while the others answer is ejected at most D + 2 × Interval after
// it stopped: its first calls fail at their deadline, the interval in which they start to
// fail may hold too few of them, and the next one holds nothing else. Each bound:
//
//   - Interval 0.5s: the sweep's period is most of the window after the deadline (up to
//     two intervals), so short; a sweep walks the backends, a few microseconds every
//     half second. Shorter would also shrink the calls a backend has per interval and so
//     need a higher call rate for RequestVolume.
//   - RequestVolume 10: a backend is judged on at least 10 calls. Fewer makes the verdict
//     noisy: when 10 % of all calls fail on every pod alike, a backend judged on 5 calls
//     shows 3 failures or more (over the threshold) once in about 120 sweeps, at 3 pods
//     and 2 sweeps a second an ejection every 20s; judged on 10 calls, 6 or more once in
//     about 6 800. The price: ejection needs at least 10 finished calls per backend per
//     half second, 20 calls/s per pod (60 calls/s over 3 pods). Slower clients get no
//     ejection; keepalive (DefaultKeepalive + DefaultKeepaliveTimeout) still closes a
//     lost node's connection.
//   - Threshold 50: ejected when most of its calls failed. A lost or frozen pod fails all
//     of them; a pod with a fault of its own (a broken dependency, timeouts on every other
//     call) fails more than half; errors the client causes on every pod alike (bad input,
//     INVALID_ARGUMENT) are not outliers but hit every pod at the same rate, and below
//     50 % they eject nothing. A lower threshold would eject a pod in the interval the
//     first timeouts arrive a little sooner, but never later than the bound above.
//   - MinimumHosts 2: the sweep needs two backends with calls to compare. Never 1: the
//     first ejection is allowed whatever MaxEjectionPercent says, so with 1 a client with
//     one address (through a proxy or a ClusterIP Service) would eject its only backend
//     and fail every call. 2 (A50's default is 5) lets a deployment of 2 pods eject one.
//   - MaxEjectionPercent 20: one pod of 2 to 5, a fifth of larger deployments. grpc-go
//     refuses an ejection while ejected/total ≥ this percentage: with 3 pods, 34 would
//     let a second go (1/3 < 34 %) and leave one pod for everything. A node loss takes
//     one pod when the replicas are spread across nodes (kustomize/base), and when every
//     pod fails (bad input, an outage behind them) ejecting more moves the load, not the
//     failures.
//   - BaseEjectionTime 30s (A50's default): longer than keepalive's 12s (Time + Timeout),
//     so by the time a lost pod comes back into the rotation its dead connection has been
//     closed, it is reconnecting or gone from DNS, and no call goes to it; a second
//     ejection in a row lasts 60s. A pod ejected by mistake loses its share for 30s, and
//     nothing fails for it. The ejection multiplier falls by one every sweep without an
//     ejection, so at this interval it is back at 0 a few sweeps after the backend
//     returns, and the maximum ejection time (A50's 300s, left as is) is never reached.
func DefaultOutlier() Outlier {
	return Outlier{Enabled: true, Interval: 500 * time.Millisecond, BaseEjectionTime: 30 * time.Second,
		MaxEjectionPercent: 20, Threshold: 50, MinimumHosts: 2, RequestVolume: 10}
}

func (od Outlier) validate() error {
	var errs []error
	if od.Interval <= 0 {
		errs = append(errs, fmt.Errorf("outlier-interval must be positive (%s)", od.Interval))
	}
	if od.BaseEjectionTime <= 0 {
		errs = append(errs, fmt.Errorf("outlier-base-ejection must be positive (%s)", od.BaseEjectionTime))
	}
	if od.MaxEjectionPercent < 1 || od.MaxEjectionPercent > 100 {
		errs = append(errs, fmt.Errorf("outlier-max-ejection-percent %d out of range 1-100", od.MaxEjectionPercent))
	}
	if od.Threshold < 0 || od.Threshold > 99 {
		errs = append(errs, fmt.Errorf("outlier-threshold %d out of range 0-99 (a backend is ejected above it)", od.Threshold))
	}
	if od.MinimumHosts < 2 {
		errs = append(errs, fmt.Errorf("outlier-min-hosts %d: at least 2, else a client with one address (a proxy) would eject it and fail every call", od.MinimumHosts))
	}
	if od.RequestVolume < 1 {
		errs = append(errs, fmt.Errorf("outlier-request-volume %d must be at least 1", od.RequestVolume))
	}
	return errors.Join(errs...)
}

// config is outlier detection's loadBalancingConfig entry around child (the wrapped
// policy's loadBalancingConfig list).
func (od Outlier) config(child []map[string]any) map[string]any {
	return map[string]any{
		"interval":           seconds(od.Interval),
		"baseEjectionTime":   seconds(od.BaseEjectionTime),
		"maxEjectionPercent": od.MaxEjectionPercent,
		"failurePercentageEjection": map[string]any{
			"threshold": od.Threshold,
			// grpc-go's default is 0: the algorithm runs and ejects nothing.
			"enforcementPercentage": 100,
			"minimumHosts":          od.MinimumHosts,
			"requestVolume":         od.RequestVolume,
		},
		"childPolicy": child,
	}
}
