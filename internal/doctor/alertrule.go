package doctor

import (
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
)

// ErrorRateRule is an alert on the share of calls that fail on the server: which calls it
// counts, which of them as failures, over what window, and above what share it fires.
type ErrorRateRule struct {
	Alert    string        // the alert's name in the PrometheusRule
	Services string        // RE2 regexp on grpc_service: the kit's own services, not the kubelet's health probes
	Codes    []codes.Code  // grpc_code values that point at the server, not at the caller
	Window   time.Duration // of the alert's rate()s
	Ratio    float64       // the alert fires above this share of calls
}

// KitErrorRate is the kit's alert GrpcServerErrorRateHigh
// (kustomize/components/prometheus-rule/prometheusrule.yaml). The errorRate check judges
// the live rate by it, so that `greeter doctor -prometheus` and the alert agree on what
// too many errors means. The kustomize tests (errorrate_test.go) read the alert's
// expression through the render path and fail when this table and the file differ.
func KitErrorRate() ErrorRateRule {
	return ErrorRateRule{
		Alert:    "GrpcServerErrorRateHigh",
		Services: `helloworld\..+`,
		Codes: []codes.Code{codes.Unknown, codes.Internal, codes.Unavailable, codes.DeadlineExceeded,
			codes.ResourceExhausted, codes.DataLoss, codes.Unimplemented},
		Window: 5 * time.Minute,
		Ratio:  0.05,
	}
}

// counts says whether a grpc_code label value is one of the rule's failures.
func (r ErrorRateRule) counts(code string) bool {
	return slices.ContainsFunc(r.Codes, func(c codes.Code) bool { return c.String() == code })
}

// CodeNames are the rule's codes as the grpc_code label writes them.
func (r ErrorRateRule) CodeNames() []string {
	out := make([]string, len(r.Codes))
	for i, c := range r.Codes {
		out[i] = c.String()
	}
	return out
}

func (r ErrorRateRule) codeList() string { return strings.Join(r.CodeNames(), ", ") }
