// Package reqmeta picks the request metadata a reply echoes: an explicit list of keys, so
// callers can see which headers reached the server (header routing, headers added by an
// ingress or a Gateway filter) without the server reflecting arbitrary input back. Looking
// keys up one by one also avoids copying the whole metadata map on every call.
package reqmeta

import (
	"context"
	"strings"

	"google.golang.org/grpc/metadata"
)

// MaxValueLen bounds an echoed value.
const MaxValueLen = 256

// Keys to echo, lower case.
type Keys []string

// ParseKeys reads a comma-separated list ("x-routed-by, X-Team") into Keys.
func ParseKeys(s string) Keys {
	var ks Keys
	for _, k := range strings.Split(s, ",") {
		if k = strings.ToLower(strings.TrimSpace(k)); k != "" {
			ks = append(ks, k)
		}
	}
	return ks
}

// Echo returns the values of ks present in the request (several values joined with ", ",
// cut at MaxValueLen bytes). Nil when none is present.
func (ks Keys) Echo(ctx context.Context) map[string]string {
	var out map[string]string
	for _, k := range ks {
		vs := metadata.ValueFromIncomingContext(ctx, k)
		if len(vs) == 0 {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(ks))
		}
		v := strings.Join(vs, ", ")
		if len(v) > MaxValueLen {
			v = v[:MaxValueLen]
		}
		out[k] = v
	}
	return out
}
