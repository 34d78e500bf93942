#!/usr/bin/env bash
# make doctor-host: what `make kind-up` would do on this machine and what would stop it, each
# problem with its fix. It changes nothing (beyond creating the kit's cache directory): no
# package is installed, no engine started, nothing pulled. kind-up runs the same checks itself
# (its step 2 and its mode choice, scripts/lib/host.sh) before it builds or pulls anything.
#
#   make doctor-host              the report; exit 1 when something would stop kind-up or e2e
#   PROBE=1 make doctor-host      also ask the registry for each upstream image's manifest
#                                 (PULL_PROBE_SECONDS, 5 s at most each). Off by default: each
#                                 probe is a manifest request, which registries may count
#                                 against a pull rate limit.
#   AIRGAPPED=0|1 make doctor-host    the report for that mode instead of auto
set -euo pipefail
# Sourced, kind-up.sh only defines its functions (and sources scripts/lib).
source "$(dirname "${BASH_SOURCE[0]}")/kind-up.sh"

PROBE=${PROBE:-0}

# tool_version NAME VERSIONCMD...: the first two words of VERSIONCMD's first line, or "not found".
tool_version() {
  command -v "$1" >/dev/null 2>&1 || { echo "not found"; return 0; }
  "${@:2}" 2>/dev/null | head -n 1 | cut -d ' ' -f 1-2 || true
}

doctor_system() {
  log "this machine"
  found "system" "$(uname -s) $(uname -m), bash ${BASH_VERSION}"
  found "kit cache" "${KIT_CACHE}"
}

# doctor_engine: fails when no engine answers (and kind-up would not start one).
doctor_engine() {
  log "container engine"
  if ! engine_alive; then
    if can_start_dockerd; then
      found "engine" "none answers (${ENGINE_ERROR:-docker info fails}); kind-up installs and starts Debian's engine package"
      return 1
    fi
    problem "no Docker engine answers: ${DOCKER} info says: ${ENGINE_ERROR:-nothing}" "$(engine_error_fix)"
    return 1
  fi
  load_engine_facts
  found "engine" "$(engine_fact OperatingSystem), server $(engine_fact ServerVersion), docker CLI $(tool_version "${DOCKER}" "${DOCKER}" version --format '{{.Client.Version}}')"
  engine_checks
  found "cgroup" "v$(engine_cgroup_version)"
}

# doctor_mode ENGINE_UP: which mode kind-up would run in, and why.
doctor_mode() {
  log "mode (AIRGAPPED=${AIRGAPPED})"
  local blocker=""
  [[ $1 != 1 ]] || blocker=$(upstream_blocker)
  case ${AIRGAPPED} in
    1 | true | yes)
      if airgap_possible; then found "mode" "airgapped: every image built here (about 50 minutes the first time, scripts/TIMINGS.md)"
      else problem "AIRGAPPED=${AIRGAPPED}: air-gapped mode needs a Debian-like Linux host (this is $(host_kind))" "use the upstream images: AIRGAPPED=0 (or auto)"
      fi ;;
    0 | false | no)
      if [[ -n ${blocker} ]]; then
        problem "AIRGAPPED=${AIRGAPPED}: upstream mode cannot run here: ${blocker}" \
          "${CGROUP_V1_FIX}$(airgap_possible && echo "; or build everything here with AIRGAPPED=1 (or auto)")"
      else found "mode" "upstream: kind's node image, Traefik's and Istio's pulled once"
      fi ;;
    auto | "")
      if [[ $1 != 1 ]]; then
        found "mode" "decided once an engine answers"
      elif cluster_exists && node_running; then
        found "mode" "the running cluster '${CLUSTER_NAME}' keeps its own ($("${DOCKER}" inspect -f '{{.Config.Image}}' "${NODE_CONTAINER}"))"
      else
        auto_mode "${PROBE}"
        case ${AUTO_MODE} in
          none) problem "neither mode can run here: ${AUTO_WHY}" "${CGROUP_V1_FIX}" ;;
          probe) found "mode" "upstream or airgapped: ${AUTO_WHY} (PROBE=1 shows which)" ;;
          *) found "mode" "${AUTO_MODE}: ${AUTO_WHY}" ;;
        esac
      fi ;;
    *) problem "AIRGAPPED must be auto, 1 or 0 (got '${AIRGAPPED}')" "unset it, or set AIRGAPPED=1 or 0" ;;
  esac
}

