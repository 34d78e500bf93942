# shellcheck shell=bash
# Shared helpers for scripts/*.sh. Source it; it does not run anything by itself
# except computing the paths below.
#
# Bash 3.2 or newer (macOS's /bin/bash): this file, the rest of lib/, kind-up.sh, kind-down.sh,
# e2e.sh, smoke.sh, doctor-host.sh, build-promtool.sh and scripts/test, so the upstream path
# and make test run wherever Docker, Go and bash do. Only the air-gapped builders in airgap/
# (Linux only) may use bash 4. scripts/test/bash32.sh checks.

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
# Worker nodes beside the control plane (deploy/kind/cluster.yaml); 0 = a single node.
KIND_WORKERS="${KIND_WORKERS:-2}"
[[ ${KIND_WORKERS} =~ ^[0-9]$ ]] || { printf 'ERROR: KIND_WORKERS=%s: want a number of worker nodes, 0 to 9\n' "${KIND_WORKERS}" >&2; exit 2; }
AIRGAPPED="${AIRGAPPED:-auto}"
KIT_BIN="${KIT_CACHE}/bin"
KIT_LOGS="${KIT_CACHE}/logs"
export KIT_CACHE CLUSTER_NAME
export KUBECONFIG="${KIT_CACHE}/kubeconfig"
mkdir -p "${KIT_BIN}" "${KIT_LOGS}"

# Our kind and kubectl first; the rest of PATH as the user has it.
export PATH="${KIT_BIN}:${PATH}"
# The docker CLI every script uses (engine.sh may switch to the engine's own; see there).
DOCKER="${DOCKER:-docker}"
export DOCKER

