#!/usr/bin/env bash
# Build the node's other Go components, static (CGO_ENABLED=0), one at a time at low priority:
#   etcd     go.etcd.io/etcd/server/v3        ${ETCD_MODULE_VERSION}   (~1.5 min cold)
#   coredns  github.com/coredns/coredns       ${COREDNS_VERSION}       (~3 min cold)
#   crictl   sigs.k8s.io/cri-tools/cmd/crictl ${CRICTL_VERSION}        (~1.5 min cold)
#   pause    scripts/airgap/pause (ours)      ${PAUSE_VERSION}
# Each upstream one is built with go_build_module in a scratch module that requires it at the
# pinned version (module replace directives upstream are for their own repos' development and
# are ignored, so `go install pkg@version` would refuse these).
#
# Output: $KIT_CACHE/components/bin/<name>, with <name>.version next to it.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

OUT="${KIT_CACHE}/components/bin"

is_current() { [[ -x ${OUT}/$1 && $(cat "${OUT}/$1.version" 2>/dev/null) == "$2" ]]; }

# build [--in DIR] NAME MODULE VERSION PKG [LDFLAGS]: go_build_module into ${OUT}/NAME,
# unless that is already VERSION.
build() {
  local opts=()
  [[ $1 == --in ]] && { opts=("$1" "$2"); shift 2; }
  local name=$1 version=$3
  if is_current "${name}" "${version}"; then
    info "${name} ${version}: cached"
    return 0
  fi
  info "${name} ${version}: building $4 (log ${KIT_LOGS}/build-${name}.log) ..."
  GOOS=linux go_build_module ${opts[@]+"${opts[@]}"} "$2" "${version}" "$4" "${OUT}/${name}" "${5:-}"
  echo "${version}" > "${OUT}/${name}.version"
}

main() {
  require_airgap_host
  builder_lock components
  need go "install Go (see go.mod for the version)"
  local only=${1:-all}
  [[ ${only} == all || ${only} == pause ]] && build --in "${REPO_ROOT}/scripts/airgap/pause" \
    pause grpc-k8s-kit/airgap/pause "${PAUSE_VERSION}" . "-X main.version=${PAUSE_VERSION}"
  [[ ${only} == all || ${only} == crictl ]] && build crictl sigs.k8s.io/cri-tools "${CRICTL_VERSION}" \
    sigs.k8s.io/cri-tools/cmd/crictl "-X sigs.k8s.io/cri-tools/pkg/version.Version=${CRICTL_VERSION}"
  [[ ${only} == all || ${only} == etcd ]] && build etcd go.etcd.io/etcd/server/v3 "${ETCD_MODULE_VERSION}" \
    go.etcd.io/etcd/server/v3
  [[ ${only} == all || ${only} == coredns ]] && build coredns github.com/coredns/coredns "${COREDNS_VERSION}" \
    github.com/coredns/coredns
  return 0
}

main "$@"
