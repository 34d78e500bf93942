#!/usr/bin/env bash
# Assemble a kind node image with no container registry, the way kind's own
# `kind build node-image` does (sigs.k8s.io/kind pkg/build/nodeimage + images/base), but from:
#   - a debootstrapped Debian rootfs (containerd, runc, CNI plugins, systemd from Debian),
#   - kind's images/base/files from the Go module cache,
#   - Kubernetes binaries from build-k8s.sh and etcd/coredns/pause/crictl from
#     build-components.sh, wrapped into images tagged exactly as kubeadm expects.
#
# Stages (each cached, keyed by versions and by the hash of its inputs):
#   rootfs      debootstrap minbase + packages          $KIT_CACHE/node/rootfs-<key>/
#   base image  rootfs + kind's base files               grpc-k8s-kit/kind-base:<key>
#   images      control-plane images as docker archives  $KIT_CACHE/node/images-<key>/*.tar
#   node image  base + binaries + preloaded images       $KIT_NODE_IMAGE (label kit.key=<key>)
#
# Usage: build-node-image.sh [rootfs|base|images|node]   (default: node, which builds what it
# needs of the others; a current node image short-circuits everything)
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "${REPO_ROOT}/scripts/lib/engine.sh"

export DOCKER_BUILDKIT=0   # the classic builder needs nothing from a registry for FROM scratch
NODE_DIR="${KIT_CACHE}/node"
NODE_FILES="${REPO_ROOT}/scripts/airgap/node"
K8S_BIN="${KIT_CACHE}/k8s/${KUBE_VERSION}/bin"
COMPONENTS_BIN="${KIT_CACHE}/components/bin"

# What kind's base image installs, minus what we do not use (fuse-overlayfs, nfs, iscsi),
# plus what kind builds from source and Debian packages: containerd, runc, CNI plugins.
ROOTFS_PACKAGES=(
  systemd systemd-sysv dbus
  containerd runc containernetworking-plugins
  conntrack iptables nftables iproute2 ethtool socat util-linux mount kmod
  libseccomp2 pigz e2fsprogs
  bash ca-certificates curl jq procps
)

hash_of() { sha256sum | cut -c1-12; }

rootfs_key() { printf '%s\n' "${DEBIAN_SUITE}" "${ROOTFS_PACKAGES[@]}" | hash_of; }
rootfs_dir() { echo "${NODE_DIR}/rootfs-${DEBIAN_SUITE}-$(rootfs_key)"; }
rootfs_image() { echo "grpc-k8s-kit/node-rootfs:${DEBIAN_SUITE}-$(rootfs_key)"; }

