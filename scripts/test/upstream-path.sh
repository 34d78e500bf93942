#!/usr/bin/env bash
# kind-up's prerequisite and mode detection on a host like a laptop: a PATH of symlinks to only
# the tools it may use (no dpkg, apt-get, flock or GNU timeout), with stub go and docker.
# Each case asserts the exit status, the output, and that no missing command was ever called
# (bash's command_not_found_handle records every attempt). Touches nothing outside a temp dir.
# shellcheck disable=SC2016  # the single-quoted snippets are expanded by the bash under test
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "${TMP}"' EXIT

ALLOWED=(bash cat date dirname basename grep sed awk sleep rm mkdir mv id uname tail nice jq curl)
mkbin() { # mkbin DIR TOOL...: DIR with symlinks to TOOLs and the stubs
  local dir=$1 t p
  shift
  mkdir -p "${dir}"
  for t in "$@"; do
    p=$(command -v "${t}") || { echo "FAIL setup: ${t} is not installed here"; exit 1; }
    ln -s "${p}" "${dir}/${t}"
  done
  cp "${TMP}/stub-go" "${dir}/go"
  cp "${TMP}/stub-docker" "${dir}/docker"
}

cat > "${TMP}/stub-go" <<'EOF'
#!/bin/sh
echo "go version go0.0-stub"
EOF
# docker: a running engine, no local images, and a registry per STUB_REGISTRY (ok|hang|nohost).
cat > "${TMP}/stub-docker" <<'EOF'
#!/bin/sh
case "$1 $2" in
  "info "*) exit 0 ;;
  "manifest inspect")
    case "${STUB_REGISTRY}" in
      ok) exit 0 ;;
      hang) exec sleep 30 ;;
      nohost) echo "dial tcp: lookup example.invalid: no such host" >&2; exit 1 ;;
    esac ;;
esac
exit 1
EOF
chmod +x "${TMP}/stub-go" "${TMP}/stub-docker"
mkbin "${TMP}/bin" "${ALLOWED[@]}"
NOJQ=()
for t in "${ALLOWED[@]}"; do [[ ${t} == jq ]] || NOJQ+=("${t}"); done
mkbin "${TMP}/bin-nojq" "${NOJQ[@]}"

passed=0 failed=0
OUT="" RC=0 SECS=0

# run BINDIR SNIPPET [VAR=VALUE...]: source kind-up.sh with PATH=BINDIR and run SNIPPET.
run() {
  local bin=$1 snippet=$2 t0
  shift 2
  : > "${TMP}/not-found"
  t0=$(date +%s)
  RC=0
  OUT=$(cd "${ROOT}" && env -i HOME="${TMP}/home" PATH="${bin}" KIT_CACHE="${TMP}/cache" \
    NOT_FOUND="${TMP}/not-found" "$@" "${bin}/bash" -c '
      command_not_found_handle() { printf "%s\n" "$1" >> "${NOT_FOUND}"; echo "bash: $1: command not found" >&2; return 127; }
      source scripts/kind-up.sh
      '"${snippet}" 2>&1) || RC=$?
  SECS=$(( $(date +%s) - t0 ))
}

# expect NAME ok|fail [TEXT...]: the last run's exit status, TEXTs in its output, no missing
# command called.
expect() {
  local name=$1 want=$2 s why=""
  shift 2
  if [[ ${want} == ok && ${RC} != 0 ]]; then why="exit ${RC}, want 0"
  elif [[ ${want} == fail && ${RC} == 0 ]]; then why="exit 0, want a failure"
  fi
  for s in "$@"; do
    [[ -n ${why} || ${OUT} == *"${s}"* ]] || why="output lacks '${s}'"
  done
  [[ -n ${why} || ! -s ${TMP}/not-found ]] || why="called missing command(s): $(tr '\n' ' ' < "${TMP}/not-found")"
  if [[ -z ${why} ]]; then
    echo "PASS ${name}"
    passed=$((passed + 1))
  else
    echo "FAIL ${name}: ${why}"
    printf '%s\n' "${OUT}" | sed 's/^/      | /'
    failed=$((failed + 1))
  fi
}

for t in dpkg-query apt-get flock timeout; do
  if PATH="${TMP}/bin" command -v "${t}" >/dev/null; then echo "FAIL setup: ${t} is on the test PATH"; exit 1; fi
done

# The recorder itself: a call to a missing tool must be caught, or the cases below prove nothing.
run "${TMP}/bin" 'flock -n 8 || true'
if grep -qx flock "${TMP}/not-found"; then echo "PASS recorder catches a call to a missing command"; passed=$((passed + 1))
else echo "FAIL recorder: a call to flock was not recorded"; failed=$((failed + 1)); fi

run "${TMP}/bin" 'check_prerequisites'
expect "prerequisites: jq and curl present, no dpkg/apt-get: passes" ok "go version go0.0-stub"

run "${TMP}/bin-nojq" 'check_prerequisites'
expect "prerequisites: jq missing, no apt-get: fails naming jq and how to install it" fail \
  "not found: jq" "install"

run "${TMP}/bin" 'announce_host_changes'
expect "host changes: engine answers, tools present: none announced" ok "changes to this host outside ${TMP}/cache: none"

run "${TMP}/bin" 'choose_mode; echo "MODE=${MODE}"' AIRGAPPED=auto STUB_REGISTRY=ok
expect "mode: registry answers: upstream" ok "MODE=upstream" "upstream images are available"

run "${TMP}/bin" 'choose_mode' AIRGAPPED=auto STUB_REGISTRY=hang PULL_PROBE_SECONDS=1
expect "mode: registry hangs, no GNU timeout: probe gives up after 1s, air-gapped refused off Debian" fail \
  "no answer from its registry within 1s" "AIRGAPPED=0"
if ((SECS > 10)); then echo "FAIL mode probe took ${SECS}s, want about 1s"; failed=$((failed + 1)); fi

run "${TMP}/bin" 'choose_mode' AIRGAPPED=auto STUB_REGISTRY=nohost
expect "mode: registry name does not resolve: air-gapped, refused off Debian" fail \
  "its registry's name does not resolve" "Debian-like"

run "${TMP}/bin" 'choose_mode; echo "MODE=${MODE}"' AIRGAPPED=0
expect "mode: AIRGAPPED=0: upstream without probing" ok "MODE=upstream"

run "${TMP}/bin" 'heavy sleep 0 && builder_lock test && echo LOCKS-OK'
expect "locks without flock: heavy and builder_lock run, with a note" ok "LOCKS-OK" "flock not found"

run "${TMP}/bin" 'rc=0; with_timeout 1 sleep 20 || rc=$?; echo "rc=${rc}"; with_timeout 5 true && echo quick-ok'
expect "with_timeout: kills a slow command (exit 124), passes a quick one" ok "rc=124" "quick-ok"
if ((SECS > 10)); then echo "FAIL with_timeout took ${SECS}s"; failed=$((failed + 1)); fi

echo "${passed} passed, ${failed} failed"
((failed == 0))
