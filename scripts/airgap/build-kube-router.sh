#!/usr/bin/env bash
# Build kube-router (the cluster's network daemon: pod routes between nodes, the nodes' CNI
# config, NetworkPolicy) from its Go module, github.com/cloudnativelabs/kube-router/v2 at
# KUBE_ROUTER_VERSION, and wrap it in $KIT_KUBE_ROUTER_IMAGE on the kit's Debian base.
#
# The image holds what kube-router runs besides itself, as the published image does (its
# Dockerfile, in the module): iptables and ipset for NetworkPolicy, iproute2, and the CNI
# plugins its CNI config names (bridge, host-local, portmap, loopback; Debian's
# containernetworking-plugins), which the module's cni-install script copies to a node that
# lacks them. The module's iptables-wrapper-installer.sh makes `iptables` pick the node's
# backend (legacy or nft) at run time, so kube-router's rules land beside kube-proxy's.
#
# Cold: about 80 s on 2 cores for the binary (module downloads included), under a minute for
# the image's Debian packages. Output: $KIT_CACHE/kube-router/$KUBE_ROUTER_VERSION/kube-router
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "${REPO_ROOT}/scripts/lib/engine.sh"

export DOCKER_BUILDKIT=0
OUT="${KIT_CACHE}/kube-router/${KUBE_ROUTER_VERSION}"
MODULE=github.com/cloudnativelabs/kube-router/v2

build_binary() {
  if [[ -x ${OUT}/kube-router ]]; then
    info "kube-router ${KUBE_ROUTER_VERSION}: binary cached"
    return 0
  fi
  info "kube-router ${KUBE_ROUTER_VERSION}: building ./cmd/kube-router (log ${KIT_LOGS}/build-kube-router.log; ~1.5 min cold) ..."
  GOOS=linux go_build_module "${MODULE}" "${KUBE_ROUTER_VERSION}" "${MODULE}/cmd/kube-router" \
    "${OUT}/kube-router" "-X ${MODULE}/pkg/version.Version=${KUBE_ROUTER_VERSION}"
}

# The image's key: the binary, this script (its Dockerfile) and the base image it starts from.
image_key() {
  { sha256sum "${OUT}/kube-router"; cat "${BASH_SOURCE[0]}"
    "${DOCKER}" image inspect -f '{{.Id}}' "${KIT_DEBIAN_IMAGE}"; } | sha256sum | cut -c1-12
}

build_image() {
  local key ctx src
  ensure_engine
  "${DOCKER}" image inspect "${KIT_DEBIAN_IMAGE}" >/dev/null 2>&1 \
    || die "no ${KIT_DEBIAN_IMAGE} image: scripts/airgap/build-debian-base.sh builds it (make kind-up does)"
  key=$(image_key)
  if [[ $("${DOCKER}" image inspect -f '{{index .Config.Labels "kit.key"}}' "${KIT_KUBE_ROUTER_IMAGE}" 2>/dev/null) == "${key}" ]]; then
    info "kube-router image: cached (${KIT_KUBE_ROUTER_IMAGE})"
    return 0
  fi
  src=$(module_dir "${MODULE}@${KUBE_ROUTER_VERSION}")
  [[ -f ${src}/build/image-assets/cni-install && -f ${src}/build/image-assets/iptables-wrapper-installer.sh ]] \
    || die "${MODULE}@${KUBE_ROUTER_VERSION} has no build/image-assets/{cni-install,iptables-wrapper-installer.sh}"
  ctx=$(mktemp -d "${KIT_CACHE}/kube-router-image.XXXXXX")
  cp "${OUT}/kube-router" "${ctx}/kube-router"
  cp "${src}/build/image-assets/cni-install" "${src}/build/image-assets/iptables-wrapper-installer.sh" "${ctx}/"
  chmod 0755 "${ctx}"/*
  cat > "${ctx}/Dockerfile" <<DOCKERFILE
FROM ${KIT_DEBIAN_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \\
      iptables ipset iproute2 containernetworking-plugins >/dev/null \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /usr/libexec /var/lib/gobgp && ln -s /usr/lib/cni /usr/libexec/cni
COPY iptables-wrapper-installer.sh cni-install /usr/local/bin/
# --no-sanity-check as upstream's Dockerfile: the check runs iptables in the build container.
RUN /usr/local/bin/iptables-wrapper-installer.sh --no-sanity-check
COPY kube-router /usr/local/bin/kube-router
LABEL kit.key=${key}
ENTRYPOINT ["/usr/local/bin/kube-router"]
DOCKERFILE
  info "kube-router image: building ${KIT_KUBE_ROUTER_IMAGE} (log ${KIT_LOGS}/build-kube-router-image.log) ..."
  logged "${KIT_LOGS}/build-kube-router-image.log" "${DOCKER}" build -t "${KIT_KUBE_ROUTER_IMAGE}" "${ctx}"
  rm -rf "${ctx}"
  info "kube-router image: ${KIT_KUBE_ROUTER_IMAGE}"
}

main() {
  require_airgap_host
  builder_lock kube-router
  need go "install Go (see go.mod for the version)"
  build_binary
  [[ ${1:-image} == binary ]] && return 0
  build_image
}

main "$@"
