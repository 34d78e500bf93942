# shellcheck shell=bash
# Shared helpers for scripts/*.sh. Source it; it does not run anything by itself
# except computing the paths below.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

log()  { printf '==> %s\n' "$*" >&2; }
info() { printf '    %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# shellcheck source=versions.sh
source "${REPO_ROOT}/scripts/lib/versions.sh"

# Everything built or downloaded lives outside the repo, keyed by version.
KIT_CACHE="${KIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/grpc-k8s-kit}"
CLUSTER_NAME="${CLUSTER_NAME:-grpc-k8s-kit}"
AIRGAPPED="${AIRGAPPED:-auto}"
KIT_BIN="${KIT_CACHE}/bin"
KIT_LOGS="${KIT_CACHE}/logs"
export KIT_CACHE CLUSTER_NAME
export KUBECONFIG="${KIT_CACHE}/kubeconfig"
mkdir -p "${KIT_BIN}" "${KIT_LOGS}"

# Our kind/kubectl first, then Debian's docker CLI (a newer client may sit earlier in PATH
# and speak an API version Debian's engine does not).
export PATH="${KIT_BIN}:/usr/bin:/usr/sbin:${PATH}"

# need CMD HOW: fail with a hint when a command is missing.
need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"
}

# apt_install PKG...: install Debian packages non-interactively (we run as root).
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [[ $(id -u) == 0 ]] || die "need root to install ${missing[*]}: sudo apt-get install ${missing[*]}"
  log "installing Debian packages: ${missing[*]}"
  # Refresh the lists only when they are missing or older than a day.
  if [[ -z $(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 -print -quit 2>/dev/null) ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# ---- progress: "step N/M name" with the elapsed time of each step ----------------------
STEP_N=0
STEP_TOTAL=${STEP_TOTAL:-0}
STEP_NAME=""
STEP_START=0
RUN_START=$(date +%s)
TIMINGS_FILE="${KIT_LOGS}/timings-$(date +%Y%m%dT%H%M%S)-$$.tsv"

step() {
  step_done
  STEP_N=$((STEP_N + 1))
  STEP_NAME="$*"
  STEP_START=$(date +%s)
  printf '\n==> [step %d/%d] %s\n' "${STEP_N}" "${STEP_TOTAL}" "${STEP_NAME}" >&2
}

step_done() {
  [[ -n ${STEP_NAME} ]] || return 0
  local secs=$(( $(date +%s) - STEP_START ))
  printf '    [step %d/%d] %s: %ss\n' "${STEP_N}" "${STEP_TOTAL}" "${STEP_NAME}" "${secs}" >&2
  printf '%s\t%s\t%s\n' "${STEP_N}" "${STEP_NAME}" "${secs}" >> "${TIMINGS_FILE}"
  STEP_NAME=""
}

run_done() {
  step_done
  local secs=$(( $(date +%s) - RUN_START ))
  printf 'total\t%s\n' "${secs}" >> "${TIMINGS_FILE}"
  log "done in ${secs}s (per-step timings: ${TIMINGS_FILE})"
}

# heavy CMD...: run a CPU-heavy build at the lowest priority, one at a time across all
# scripts (a lock in the cache), so interactive work on a small machine stays responsive.
heavy() {
  local t0 t1 rc=0
  t0=$(date +%s)
  exec {heavy_fd}>"${KIT_CACHE}/.heavy-build.lock"
  if ! flock -n "${heavy_fd}"; then
    printf '    waiting for another heavy build to finish (lock %s)\n' "${KIT_CACHE}/.heavy-build.lock" >&2
    flock "${heavy_fd}"
  fi
  t1=$(date +%s)
  nice -n 19 "$@" || rc=$?
  exec {heavy_fd}>&-
  # On stderr, so it also lands in the build log when the caller redirects.
  printf '    [heavy] %ss building, %ss waiting for the lock: %s\n' \
    "$(( $(date +%s) - t1 ))" "$(( t1 - t0 ))" "${*:1:3}" >&2
  return "${rc}"
}

# logged LOGFILE CMD...: run CMD with output to LOGFILE; on failure show its tail. Long
# commands get a heartbeat line every minute so a 10-minute compile does not look stuck.
logged() {
  local logfile=$1 rc=0 ticker; shift
  (
    local t0 n=0; t0=$(date +%s)
    while sleep 5; do
      kill -0 "$$" 2>/dev/null || exit 0          # the script is gone: stop ticking
      n=$((n + 1)); ((n % 12 == 0)) || continue
      local s=$(( $(date +%s) - t0 ))
      printf '      ... still running, %dm%02ds (%s)\n' $((s / 60)) $((s % 60)) "${logfile}" >&2
    done
  ) &
  ticker=$!
  "$@" >"${logfile}" 2>&1 || rc=$?
  kill "${ticker}" 2>/dev/null || true
  wait "${ticker}" 2>/dev/null || true
  if ((rc != 0)); then
    warn "command failed: $*"
    tail -n 40 "${logfile}" >&2
    die "full log: ${logfile}"
  fi
}

# module_dir MODULE@VERSION: the module's directory in the Go module cache (downloads it).
module_dir() {
  go mod download -json "$1" | jq -r '.Dir // empty'
}

# go_build_module [--copy | --in DIR] MODULE VERSION PKG OUT [LDFLAGS]: build package PKG of
# MODULE@VERSION into OUT, static (CGO_ENABLED=0, -trimpath, -ldflags "-s -w LDFLAGS"), with
# heavy, logged to $KIT_LOGS/build-<basename OUT>.log. OUT is replaced only by a finished build.
# GOOS/GOARCH come from the caller (the node's binaries are linux, kind is the host's). Built in:
#   default    a scratch module that requires PKG@VERSION (MODULE's replace directives do not
#              apply there, which is also why `go install PKG@VERSION` refuses some modules)
#   --copy     a writable copy of MODULE@VERSION itself, for a module that needs its replace
#              directives; PKG is relative to its root (./cmd/x)
#   --in DIR   the existing module DIR, which pins MODULE@VERSION and replaces what it needs
go_build_module() {
  local mode=scratch dir=""
  case $1 in
    --copy) mode=copy; shift ;;
    --in) mode=in; dir=$2; shift 2 ;;
  esac
  local module=$1 version=$2 pkg=$3 out=$4 ldflags=${5:-} name t0 src
  name=$(basename "${out}")
  t0=$(date +%s)
  if [[ ${mode} != in ]]; then
    dir="${KIT_CACHE}/src/${name}-${version}"
    rm -rf "${dir}"
    mkdir -p "${dir%/*}"
  fi
  case ${mode} in
    scratch)
      mkdir "${dir}"
      # -tool records PKG as a tool of the scratch module, which pulls in all it imports.
      (cd "${dir}" && go mod init "kit.local/${name}" >/dev/null 2>&1 \
        && logged "${KIT_LOGS}/get-${name}.log" go get -tool "${pkg}@${version}") ;;
    copy)
      src=$(module_dir "${module}@${version}")
      [[ -d ${src} ]] || die "cannot download ${module}@${version} from the Go module proxy"
      cp -r "${src}" "${dir}"
      chmod -R u+w "${dir}"   # module cache files are read-only
      ;;
  esac
  mkdir -p "$(dirname "${out}")"
  (cd "${dir}" && CGO_ENABLED=0 logged "${KIT_LOGS}/build-${name}.log" \
    heavy go build -trimpath -ldflags "-s -w ${ldflags}" -o "${out}.tmp" "${pkg}")
  mv "${out}.tmp" "${out}"
  [[ ${mode} == in ]] || rm -rf "${dir}"
  info "${name} ${version}: built in $(( $(date +%s) - t0 ))s ($(heavy_summary "${KIT_LOGS}/build-${name}.log"))"
}

# heavy_summary LOGFILE: "Ns building, Ms waiting" from the last heavy run logged there.
heavy_summary() {
  grep -o '[0-9]*s building, [0-9]*s waiting' "$1" 2>/dev/null | tail -n1
}

# builder_lock NAME: hold an exclusive lock for the rest of this script, so two runs of the
# same builder (say, two terminals running kind-up) never build the same thing twice; the
# second waits, then finds the first one's results in the cache.
builder_lock() {
  exec {builder_fd}>"${KIT_CACHE}/.lock-$1"
  if ! flock -n "${builder_fd}"; then
    info "another $1 build is running: waiting for it (lock ${KIT_CACHE}/.lock-$1)"
    flock "${builder_fd}"
  fi
}
