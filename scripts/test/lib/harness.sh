# shellcheck shell=bash
# shellcheck disable=SC2016  # the single-quoted snippets are expanded by the bash under test
# shellcheck disable=SC2034  # OUT, RC, SECS and the rest are read by the scripts that source this
# The stub host shared by scripts/test/upstream-path.sh and doctor-host.sh: a PATH of symlinks
# to only the tools a laptop has (no dpkg, apt-get, flock or GNU timeout) plus stubs for go,
# docker, kind and uname, whose answers come from STUB_* variables, so one Linux VM can play a
# Docker Desktop Mac, a colima VM or a cgroup v1 Linux host. Every stub call is logged to
# ${STUB_LOG}; every call to a command that is not on the test PATH is recorded too.
# Touches nothing outside a temp dir. Bash 3.2 (scripts/test/bash32.sh checks).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "${TMP}"' EXIT

ALLOWED=(bash cat date dirname basename grep sed awk sleep rm mkdir mv id tail nice jq curl
  ln readlink chmod tr head cut touch cp sort mktemp wc)
STUBS="${TMP}/stubs"
mkdir -p "${STUBS}"

cat > "${STUBS}/go" <<'EOF'
#!/bin/sh
[ -z "${STUB_LOG:-}" ] || echo "go $*" >> "${STUB_LOG}"
case "$1 ${2:-}" in
  "version "*) echo "go version go0.0-stub ${STUB_GOOS:-linux}/${STUB_GOARCH:-amd64}" ;;
  "env GOARCH") echo "${STUB_GOARCH:-amd64}" ;;
  "env GOOS") echo "${STUB_GOOS:-linux}" ;;
  # A module's directory: STUB_MODDIR, for every module (none when unset: a download failed).
  "mod download") [ -z "${STUB_MODDIR:-}" ] || printf '{"Dir": "%s"}\n' "${STUB_MODDIR}" ;;
esac
exit 0
EOF

# uname: -s and -m from STUB_UNAME_S (Linux) and STUB_UNAME_M (x86_64).
cat > "${STUBS}/uname" <<'EOF'
#!/bin/sh
case "${1:--s}" in
  -m) echo "${STUB_UNAME_M:-x86_64}" ;;
  -r) echo "0.0-stub" ;;
  *) echo "${STUB_UNAME_S:-Linux}" ;;
esac
EOF

