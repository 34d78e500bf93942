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

func TestPrintServiceConfigOfEachPolicy(t *testing.T) {
	for lb, want := range map[string]string{
		"round_robin":          `"round_robin": {}`,
		"weighted_round_robin": `"blackoutPeriod": "10s"`,
		"least_request":        `"choiceCount": 2`,
	} {
		c, err := parse(t, nil, "-lb", lb, "-print-service-config")
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := Run(context.Background(), c, &out, io.Discard); err != nil || !strings.Contains(out.String(), want) {
			t.Errorf("-lb %s -print-service-config: %v\n%s\nwant %s", lb, err, out.String(), want)
		}
	}
}
