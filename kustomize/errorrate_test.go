package kustomize

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/doctor"
)

// `greeter doctor -prometheus` judges the live error rate by doctor.KitErrorRate, the
// alert GrpcServerErrorRateHigh as a Go table. The alert itself lives in
// components/prometheus-rule: these tests read it from the render and fail when the two
// say different things. The alert counts codes and compares with its threshold; the
// recording rule it reads says which services are counted, over which window.

var (
	codeMatcher    = regexp.MustCompile(`grpc_code\s*=~\s*("(?:[^"\\]|\\.)*")`)
	serviceMatcher = regexp.MustCompile(`grpc_service\s*=~\s*("(?:[^"\\]|\\.)*")`)
	rangeSelector  = regexp.MustCompile(`\[\s*([0-9a-z]+)\s*\]`)
	comparison     = regexp.MustCompile(`>\s*([0-9.eE+-]+)\s*$`)
)

// errorRateDiffs compares an alert's expression, a ratio of failed calls to all calls
// compared with a threshold, and the expression of the recording rule it reads (the rate
// of the raw metric) with what r says it counts.
func errorRateDiffs(alert, source string, r doctor.ErrorRateRule) []string {
	var diffs []string
	codes := codeMatcher.FindAllStringSubmatch(alert, -1)
	if len(codes) != 1 || strings.Index(alert, "grpc_code") > strings.Index(alert, "/") {
		diffs = append(diffs, fmt.Sprintf("want one grpc_code=~ matcher, in the numerator; have %d", len(codes)))
	} else if re, err := strconv.Unquote(codes[0][1]); err != nil {
		diffs = append(diffs, fmt.Sprintf("grpc_code matcher %s: %v", codes[0][1], err))
	} else {
		have := strings.Split(re, "|")
		want := r.CodeNames()
		slices.Sort(have)
		slices.Sort(want)
		if !slices.Equal(have, want) {
			diffs = append(diffs, fmt.Sprintf("grpc_code=~%q counts %v; the doctor counts %v", re, have, want))
		}
	}
	services := serviceMatcher.FindAllStringSubmatch(source, -1)
	if len(services) == 0 {
		diffs = append(diffs, "no grpc_service=~ matcher: the doctor counts only grpc_service=~"+strconv.Quote(r.Services))
	}
	for _, m := range services {
		if re, err := strconv.Unquote(m[1]); err != nil || re != r.Services {
			diffs = append(diffs, fmt.Sprintf("grpc_service=~%s; the doctor counts grpc_service=~%q", m[1], r.Services))
		}
	}
	ranges := rangeSelector.FindAllStringSubmatch(source, -1)
	if len(ranges) == 0 {
		diffs = append(diffs, "no range selector: the doctor's window is "+model.Duration(r.Window).String())
	}
	for _, m := range ranges {
		if d, err := model.ParseDuration(m[1]); err != nil || d != model.Duration(r.Window) {
			diffs = append(diffs, fmt.Sprintf("window [%s]; the doctor's is %s", m[1], model.Duration(r.Window)))
		}
	}
	if m := comparison.FindStringSubmatch(alert); m == nil {
		diffs = append(diffs, "the expression does not end in > THRESHOLD")
	} else if v, err := strconv.ParseFloat(m[1], 64); err != nil || v != r.Ratio {
		diffs = append(diffs, fmt.Sprintf("threshold > %s; the doctor's is %g", m[1], r.Ratio))
	}
	return diffs
}

// kitErrorRateExpr renders the component and returns the alert's expression and that of
// the one recording rule it reads.
func kitErrorRateExpr(t *testing.T, alert string) (expr, source string) {
	t.Helper()
	objs, err := render(compose(t, []string{"base"}, []string{"components/prometheus-rule"}, "", nil))
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	recorded := map[string]string{}
	for _, o := range objs {
		pr, ok := o.Obj.(*monitoringv1.PrometheusRule)
		if !ok {
			continue
		}
		for _, g := range pr.Spec.Groups {
			for _, r := range g.Rules {
				if r.Alert == alert {
					found = append(found, r.Expr.String())
				}
				if r.Record != "" {
					recorded[r.Record] = r.Expr.String()
				}
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one alert %s in components/prometheus-rule, found %d", alert, len(found))
	}
	var sources []string
	for name, e := range recorded {
		if strings.Contains(found[0], name) {
			sources = append(sources, e)
		}
	}
	if len(sources) != 1 {
		t.Fatalf("want the alert %s to read one recording rule, it reads %d:\n%s", alert, len(sources), found[0])
	}
	return found[0], sources[0]
}

func TestDoctorJudgesErrorsAsTheAlert(t *testing.T) {
	r := doctor.KitErrorRate()
	expr, source := kitErrorRateExpr(t, r.Alert)
	for _, d := range errorRateDiffs(expr, source, r) {
		t.Errorf("alert %s and doctor.KitErrorRate differ: %s\n%s\nreading\n%s", r.Alert, d, expr, source)
	}
}

// The comparison sees each way the two can drift apart.
func TestErrorRateDiffsCatchDrift(t *testing.T) {
	r := doctor.KitErrorRate()
	expr, source := kitErrorRateExpr(t, r.Alert)
	for _, tc := range []struct {
		name, old, new, want string
		inSource             bool // the change is to the recording rule, not the alert
	}{
		{"threshold", "> " + strconv.FormatFloat(r.Ratio, 'g', -1, 64), "> 0.5", "threshold > 0.5", false},
		{"a code dropped", "|" + r.Codes[len(r.Codes)-1].String(), "", "grpc_code=~", false},
		{"a code added", r.Codes[0].String() + "|", r.Codes[0].String() + "|InvalidArgument|", "InvalidArgument", false},
		{"window", "[" + model.Duration(r.Window).String() + "]", "[10m]", "window [10m]", true},
		{"services", strconv.Quote(r.Services), `"helloworld\\.Hello"`, "grpc_service=~", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, src := expr, source
			target := &e
			if tc.inSource {
				target = &src
			}
			if !strings.Contains(*target, tc.old) {
				t.Fatalf("the expression has no %q to change:\n%s", tc.old, *target)
			}
			*target = strings.Replace(*target, tc.old, tc.new, 1)
			diffs := errorRateDiffs(e, src, r)
			if !slices.ContainsFunc(diffs, func(d string) bool { return strings.Contains(d, tc.want) }) {
				t.Errorf("changing %q to %q: want a difference naming %q, got %q", tc.old, tc.new, tc.want, diffs)
			}
		})
	}
}
