#!/usr/bin/env bash
# The Debian base image of the clients in other languages (clients/Dockerfile), with no
# container registry: a minbase debootstrap of ${DEBIAN_SUITE} from the mirror this host's apt
# already uses, imported as ${KIT_DEBIAN_IMAGE}. Upstream mode tags Debian's published slim
# image of the same release with that name instead (kind-up.sh), so the Dockerfile reads one
# name in both modes. The image keeps apt and its sources: the Dockerfile installs Debian's gRPC
# packages with apt-get.
#
# Usage: build-debian-base.sh [image]   (a present image short-circuits everything)
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "${REPO_ROOT}/scripts/lib/engine.sh"

DIR="${KIT_CACHE}/debian/${DEBIAN_SUITE}-minbase"

build_rootfs() {
  local mirror
  ensure_cmds debootstrap
  mirror=$(debian_mirror)
  info "debian base: debootstrap ${DEBIAN_SUITE} minbase (log ${KIT_LOGS}/debootstrap-base.log; ~2 min) ..."
  rm -rf "${DIR}.tmp"
  logged "${KIT_LOGS}/debootstrap-base.log" nice -n 19 \
    debootstrap --variant=minbase "${DEBIAN_SUITE}" "${DIR}.tmp" "${mirror}"
  # What apt-get update fetches again, and what no container reads.
  rm -rf "${DIR}.tmp"/var/cache/apt/archives/*.deb "${DIR}.tmp"/var/cache/apt/*.bin \
    "${DIR}.tmp"/var/lib/apt/lists/* "${DIR}.tmp"/usr/share/{doc,man,info,locale}/*
  rm -rf "${DIR}"
  mv "${DIR}.tmp" "${DIR}"
}

main() {
  ensure_engine
  if "${DOCKER}" image inspect "${KIT_DEBIAN_IMAGE}" >/dev/null 2>&1; then
    info "${KIT_DEBIAN_IMAGE}: present"
    return 0
  fi
  require_airgap_host
  builder_lock debian-base
  [[ -d ${DIR}/usr ]] || build_rootfs
  info "debian base: importing ${KIT_DEBIAN_IMAGE} ($(du -sh "${DIR}" | cut -f1)) ..."
  tar -C "${DIR}" -c . | "${DOCKER}" import - "${KIT_DEBIAN_IMAGE}" >/dev/null
}

main "$@"
