#!/usr/bin/env bash
# Build the Prometheus server from its Go module (github.com/prometheus/prometheus at
# PROMETHEUS_VERSION, release PROMETHEUS_RELEASE) and wrap it in a FROM scratch image,
# $KIT_PROMETHEUS_IMAGE: the metrics pipeline's server (deploy/kind/prometheus).
#
# Built inside a writable copy of the module (go_build_module --copy), as upstream's Makefile
# does, so its go.mod and go.sum apply exactly; GOWORK=off, because the module's go.work
# names directories (./compliance, ./internal/tools, ...) that are not in the module zip.
# Build tags, from upstream's .promu.yml (netgo, builtinassets) and README ("Service discovery
# plugins"):
#   - builtinassets is left out: the web UI's assets are not in the module zip (they are built
#     with npm), and without the tag web/ui/ui.go serves them from disk, where there are none.
#     The UI is absent; the HTTP API, scraping, rules and alerts work, which is all the kit uses.
#   - remove_all_sd,enable_kubernetes_sd: of the optional service discoveries (plugins/*.go)
#     only Kubernetes, which is all the operator's configurations use; file, HTTP and static
#     discovery always stay. It also leaves the cloud SDKs out of the build.
# The version ldflags are upstream's (.promu.yml), so `prometheus --version` and the
# prometheus_build_info metric name the release.
#
# FROM scratch (one static binary, as the kit's Traefik and istiod): Prometheus needs no shell,
# CA bundle or user database in the image. The operator mounts what it reads and writes (its
# configuration, rules, the TSDB on an emptyDir); the kubelets are scraped with the service
# account's token; the pod's securityContext names the uid. Upstream's image is busybox-based
# for its shell; nothing in the operator's StatefulSet runs one (its probes are HTTP).
#
# Cold: see scripts/TIMINGS.md. Output: $KIT_CACHE/prometheus/$PROMETHEUS_VERSION/prometheus
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "${REPO_ROOT}/scripts/lib/engine.sh"

export DOCKER_BUILDKIT=0
OUT="${KIT_CACHE}/prometheus/${PROMETHEUS_VERSION}"
MODULE=github.com/prometheus/prometheus
TAGS=remove_all_sd,enable_kubernetes_sd

# check_module: the module is the release versions.sh derives, and still has the build tags
# and the UI switch this script relies on (a version where they moved stops here, not with a
# binary that silently has every discovery, or none).
check_module() {
  local src
  src=$(module_dir "${MODULE}@${PROMETHEUS_VERSION}")
  [[ -d ${src} ]] || die "cannot download ${MODULE}@${PROMETHEUS_VERSION} from the Go module proxy (GOPROXY=$(go env GOPROXY))"
  [[ v$(cat "${src}/VERSION") == "${PROMETHEUS_RELEASE}" ]] \
    || die "${MODULE}@${PROMETHEUS_VERSION} is release v$(cat "${src}/VERSION"), not ${PROMETHEUS_RELEASE}: fix PROMETHEUS_RELEASE's derivation in scripts/lib/versions.sh"
  grep -q '^//go:build !remove_all_sd || enable_kubernetes_sd$' "${src}/plugins/plugin_kubernetes.go" \
    || die "${MODULE}@${PROMETHEUS_VERSION}: plugins/plugin_kubernetes.go no longer has the build tags ${TAGS}"
  grep -q '^//go:build !builtinassets$' "${src}/web/ui/ui.go" \
    || die "${MODULE}@${PROMETHEUS_VERSION}: web/ui/ui.go is no longer the build without embedded assets"
}

build_binary() {
  if [[ -x ${OUT}/prometheus ]]; then
    info "prometheus ${PROMETHEUS_RELEASE} (${PROMETHEUS_VERSION}): binary cached"
    return 0
  fi
  check_module
  info "prometheus ${PROMETHEUS_RELEASE}: building ./cmd/prometheus, tags ${TAGS} (log ${KIT_LOGS}/build-prometheus.log) ..."
  local v=github.com/prometheus/common/version
  # GOFLAGS carries the tags (go_build_module takes none); keep what go env already sets there.
  GOOS=linux GOWORK=off GOFLAGS="$(go env GOFLAGS) -tags=${TAGS}" \
    go_build_module --copy "${MODULE}" "${PROMETHEUS_VERSION}" ./cmd/prometheus "${OUT}/prometheus" \
    "-X ${v}.Version=${PROMETHEUS_RELEASE#v} -X ${v}.Revision=${PROMETHEUS_VERSION} -X ${v}.Branch=HEAD -X ${v}.BuildUser=grpc-k8s-kit -X ${v}.BuildDate=19700101-00:00:00"
}

# 65534 (nobody) is the uid of upstream's image; deploy/kind/prometheus names it too. The
# path is upstream's, so both modes run the same Prometheus object.
build_image() {
  scratch_image prometheus "${OUT}/prometheus" "${KIT_PROMETHEUS_IMAGE}" /bin/prometheus 65534
}

main() {
  require_airgap_host
  builder_lock prometheus
  need go "install Go (see go.mod for the version)"
  build_binary
  [[ ${1:-image} == binary ]] && return 0
  build_image
}

main "$@"
