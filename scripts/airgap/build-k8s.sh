#!/usr/bin/env bash
# Build the Kubernetes binaries (static, CGO_ENABLED=0) from the k8s.io/kubernetes Go module,
# with go_build_module --in the build module scripts/airgap/k8s (staging modules replaced by
# their v0.x tags).
#
# Output: $KIT_CACHE/k8s/$KUBE_VERSION/bin/{kubeadm,kubelet,kubectl,kube-*}
# Cold: ~25 min on 2 cores (kubelet and kubeadm are the long ones); warm: seconds.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"

K8S_BINARIES=(kubeadm kubectl kubelet kube-apiserver kube-controller-manager kube-scheduler kube-proxy)
OUT="${KIT_CACHE}/k8s/${KUBE_VERSION}/bin"
MODULE_DIR="${REPO_ROOT}/scripts/airgap/k8s"

# -X flags for the version packages; without them kubeadm does not know its own version
# and asks for "latest" images.
version_ldflags() {
  local v=${KUBE_VERSION#v} pkg flags=""
  local major=${v%%.*} minor
  minor=${v#*.}; minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X ${pkg}.gitVersion=${KUBE_VERSION} -X ${pkg}.gitMajor=${major} -X ${pkg}.gitMinor=${minor}"
    flags+=" -X ${pkg}.gitCommit=0000000000000000000000000000000000000000 -X ${pkg}.gitTreeState=clean"
    flags+=" -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
  done
  echo "${flags# }"
}

main() {
  require_airgap_host
  builder_lock k8s
  need go "install Go (see go.mod for the version)"
  local ldflags i=0 n=${#K8S_BINARIES[@]} b
  ldflags=$(version_ldflags)
  for b in "${K8S_BINARIES[@]}"; do
    i=$((i + 1))
    if [[ -x ${OUT}/${b} ]]; then
      info "k8s ${i}/${n} ${b}: cached"
      continue
    fi
    info "k8s ${i}/${n} ${b}: building (log ${KIT_LOGS}/build-${b}.log) ..."
    GOOS=linux go_build_module --in "${MODULE_DIR}" k8s.io/kubernetes "${KUBE_VERSION}" \
      "k8s.io/kubernetes/cmd/${b}" "${OUT}/${b}" "${ldflags}"
  done
  "${OUT}/kubeadm" version -o short | grep -qx "${KUBE_VERSION}" \
    || die "built kubeadm reports $("${OUT}/kubeadm" version -o short), want ${KUBE_VERSION}"
}

main "$@"
