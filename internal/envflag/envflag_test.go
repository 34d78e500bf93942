package envflag

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestPrecedenceFlagOverEnvOverDefault(t *testing.T) {
	env := map[string]string{"APP_HTTP_PORT": "9090", "APP_PORT": "7000", "APP_NAME": ""}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	port := fs.Int("port", 1, "")
	httpPort := fs.Int("http-port", 2, "")
	name := fs.String("name", "def", "")
	if err := Parse(fs, []string{"-port", "5000"}, "APP_", func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *port != 5000 || *httpPort != 9090 || *name != "def" {
		t.Fatalf("port=%d http-port=%d name=%q, want 5000 (flag), 9090 (env), def (empty env ignored)", *port, *httpPort, *name)
	}
}

func TestBadEnvValueNamesTheVariable(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Duration("drain-delay", 0, "")
	err := Parse(fs, nil, "", func(k string) string {
		if k == "DRAIN_DELAY" {
			return "five"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), `DRAIN_DELAY="five"`) {
		t.Fatalf("err = %v, want it to name DRAIN_DELAY and the value", err)
	}
}

func TestAnnotateUsage(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Bool("health-check", true, "watch health")
	AnnotateUsage(fs, "GREETER_")
	if u := fs.Lookup("health-check").Usage; u != "watch health (env GREETER_HEALTH_CHECK)" {
		t.Fatalf("usage %q", u)
	}
}