base_key() {
  { rootfs_key; echo "${KIND_VERSION}"; cat "${BASH_SOURCE[0]}"; cat "${NODE_FILES}"/*; } | hash_of
}
base_image() { echo "grpc-k8s-kit/kind-base:${KIND_VERSION}-$(base_key)"; }

images_key() {
  { echo "${KUBE_VERSION} ${ETCD_IMAGE_TAG} ${COREDNS_VERSION} ${PAUSE_VERSION}"; rootfs_key
    sed -n '/^build_images()/,/^}/p' "${BASH_SOURCE[0]}"; } | hash_of
}
images_dir() { echo "${NODE_DIR}/images-${KUBE_VERSION}-$(images_key)"; }

node_key() { { base_key; images_key; echo "${CRICTL_VERSION}"; } | hash_of; }

image_exists() { "${DOCKER}" image inspect "$1" >/dev/null 2>&1; }

# ---- stage 1: rootfs ---------------------------------------------------------------------
build_rootfs() {
  local dir mirror
  dir=$(rootfs_dir)
  if [[ -f ${dir}/.kit-done ]]; then
    info "rootfs: cached (${dir})"
    return 0
  fi
  ensure_cmds debootstrap
  mirror=$(debian_mirror)
  info "rootfs: debootstrap ${DEBIAN_SUITE} minbase + ${#ROOTFS_PACKAGES[@]} packages (log ${KIT_LOGS}/debootstrap.log; ~5 min) ..."
  rm -rf "${dir}.tmp"
  local pkgs
  pkgs=$(IFS=,; echo "${ROOTFS_PACKAGES[*]}")
  logged "${KIT_LOGS}/debootstrap.log" nice -n 19 \
    debootstrap --variant=minbase --include="${pkgs}" "${DEBIAN_SUITE}" "${dir}.tmp" "${mirror}"
  # Package caches and docs are not needed in a node.
  rm -rf "${dir}.tmp"/var/cache/apt/archives/*.deb "${dir}.tmp"/var/cache/apt/*.bin \
    "${dir}.tmp"/var/lib/apt/lists/* "${dir}.tmp"/usr/share/{doc,man,info,locale}/*
  touch "${dir}.tmp/.kit-done"
  rm -rf "${dir}"
  mv "${dir}.tmp" "${dir}"
  info "rootfs: $(du -sh "${dir}" | cut -f1)"
}

# ensure_rootfs_image: the rootfs as a docker image (base of the node and of kube-proxy);
# debootstraps only when neither the image nor the cached rootfs exists.
ensure_rootfs_image() {
  local img
  img=$(rootfs_image)
  image_exists "${img}" && return 0
  build_rootfs
  info "rootfs image: importing ${img} ..."
  ensure_engine
  tar -C "$(rootfs_dir)" --exclude=./.kit-done -c . | "${DOCKER}" import - "${img}" >/dev/null
  remove_other_tags grpc-k8s-kit/node-rootfs "${img}"
}

# ---- stage 2: base image (kind's images/base, on our rootfs) -----------------------------
# base_context DIR: kind's images/base/files from the module cache plus our changes.
base_context() {
  local ctx=$1 kind_dir files
  kind_dir=$(module_dir "sigs.k8s.io/kind@${KIND_VERSION}")
  [[ -d ${kind_dir}/images/base/files ]] || die "kind ${KIND_VERSION} module has no images/base/files (${kind_dir})"
  files=${kind_dir}/images/base/files
  rm -rf "${ctx}"
  mkdir -p "${ctx}/files"
  cp -r "${files}/." "${ctx}/files/"
  chmod -R u+w "${ctx}/files"   # module cache files are read-only
  # We have no fuse-overlayfs snapshotter (rootless only): drop its unit and proxy plugin.
  rm -f "${ctx}/files/etc/systemd/system/containerd-fuse-overlayfs.service"
  sed -i '/^\[proxy_plugins/,/^$/d; /fuse-overlayfs is used for rootless/d' \
    "${ctx}/files/etc/containerd/config.toml"
  grep -q fuse "${ctx}/files/etc/containerd/config.toml" && die "could not drop fuse-overlayfs from containerd config"
  # No CNI config in the image: kind's kindnetd cannot be built offline, and the cluster's
  # network daemon (deploy/kube-router, applied by kind-up) writes each node's own.
  cat > "${ctx}/Dockerfile" <<EOF
FROM $(rootfs_image)
COPY files/ /
RUN chmod 0755 /kind /kind/bin /kind/bin/* /usr/local/bin/* \\
 && find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete \\
 && rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \\
          /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \\
          /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/* \\
 && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \\
 && ln -sf /usr/lib/systemd/systemd /sbin/init \\
 && ln -sf /usr/bin/containerd /usr/local/bin/containerd \\
 && mkdir -p /opt/cni && rm -rf /opt/cni/bin && ln -s /usr/lib/cni /opt/cni/bin \\
 && systemctl enable kubelet.service containerd.service undo-mount-hacks.service \\
 && systemctl mask systemd-binfmt.service \\
 && mkdir -p /etc/kubernetes/manifests \\
 && ctr oci spec \\
    | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \\
    | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \\
 && containerd --version && runc --version
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
EOF
}

build_base() {
  local img
  img=$(base_image)
  image_exists "${img}" && { info "base image: cached (${img})"; return 0; }
  ensure_rootfs_image
  info "base image: building ${img} ..."
  local ctx="${NODE_DIR}/base-context"
  base_context "${ctx}"
  logged "${KIT_LOGS}/build-base-image.log" "${DOCKER}" build -t "${img}" "${ctx}"
  rm -rf "${ctx}"
  remove_other_tags grpc-k8s-kit/kind-base "${img}"
}

# remove_other_tags REPO KEEP: drop this repo's images from older keys (they only use disk).
remove_other_tags() {
  local old
  for old in $("${DOCKER}" images --format '{{.Repository}}:{{.Tag}}' "$1"); do
    [[ ${old} == "$2" ]] || "${DOCKER}" rmi "${old}" >/dev/null 2>&1 || true
  done
}

# ---- stage 3: control-plane images, tagged as kubeadm lists them ------------------------
# kubeadm_images: `kubeadm config images list` for our version (names include the registry
# kubeadm uses by default; we never contact it, the names only have to match).
kubeadm_images() {
  "${K8S_BIN}/kubeadm" config images list --kubernetes-version "${KUBE_VERSION}" 2>/dev/null
}

# image_for NAME: the full reference kubeadm expects for image NAME (e.g. kube-apiserver).
image_for() {
  local ref
  ref=$(kubeadm_images | awk -F: -v n="$1" '{split($1, p, "/"); if (p[length(p)] == n) print}')
  [[ -n ${ref} ]] || die "kubeadm ${KUBE_VERSION} lists no image named $1"
  echo "${ref}"
}

# check_expected_tag NAME TAG: fail if kubeadm expects another version than versions.sh pins.
check_expected_tag() {
  local ref
  ref=$(image_for "$1")
  [[ ${ref##*:} == "$2" ]] || die "kubeadm ${KUBE_VERSION} expects ${ref}, versions.sh pins $1 $2: update versions.sh"
}

# wrap_binary REF BASE BINARY DEST OUT_TAR: a one-binary image, saved as a docker archive.
wrap_binary() {
  local ref=$1 base=$2 bin=$3 dest=$4 tar_out=$5 ctx
  ctx="${NODE_DIR}/ctx-$(basename "${bin}")"
  rm -rf "${ctx}"; mkdir -p "${ctx}"
  cp "${bin}" "${ctx}/"
  cat > "${ctx}/Dockerfile" <<EOF
FROM ${base}
COPY $(basename "${bin}") ${dest}
ENTRYPOINT ["${dest}"]
EOF
  logged "${KIT_LOGS}/build-image-$(basename "${bin}").log" "${DOCKER}" build -t "${ref}" "${ctx}"
  "${DOCKER}" save -o "${tar_out}.tmp" "${ref}"
  mv "${tar_out}.tmp" "${tar_out}"
  # The archive is what the node gets; do not leave registry-named tags in the host's engine.
  "${DOCKER}" rmi "${ref}" >/dev/null
  rm -rf "${ctx}"
}

build_images() {
  local dir
  dir=$(images_dir)
  if [[ -f ${dir}/.kit-done ]]; then
    info "control-plane images: cached (${dir})"
    return 0
  fi
  [[ -x ${K8S_BIN}/kubeadm ]] || die "Kubernetes binaries missing in ${K8S_BIN}: run scripts/airgap/build-k8s.sh"
  [[ -x ${COMPONENTS_BIN}/etcd ]] || die "etcd/coredns/pause missing in ${COMPONENTS_BIN}: run scripts/airgap/build-components.sh"
  ensure_rootfs_image
  check_expected_tag etcd "${ETCD_IMAGE_TAG}"
  check_expected_tag coredns "${COREDNS_VERSION}"
  check_expected_tag pause "${PAUSE_VERSION}"
  rm -rf "${dir}"; mkdir -p "${dir}"
  local c i=0
  # kube-proxy programs iptables/nftables, so it gets the Debian rootfs (which has both);
  # everything else is a static binary FROM scratch.
  for c in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
    i=$((i + 1)); info "control-plane images ${i}/7: ${c}"
    local base=scratch
    [[ ${c} == kube-proxy ]] && base=$(rootfs_image)
    wrap_binary "$(image_for "${c}")" "${base}" "${K8S_BIN}/${c}" "/usr/local/bin/${c}" "${dir}/${c}.tar"
  done
  info "control-plane images 5/7: etcd"
  wrap_binary "$(image_for etcd)" scratch "${COMPONENTS_BIN}/etcd" /usr/local/bin/etcd "${dir}/etcd.tar"
  info "control-plane images 6/7: coredns"
  wrap_binary "$(image_for coredns)" scratch "${COMPONENTS_BIN}/coredns" /coredns "${dir}/coredns.tar"
  info "control-plane images 7/7: pause"
  wrap_binary "$(image_for pause)" scratch "${COMPONENTS_BIN}/pause" /pause "${dir}/pause.tar"
  touch "${dir}/.kit-done"
}

# ---- stage 4: node image -----------------------------------------------------------------
node_image_current() {
  image_exists "${KIT_NODE_IMAGE}" || return 1
  [[ $("${DOCKER}" image inspect -f '{{index .Config.Labels "kit.key"}}' "${KIT_NODE_IMAGE}") == "$(node_key)" ]]
}

build_node() {
  local c="kit-nodebuild-$$" b t
  info "node image: assembling ${KIT_NODE_IMAGE} in build container ${c} ..."
  "${DOCKER}" rm -f "${c}" >/dev/null 2>&1 || true
  # shellcheck disable=SC2064
  trap "'${DOCKER}' rm -f ${c} >/dev/null 2>&1 || true" EXIT
  "${DOCKER}" run -d --name "${c}" --entrypoint=sleep --security-opt seccomp=unconfined \
    "$(base_image)" infinity >/dev/null
  for b in kubeadm kubelet kubectl; do
    "${DOCKER}" cp "${K8S_BIN}/${b}" "${c}:/usr/bin/${b}"
  done
  "${DOCKER}" cp "${COMPONENTS_BIN}/crictl" "${c}:/usr/local/bin/crictl"
  "${DOCKER}" exec "${c}" sh -c 'chown root:root /usr/bin/kube* /usr/local/bin/crictl && chmod 0755 /usr/bin/kube* /usr/local/bin/crictl'
  "${DOCKER}" exec "${c}" sh -c "printf %s '${KUBE_VERSION}' > /kind/version && mkdir -p /kind/manifests"
  "${DOCKER}" cp "${NODE_FILES}/default-cni.yaml" "${c}:/kind/manifests/default-cni.yaml"
  "${DOCKER}" cp "${NODE_FILES}/default-storage.yaml" "${c}:/kind/manifests/default-storage.yaml"
  # The sandbox (pause) image must be the one we preload: take its name from kubeadm.
  "${DOCKER}" exec "${c}" sed -i "s|^\(\s*sandbox_image = \).*|\1\"$(image_for pause)\"|" /etc/containerd/config.toml
  # Preload the images into containerd's k8s.io namespace exactly as kind's builder does.
  "${DOCKER}" exec "${c}" sh -c 'nohup containerd > /var/log/kit-nodebuild-containerd.log 2>&1 &'
  # shellcheck disable=SC2016  # expanded by the build container's sh
  "${DOCKER}" exec "${c}" sh -c 'for i in $(seq 1 60); do [ -S /run/containerd/containerd.sock ] && ctr version >/dev/null 2>&1 && exit 0; sleep 1; done; cat /var/log/kit-nodebuild-containerd.log; exit 1' \
    || die "containerd did not start in the node build container"
  for t in "$(images_dir)"/*.tar; do
    info "node image: preloading $(basename "${t}" .tar)"
    "${DOCKER}" exec -i "${c}" ctr --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned \
      --all-platforms --no-unpack --digests - < "${t}" >/dev/null
  done
  "${DOCKER}" exec "${c}" ctr --namespace=k8s.io images list -q | grep -v '^sha256:' | sed 's/^/      /' >&2
  # shellcheck disable=SC2016  # expanded by the build container's sh
  "${DOCKER}" exec "${c}" sh -c 'pkill containerd; for i in $(seq 1 20); do pgrep containerd >/dev/null || break; sleep 0.5; done; rm -f /var/log/kit-nodebuild-containerd.log'
  local previous
  previous=$("${DOCKER}" image inspect -f '{{.Id}}' "${KIT_NODE_IMAGE}" 2>/dev/null || true)
  "${DOCKER}" commit \
    --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
    --change 'ENV HTTP_PROXY="" HTTPS_PROXY="" NO_PROXY=""' \
    --change "LABEL kit.key=$(node_key)" \
    "${c}" "${KIT_NODE_IMAGE}" >/dev/null
  "${DOCKER}" rm -f "${c}" >/dev/null
  trap - EXIT
  # The image this one replaces only takes disk (it stays while a cluster still runs it).
  if [[ -n ${previous} ]]; then "${DOCKER}" rmi "${previous}" >/dev/null 2>&1 || true; fi
  info "node image: ${KIT_NODE_IMAGE} ($("${DOCKER}" image inspect -f '{{.Size}}' "${KIT_NODE_IMAGE}" | numfmt --to=iec))"
}

# prune_old_stages: cached stages of other keys are only reachable by going back to older
# scripts or versions; they cost ~1 GB each, so keep only the current ones.
prune_old_stages() {
  local d keep_images keep_rootfs
  keep_images=$(images_dir); keep_rootfs=$(rootfs_dir)
  for d in "${NODE_DIR}"/images-* "${NODE_DIR}"/rootfs-*; do
    [[ -d ${d} && ${d} != "${keep_images}" && ${d} != "${keep_rootfs}" ]] || continue
    info "removing stale cache stage ${d}"
    rm -rf "${d}"
  done
}

main() {
  require_airgap_host
  builder_lock node-image
  local target=${1:-node}
  mkdir -p "${NODE_DIR}"
  ensure_engine
  case "${target}" in
    rootfs) build_rootfs ;;
    base) build_base ;;
    images) build_images ;;
    node)
      if node_image_current; then
        info "node image: cached (${KIT_NODE_IMAGE})"
        return 0
      fi
      build_base
      build_images
      build_node
      prune_old_stages ;;
    *) die "usage: $0 [rootfs|base|images|node]" ;;
  esac
}

main "$@"
