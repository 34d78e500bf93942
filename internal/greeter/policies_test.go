package greeter

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/exitcode"
)

func TestCapacityPolicyFlags(t *testing.T) {
	env := map[string]string{"GREETER_WRR_ERROR_PENALTY": "2"}
	c, err := parse(t, env, "-lb", "weighted_round_robin", "-wrr-blackout", "500ms", "-wrr-weight-update", "100ms", "-wrr-oob", "-wrr-oob-period", "1s")
	if err != nil {
		t.Fatal(err)
	}
	w := c.Dial.WRR
	if c.Dial.LB != dialer.WeightedRoundRobin || w.BlackoutPeriod != 500*time.Millisecond || w.WeightUpdatePeriod != 100*time.Millisecond ||
		!w.OOB || w.OOBReportingPeriod != time.Second || w.ErrorUtilizationPenalty != 2 || w.WeightExpirationPeriod != dialer.DefaultWRR().WeightExpirationPeriod ||
		!c.Dial.HealthCheck {
		t.Fatalf("parsed %+v", c.Dial)
	}
	c, err = parse(t, nil, "-lb", "least_request", "-lr-choices", "3")
	if err != nil || c.Dial.LeastRequestChoices != 3 || !c.Dial.HealthCheck {
		t.Fatalf("least_request: %v %+v", err, c.Dial)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-lb", "random"}, `lb "random": want one of round_robin, pick_first, weighted_round_robin, least_request`},
		{[]string{"-lb", "least_request_experimental"}, "want one of"},
		{[]string{"-wrr-blackout", "1s"}, "-wrr-blackout applies to -lb weighted_round_robin only (this run uses round_robin)"},
		{[]string{"-lb", "weighted_round_robin", "-lr-choices", "3"}, "-lr-choices applies to -lb least_request only"},
		{[]string{"-lb", "least_request", "-lr-choices", "1"}, "lr-choices 1 out of range 2-10"},
		{[]string{"-lb", "weighted_round_robin", "-wrr-weight-update", "0s"}, "wrr-weight-update must be positive"},
	} {
		_, err := parse(t, nil, tc.args...)
		if err == nil || !errors.Is(err, exitcode.ErrUsage) || exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
}

// -print-service-config shows each policy wrapped in outlier detection, but pick_first,
// which has nothing to compare its one backend with, and -outlier-detection=false.
func TestPrintServiceConfigOfEachPolicy(t *testing.T) {
	od := `"outlier_detection_experimental": {`
	for _, tc := range []struct {
		args []string
		want []string
		not  []string
	}{
		{[]string{"-lb", "round_robin"}, []string{od, `"childPolicy": [`, `"round_robin": {}`, `"interval": "0.5s"`, `"enforcementPercentage": 100`}, nil},
		{[]string{"-lb", "weighted_round_robin"}, []string{od, `"blackoutPeriod": "10s"`}, nil},
		{[]string{"-lb", "least_request"}, []string{od, `"choiceCount": 2`}, nil},
		{[]string{"-lb", "round_robin", "-outlier-threshold", "70", "-outlier-interval", "1s"}, []string{od, `"threshold": 70`, `"interval": "1s"`}, nil},
		{[]string{"-lb", "pick_first"}, []string{`"pick_first": {}`}, []string{"outlier"}},
		{[]string{"-lb", "round_robin", "-outlier-detection=false"}, []string{`"loadBalancingConfig": [`, `"round_robin": {}`}, []string{"outlier"}},
	} {
		c, err := parse(t, nil, append(tc.args, "-print-service-config")...)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := Run(context.Background(), c, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v -print-service-config lacks %s:\n%s", tc.args, w, out.String())
			}
		}
		for _, n := range tc.not {
			if strings.Contains(out.String(), n) {
				t.Errorf("%v -print-service-config has %s:\n%s", tc.args, n, out.String())
			}
		}
	}
}

// The node-loss defaults: keepalive at the servers' floor with a 2s timeout, outlier
// detection on; pick_first and xds:/// turn outlier detection off, and its flags are
// refused where it does not apply.
func TestNodeLossFlags(t *testing.T) {
	c, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Dial.Keepalive != 10*time.Second || c.Dial.KeepaliveTimeout != 2*time.Second || c.Dial.Outlier != dialer.DefaultOutlier() || !c.Dial.Outlier.Enabled {
		t.Fatalf("defaults: %+v", c.Dial)
	}
	c, err = parse(t, map[string]string{"GREETER_OUTLIER_DETECTION": "false", "GREETER_KEEPALIVE": "0"})
	if err != nil || c.Dial.Outlier.Enabled || c.Dial.Keepalive != 0 {
		t.Fatalf("switched off from the environment: %v %+v", err, c.Dial)
	}
	if c, err := parse(t, nil, "-lb", "pick_first"); err != nil || c.Dial.Outlier.Enabled {
		t.Fatalf("pick_first: %v %+v", err, c.Dial.Outlier)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-lb", "pick_first", "-outlier-detection"}, "pick_first sends every call to one backend"},
		{[]string{"-lb", "pick_first", "-outlier-threshold", "60"}, "-outlier-threshold applies with outlier detection only"},
		{[]string{"-outlier-detection=false", "-outlier-interval", "1s"}, "-outlier-interval applies with outlier detection only"},
		{[]string{"-outlier-min-hosts", "1"}, "outlier-min-hosts 1: at least 2"},
		{[]string{"-keepalive", "0", "-keepalive-timeout", "1s"}, "-keepalive-timeout applies with keepalive only"},
		{[]string{"-keepalive-timeout", "0s"}, "-keepalive-timeout must be positive"},
		{[]string{"-target", "xds:///h.ns.svc.cluster.local:50051", "-outlier-detection=false"}, "-outlier-detection does not apply to an xds:/// target"},
		{[]string{"-target", "xds:///h.ns.svc.cluster.local:50051", "-outlier-interval", "1s"}, "-outlier-interval does not apply to an xds:/// target"},
	} {
		_, err := parse(t, nil, tc.args...)
		if err == nil || exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
}