# docker: an engine per STUB_ENGINE (up | down | denied) answering docker info's fields from
# STUB_ARCH, STUB_NCPU, STUB_MEM (bytes), STUB_CGROUP, STUB_STORE (classic | containerd),
# STUB_SERVER_VERSION, STUB_OS (STUB_OLD_ENGINE=1: an engine too old for those fields); the
# client is STUB_CLIENT_VERSION. No local images; no containers, but a running kind node
# when STUB_NODE_RUNNING=1. Registry per STUB_REGISTRY (ok | hang | nohost | ratelimit); a reference
# containing STUB_UNPULLABLE is refused whatever STUB_REGISTRY says, by manifest inspect and pull.
cat > "${STUBS}/docker" <<'EOF'
#!/bin/sh
# One line a call: a multi-line --format is logged with its newlines as spaces.
if [ -n "${STUB_LOG:-}" ]; then printf 'docker %s\n' "$(printf '%s' "$*" | tr '\n' ' ')" >> "${STUB_LOG}"; fi
engine() {
  case "${STUB_ENGINE:-up}" in
    down) echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2; exit 1 ;;
    denied) echo "permission denied while trying to connect to the docker API at unix:///var/run/docker.sock" >&2; exit 1 ;;
  esac
}
case "$1" in
  info)
    engine
    if [ "${2:-}" = --format ] || [ "${2:-}" = -f ]; then
      [ "${STUB_OLD_ENGINE:-0}" = 0 ] || { echo "template: :4:16: executing \"\" at <.CgroupVersion>: can't evaluate field CgroupVersion" >&2; exit 1; }
      if [ "${STUB_STORE:-classic}" = containerd ]; then store='[[driver-type io.containerd.snapshotter.v1]]'
      else store='[[Backing Filesystem extfs] [Supports d_type true] [Using metacopy false] [Native Overlay Diff true] [userxattr false]]'
      fi
      printf '%s\n' "$3" | sed -e "s|{{.Architecture}}|${STUB_ARCH:-x86_64}|g" -e "s|{{.NCPU}}|${STUB_NCPU:-8}|g" \
        -e "s|{{.MemTotal}}|${STUB_MEM:-8589934592}|g" -e "s|{{.CgroupVersion}}|${STUB_CGROUP:-2}|g" \
        -e "s|{{.DriverStatus}}|${store}|g" -e "s|{{.ServerVersion}}|${STUB_SERVER_VERSION:-29.1.3}|g" \
        -e "s|{{.OperatingSystem}}|${STUB_OS:-Debian GNU/Linux 13 (trixie)}|g" -e "s|{{.DefaultRuntime}}|runc|g"
    fi
    exit 0 ;;
  version)
    case "$*" in
      *Client*) echo "${STUB_CLIENT_VERSION:-29.1.3}" ;;
      *) engine; echo "${STUB_SERVER_VERSION:-29.1.3}" ;;
    esac
    exit 0 ;;
  manifest)
    engine
    case "$3" in *"${STUB_UNPULLABLE:-none at all}"*) echo "manifest unknown" >&2; exit 1 ;; esac
    case "${STUB_REGISTRY:-ok}" in
      ok) exit 0 ;;
      hang) exec sleep 30 ;;
      nohost) echo "dial tcp: lookup example.invalid: no such host" >&2; exit 1 ;;
      ratelimit) echo "toomanyrequests: You have reached your unauthenticated pull rate limit." >&2; exit 1 ;;
    esac
    exit 1 ;;
  pull)
    engine
    case "$2" in *"${STUB_UNPULLABLE:-none at all}"*) echo "Error response from daemon: manifest unknown" >&2; exit 1 ;; esac
    exit 0 ;;
  tag) engine; exit 0 ;;
  inspect)
    engine
    # The node containers: running (STUB_NODE_RUNNING=1), and never paused.
    case "$*" in
      *State.Paused*) [ "${STUB_NODE_RUNNING:-0}" = 1 ] && { echo "true false"; exit 0; } ;;
      *State.Running*) [ "${STUB_NODE_RUNNING:-0}" = 1 ] && { echo true; exit 0; } ;;
    esac
    echo "Error: No such object" >&2
    exit 1 ;;
  image)
    engine
    if [ "$2" = save ]; then
      out=""
      while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done
      [ -n "${out}" ] && : > "${out}"
      exit 0
    fi
    exit 1 ;;
esac
exit 1
EOF

# kind: the kit's own (installed as ${KIT_CACHE}/bin/kind by run); no cluster exists unless
# STUB_CLUSTER names one.
cat > "${STUBS}/kind" <<'EOF'
#!/bin/sh
[ -z "${STUB_LOG:-}" ] || echo "kind $*" >> "${STUB_LOG}"
case "$1 ${2:-}" in
  "version "*) echo "kind v0.33.0 go0.0-stub linux/amd64" ;;
  "get kubeconfig") printf 'apiVersion: v1\nkind: Config\ncurrent-context: kind-grpc-k8s-kit\n' ;;
  "get clusters") [ -z "${STUB_CLUSTER:-}" ] || echo "${STUB_CLUSTER}" ;;
  # The cluster's node containers: a control plane and STUB_WORKERS workers (default 2).
  "get nodes") [ -z "${STUB_CLUSTER:-}" ] || {
    echo "${STUB_CLUSTER}-control-plane"; i=0
    while [ "$i" -lt "${STUB_WORKERS:-2}" ]; do i=$((i + 1)); echo "${STUB_CLUSTER}-worker$([ $i -gt 1 ] && echo $i)"; done; } ;;
esac
exit 0
EOF

# kubectl: a host's own, of version STUB_KUBECTL_VERSION.
cat > "${STUBS}/kubectl" <<'EOF'
#!/bin/sh
[ -z "${STUB_LOG:-}" ] || echo "kubectl $*" >> "${STUB_LOG}"
case "$*" in
  "version --client -o json") printf '{"clientVersion":{"gitVersion":"%s"}}\n' "${STUB_KUBECTL_VERSION:-v1.37.0}" ;;
