#!/usr/bin/env bash
# Build the node's other Go components, static (CGO_ENABLED=0), one at a time at low priority:
#   etcd     go.etcd.io/etcd/server/v3        ${ETCD_MODULE_VERSION}   (~1.5 min cold)
#   coredns  github.com/coredns/coredns       ${COREDNS_VERSION}       (~3 min cold)
#   crictl   sigs.k8s.io/cri-tools/cmd/crictl ${CRICTL_VERSION}        (~1.5 min cold)
#   pause    scripts/airgap/pause (ours)      ${PAUSE_VERSION}
# Each upstream one is built in a throwaway module under $KIT_CACHE/components/src that
# requires it at the pinned version (module replace directives upstream are for their own
# repos' development and are ignored, so `go install pkg@version` would refuse these).
#
# Output: $KIT_CACHE/components/bin/<name>, with <name>.version next to it.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

OUT="${KIT_CACHE}/components/bin"
SRC="${KIT_CACHE}/components/src"

is_current() { [[ -x ${OUT}/$1 && $(cat "${OUT}/$1.version" 2>/dev/null) == "$2" ]]; }

# build_from_module NAME PACKAGE VERSION [LDFLAGS]
build_from_module() {
  local name=$1 pkg=$2 version=$3 ldflags=${4:-} dir t0
  if is_current "${name}" "${version}"; then
    info "${name} ${version}: cached"
    return 0
  fi
  t0=$(date +%s)
  dir="${SRC}/${name}-${version}"
  info "${name} ${version}: building ${pkg} (log ${KIT_LOGS}/build-${name}.log) ..."
  rm -rf "${dir}"; mkdir -p "${dir}"
  (
    cd "${dir}"
    go mod init "kit.local/${name}" >/dev/null 2>&1
    # -tool records the package as a tool of this module, which pulls in all it imports.
    logged "${KIT_LOGS}/get-${name}.log" go get -tool "${pkg}@${version}"
    CGO_ENABLED=0 GOOS=linux logged "${KIT_LOGS}/build-${name}.log" \
      heavy go build -trimpath -ldflags "-s -w ${ldflags}" -o "${OUT}/${name}.tmp" "${pkg}"
  )
  mv "${OUT}/${name}.tmp" "${OUT}/${name}"
  echo "${version}" > "${OUT}/${name}.version"
  info "${name} ${version}: done in $(elapsed_since "${t0}")s ($(heavy_summary "${KIT_LOGS}/build-${name}.log"))"
}

build_pause() {
  if is_current pause "${PAUSE_VERSION}"; then
    info "pause ${PAUSE_VERSION}: cached"
    return 0
  fi
  info "pause ${PAUSE_VERSION}: building scripts/airgap/pause ..."
  (cd "${REPO_ROOT}/scripts/airgap/pause" && CGO_ENABLED=0 GOOS=linux \
    heavy go build -trimpath -ldflags "-s -w -X main.version=${PAUSE_VERSION}" -o "${OUT}/pause.tmp" .)
  mv "${OUT}/pause.tmp" "${OUT}/pause"
  echo "${PAUSE_VERSION}" > "${OUT}/pause.version"
}

main() {
  builder_lock components
  need go "install Go (see go.mod for the version)"
  mkdir -p "${OUT}" "${SRC}"
  local only=${1:-all}
  [[ ${only} == all || ${only} == pause ]] && build_pause
  [[ ${only} == all || ${only} == crictl ]] && build_from_module crictl sigs.k8s.io/cri-tools/cmd/crictl "${CRICTL_VERSION}" \
    "-X sigs.k8s.io/cri-tools/pkg/version.Version=${CRICTL_VERSION}"
  [[ ${only} == all || ${only} == etcd ]] && build_from_module etcd go.etcd.io/etcd/server/v3 "${ETCD_MODULE_VERSION}"
  [[ ${only} == all || ${only} == coredns ]] && build_from_module coredns github.com/coredns/coredns "${COREDNS_VERSION}"
  return 0
}

main "$@"
