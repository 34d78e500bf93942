#!/usr/bin/env bash
# make kind-down: delete the kind cluster (idempotent). The cache (built images, binaries)
# and the Docker engine stay, so the next make kind-up is warm.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "${REPO_ROOT}/scripts/lib/engine.sh"
source "${REPO_ROOT}/scripts/lib/cluster.sh"

main() {
  if ! engine_alive; then
    info "no Docker engine answers, so there is no kind cluster to delete"
    return 0
  fi
  if [[ ! -x ${KIND} ]]; then
    # Without our kind binary, the node container is still recognisable by name.
    "${DOCKER}" rm -f "${NODE_CONTAINER}" >/dev/null 2>&1 || true
    info "kind not built yet (${KIND}); removed container ${NODE_CONTAINER} if it existed"
  elif cluster_exists; then
    log "deleting kind cluster '${CLUSTER_NAME}'"
    KUBECONFIG="${KIT_CACHE}/kubeconfig.kind" kind_ delete cluster --name "${CLUSTER_NAME}" >&2
    rm -f "${KIT_CACHE}/kubeconfig.kind"
  else
    info "no kind cluster '${CLUSTER_NAME}': nothing to delete"
  fi
  # Node/Traefik images replaced by a rebuild while a cluster still ran them are now unused:
  # they are untagged and carry our kit.key label, so nothing else is matched.
  local dangling
  dangling=$("${DOCKER}" images -q --filter dangling=true --filter label=kit.key 2>/dev/null || true)
  # shellcheck disable=SC2086  # one image ID per word
  [[ -z ${dangling} ]] || "${DOCKER}" rmi ${dangling} >/dev/null 2>&1 || true
  # The kubeconfig only ever holds the cluster kind-up wrote it for.
  if [[ -f ${KIT_CACHE}/kubeconfig ]] && grep -q "kind-${CLUSTER_NAME}\$" "${KIT_CACHE}/kubeconfig"; then
    rm -f "${KIT_CACHE}/kubeconfig"
  fi
}

main "$@"
