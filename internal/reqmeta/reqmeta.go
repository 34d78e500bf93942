// Package reqmeta picks the request metadata a reply echoes: custom "x-" keys only, bounded,
// so callers can see which headers reached the server (header routing, headers added by an
// ingress or a Gateway filter) without the server reflecting arbitrary input back.
package reqmeta

import (
	"context"
	"strings"

	"google.golang.org/grpc/metadata"
)

// Bounds on what is echoed.
const (
	MaxKeys     = 16
	MaxValueLen = 256
)

// Echo returns the request's "x-" metadata: one value per key (several are joined with
// ", "), at most MaxKeys keys, values cut at MaxValueLen bytes. Nil when there is none.
func Echo(ctx context.Context) map[string]string {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return nil
	}
	var out map[string]string
	for k, vs := range md {
		if !strings.HasPrefix(k, "x-") || len(vs) == 0 {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		if len(out) == MaxKeys {
			break
		}
		v := strings.Join(vs, ", ")
		if len(v) > MaxValueLen {
			v = v[:MaxValueLen]
		}
		out[k] = v
	}
	return out
}