# doctor_registry ENGINE_UP: the upstream images, probed only with PROBE=1.
doctor_registry() {
  log "upstream images (what upstream mode pulls)"
  local ref why
  for ref in "${UPSTREAM_IMAGES[@]}"; do
    if [[ ${PROBE} != 1 || $1 != 1 ]]; then
      found "image" "${ref}"
    else
      why=$(pull_failure_reason "${ref}")
      found "image" "${ref}: ${why:-its manifest answers (or it is local)}"
    fi
  done
  [[ ${PROBE} == 1 ]] || info "not probed: PROBE=1 make doctor-host asks the registry for each (${PULL_PROBE_SECONDS}s at most each)"
}

doctor_tools() {
  log "tools kind-up installs or uses"
  local gomod_go v skew
  gomod_go=$(awk '$1 == "go" { print $2; exit }' "${REPO_ROOT}/go.mod")
  if command -v go >/dev/null 2>&1; then found "go" "$(go version) (go.mod: go ${gomod_go})"
  else problem "go not found: kind-up builds kind, and make builds our binaries, with it" "install Go ${gomod_go} or newer"
  fi
  if [[ -x ${KIND} ]] && "${KIND}" version 2>/dev/null | grep -q "^kind ${KIND_VERSION} "; then
    found "kind" "${KIND_VERSION}, built (${KIND})"
  else
    found "kind" "${KIND_VERSION}: kind-up builds it from its Go module into ${KIND}"
  fi
  if [[ $(uname -s) == Linux ]]; then
    found "kubectl" "${KUBE_VERSION}, the node's own, copied to ${KUBECTL} by kind-up"
  elif v=$(PATH=$(path_without "${KIT_BIN}" "${PATH}") command -v kubectl); then
    local version
    version=$("${v}" version --client -o json 2>/dev/null | jq -r '.clientVersion.gitVersion // empty' 2>/dev/null || true)
    skew=$(kubectl_skew "${version}")
    if [[ -n ${skew} ]]; then problem "${v} is ${skew}" "${KUBECTL_FIX}"
    else found "kubectl" "${version} (${v}), linked as ${KUBECTL}"
    fi
  else
    problem "kubectl not found (the node's kubectl only runs on Linux)" "${KUBECTL_FIX}"
  fi
  local t
  for t in jq curl; do
    if command -v "${t}" >/dev/null 2>&1; then found "${t}" "$(tool_version "${t}" "${t}" --version)"
    elif debian_like; then found "${t}" "not found: kind-up installs it with apt-get"
    else problem "${t} not found: kind-up needs it" "$(install_hint "${t}")"
    fi
  done
  if airgap_possible && [[ ${AIRGAPPED} != 0 ]]; then
    if command -v debootstrap >/dev/null 2>&1; then found "debootstrap" "present (air-gapped node rootfs)"
    else found "debootstrap" "not found: kind-up installs it with apt-get if it builds the air-gapped node"
    fi
  fi
  if command -v shellcheck >/dev/null 2>&1; then found "shellcheck" "$(tool_version shellcheck shellcheck --version | tail -n 1)"
  else advice "shellcheck not found: make test needs it ($(install_hint shellcheck))"
  fi
}

# doctor_loopback: make test's loopback tests and make demo bind 127.0.0.2 to 127.0.0.52
# (internal/localdns): Linux has all of 127/8, macOS only what is aliased on lo0.
doctor_loopback() {
  [[ $(uname -s) == Darwin ]] || return 0
  log "loopback addresses (make test, make demo)"
  if ! command -v ifconfig >/dev/null 2>&1; then
    found "lo0" "ifconfig not found: cannot check 127.0.0.2 to 127.0.0.52"
    return 0
  fi
  local n
  n=$(ifconfig lo0 2>/dev/null | grep -cE 'inet 127\.0\.0\.([2-9]|[1-4][0-9]|5[0-2]) ' || true)
  found "lo0" "${n} of the 51 addresses 127.0.0.2 to 127.0.0.52"
  ((n == 51)) || advice "make test's loopback tests and make demo need 127.0.0.2 to 127.0.0.52 on lo0" \
    "(kind-up and e2e do not): once per boot, for i in \$(seq 2 52); do sudo ifconfig lo0 alias 127.0.0.\$i up; done" \
    "(docs/laptop.md)"
}

doctor_main() {
  local up=1
  PREFLIGHT_PROBLEMS=0
  doctor_system
  doctor_engine || up=0
  doctor_mode "${up}"
  doctor_registry "${up}"
  doctor_tools
  doctor_loopback
  echo >&2
  if ((PREFLIGHT_PROBLEMS > 0)); then
    log "${PREFLIGHT_PROBLEMS} problem(s): each would stop make kind-up or make e2e; the fix is under each"
    return 1
  fi
  log "nothing found that would stop make kind-up && make e2e"
}

[[ ${BASH_SOURCE[0]} != "$0" ]] || doctor_main "$@"
