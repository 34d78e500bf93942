# shellcheck shell=bash
# shellcheck disable=SC2034  # variables used by the scripts that source this file
# Every pinned version used by kind-up and the air-gapped image builders.
# Cache directories are keyed by these, so bumping one rebuilds only what depends on it.
# Go modules that a go.mod pins are read from it, so each version is written in one place.
# Source after common.sh (needs REPO_ROOT and die).

# gomod_version GO_MOD MODULE: the version GO_MOD requires of MODULE (read with awk: no go
# command needed, and it works while the module's go.sum is incomplete).
gomod_version() {
  local v
  v=$(awk -v m="$2" '$1 == "require" { $1 = ""; $0 = $0 } $1 == m && $2 ~ /^v/ { print $2; exit }' "$1")
  [[ -n ${v} ]] || die "${1#"${REPO_ROOT}/"} does not require $2"
  echo "${v}"
}

# sigs.k8s.io/kind: the repo's go.mod (a tool of the main module).
KIND_VERSION=$(gomod_version "${REPO_ROOT}/go.mod" sigs.k8s.io/kind)
# k8s.io/kubernetes: the air-gapped build module; kind ${KIND_VERSION}'s default node is this version.
KUBE_VERSION=$(gomod_version "${REPO_ROOT}/scripts/airgap/k8s/go.mod" k8s.io/kubernetes)
# kind's default node image for ${KIND_VERSION} (pkg/apis/config/defaults/image.go).
KIND_NODE_UPSTREAM="kindest/node:${KUBE_VERSION}@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5"

# Versions kubeadm ${KUBE_VERSION} expects (`kubeadm config images list`); the builders check
# the built kubeadm agrees before tagging anything.
ETCD_IMAGE_TAG=3.7.0-0
ETCD_MODULE_VERSION=v3.7.0           # go.etcd.io/etcd/server/v3
COREDNS_VERSION=v1.14.6              # github.com/coredns/coredns
PAUSE_VERSION=3.10.2                 # built from scripts/airgap/pause (tiny Go reimplementation)
CRICTL_VERSION=v1.36.0               # sigs.k8s.io/cri-tools

# Node base: Debian release debootstrapped for the node rootfs. Also the base of the image
# of the clients in other languages (clients/Dockerfile), which take gRPC C-core, Node.js and
# grpc-java from this release's packages: air-gapped, a minbase debootstrap of it
# (scripts/airgap/build-debian-base.sh); upstream, Debian's published slim image of it.
DEBIAN_SUITE=bookworm
DEBIAN_UPSTREAM_IMAGE="debian:${DEBIAN_SUITE}-slim"

# Ingress / Gateway API controller. v3.7.13: the newest release on the Go module proxy when pinned
# (air-gapped, scripts/airgap/build-traefik.sh patches three things; it says which). Upstream
# mode: the official image of the same tag (docker-library/official-images#22206).
TRAEFIK_VERSION=v3.7.13              # github.com/traefik/traefik/v3
TRAEFIK_UPSTREAM_IMAGE="traefik:${TRAEFIK_VERSION}"
GATEWAY_API_VERSION=v1.6.1           # sigs.k8s.io/gateway-api (what Traefik ${TRAEFIK_VERSION} is built against); standard CRDs in deploy/gateway-api

# Proxyless xDS control plane: istiod (pilot-discovery, built from the module istio.io/istio).
# Istio's release tags (1.31.0, no leading v) are not Go module versions, so the
# module is pinned by pseudo-version: the commit Istio tagged 1.31.0 (and 1.31.0-rc.4), eed52eb
# on Istio's release page (go 1.26.0, no replace directives).
ISTIO_VERSION=v0.0.0-20260827124520-eed52ebb66ad   # istio.io/istio
# When bumping it: scripts/update-istio-crds.sh (deploy/istiod/crds), and in go.mod
# istio.io/client-go at the version istio.io/istio's own go.mod requires (the render tests
# decode the DestinationRule with it).
# Upstream mode: Istio's published image of that release, so both modes run the same commit.
ISTIOD_UPSTREAM_IMAGE="istio/pilot:1.31.0"