esac
exit 0
EOF
chmod +x "${STUBS}"/*

# mkbin DIR TOOL...: DIR with symlinks to TOOLs and the stubs go, docker and uname.
mkbin() {
  local dir=$1 t p
  shift
  mkdir -p "${dir}"
  for t in "$@"; do
    p=$(command -v "${t}") || { echo "FAIL setup: ${t} is not installed here"; exit 1; }
    ln -s "${p}" "${dir}/${t}"
  done
  cp "${STUBS}/go" "${STUBS}/docker" "${STUBS}/uname" "${dir}/"
}
mkbin "${TMP}/bin" "${ALLOWED[@]}"
BASH_BIN="${TMP}/bin/bash"

passed=0 failed=0
OUT="" RC=0 SECS=0
STUB_LOG="${TMP}/calls"

# Bash 4 calls command_not_found_handle for a command not on PATH, and run's snippet records
# each one; macOS's bash 3.2 never calls it, so there the recorder falls back to the
# "command not found" lines in the output (a call whose stderr was discarded goes unseen).
# run PATH SNIPPET [VAR=VALUE...]: in ${ROOT}, with only PATH (a directory or a colon list)
# and the VARs, source kind-up.sh (or $SOURCE) and run SNIPPET (engine.sh's fallback to
# /usr/bin/docker is pointed at nothing: a stub engine must never reach a real one). Sets OUT, RC and SECS; the
# stubs' calls are in ${STUB_LOG}. KIT_CACHE is ${TMP}/cache, with the stub kind in its bin/.
run() {
  local path=$1 snippet=$2 t0
  shift 2
  : > "${TMP}/not-found"
  : > "${STUB_LOG}"
  mkdir -p "${TMP}/cache/bin"
  cp "${STUBS}/kind" "${TMP}/cache/bin/kind"
  t0=$(date +%s)
  RC=0
  OUT=$(cd "${ROOT}" && env -i HOME="${TMP}/home" PATH="${path}" KIT_CACHE="${TMP}/cache" \
    DEBIAN_DOCKER_CLI="${TMP}/no-such-docker" \
    NOT_FOUND="${TMP}/not-found" STUB_LOG="${STUB_LOG}" SOURCE="${SOURCE:-scripts/kind-up.sh}" "$@" \
    "${BASH_BIN}" -c '
      command_not_found_handle() { printf "%s\n" "$1" >> "${NOT_FOUND}"; echo "bash: $1: command not found" >&2; return 127; } # bash32: ok, recorder with a fallback
      source "${SOURCE}"
      '"${snippet}" 2>&1) || RC=$?
  SECS=$(( $(date +%s) - t0 ))
  if ((BASH_VERSINFO[0] < 4)); then
    sed -n 's/^.*: \([^ :]*\): command not found$/\1/p' <<<"${OUT}" >> "${TMP}/not-found"
  fi
}

# expect NAME ok|fail [TEXT...]: the last run's exit status, each TEXT in its output (a TEXT
# starting with ! must be absent), no missing command called.
expect() {
  local name=$1 want=$2 s why=""
  shift 2
  if [[ ${want} == ok && ${RC} != 0 ]]; then why="exit ${RC}, want 0"
  elif [[ ${want} == fail && ${RC} == 0 ]]; then why="exit 0, want a failure"
  fi
  for s in "$@"; do
    [[ -z ${why} ]] || break
    if [[ ${s} == '!'* ]]; then
      [[ ${OUT} != *"${s#!}"* ]] || why="output has '${s#!}'"
    else
      [[ ${OUT} == *"${s}"* ]] || why="output lacks '${s}'"
    fi
  done
  [[ -n ${why} || ! -s ${TMP}/not-found ]] || why="called missing command(s): $(tr '\n' ' ' < "${TMP}/not-found")"
  verdict "${name}" "${why}"
}

# expect_call NAME PATTERN: a stub was called with arguments matching the grep ERE PATTERN
# (a PATTERN starting with ! must match no call).
expect_call() {
  local name=$1 re=$2 why=""
  if [[ ${re} == '!'* ]]; then
    ! grep -qE -- "${re#!}" "${STUB_LOG}" || why="a call matches '${re#!}': $(grep -E -- "${re#!}" "${STUB_LOG}" | head -n1)"
  else
    grep -qE -- "${re}" "${STUB_LOG}" || why="no call matches '${re}'"
  fi
  verdict "${name}" "${why}"
}

verdict() {
  if [[ -z $2 ]]; then
    echo "PASS $1"
    passed=$((passed + 1))
  else
    echo "FAIL $1: $2"
    printf '%s\n' "${OUT}" | sed 's/^/      | /'
    if [[ -s ${STUB_LOG} ]]; then echo "      stub calls:"; sed 's/^/      > /' "${STUB_LOG}"; fi
    failed=$((failed + 1))
  fi
}

finish() {
  echo "${passed} passed, ${failed} failed"
  ((failed == 0))
}
