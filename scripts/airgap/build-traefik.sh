#!/usr/bin/env bash
# Build Traefik from its Go module (github.com/traefik/traefik/v3 at TRAEFIK_VERSION) and wrap
# it in a FROM scratch image, $KIT_TRAEFIK_IMAGE.
#
# Traefik's go.mod has replace directives (forks of go-http-auth, mux, minheap), which
# `go install pkg@version` refuses, so we build inside a writable copy of the module
# (go_build_module --copy).
# TRAEFIK_VERSION v3.6.12 builds unchanged from the module proxy: no source or go.mod edits.
# (v3.7.x would need three: a stub for its nested dynamic/ext module, which is not in the
# module zip; the go-http-auth fork version v3.6.12 pins; and dropping the ACME DNS-01
# providers import, whose dependencies the proxy refuses. That is why we pin v3.6.12.)
# The web UI is not in the module zip; the binary embeds an empty UI, so the dashboard is off.
#
# Cold: ~11 min on 2 cores, ~140 MB binary. Output: $KIT_CACHE/traefik/$TRAEFIK_VERSION/traefik
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "${REPO_ROOT}/scripts/lib/engine.sh"

export DOCKER_BUILDKIT=0
OUT="${KIT_CACHE}/traefik/${TRAEFIK_VERSION}"

build_binary() {
  if [[ -x ${OUT}/traefik ]]; then
    info "traefik ${TRAEFIK_VERSION}: binary cached"
    return 0
  fi
  info "traefik ${TRAEFIK_VERSION}: building ./cmd/traefik (log ${KIT_LOGS}/build-traefik.log; ~11 min cold) ..."
  local pkg=github.com/traefik/traefik/v3/pkg/version
  GOOS=linux go_build_module --copy github.com/traefik/traefik/v3 "${TRAEFIK_VERSION}" ./cmd/traefik \
    "${OUT}/traefik" "-X ${pkg}.Version=${TRAEFIK_VERSION} -X ${pkg}.BuildDate=1970-01-01T00:00:00Z"
}

# 65532: the non-root uid deploy/traefik's securityContext names.
build_image() {
  scratch_image traefik "${OUT}/traefik" "${KIT_TRAEFIK_IMAGE}" /traefik 65532
}

main() {
  require_airgap_host
  builder_lock traefik
  need go "install Go (see go.mod for the version)"
  build_binary
  [[ ${1:-image} == binary ]] && return 0
  build_image
}

main "$@"