# The cluster's network daemon (deploy/kube-router): pod routes between nodes, each node's CNI
# config, NetworkPolicy. v2.1.0 is the only release the Go module proxy serves here, and an old
# one (2024-03): its service proxy is left off (kube-proxy stays), as advisory
# GHSA-phqm-jgc3-qf8g concerns that part. Upstream mode: the project's image of the same tag,
# which its release workflow publishes for every tag (RELEASE.md in the module).
KUBE_ROUTER_VERSION=v2.1.0           # github.com/cloudnativelabs/kube-router/v2
KUBE_ROUTER_UPSTREAM_IMAGE="cloudnativelabs/kube-router:${KUBE_ROUTER_VERSION}"

# Prometheus: the metrics pipeline's server (deploy/kind/prometheus; the image built
# air-gapped by scripts/airgap/build-prometheus.sh), and promtool, Prometheus' rule checker
# and unit-test runner, built by scripts/build-promtool.sh for make test: it evaluates
# kustomize/components/prometheus-rule's rules on test series (kustomize/alerts_test.go).
# Prometheus tags its Go module v0.3MM.P for the server release 3.MM.P (its
# scripts/get_module_version.sh): PROMETHEUS_RELEASE is derived, and the image builder checks
# it against the module's VERSION file. Upstream mode: the image the project publishes to
# Docker Hub for that release (its Makefile.common: DOCKER_REPO prom; RELEASE.md).
PROMETHEUS_VERSION=v0.316.0          # github.com/prometheus/prometheus
PROMETHEUS_MINOR=${PROMETHEUS_VERSION#v0.}; PROMETHEUS_MINOR=${PROMETHEUS_MINOR%%.*}
PROMETHEUS_RELEASE="v${PROMETHEUS_MINOR:0:1}.$((10#${PROMETHEUS_MINOR:1})).${PROMETHEUS_VERSION##*.}"
PROMETHEUS_UPSTREAM_IMAGE="prom/prometheus:${PROMETHEUS_RELEASE}"
# The Prometheus Operator (deploy/prometheus-operator; its images built air-gapped by
# scripts/airgap/build-prometheus-operator.sh). Its module serves v0.85.0 only here. Its CRDs
# are committed in deploy/prometheus-operator/crds (scripts/update-prometheus-operator-crds.sh).
# Upstream mode: the operator's and config reloader's images of the same tag, at the
# repositories its own Makefile names (IMAGE_OPERATOR, IMAGE_RELOADER; RELEASE.md: every tag
# is published there), read from the module by kind-up (upstream_operator_image), so no
# registry is written here.
PROMETHEUS_OPERATOR_VERSION=v0.85.0  # github.com/prometheus-operator/prometheus-operator

# Local image names used in air-gapped mode (never pushed anywhere).
KIT_NODE_IMAGE="grpc-k8s-kit/kind-node:${KUBE_VERSION}"
KIT_TRAEFIK_IMAGE="grpc-k8s-kit/traefik:${TRAEFIK_VERSION}"
KIT_ISTIOD_IMAGE="grpc-k8s-kit/istiod:${ISTIO_VERSION}"
KIT_DEBIAN_IMAGE="grpc-k8s-kit/debian:${DEBIAN_SUITE}"
KIT_KUBE_ROUTER_IMAGE="grpc-k8s-kit/kube-router:${KUBE_ROUTER_VERSION}"
KIT_PROMETHEUS_IMAGE="grpc-k8s-kit/prometheus:${PROMETHEUS_VERSION}"
KIT_PROMETHEUS_OPERATOR_IMAGE="grpc-k8s-kit/prometheus-operator:${PROMETHEUS_OPERATOR_VERSION}"
KIT_CONFIG_RELOADER_IMAGE="grpc-k8s-kit/prometheus-config-reloader:${PROMETHEUS_OPERATOR_VERSION}"
# The clients in other languages (clients/Dockerfile), built from this tree by make e2e.
KIT_CLIENTS_IMAGE="grpc-k8s-kit/clients:dev"
