#!/usr/bin/env bash
# The Makefile's recipes as macOS's make 3.81 runs them: it ignores .SHELLFLAGS, so a recipe
# runs under plain `bash -c`, without -e or pipefail (simulated here with .SHELLFLAGS=-c on
# the command line). Its loops must still stop at the first failure. And `make images` must
# build with the classic builder (no buildx, no Dockerfile frontend pulled from a registry)
# from a Dockerfile that names no frontend image. Runs the real Makefile on a scratch tree
# with stub go and docker; touches nothing outside a temp dir.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "${TMP}"' EXIT
passed=0 failed=0
ok() { echo "PASS $1"; passed=$((passed + 1)); }
ko() { echo "FAIL $1: $2"; sed 's/^/      | /' "${TMP}/out"; failed=$((failed + 1)); }

command -v make >/dev/null || { echo "FAIL setup: make is not installed"; exit 1; }
tree="${TMP}/tree"
mkdir -p "${tree}/scripts/test" "${TMP}/stub"
cp "${ROOT}/Makefile" "${ROOT}/Dockerfile" "${tree}/"
printf '#!/usr/bin/env bash\necho "first test ran"; exit 1\n' > "${tree}/scripts/test/a-fails.sh"
printf '#!/usr/bin/env bash\necho "second test ran"\n' > "${tree}/scripts/test/b-passes.sh"

# make 3.81: .SHELLFLAGS ignored, so -c alone.
rc=0
make -C "${tree}" --no-print-directory .SHELLFLAGS=-c test-scripts > "${TMP}/out" 2>&1 || rc=$?
if ((rc == 0)); then ko "test-scripts under make 3.81's shell flags: fails when a test fails" "make exited 0"
elif grep -q "second test ran" "${TMP}/out"; then ko "test-scripts under make 3.81's shell flags: stops at the first failed test" "it ran the next test"
else ok "test-scripts under make 3.81's shell flags: stops at the first failed test, exit ${rc}"; fi

cat > "${TMP}/stub/go" <<'STUB'
#!/bin/sh
case "$1 $2" in "env GOARCH") echo amd64 ;; esac
exit 0
STUB
# docker: logs DOCKER_BUILDKIT and the image of each build; fails the first when STUB_FAIL=1.
cat > "${TMP}/stub/docker" <<'STUB'
#!/bin/sh
n=$(wc -l < "${STUB_LOG}" 2>/dev/null || echo 0)
t=""; while [ $# -gt 0 ]; do [ "$1" = -t ] && t=$2; shift; done
echo "DOCKER_BUILDKIT=${DOCKER_BUILDKIT-unset} ${t}" >> "${STUB_LOG}"
[ "${STUB_FAIL:-0}" = 1 ] && [ "${n}" -eq 0 ] && { echo "build failed" >&2; exit 1; }
exit 0
STUB
chmod +x "${TMP}/stub/go" "${TMP}/stub/docker"
images() { # images FAIL: make images with the stubs; the log of docker calls in ${TMP}/calls
  : > "${TMP}/calls"
  rc=0
  env -u DOCKER_BUILDKIT STUB_LOG="${TMP}/calls" STUB_FAIL="$1" make -C "${tree}" --no-print-directory \
    .SHELLFLAGS=-c GO="${TMP}/stub/go" DOCKER="${TMP}/stub/docker" images > "${TMP}/out" 2>&1 || rc=$?
}

images 1
if ((rc == 0)); then ko "images under make 3.81's shell flags: fails when a build fails" "make exited 0"
elif (( $(wc -l < "${TMP}/calls") != 1 )); then ko "images under make 3.81's shell flags: stops at the first failed build" "$(wc -l < "${TMP}/calls") builds ran"
else ok "images under make 3.81's shell flags: stops at the first failed build, exit ${rc}"; fi

images 0
if ((rc != 0)); then ko "images: classic builder for each image" "make exited ${rc}"
elif [[ $(grep -c '^DOCKER_BUILDKIT=0 ' "${TMP}/calls") != 3 ]]; then ko "images: classic builder for each image" "calls: $(tr '\n' ';' < "${TMP}/calls")"
else ok "images: DOCKER_BUILDKIT=0 for each of the 3 builds"; fi

if grep -qiE '^#[[:space:]]*syntax[[:space:]]*=' "${ROOT}/Dockerfile"; then
  echo "FAIL Dockerfile: a '# syntax=' line makes BuildKit pull its frontend from a registry"; failed=$((failed + 1))
else ok "Dockerfile: no '# syntax=' frontend to pull"; fi

echo "${passed} passed, ${failed} failed"
((failed == 0))