# path_without DIR PATHLIST: PATHLIST (colon-separated) without any entry DIR (or DIR/).
path_without() {
  local dir=${1%/} rest=$2: entry out=""
  while [[ -n ${rest} ]]; do
    entry=${rest%%:*}
    rest=${rest#*:}
    [[ -z ${entry} || ${entry%/} == "${dir}" ]] || out+="${out:+:}${entry}"
  done
  echo "${out}"
}

# resolve_path FILE: FILE's physical path, every symlink followed (readlink -f, which macOS
# before 12.3 lacks). Fails on a symlink loop or a missing directory.
resolve_path() {
  local p=$1 link dir n=0
  while [[ -L ${p} ]]; do
    n=$((n + 1))
    ((n <= 40)) || return 1
    link=$(readlink "${p}")
    case ${link} in
      /*) p=${link} ;;
      *) p="$(dirname "${p}")/${link}" ;;
    esac
  done
  dir=$(cd "$(dirname "${p}")" 2>/dev/null && pwd -P) || return 1
  echo "${dir}/$(basename "${p}")"
}

# need CMD HOW: fail with a hint when a command is missing.
need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"
}

# debian_like: apt-get is there to install what is missing.
debian_like() { command -v apt-get >/dev/null 2>&1; }

# missing_packages CMD[:DEBPKG]...: the Debian packages (DEBPKG, default CMD) of the commands
# that are not on PATH, space-separated.
missing_packages() {
  local e out=""
  for e in "$@"; do
    command -v "${e%%:*}" >/dev/null 2>&1 || out+=" ${e#*:}"
  done
  echo "${out# }"
}

# install_hint PKG...: how to install these packages on a host without apt-get.
install_hint() {
  if [[ $(uname -s) == Darwin ]]; then echo "brew install $*"
  elif command -v dnf >/dev/null 2>&1; then echo "sudo dnf install $*"
  elif command -v pacman >/dev/null 2>&1; then echo "sudo pacman -S $*"
  else echo "install $* with this system's package manager"
  fi
}

# ensure_cmds CMD[:DEBPKG]...: make sure each CMD is on PATH. On a Debian-like host the missing
# ones' packages are installed with apt-get; elsewhere fail saying what to install.
ensure_cmds() {
  local pkgs e
  pkgs=$(missing_packages "$@")
  [[ -n ${pkgs} ]] || return 0
  # shellcheck disable=SC2086  # one package per word
  debian_like || die "not found: ${pkgs} (install: $(install_hint ${pkgs}))"
  # shellcheck disable=SC2086
  apt_install ${pkgs}
  for e in "$@"; do need "${e%%:*}" "installed the Debian package ${e#*:}, but ${e%%:*} is still not on PATH"; done
}

# as_root CMD...: CMD as root, through sudo when we are not root.
as_root() {
  if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi
}

# apt_install PKG...: install Debian packages non-interactively.
apt_install() {
  [[ $(id -u) == 0 ]] || command -v sudo >/dev/null 2>&1 \
    || die "need root to install $*: run as root: apt-get install $*"
  log "installing Debian packages: $*"
  # Refresh the lists only when they are missing or older than a day.
  if [[ -z $(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 -print -quit 2>/dev/null) ]]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# debian_mirror: the Debian archive apt on this host already uses for ${DEBIAN_SUITE}/main.
debian_mirror() {
  local m try
  for try in 1 2; do
    # shellcheck disable=SC2016  # $(SITE) is apt's format placeholder, not shell
    m=$(apt-get indextargets --format '$(SITE)' "Release: ${DEBIAN_SUITE}" 'Component: main' \
          'Identifier: Packages' 2>/dev/null | head -n1)
    [[ -n ${m} ]] && { echo "${m}"; return 0; }
    # indextargets only knows sources whose lists were downloaded.
    ((try == 1)) && DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  done
  die "no apt source for Debian ${DEBIAN_SUITE} main on this host: add one to /etc/apt/sources.list.d and run apt-get update"
}

# ca_bundle_missing: a Debian-like host without the CA bundle Go needs to download modules.
ca_bundle_missing() { debian_like && [[ ! -s /etc/ssl/certs/ca-certificates.crt ]]; }

# require_airgap_host: the air-gapped builders run on Linux with apt only (the node image is a
# debootstrapped Debian rootfs).
require_airgap_host() {
  [[ $(uname -s) == Linux ]] && debian_like && return 0
  die "air-gapped mode builds every image from Go modules and Debian packages, on a Debian-like" \
    "Linux host only (this is $(uname -s) without apt-get). Here, use the upstream images: AIRGAPPED=0"
}

# with_timeout SECONDS CMD...: CMD, killed after SECONDS (then exit 124, as GNU timeout, which
# macOS lacks, would give).
with_timeout() {
  local secs=$1 pid watcher rc=0
  shift
  "$@" &
  pid=$!
  # The watcher exits 0 only if it killed CMD; TERM while it sleeps means CMD finished in time.
  (
    trap 'kill "${s:-}" 2>/dev/null; exit 1' TERM
    sleep "${secs}" &
    s=$!
    wait "${s}"
    trap '' TERM
    kill "${pid}" 2>/dev/null
  ) </dev/null >/dev/null 2>&1 &
  watcher=$!
  wait "${pid}" || rc=$?
  kill "${watcher}" 2>/dev/null || true
  if wait "${watcher}"; then rc=124; fi
  return "${rc}"
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

# have_flock: whether builds can be serialized with flock (util-linux; macOS has none). Without
# it, two concurrent runs may build the same thing at once: slower, nothing worse.
have_flock() {
  command -v flock >/dev/null 2>&1 && return 0
  [[ -n ${KIT_NO_FLOCK_NOTED:-} ]] || info "flock not found: concurrent builds are not serialized"
  KIT_NO_FLOCK_NOTED=1
  return 1
}

# heavy CMD...: run a CPU-heavy build at the lowest priority, one at a time across all
# scripts (a lock in the cache, on fd 8), so interactive work on a small machine stays responsive.
heavy() {
  local t0 t1 rc=0 lock="${KIT_CACHE}/.heavy-build.lock"
  t0=$(date +%s)
  if have_flock; then
    exec 8>"${lock}"
    if ! flock -n 8; then
      info "waiting for another heavy build to finish (lock ${lock})"
      flock 8
    fi
  fi
  t1=$(date +%s)
  nice -n 19 "$@" || rc=$?
  exec 8>&-
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

# builder_lock NAME: hold an exclusive lock (fd 9) for the rest of this script, so two runs of
# the same builder (say, two terminals running kind-up) never build the same thing twice; the
# second waits, then finds the first one's results in the cache.
builder_lock() {
  have_flock || return 0
  exec 9>"${KIT_CACHE}/.lock-$1"
  if ! flock -n 9; then
    info "another $1 build is running: waiting for it (lock ${KIT_CACHE}/.lock-$1)"
    flock 9
  fi
}
