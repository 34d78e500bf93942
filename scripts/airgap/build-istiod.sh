#!/usr/bin/env bash
# Build istiod (pilot-discovery) from its Go module (istio.io/istio at ISTIO_VERSION) and wrap
# it in a FROM scratch image, $KIT_ISTIOD_IMAGE: the xDS control plane of the proxyless-xds
# topology (deploy/istiod).
#
# istio.io/istio's go.mod has no replace directives, so a scratch module that requires the
# package builds it (go_build_module's default mode, like the node's components), unchanged from
# the module proxy. Injection, webhooks and the Gateway deployment controller are switched off at
# run time (deploy/istiod), so no Envoy or agent image is needed beside it.
#
# Cold: see scripts/TIMINGS.md (~130 MB binary). Output: $KIT_CACHE/istiod/$ISTIO_VERSION/pilot-discovery
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "${REPO_ROOT}/scripts/lib/engine.sh"

export DOCKER_BUILDKIT=0
OUT="${KIT_CACHE}/istiod/${ISTIO_VERSION}"

build_binary() {
  if [[ -x ${OUT}/pilot-discovery ]]; then
    info "istiod ${ISTIO_VERSION}: binary cached"
    return 0
  fi
  info "istiod ${ISTIO_VERSION}: building pilot-discovery (log ${KIT_LOGS}/build-pilot-discovery.log; ~10 min cold) ..."
  GOOS=linux go_build_module istio.io/istio "${ISTIO_VERSION}" istio.io/istio/pilot/cmd/pilot-discovery \
    "${OUT}/pilot-discovery"
}

# 1337 is Istio's own uid, which deploy/istiod's securityContext names too; the path is
# upstream's, so both modes run the same YAML.
build_image() {
  scratch_image istiod "${OUT}/pilot-discovery" "${KIT_ISTIOD_IMAGE}" /usr/local/bin/pilot-discovery 1337
}

main() {
  require_airgap_host
  builder_lock istiod
  need go "install Go (see go.mod for the version)"
  build_binary
  [[ ${1:-image} == binary ]] && return 0
  build_image
}

main "$@"
