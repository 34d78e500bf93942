package loadgen

import (
	"context"
	"time"
)

// WarmUp makes uncounted calls, one at a time and each bounded by timeout, until n
// distinct backends have answered (when n > 0), within has passed, or ctx is done; it
// returns how many distinct backends answered. Round robin only rotates over
// connections that are up: calls counted while some are still connecting would pile on
// the first ones, so the greeter (-warmup), the demo and the loopback tests warm up
// before they count.
func WarmUp(ctx context.Context, call CallFunc, n int, within, timeout time.Duration) int {
	deadline := time.Now().Add(within)
	seen := map[string]bool{}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		b, _, err := call(cctx)
		cancel()
		if err == nil {
			seen[b.GetPod()] = true
		} else {
			time.Sleep(10 * time.Millisecond) // a backend not up yet: no busy loop
		}
		if n > 0 && len(seen) >= n {
			break
		}
	}
	return len(seen)
}
