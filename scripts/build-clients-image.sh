#!/usr/bin/env bash
# make clients-image: the image of the kit's clients in other languages (clients/Dockerfile),
# ${KIT_CLIENTS_IMAGE}, FROM ${KIT_DEBIAN_IMAGE} (make kind-up provides it: debootstrapped
# air-gapped, Debian's slim image upstream). make e2e calls it and loads the image into the
# cluster. The build context is proto/, clients/ (without node_modules or build output) and
# the host's CA bundle; the label kit.key hashes all of it and the base's ID, so an unchanged
# tree is not rebuilt. Cold: scripts/TIMINGS.md.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "${REPO_ROOT}/scripts/lib/engine.sh"

export DOCKER_BUILDKIT=0   # the classic builder: no frontend image to pull

# host_ca_bundle: the bundle this host's TLS clients trust (Debian's path, then the common
# alternatives); empty output if none.
host_ca_bundle() {
  local f
  for f in "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do
    [[ -n ${f} && -s ${f} ]] && { echo "${f}"; return 0; }
  done
}

main() {
  ensure_engine
  local base_id key ca registry=""
  base_id=$("${DOCKER}" image inspect -f '{{.Id}}' "${KIT_DEBIAN_IMAGE}" 2>/dev/null) \
    || die "no ${KIT_DEBIAN_IMAGE} image: run make kind-up (it builds or pulls it)"
  ctx=$(mktemp -d "${KIT_CACHE}/clients-image.XXXXXX")
  trap 'rm -rf "${ctx}"' EXIT   # ctx is global: the trap runs after main returns
  cp -r "${REPO_ROOT}/proto" "${ctx}/proto"
  (cd "${REPO_ROOT}" && tar -c --exclude=node_modules --exclude=build clients) | tar -C "${ctx}" -x
  : > "${ctx}/host-ca.crt"
  ca=$(host_ca_bundle) && [[ -n ${ca} ]] && cp "${ca}" "${ctx}/host-ca.crt"
  command -v npm >/dev/null 2>&1 && registry=$(npm config get registry 2>/dev/null || true)
  key=$({ echo "${base_id} ${registry}"; (cd "${ctx}" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum); } \
    | sha256sum | cut -c1-12)
  if [[ $("${DOCKER}" image inspect -f '{{index .Config.Labels "kit.key"}}' "${KIT_CLIENTS_IMAGE}" 2>/dev/null) == "${key}" ]]; then
    info "clients image: unchanged (${KIT_CLIENTS_IMAGE})"
    return 0
  fi
  info "clients image: building ${KIT_CLIENTS_IMAGE} (log ${KIT_LOGS}/build-clients-image.log; a few minutes cold) ..."
  logged "${KIT_LOGS}/build-clients-image.log" "${DOCKER}" build -f "${ctx}/clients/Dockerfile" \
    --build-arg "BASE=${KIT_DEBIAN_IMAGE}" --build-arg "NPM_REGISTRY=${registry}" \
    --label "kit.key=${key}" -t "${KIT_CLIENTS_IMAGE}" "${ctx}"
  info "clients image: ${KIT_CLIENTS_IMAGE}, $("${DOCKER}" image inspect -f '{{.Size}}' "${KIT_CLIENTS_IMAGE}" | awk '{printf "%.0f MB", $1/1e6}')"
}

main "$@"
