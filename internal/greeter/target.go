package greeter

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"google.golang.org/grpc/resolver"

	"github.com/grpc-k8s-kit/grpc-k8s-kit/internal/dialer"
)

// TargetHostPort returns the name and port that a -target (Config.Dial.Target) resolves
// through DNS: dns://[server]/host:port, or host:port, which grpc.NewClient also resolves
// with its default scheme, dns. Targets of other schemes (passthrough, unix, xds) name no
// DNS host: an error.
func TargetHostPort(target string) (host string, port int, err error) {
	if err := dialer.CheckTarget(target); err != nil {
		return "", 0, err
	}
	endpoint := target
	if scheme, _, ok := strings.Cut(target, "://"); ok {
		if scheme != "dns" {
			return "", 0, fmt.Errorf("target %q: scheme %q is not resolved through DNS", target, scheme)
		}
		u, err := url.Parse(target)
		if err != nil {
			return "", 0, fmt.Errorf("target %q: %w", target, err)
		}
		endpoint = resolver.Target{URL: *u}.Endpoint() // what grpc-go's dns resolver looks up
	}
	host, p, err := net.SplitHostPort(endpoint)
	if err != nil {
		return "", 0, fmt.Errorf("target %q: %w", target, err)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("target %q: port %q is not a number in 1-65535", target, p)
	}
	return host, port, nil
}
