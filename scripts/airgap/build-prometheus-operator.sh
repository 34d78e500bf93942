#!/usr/bin/env bash
# Build the Prometheus Operator and its config reloader from their Go module
# (github.com/prometheus-operator/prometheus-operator at PROMETHEUS_OPERATOR_VERSION) and wrap
# each in a FROM scratch image: $KIT_PROMETHEUS_OPERATOR_IMAGE (deploy/prometheus-operator)
# and $KIT_CONFIG_RELOADER_IMAGE (the sidecar the operator adds to every Prometheus pod; its
# --prometheus-config-reloader flag names it).
#
# Built from a scratch module that requires each command (go_build_module's default mode),
# not inside a copy of the module: its go.mod replaces its API and client modules by
# ./pkg/apis/monitoring and ./pkg/client, nested modules that the module zip leaves out. The
# scratch module takes those two at the same version from the proxy instead, which is what the
# replace points at when the tag is cut. The version ldflag is upstream's (its Makefile), so the
# operator logs and exports its release.
#
# FROM scratch: both are static Go binaries that need no shell (upstream's images are
# busybox-based; the kit never execs into them).
#
# Cold: see scripts/TIMINGS.md. Output: $KIT_CACHE/prometheus-operator/$PROMETHEUS_OPERATOR_VERSION/
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "${REPO_ROOT}/scripts/lib/engine.sh"

export DOCKER_BUILDKIT=0
OUT="${KIT_CACHE}/prometheus-operator/${PROMETHEUS_OPERATOR_VERSION}"
MODULE=github.com/prometheus-operator/prometheus-operator

# build_binary CMD NAME: ./cmd/CMD of the module into ${OUT}/NAME (NAME also names its log).
build_binary() {
  local cmd=$1 name=$2
  if [[ -x ${OUT}/${name} ]]; then
    info "${name} ${PROMETHEUS_OPERATOR_VERSION}: binary cached"
    return 0
  fi
  info "${name} ${PROMETHEUS_OPERATOR_VERSION}: building (log ${KIT_LOGS}/build-${name}.log) ..."
  GOOS=linux go_build_module "${MODULE}" "${PROMETHEUS_OPERATOR_VERSION}" "${MODULE}/cmd/${cmd}" "${OUT}/${name}" \
    "-X github.com/prometheus/common/version.Version=${PROMETHEUS_OPERATOR_VERSION#v} -X github.com/prometheus/common/version.Revision=${PROMETHEUS_OPERATOR_VERSION}"
}

# 65534 (nobody): upstream's images' user; deploy/prometheus-operator and the Prometheus pods
# name it too. The paths are upstream's.
build_images() {
  scratch_image prometheus-operator "${OUT}/prometheus-operator" "${KIT_PROMETHEUS_OPERATOR_IMAGE}" /bin/operator 65534
  scratch_image prometheus-config-reloader "${OUT}/prometheus-config-reloader" "${KIT_CONFIG_RELOADER_IMAGE}" \
    /bin/prometheus-config-reloader 65534
}

main() {
  require_airgap_host
  builder_lock prometheus-operator
  need go "install Go (see go.mod for the version)"
  build_binary operator prometheus-operator
  build_binary prometheus-config-reloader prometheus-config-reloader
  [[ ${1:-image} == binary ]] && return 0
  build_images
}

main "$@"
