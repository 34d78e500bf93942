package serverkit

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// POST /admin/errors, end to end over real listeners: the kit's calls fail with the code
// and fraction asked, unary and streaming; health checks and reflection never do; the
// metrics count the failures under their code (what the error-rate alert reads); and
// fraction=0 turns it off.
func TestInjectedErrors(t *testing.T) {
	r := start(t, func(c *Config) { c.AdminEnabled = true })
	c := pb.NewHelloClient(r.cc)
	ctx := context.Background()

	if code, body := r.get(t, "/admin/errors"); code != 200 || !strings.Contains(body, `"code": "OK"`) || !strings.Contains(body, `"fraction": 0`) {
		t.Fatalf("GET /admin/errors at start: HTTP %d %s, want off", code, body)
	}
	if code, body := r.post(t, "/admin/errors?code=UNAVAILABLE&fraction=0.5"); code != 200 || !strings.Contains(body, `"code": "UNAVAILABLE"`) || !strings.Contains(body, `"fraction": 0.5`) {
		t.Fatalf("POST /admin/errors?code=UNAVAILABLE&fraction=0.5: HTTP %d %s", code, body)
	}
	failed := 0
	for range 10 {
		_, err := c.SayHello(ctx, &pb.SayHelloRequest{Name: "x"})
		if err == nil {
			continue
		}
		failed++
		if st, _ := status.FromError(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "error injected by the test knob of the admin endpoint (POST /admin/errors") {
			t.Fatalf("injected error: %v", err)
		}
	}
	if failed != 5 {
		t.Errorf("fraction 0.5 failed %d of 10 calls, want 5", failed)
	}
	// Never health checks nor reflection, however many.
	for range 10 {
		if _, err := healthpb.NewHealthClient(r.cc).Check(ctx, &healthpb.HealthCheckRequest{Service: pb.Hello_ServiceDesc.ServiceName}); err != nil {
			t.Fatalf("health check failed with the knob on: %v", err)
		}
	}
	refl, err := reflectionpb.NewServerReflectionClient(r.cc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if err := refl.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		if resp, err := refl.Recv(); err != nil || resp.GetListServicesResponse() == nil {
			t.Fatalf("reflection with the knob on: %v %v", resp, err)
		}
	}
	refl.CloseSend()

	// The caller's-mistake code, on every call, streams included (they fail as they open).
	if code, body := r.post(t, "/admin/errors?code=INVALID_ARGUMENT&fraction=1"); code != 200 {
		t.Fatalf("POST code=INVALID_ARGUMENT: HTTP %d %s", code, body)
	}
	if _, err := c.SayHello(ctx, &pb.SayHelloRequest{Name: "x"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("fraction 1, INVALID_ARGUMENT: %v", err)
	}
	stream, err := c.StreamHellos(ctx, &pb.StreamHellosRequest{Name: "x"})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("stream with fraction 1: %v, want the injected INVALID_ARGUMENT", err)
	}

	// Off: fraction=0 alone; the code stays, shown with the count of calls failed.
	if code, body := r.post(t, "/admin/errors?fraction=0"); code != 200 || !strings.Contains(body, `"code": "INVALID_ARGUMENT"`) || !strings.Contains(body, `"injected": 7`) {
		t.Fatalf("POST fraction=0: HTTP %d %s, want the knob off after 7 injected errors", code, body)
	}
	for range 5 {
		if _, err := c.SayHello(ctx, &pb.SayHelloRequest{Name: "x"}); err != nil {
			t.Fatalf("knob off, still failing: %v", err)
		}
	}

	_, metrics := r.get(t, "/metrics")
	for _, tc := range []struct {
		method, code string
		want         int
	}{{"SayHello", "Unavailable", 5}, {"SayHello", "InvalidArgument", 1}, {"StreamHellos", "InvalidArgument", 1}, {"SayHello", "OK", 10}} {
		if got := handled(t, metrics, tc.method, tc.code); got != tc.want {
			t.Errorf("grpc_server_handled_total of %s with %s = %d, want %d", tc.method, tc.code, got, tc.want)
		}
	}
}

// handled reads grpc_server_handled_total of a helloworld.Hello method and code from a
// /metrics page.
func handled(t *testing.T, page, method, code string) int {
	t.Helper()
	re := regexp.MustCompile(fmt.Sprintf(`(?m)^grpc_server_handled_total\{grpc_code="%s",grpc_method="%s",grpc_service="helloworld.Hello",grpc_type="[a-z_]+"\} (\d+)$`, code, method))
	m := re.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no grpc_server_handled_total for %s %s in /metrics", method, code)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestInjectedErrorsAdminValidates(t *testing.T) {
	r := start(t, func(c *Config) { c.AdminEnabled = true })
	for _, tc := range []struct {
		q    string
		code int
		want string
	}{
		{"", 400, "give code, fraction or both, e.g. POST /admin/errors?code=UNAVAILABLE&fraction=0.5"},
		{"?fraction=0.5", 400, "OK is not an error: give a code such as UNAVAILABLE"},
		{"?code=BROKEN&fraction=0.5", 400, `error code "BROKEN": want a gRPC status code other than OK, e.g. UNAVAILABLE`},
		{"?code=OK&fraction=0.5", 400, `error code "OK"`},
		{"?code=UNAVAILABLE&fraction=half", 400, `error fraction "half" is not a number: want 0 (off) to 1`},
		{"?code=UNAVAILABLE&fraction=2", 400, "error fraction 2 out of range"},
		{"?code=UNAVAILABLE&fraction=NaN", 400, "out of range"},
		{"?code=NOPE&fraction=-1", 400, `error code "NOPE"`}, // both named at once
		{"?code=Internal&fraction=0.25", 200, `"code": "INTERNAL"`},
		{"?code=UNAVAILABLE", 200, `"fraction": 0.25`}, // the fraction left out is kept
	} {
		code, body := r.post(t, "/admin/errors"+tc.q)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("POST /admin/errors%s: HTTP %d %q, want %d with %q", tc.q, code, body, tc.code, tc.want)
		}
		if tc.q == "?code=NOPE&fraction=-1" && !strings.Contains(body, "error fraction -1 out of range") {
			t.Errorf("POST /admin/errors%s: %q names one problem, want both", tc.q, body)
		}
	}
	if code, body := r.get(t, "/admin/errors"); code != 200 || !strings.Contains(body, `"code": "UNAVAILABLE"`) || !strings.Contains(body, `"fraction": 0.25`) {
		t.Errorf("GET /admin/errors: HTTP %d %s", code, body)
	}

	// Without --admin: refused, and no call fails.
	off := start(t, nil)
	if code, body := off.post(t, "/admin/errors?code=UNAVAILABLE&fraction=1"); code != http.StatusForbidden || !strings.Contains(body, "--admin (ADMIN=true)") {
		t.Errorf("POST /admin/errors without --admin: HTTP %d %s, want 403", code, body)
	}
	if _, err := pb.NewHelloClient(off.cc).SayHello(context.Background(), &pb.SayHelloRequest{Name: "x"}); err != nil {
		t.Errorf("a call failed on a server without --admin: %v", err)
	}
}
