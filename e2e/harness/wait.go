//go:build e2e

package harness

import (
	"testing"
	"time"
)

// Eventually polls f every interval until it returns true, and fails the test when timeout
// passes first. It returns how long it took.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, f func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !f() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not true after %s", what, timeout)
		}
		time.Sleep(interval)
	}
	return time.Since(start)
}
