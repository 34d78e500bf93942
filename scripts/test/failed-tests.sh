#!/usr/bin/env bash
# scripts/lib/failed-tests.awk against real `go test -v` output: a throwaway package whose
# parallel tests interleave their logs, one subtest failing. The digest must name that
# subtest with every line it logged, and nothing of the tests that passed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "${dir}"' EXIT

printf 'module digest\n\ngo 1.26\n' >"${dir}/go.mod"
cat >"${dir}/digest_test.go" <<'GO'
package digest

import (
	"testing"
	"time"
)

func TestTopology(t *testing.T) {
	t.Parallel()
	t.Run("passes", func(t *testing.T) { t.Log("passing line") })
	t.Run("scale out", func(t *testing.T) {
		t.Log("before the failure")
		time.Sleep(100 * time.Millisecond) // TestOther logs in between: a NAME header follows
		t.Errorf("2 calls failed:\ncontinued")
	})
}

func TestOther(t *testing.T) {
	t.Parallel()
	for range 3 {
		t.Log("other line")
		time.Sleep(20 * time.Millisecond)
	}
}
GO

if (cd "${dir}" && GOFLAGS=-mod=mod go test -v -count=1 . >"${dir}/out.txt" 2>&1); then
  echo "FAIL: the throwaway package's tests passed; they must fail"; cat "${dir}/out.txt"; exit 1
fi
got=$(awk -f "${ROOT}/scripts/lib/failed-tests.awk" "${dir}/out.txt")
want='
failed tests, with what each logged:

TestTopology/scale_out
    digest_test.go:12: before the failure
    digest_test.go:14: 2 calls failed:
        continued'
if [[ ${got} != "${want}" ]]; then
  printf 'FAIL: failed-tests.awk printed\n%s\nwant\n%s\ngo test printed\n' "${got}" "${want}"
  cat "${dir}/out.txt"
  exit 1
fi
# And a run that passed has nothing to say.
grep -v -e 'FAIL' -e 'failures' "${dir}/out.txt" >"${dir}/passed.txt" || true
[[ -z $(awk -f "${ROOT}/scripts/lib/failed-tests.awk" "${dir}/passed.txt") ]] ||
  { echo "FAIL: failed-tests.awk printed something for output without a failed test"; exit 1; }
echo "ok: failed-tests.awk names the failed subtest with its log lines"
