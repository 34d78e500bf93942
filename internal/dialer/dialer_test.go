package dialer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
)

func TestCheckTarget(t *testing.T) {
	for _, tc := range []struct{ target, wantErr string }{
		{"dns:///hello-headless.default.svc.cluster.local:50051", ""},
		{"dns://127.0.0.1:53/hello.kit.test:50051", ""},
		{"127.0.0.1:8443", ""},
		{"passthrough:///anything", ""},
		{"", "target is empty"},
		{"dns://hello:50051", "three slashes"},
		{"dns:///hello", "want name:port"},
		{"dns:///:50051", "no host name"},
		{"dns:///hello:", "no port"},
		{"http://hello:80", `unknown scheme "http"`},
		{"hello", "want name:port"},
	} {
		err := CheckTarget(tc.target)
		if tc.wantErr == "" && err != nil {
			t.Errorf("CheckTarget(%q) = %v, want ok", tc.target, err)
		}
		if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("CheckTarget(%q) = %v, want error containing %q", tc.target, err, tc.wantErr)
		}
	}
}

func TestServiceConfigIsWhatGrpcAccepts(t *testing.T) {
	o := Options{Target: "dns:///h:1", LB: RoundRobin, Retry: true, HealthCheck: true,
		HealthService: "helloworld.Hello", Services: []string{"helloworld.Hello", "helloworld.Goodbye"}}
	sc, err := ServiceConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		LoadBalancingConfig []map[string]any `json:"loadBalancingConfig"`
		MethodConfig        []struct {
			Name        []map[string]string `json:"name"`
			RetryPolicy struct {
				MaxAttempts          int      `json:"maxAttempts"`
				RetryableStatusCodes []string `json:"retryableStatusCodes"`
			} `json:"retryPolicy"`
		} `json:"methodConfig"`
		HealthCheckConfig struct {
			ServiceName string `json:"serviceName"`
		} `json:"healthCheckConfig"`
	}
	if err := json.Unmarshal([]byte(sc), &got); err != nil {
		t.Fatal(err)
	}
	if _, ok := got.LoadBalancingConfig[0]["round_robin"]; !ok {
		t.Errorf("lb config %v", got.LoadBalancingConfig)
	}
	if len(got.MethodConfig) != 1 || len(got.MethodConfig[0].Name) != 2 || got.MethodConfig[0].RetryPolicy.MaxAttempts != 5 ||
		strings.Join(got.MethodConfig[0].RetryPolicy.RetryableStatusCodes, ",") != "UNAVAILABLE,UNKNOWN" {
		t.Errorf("method config %+v", got.MethodConfig)
	}
	if got.HealthCheckConfig.ServiceName != "helloworld.Hello" {
		t.Errorf("health check config %+v", got.HealthCheckConfig)
	}
	// grpc-go itself must accept it: NewClient parses the default service config.
	opts, err := DialOptions(o)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(o.Target, opts...)
	if err != nil {
		t.Fatalf("grpc rejects the service config: %v\n%s", err, sc)
	}
	cc.Close()

	o.Retry, o.HealthCheck, o.LB = false, false, PickFirst
	sc, _ = ServiceConfig(o)
	if strings.Contains(sc, "retryPolicy") || strings.Contains(sc, "healthCheckConfig") || !strings.Contains(sc, "pick_first") {
		t.Errorf("switches ignored:\n%s", sc)
	}
}

func TestValidate(t *testing.T) {
	base := Options{Target: "dns:///h:1", LB: RoundRobin}
	bad := base
	bad.LB, bad.HealthCheck, bad.Insecure, bad.CACert = "random", true, true, "ca.pem"
	err := bad.Validate()
	for _, want := range []string{`lb "random": want one of round_robin, pick_first, weighted_round_robin, least_request`, "-insecure and -cacert"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %q", err, want)
		}
	}
	pf := base
	pf.LB, pf.HealthCheck = PickFirst, true
	if err := pf.Validate(); err == nil || !strings.Contains(err.Error(), "health-check needs round_robin, weighted_round_robin or least_request") {
		t.Errorf("pick_first + health-check: %v", err)
	}
}

func TestCACertErrors(t *testing.T) {
	o := Options{Target: "dns:///h:1", LB: RoundRobin, CACert: filepath.Join(t.TempDir(), "missing.pem")}
	if _, err := DialOptions(o); err == nil || !strings.Contains(err.Error(), "read CA certificate") {
		t.Errorf("missing CA: %v", err)
	}
	junk := filepath.Join(t.TempDir(), "junk.pem")
	os.WriteFile(junk, []byte("not a cert"), 0o600)
	o.CACert = junk
	if _, err := DialOptions(o); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("junk CA: %v", err)
	}
}

