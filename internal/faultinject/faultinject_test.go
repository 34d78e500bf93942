package faultinject

import (
	"encoding/json"
	"math"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestParseCode(t *testing.T) {
	for in, want := range map[string]codes.Code{"UNAVAILABLE": codes.Unavailable, "Internal": codes.Internal, "INVALID_ARGUMENT": codes.InvalidArgument} {
		if got, err := ParseCode(in); err != nil || got != want {
			t.Errorf("ParseCode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"OK", "unavailable", "", "Code(20)", "14"} {
		if _, err := ParseCode(bad); err == nil || !strings.Contains(err.Error(), "want a gRPC status code other than OK, e.g. UNAVAILABLE") {
			t.Errorf("ParseCode(%q) = %v, want an error naming what is expected", bad, err)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		s    Setting
		want string // "" = valid
	}{
		{Setting{}, ""},
		{Setting{Code: codes.Unavailable, Fraction: 1}, ""},
		{Setting{Code: codes.Unavailable, Fraction: 0}, ""}, // off, keeping the code
		{Setting{Code: codes.Unavailable, Fraction: 1.5}, "error fraction 1.5 out of range: want 0 (off) to 1"},
		{Setting{Code: codes.Unavailable, Fraction: -0.1}, "out of range"},
		{Setting{Code: codes.Unavailable, Fraction: math.NaN()}, "out of range"},
		{Setting{Code: codes.Unavailable, Fraction: 1e-9}, "below one call in a million"},
		{Setting{Fraction: 0.5}, "OK is not an error"},
		{Setting{Code: 30, Fraction: 0.5}, "not a gRPC status code"},
	} {
		err := tc.s.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: Validate = %v, want %q", tc.s, err, tc.want)
		}
	}
}

// The failed calls are spread evenly: any run of calls fails the fraction of them,
// to within one call.
func TestKnobSpreadsFailures(t *testing.T) {
	var k Knob
	if k.Fail() != nil || !k.Get().Off() {
		t.Fatal("the zero knob fails calls")
	}
	for _, f := range []float64{1, 0.5, 0.25, 0.1, 0.07, 1.0 / 3} {
		if err := k.Set(Setting{Code: codes.Unavailable, Fraction: f}); err != nil {
			t.Fatal(err)
		}
		failed, pattern := 0, ""
		for i := range 1000 {
			err := k.Fail()
			if err != nil {
				failed++
			}
			if i < 8 {
				pattern += map[bool]string{true: "x", false: "."}[err != nil]
			}
			if want := int(math.Floor(float64(i+1) * f)); failed < want-1 || failed > want+1 {
				t.Fatalf("fraction %g: %d failed after %d calls, want about %d", f, failed, i+1, want)
			}
		}
		t.Logf("fraction %g: first calls %s, %d of 1000 failed", f, pattern, failed)
	}
	if err := k.Set(Setting{Code: codes.Unavailable, Fraction: 0.5}); err != nil {
		t.Fatal(err)
	}
	// A new setting starts its own count: calls 1, 3, 5 ... (from 0) fail.
	if k.Fail() != nil || k.Fail() == nil {
		t.Error("fraction 0.5: want the second call of a new setting to fail, not the first")
	}
}

func TestKnobError(t *testing.T) {
	var k Knob
	if err := k.Set(Setting{Code: codes.InvalidArgument, Fraction: 1}); err != nil {
		t.Fatal(err)
	}
	err := k.Fail()
	st, _ := status.FromError(err)
	if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "error injected by the test knob of the admin endpoint (POST /admin/errors: INVALID_ARGUMENT for 100% of the calls") {
		t.Fatalf("error %v", err)
	}
	if err := k.Set(Setting{Code: codes.Internal, Fraction: 2}); err == nil || k.Get().Code != codes.InvalidArgument {
		t.Fatalf("a bad setting was taken: %v %+v", err, k.Get())
	}
	if err := k.Set(Setting{Code: codes.InvalidArgument}); err != nil || k.Fail() != nil {
		t.Fatalf("fraction 0 still fails calls (%v)", err)
	}
	b, _ := json.Marshal(&k)
	if string(b) != `{"code":"INVALID_ARGUMENT","fraction":0,"injected":1}` {
		t.Fatalf("JSON %s", b)
	}
}

// Calls from many goroutines: the count of failures stays exact.
func TestKnobConcurrent(t *testing.T) {
	var k Knob
	if err := k.Set(Setting{Code: codes.Internal, Fraction: 0.25}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				k.Fail()
			}
		})
	}
	wg.Wait()
	if k.Injected() != 2000 {
		t.Fatalf("%d of 8000 calls failed, want 2000", k.Injected())
	}
}

func TestParseFraction(t *testing.T) {
	if f, err := ParseFraction("0.25"); err != nil || f != 0.25 {
		t.Fatalf("0.25: %v %v", f, err)
	}
	for in, want := range map[string]string{
		"half": `error fraction "half" is not a number: want 0 (off) to 1`,
		"50%":  "is not a number",
		"2":    "error fraction 2 out of range",
		"-1":   "out of range",
		"NaN":  "out of range",
	} {
		if _, err := ParseFraction(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseFraction(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}