// weighted_round_robin and least_request carry their knobs, and grpc-go parses them.
func TestCapacityPoliciesServiceConfig(t *testing.T) {
	wrr := DefaultWRR()
	wrr.BlackoutPeriod, wrr.WeightUpdatePeriod, wrr.OOB, wrr.OOBReportingPeriod = 500*time.Millisecond, 100*time.Millisecond, true, 2*time.Second
	for _, tc := range []struct {
		o    Options
		want []string
	}{
		{Options{Target: "dns:///h:1", LB: WeightedRoundRobin, WRR: wrr, HealthCheck: true, HealthService: "helloworld.Hello"}, []string{
			`"weighted_round_robin": {`, `"blackoutPeriod": "0.5s"`, `"weightExpirationPeriod": "180s"`, `"weightUpdatePeriod": "0.1s"`,
			`"errorUtilizationPenalty": 1`, `"enableOobLoadReport": true`, `"oobReportingPeriod": "2s"`, `"healthCheckConfig"`}},
		{Options{Target: "dns:///h:1", LB: WeightedRoundRobin, WRR: DefaultWRR()}, []string{`"enableOobLoadReport": false`, `"blackoutPeriod": "10s"`}},
		{Options{Target: "dns:///h:1", LB: LeastRequest, LeastRequestChoices: 3}, []string{`"least_request_experimental": {`, `"choiceCount": 3`}},
	} {
		if err := tc.o.Validate(); err != nil {
			t.Fatal(err)
		}
		sc, err := ServiceConfig(tc.o)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(sc, w) {
				t.Errorf("%s: service config lacks %s:\n%s", tc.o.LB, w, sc)
			}
		}
		if !tc.o.WRR.OOB && strings.Contains(sc, "oobReportingPeriod") {
			t.Errorf("oobReportingPeriod without OOB:\n%s", sc)
		}
		cc, err := Dial(tc.o)
		if err != nil {
			t.Fatalf("grpc rejects the service config: %v\n%s", err, sc)
		}
		cc.Close()
	}

	bad := Options{Target: "dns:///h:1", LB: WeightedRoundRobin, WRR: WRR{BlackoutPeriod: -time.Second, ErrorUtilizationPenalty: -1}}
	err := bad.Validate()
	for _, want := range []string{"wrr-blackout is negative", "wrr-weight-expiration must be positive", "wrr-weight-update must be positive", "wrr-error-penalty -1 is negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %q", err, want)
		}
	}
	if err := (Options{Target: "dns:///h:1", LB: LeastRequest, LeastRequestChoices: 1}).Validate(); err == nil || !strings.Contains(err.Error(), "lr-choices 1 out of range 2-10") {
		t.Errorf("choiceCount 1: %v", err)
	}
}

// Outlier detection wraps each policy the greeter offers but pick_first, grpc-go has it
// registered (through the grpc/xds import) and parses the config, and bad knobs are
// refused before anything is dialled.
func TestOutlierDetectionServiceConfig(t *testing.T) {
	if balancer.Get(OutlierDetectionPolicy) == nil {
		t.Fatalf("%s is not registered: the import of google.golang.org/grpc/xds registers it", OutlierDetectionPolicy)
	}
	for _, lb := range []string{RoundRobin, WeightedRoundRobin, LeastRequest} {
		o := Options{Target: "dns:///h:1", LB: lb, WRR: DefaultWRR(), LeastRequestChoices: DefaultLeastRequestChoices, Outlier: DefaultOutlier(),
			HealthCheck: true, HealthService: "helloworld.Hello"}
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		sc, err := ServiceConfig(o)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			LB []map[string]struct {
				Interval           string `json:"interval"`
				BaseEjectionTime   string `json:"baseEjectionTime"`
				MaxEjectionPercent int    `json:"maxEjectionPercent"`
				Failure            struct {
					Threshold, EnforcementPercentage, MinimumHosts, RequestVolume int
				} `json:"failurePercentageEjection"`
				Child []map[string]json.RawMessage `json:"childPolicy"`
			} `json:"loadBalancingConfig"`
		}
		if err := json.Unmarshal([]byte(sc), &got); err != nil {
			t.Fatal(err)
		}
		od, ok := got.LB[0][OutlierDetectionPolicy]
		f := od.Failure
		if !ok || len(got.LB) != 1 || od.Interval != "0.5s" || od.BaseEjectionTime != "30s" || od.MaxEjectionPercent != 20 ||
			f.Threshold != 50 || f.EnforcementPercentage != 100 || f.MinimumHosts != 2 || f.RequestVolume != 10 {
			t.Errorf("%s: outlier detection config %+v\n%s", lb, got, sc)
		}
		if len(od.Child) != 1 || od.Child[0][policyName(lb)] == nil {
			t.Errorf("%s: child policy %v\n%s", lb, od.Child, sc)
		}
		cc, err := Dial(o)
		if err != nil {
			t.Fatalf("%s: grpc rejects the service config: %v\n%s", lb, err, sc)
		}
		cc.Close()
	}

	pf := Options{Target: "dns:///h:1", LB: PickFirst, Outlier: DefaultOutlier()}
	if err := pf.Validate(); err == nil || !strings.Contains(err.Error(), "pick_first sends every call to one backend") {
		t.Errorf("pick_first with outlier detection: %v", err)
	}
	off := Options{Target: "dns:///h:1", LB: RoundRobin}
	if sc, _ := ServiceConfig(off); strings.Contains(sc, OutlierDetectionPolicy) {
		t.Errorf("outlier detection off, still in the service config:\n%s", sc)
	}
	bad := Options{Target: "dns:///h:1", LB: RoundRobin, Outlier: Outlier{Enabled: true, Threshold: 100, MinimumHosts: 1, MaxEjectionPercent: 0}}
	err := bad.Validate()
	for _, want := range []string{"outlier-interval must be positive", "outlier-base-ejection must be positive", "outlier-max-ejection-percent 0 out of range",
		"outlier-threshold 100 out of range", "outlier-min-hosts 1: at least 2", "outlier-request-volume 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %q", err, want)
		}
	}
}

// Keepalive's timeout defaults to DefaultKeepaliveTimeout and grpc-go takes the options.
func TestKeepaliveOptions(t *testing.T) {
	for _, o := range []Options{
		{Target: "dns:///h:1", LB: RoundRobin, Keepalive: DefaultKeepalive},
		{Target: "dns:///h:1", LB: RoundRobin, Keepalive: DefaultKeepalive, KeepaliveTimeout: time.Second},
	} {
		cc, err := Dial(o)
		if err != nil {
			t.Fatal(err)
		}
		cc.Close()
	}
	if err := (Options{Target: "dns:///h:1", LB: RoundRobin, Keepalive: -time.Second}).Validate(); err == nil {
		t.Error("negative keepalive accepted")
	}
}
