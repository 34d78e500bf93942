#!/usr/bin/env bash
# make kind-up: create (or reuse) the kind cluster with Traefik, Gateway API CRDs, the
# GatewayClass, istiod (the proxyless topology's xDS control plane) and the metrics pipeline
# (the Prometheus Operator and a Prometheus), ready for make smoke / make e2e.
#
# Environment:
#   AIRGAPPED     auto (default): on a Debian-like Linux host, upstream images if all three can
#                   be pulled (a 5 s probe each) and the engine runs cgroup v2, else build
#                   everything; elsewhere (macOS, other Linux) upstream, without probing
#                 1: build everything locally from Go modules and Debian packages
#                 0: upstream images only (fail if they cannot be pulled; refused on cgroup v1)
#   KIT_CACHE     cache for builds, binaries and the kubeconfig
#                 (default ${XDG_CACHE_HOME:-$HOME/.cache}/grpc-k8s-kit)
#   CLUSTER_NAME  kind cluster name (default grpc-k8s-kit)
#   KIND_WORKERS  worker nodes beside the control plane (default 2; 0 = one node for all)
#   DOCKER        the docker CLI to use (default: docker from PATH)
#
# Cold air-gapped runs compile Kubernetes, Traefik, istiod, Prometheus, its operator, etcd and
# CoreDNS: see scripts/TIMINGS.md for the figures, deploy/kind/README.md for the steps.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "${REPO_ROOT}/scripts/lib/engine.sh"
source "${REPO_ROOT}/scripts/lib/cluster.sh"
source "${REPO_ROOT}/scripts/lib/host.sh"

STEP_TOTAL=23
MODE=""          # airgapped | upstream
MODE_REASON=""
REUSE=false      # an existing, healthy cluster is reused
NODE_IMAGE=""

# ---- before step 1: what this run will change on the host -----------------------------------
# announce_host_changes: list, before any of it happens, what this run changes on this host
# outside ${KIT_CACHE}: Debian packages, a dockerd it starts, the runc wrapper.
announce_host_changes() {
  local more="" pkgs="" p engine="" airgap=""
  if debian_like; then
    more=$(missing_packages jq curl)
    if ca_bundle_missing; then more+=" ca-certificates"; fi
  fi
  if ! engine_alive && can_start_dockerd; then
    more+=" $(dockerd_packages)"
    engine=$(engine_changes)
  fi
  for p in ${more}; do
    [[ " ${pkgs} " == *" ${p} "* ]] || pkgs+=" ${p}"
  done
  case ${AIRGAPPED} in
    0 | false | no) ;;
    *)
      if debian_like && [[ -n $(missing_packages debootstrap) ]]; then
        airgap="install the Debian package debootstrap when the node's Debian rootfs is not cached yet"
        [[ ${AIRGAPPED} == 1 || ${AIRGAPPED} == true || ${AIRGAPPED} == yes ]] || airgap="in air-gapped mode: ${airgap}"
      fi ;;
  esac
  if [[ -z ${pkgs}${engine}${airgap} ]]; then
    log "changes to this host outside ${KIT_CACHE}: none"
    return 0
  fi
  log "changes to this host outside ${KIT_CACHE}:"
  [[ -z ${pkgs} ]] || info "- install Debian packages with apt-get$([[ $(id -u) == 0 ]] || echo ' (through sudo)'):${pkgs}"
  if [[ -n ${engine} ]]; then
    while IFS= read -r p; do info "- ${p}"; done <<<"${engine}"
  fi
  [[ -z ${airgap} ]] || info "- ${airgap}"
}

# ---- 1. prerequisites ----------------------------------------------------------------------
check_prerequisites() {
  need go "install Go (the version in go.mod)"
  ensure_cmds jq curl
  if ca_bundle_missing; then apt_install ca-certificates; fi
  go version >&2
}

# ---- 2. engine -----------------------------------------------------------------------------
# engine_preflight: stop before anything is built when this engine cannot run the cluster
# (scripts/lib/host.sh; make doctor-host prints the same checks and more, changing nothing).
engine_preflight() {
  preflight_engine || die "${PREFLIGHT_PROBLEMS} problem(s) above would stop kind-up or make e2e later: fix them first (make doctor-host checks again without changing anything)"
}

# ---- 3. kind -------------------------------------------------------------------------------
build_kind() {
  if [[ -x ${KIND} ]] && "${KIND}" version 2>/dev/null | grep -q "^kind ${KIND_VERSION} "; then
    info "kind ${KIND_VERSION}: cached (${KIND})"
    return 0
  fi
  # Its own scratch module: kind does not depend on our code, and the build does not break
  # while the repo's go.mod/go.sum are mid-edit. A host binary (GOOS unset).
  info "kind ${KIND_VERSION}: building (log ${KIT_LOGS}/build-kind.log) ..."
  go_build_module sigs.k8s.io/kind "${KIND_VERSION}" sigs.k8s.io/kind "${KIND}"
  "${KIND}" version >&2
}

# ---- 4. mode -------------------------------------------------------------------------------
# (auto_mode, upstream_blocker and the registry probe are in scripts/lib/host.sh.)
choose_mode() {
  local existing=""
  if cluster_exists && node_running; then
    existing=$("${DOCKER}" inspect -f '{{.Config.Image}}' "${NODE_CONTAINER}")
  fi
  case "${AIRGAPPED}" in
    1 | true | yes)
      MODE=airgapped; MODE_REASON="AIRGAPPED=${AIRGAPPED}: build every image locally" ;;
    0 | false | no)
      local blocker
      blocker=$(upstream_blocker)
      [[ -z ${blocker} ]] || die "AIRGAPPED=${AIRGAPPED}: upstream mode cannot run here: ${blocker}." \
        "Fix: ${CGROUP_V1_FIX}$(airgap_possible && echo "; or build everything here with AIRGAPPED=1 (or auto)")"
      MODE=upstream; MODE_REASON="AIRGAPPED=${AIRGAPPED}: upstream images" ;;
    auto | "")
      if [[ -n ${existing} ]]; then
        [[ ${existing} == "${KIT_NODE_IMAGE}" ]] && MODE=airgapped || MODE=upstream
        MODE_REASON="AIRGAPPED=auto: the running cluster '${CLUSTER_NAME}' uses ${existing}"
      else
        auto_mode 1
        [[ ${AUTO_MODE} != none ]] || die "AIRGAPPED=auto: neither mode can run here: ${AUTO_WHY}. Fix: ${CGROUP_V1_FIX}"
        MODE=${AUTO_MODE}; MODE_REASON="AIRGAPPED=auto: ${AUTO_WHY}"
      fi ;;
    *) die "AIRGAPPED must be auto, 1 or 0 (got '${AIRGAPPED}')" ;;
  esac
  if [[ ${MODE} == airgapped ]]; then NODE_IMAGE=${KIT_NODE_IMAGE}; else NODE_IMAGE=${KIND_NODE_UPSTREAM}; fi
  if [[ -n ${existing} && ${existing} != "${NODE_IMAGE}" ]]; then
    warn "cluster '${CLUSTER_NAME}' runs ${existing}, not ${NODE_IMAGE}: reusing it as it is (make kind-down first to switch)"
    NODE_IMAGE=${existing}
    [[ ${existing} == "${KIT_NODE_IMAGE}" ]] && MODE=airgapped || MODE=upstream
  fi
  log "mode: ${MODE} (${MODE_REASON})"
  [[ ${MODE} != airgapped ]] || require_airgap_host
}

# ---- 5-13. images ---------------------------------------------------------------------------
airgap_only() {
  if [[ ${MODE} != airgapped ]]; then
    info "not needed in upstream mode"
    return 1
  fi
}

# pull REF: docker pull with its progress shown.
pull() {
  "${DOCKER}" image inspect "$1" >/dev/null 2>&1 && { info "$1: present"; return 0; }
  info "pulling $1 ..."
  "${DOCKER}" pull "$1" >&2 && return 0
  if airgap_possible; then
    die "cannot pull $1 (docker pull's error above): rerun with AIRGAPPED=1 to build every image here" \
      "(about 50 minutes the first time, scripts/TIMINGS.md)"
  fi
  die "cannot pull $1 (docker pull's error above). Check that \`${DOCKER} pull $1\` works from this shell:" \
    "the engine's proxy settings, \`docker login\` (anonymous pulls are rate-limited: toomanyrequests)," \
    "the credential helper named in ~/.docker/config.json. (Air-gapped mode needs a Debian-like Linux host.)"
}

node_image() {
  if [[ ${MODE} == airgapped ]]; then
    "${REPO_ROOT}/scripts/airgap/build-node-image.sh" node
  else
    pull "${NODE_IMAGE}"
  fi
}

# kit_image BUILDER UPSTREAM LOCAL: the image LOCAL, built by scripts/airgap/BUILDER in
# airgapped mode; upstream, the published UPSTREAM pulled and tagged LOCAL. The manifests
# name the local alias, so both modes deploy the same YAML.
kit_image() {
  if [[ ${MODE} == airgapped ]]; then
    "${REPO_ROOT}/scripts/airgap/$1" image
  else
    pull "$2"
    "${DOCKER}" tag "$2" "$3"
  fi
}

traefik_image() { kit_image build-traefik.sh "${TRAEFIK_UPSTREAM_IMAGE}" "${KIT_TRAEFIK_IMAGE}"; }

# The proxyless-xds topology's control plane; upstream, Istio's published pilot image of
# the same release line (versions.sh).
istiod_image() { kit_image build-istiod.sh "${ISTIOD_UPSTREAM_IMAGE}" "${KIT_ISTIOD_IMAGE}"; }

# The base of the clients in other languages (clients/Dockerfile, built by make e2e) and
# of the air-gapped kube-router image.
debian_image() { kit_image build-debian-base.sh "${DEBIAN_UPSTREAM_IMAGE}" "${KIT_DEBIAN_IMAGE}"; }

# The network daemon of both modes (deploy/kube-router, deploy/kind/cluster.yaml says why).
kube_router_image() { kit_image build-kube-router.sh "${KUBE_ROUTER_UPSTREAM_IMAGE}" "${KIT_KUBE_ROUTER_IMAGE}"; }

# The metrics pipeline's server (deploy/kind/prometheus).
prometheus_image() { kit_image build-prometheus.sh "${PROMETHEUS_UPSTREAM_IMAGE}" "${KIT_PROMETHEUS_IMAGE}"; }

# upstream_operator_image VAR: the image the Prometheus Operator publishes for
# PROMETHEUS_OPERATOR_VERSION, VAR (IMAGE_OPERATOR or IMAGE_RELOADER) naming which: the
# repository as the module's own Makefile sets it, the tag the release's (its RELEASE.md).
upstream_operator_image() {
  local module=github.com/prometheus-operator/prometheus-operator dir repo
  dir=$(module_dir "${module}@${PROMETHEUS_OPERATOR_VERSION}") || true
  [[ -n ${dir} && -f ${dir}/Makefile ]] || die "cannot download ${module}@${PROMETHEUS_OPERATOR_VERSION}" \
    "from the Go module proxy (GOPROXY=$(go env GOPROXY)): its Makefile names the operator's published images"
  repo=$(awk -F '[?]?=' -v var="$1" '$1 == var { print $2; exit }' "${dir}/Makefile")
  [[ -n ${repo} ]] || die "${module}@${PROMETHEUS_OPERATOR_VERSION}: its Makefile no longer sets $1"
  echo "${repo}:${PROMETHEUS_OPERATOR_VERSION}"
}

# The operator (deploy/prometheus-operator) and the config reloader it adds to Prometheus pods.
prometheus_operator_images() {
  if [[ ${MODE} == airgapped ]]; then
    "${REPO_ROOT}/scripts/airgap/build-prometheus-operator.sh" image
    return 0
  fi
  # Upstream: what kit_image does, for two images the module names.
  local operator reloader
  operator=$(upstream_operator_image IMAGE_OPERATOR)
  reloader=$(upstream_operator_image IMAGE_RELOADER)
  pull "${operator}"
  "${DOCKER}" tag "${operator}" "${KIT_PROMETHEUS_OPERATOR_IMAGE}"
  pull "${reloader}"
  "${DOCKER}" tag "${reloader}" "${KIT_CONFIG_RELOADER_IMAGE}"
}

# ---- 14. cluster ----------------------------------------------------------------------------
# cluster_config: deploy/kind/cluster.yaml plus the patches this host needs.
cluster_config() {
  local out="${KIT_CACHE}/kind-config-${CLUSTER_NAME}.yaml" i
  cp "${REPO_ROOT}/deploy/kind/cluster.yaml" "${out}"
  # The workers, appended to the nodes list (the file's last key). kind names them
  # <cluster>-worker, <cluster>-worker2, ...
  if ((KIND_WORKERS > 0)); then
    printf '# Added by kind-up.sh: KIND_WORKERS=%s.\n' "${KIND_WORKERS}" >> "${out}"
    for ((i = 0; i < KIND_WORKERS; i++)); do echo "- role: worker" >> "${out}"; done
  fi
  if host_cgroup_v1; then
    info "host uses cgroup v1: kubelet failCgroupV1=false, kubeadm ignores the SystemVerification preflight"
    cat >> "${out}" <<'EOF'
# Added by kind-up.sh: this host runs cgroup v1, which kubelet >= 1.35 refuses by default
# and kubeadm's preflight (init on the control plane, join on the workers) rejects.
kubeadmConfigPatches:
- |
  kind: KubeletConfiguration
  failCgroupV1: false
- |
  kind: InitConfiguration
  nodeRegistration:
    ignorePreflightErrors:
    - SystemVerification
- |
  kind: JoinConfiguration
  nodeRegistration:
    ignorePreflightErrors:
    - SystemVerification
EOF
  fi
  if host_lacks_cap "${CAP_SYS_RESOURCE}"; then
    info "host lacks CAP_SYS_RESOURCE: containerd restrict_oom_score_adj=true (pod sandboxes cannot lower oom_score_adj)"
    cat >> "${out}" <<'EOF'
# Added by kind-up.sh: this host's capability bounding set lacks CAP_SYS_RESOURCE, so
# containers cannot get a negative oom_score_adj.
containerdConfigPatches:
- |-
  [plugins."io.containerd.grpc.v1.cri"]
    restrict_oom_score_adj = true
EOF
  fi
  echo "${out}"
}

# The kind config a cluster was created from is recorded in the cluster itself (this
# ConfigMap, key "config"), so that any later run, from any tree or cache, can tell whether
# the cluster matches its own config: feature gates, port mappings and the host patches take
# effect only when a cluster is created.
CONFIG_RECORD=grpc-k8s-kit-kind-config   # in kube-system
CLUSTER_CONFIG=""                        # the config this run wants (cluster_config)

create_or_reuse_cluster() {
  local probe="${KIT_CACHE}/kubeconfig.probe" recorded why previous
  CLUSTER_CONFIG=$(cluster_config)
  if cluster_exists; then
    if node_running && nodes_running && kind_ get kubeconfig --name "${CLUSTER_NAME}" > "${probe}" 2>/dev/null \
      && [[ -x ${KUBECTL} ]] \
      && "${KUBECTL}" --kubeconfig "${probe}" get --raw /readyz --request-timeout=5s >/dev/null 2>&1; then
      recorded=$("${KUBECTL}" --kubeconfig "${probe}" -n kube-system get configmap "${CONFIG_RECORD}" \
        --ignore-not-found -o 'jsonpath={.data.config}' --request-timeout=10s) \
        || { rm -f "${probe}"; die "cluster '${CLUSTER_NAME}' answers, but reading kube-system/${CONFIG_RECORD} failed (above): rerun make kind-up"; }
      rm -f "${probe}"
      if [[ ${recorded} == "$(cat "${CLUSTER_CONFIG}")" ]] && [[ $(kind_ get nodes --name "${CLUSTER_NAME}" | wc -l) == $((KIND_WORKERS + 1)) ]]; then
        REUSE=true
        info "cluster '${CLUSTER_NAME}' exists, answers and was created from this config: reusing it"
        return 0
      fi
      if [[ ${recorded} == "$(cat "${CLUSTER_CONFIG}")" ]]; then
        why="was created from this config but has $(kind_ get nodes --name "${CLUSTER_NAME}" | wc -l) nodes, not $((KIND_WORKERS + 1))"
      elif [[ -z ${recorded} ]]; then
        why="has no record of the kind config it was created from (kube-system/${CONFIG_RECORD})"
      else
        previous="${KIT_CACHE}/kind-config-${CLUSTER_NAME}.previous.yaml"
        printf '%s\n' "${recorded}" > "${previous}"
        why="was created from another kind config (saved as ${previous}; compare with ${CLUSTER_CONFIG})"
      fi
      warn "cluster '${CLUSTER_NAME}' ${why}: a kind config applies only at creation, so deleting and recreating it"
    else
      rm -f "${probe}"
      warn "cluster '${CLUSTER_NAME}' exists but does not answer: deleting and recreating it"
    fi
    kind_ delete cluster --name "${CLUSTER_NAME}" >&2
  fi
  info "creating cluster '${CLUSTER_NAME}' ($((KIND_WORKERS + 1)) nodes) from ${NODE_IMAGE} (config ${CLUSTER_CONFIG}) ..."
  # No --wait: without a CNI the nodes are NotReady until kube-router runs (the next steps).
  # kind writes its kubeconfig entry to KUBECONFIG; point it at a scratch file and write
  # ours from `kind get kubeconfig` afterwards, so the file holds exactly this cluster.
  KUBECONFIG="${KIT_CACHE}/kubeconfig.kind" kind_ create cluster --name "${CLUSTER_NAME}" \
    --image "${NODE_IMAGE}" --config "${CLUSTER_CONFIG}" >&2 \
    || die "kind create cluster failed; rerun with more detail: ${KIND} create cluster --name ${CLUSTER_NAME} --image ${NODE_IMAGE} --config ${CLUSTER_CONFIG} --retain -v 1"
  rm -f "${KIT_CACHE}/kubeconfig.kind"
}

# record_cluster_config: after creating the cluster, record the config it was made from.
record_cluster_config() {
  [[ ${REUSE} == false ]] || return 0
  kubectl_ -n kube-system create configmap "${CONFIG_RECORD}" --from-file=config="${CLUSTER_CONFIG}" \
    --dry-run=client -o yaml | kubectl_ apply -f - >&2
  info "recorded the kind config in kube-system/${CONFIG_RECORD}"
}

# ---- 15. kubectl and kubeconfig ------------------------------------------------------------
# host_kubectl: the physical path of the host's own kubectl, never the kit's: ${KIT_BIN} is
# left out of PATH wherever it appears (common.sh puts it first, and users add it too), and a
# kubectl that resolves into ${KIT_BIN} is refused (linking it would make a symlink loop).
host_kubectl() {
  local found real kit_bin
  found=$(PATH=$(path_without "${KIT_BIN}" "${PATH}") command -v kubectl) \
    || die "kubectl not found: $(install_hint kubectl) (the node's kubectl only runs on Linux)"
  real=$(resolve_path "${found}") || die "${found} is a symlink loop or points nowhere: remove it, then $(install_hint kubectl)"
  kit_bin=$(cd "${KIT_BIN}" && pwd -P)
  [[ ${real} != "${kit_bin}/"* ]] || die "${found} resolves to ${real}, the kit's own kubectl link:" \
    "remove ${found} and install kubectl ($(install_hint kubectl)); ${KIT_BIN} on PATH is enough"
  echo "${real}"
}

kubectl_and_kubeconfig() {
  # The node ships kubectl of exactly the cluster's version (ours in air-gapped mode). It is a
  # Linux binary: elsewhere (macOS) the host's own kubectl is used (one minor version of skew
  # either way is supported).
  if [[ $(uname -s) != Linux ]]; then
    local target version skew
    target=$(host_kubectl)
    version=$("${target}" version --client -o json 2>/dev/null | jq -r '.clientVersion.gitVersion // empty' || true)
    skew=$(kubectl_skew "${version}")
    [[ -z ${skew} ]] || die "${target} is ${skew}. Fix: ${KUBECTL_FIX}"
    rm -f "${KUBECTL}"
    ln -s "${target}" "${KUBECTL}"
  elif ! { [[ -x ${KUBECTL} && ! -L ${KUBECTL} ]] && "${KUBECTL}" version --client -o json 2>/dev/null \
        | jq -e --arg v "${KUBE_VERSION}" '.clientVersion.gitVersion == $v' >/dev/null; }; then
    "${DOCKER}" cp "${NODE_CONTAINER}:/usr/bin/kubectl" "${KUBECTL}.tmp"
    mv "${KUBECTL}.tmp" "${KUBECTL}"
  fi
  kind_ get kubeconfig --name "${CLUSTER_NAME}" > "${KIT_CACHE}/kubeconfig.tmp"
  chmod 600 "${KIT_CACHE}/kubeconfig.tmp"
  mv "${KIT_CACHE}/kubeconfig.tmp" "${KIT_CACHE}/kubeconfig"
  info "kubectl $("${KUBECTL}" version --client -o json | jq -r .clientVersion.gitVersion) at ${KUBECTL}"
  info "kubeconfig at ${KIT_CACHE}/kubeconfig"
}

# ---- 16. pod network -----------------------------------------------------------------------
deploy_network() {
  grep -q "image: ${KIT_KUBE_ROUTER_IMAGE}\$" "${REPO_ROOT}/deploy/kube-router/daemonset.yaml" \
    || die "deploy/kube-router/daemonset.yaml must use image ${KIT_KUBE_ROUTER_IMAGE} (scripts/lib/versions.sh)"
  ensure_engine
  load_image "${KIT_KUBE_ROUTER_IMAGE}"
  kubectl_ apply -k "${REPO_ROOT}/deploy/kube-router" >&2
  kubectl_ -n kube-system rollout status daemonset/kube-router --timeout=180s >&2
}

# ---- 17. system pods -----------------------------------------------------------------------
# CoreDNS on the control plane (deploy/kind/cluster.yaml says why); kubeadm's Deployment
# already tolerates its taint.
wait_system() {
  kubectl_ wait --for=condition=Ready node --all --timeout=180s >&2
  kubectl_ -n kube-system rollout status daemonset/kube-proxy --timeout=180s >&2
  kubectl_ -n kube-system patch deployment coredns --type merge \
    -p '{"spec":{"template":{"spec":{"nodeSelector":{"node-role.kubernetes.io/control-plane":""}}}}}' >&2
  kubectl_ -n kube-system rollout status deployment/coredns --timeout=180s >&2
}

# ---- 18. Gateway API CRDs ------------------------------------------------------------------
gateway_api_crds() {
  # Server-side apply: the CRDs are too large for the last-applied annotation.
  kubectl_ apply --server-side --force-conflicts -k "${REPO_ROOT}/deploy/gateway-api" >&2
  # TLSRoute too: Traefik v3.7's Gateway provider does not start until its watch of them syncs.
  wait_established 60 \
    gatewayclasses.gateway.networking.k8s.io gateways.gateway.networking.k8s.io \
    grpcroutes.gateway.networking.k8s.io httproutes.gateway.networking.k8s.io \
    referencegrants.gateway.networking.k8s.io tlsroutes.gateway.networking.k8s.io
}

# ---- 19. Traefik ---------------------------------------------------------------------------
deploy_traefik() {
  grep -q "image: ${KIT_TRAEFIK_IMAGE}\$" "${REPO_ROOT}/deploy/traefik/deployment.yaml" \
    || die "deploy/traefik/deployment.yaml must use image ${KIT_TRAEFIK_IMAGE} (scripts/lib/versions.sh)"
  ensure_engine
  load_image "${KIT_TRAEFIK_IMAGE}" "${NODE_CONTAINER}"
  kubectl_ apply -k "${REPO_ROOT}/deploy/kind/traefik" >&2
  kubectl_ -n traefik rollout status deployment/traefik --timeout=180s >&2
  kubectl_ wait --for=condition=Accepted gatewayclass/traefik --timeout=60s >&2
  local i
  for ((i = 0; i < 30; i++)); do
    curl -fsS --max-time 2 http://127.0.0.1:9080/ping >/dev/null 2>&1 && break
    sleep 1
  done
  curl -fsS --max-time 2 http://127.0.0.1:9080/ping >/dev/null \
    || die "Traefik is Ready in the cluster but http://127.0.0.1:9080/ping does not answer from the host"
  info "Traefik ready; ping answers on http://127.0.0.1:9080/ping"
}

# ---- 20. istiod --------------------------------------------------------------------------
deploy_istiod() {
  grep -q "image: ${KIT_ISTIOD_IMAGE}\$" "${REPO_ROOT}/deploy/istiod/deployment.yaml" \
    || die "deploy/istiod/deployment.yaml must use image ${KIT_ISTIOD_IMAGE} (scripts/lib/versions.sh)"
  ensure_engine
  load_image "${KIT_ISTIOD_IMAGE}" "${NODE_CONTAINER}"
  # The DestinationRule CRD (a proxyless client's load-balancing policy): server-side, as
  # the Gateway API's, too large for the last-applied annotation.
  kubectl_ apply --server-side --force-conflicts -k "${REPO_ROOT}/deploy/istiod/crds" >&2
  wait_established 60 destinationrules.networking.istio.io
  kubectl_ apply -k "${REPO_ROOT}/deploy/kind/istiod" >&2
  kubectl_ -n istio-system rollout status deployment/istiod --timeout=180s >&2
  info "istiod ready: proxyless xDS on istiod.istio-system.svc:15010"
}

# ---- 21. Prometheus Operator -----------------------------------------------------------------
# Its CRDs (server-side: the Prometheus CRD is far too large for the last-applied
# annotation), then the operator on the control plane. The config reloader's image goes to
# the control plane too: the operator adds it to the Prometheus pod, which runs there.
PROMETHEUS_OPERATOR_CRDS="${REPO_ROOT}/deploy/prometheus-operator/crds"
deploy_prometheus_operator() {
  local f crds=()
  grep -q "image: ${KIT_PROMETHEUS_OPERATOR_IMAGE}\$" "${REPO_ROOT}/deploy/prometheus-operator/deployment.yaml" \
    || die "deploy/prometheus-operator/deployment.yaml must use image ${KIT_PROMETHEUS_OPERATOR_IMAGE} (scripts/lib/versions.sh)"
  grep -q -- "--prometheus-config-reloader=${KIT_CONFIG_RELOADER_IMAGE}\$" "${REPO_ROOT}/deploy/prometheus-operator/deployment.yaml" \
    || die "deploy/prometheus-operator/deployment.yaml must pass --prometheus-config-reloader=${KIT_CONFIG_RELOADER_IMAGE} (scripts/lib/versions.sh)"
  grep -q "^# ${PROMETHEUS_OPERATOR_VERSION}): generated by" "${PROMETHEUS_OPERATOR_CRDS}/kustomization.yaml" \
    || die "deploy/prometheus-operator/crds is not of ${PROMETHEUS_OPERATOR_VERSION}: run scripts/update-prometheus-operator-crds.sh"
  ensure_engine
  load_image "${KIT_PROMETHEUS_OPERATOR_IMAGE}" "${NODE_CONTAINER}"
  load_image "${KIT_CONFIG_RELOADER_IMAGE}" "${NODE_CONTAINER}"
  kubectl_ apply --server-side --force-conflicts -k "${PROMETHEUS_OPERATOR_CRDS}" >&2
  # monitoring.coreos.com_<plural>.yaml holds the CRD <plural>.monitoring.coreos.com.
  for f in "${PROMETHEUS_OPERATOR_CRDS}"/monitoring.coreos.com_*.yaml; do
    f=${f##*_}
    crds+=("${f%.yaml}.monitoring.coreos.com")
  done
  wait_established 60 ${crds[@]+"${crds[@]}"}
  kubectl_ apply -k "${REPO_ROOT}/deploy/kind/prometheus-operator" >&2
  kubectl_ -n monitoring rollout status deployment/prometheus-operator --timeout=180s >&2
  info "Prometheus Operator ready (its Prometheus controller, and the kubelet Service kube-system/kubelet)"
}

# ---- 22. Prometheus --------------------------------------------------------------------------
# The Prometheus object; the operator makes its StatefulSet. Ready when the object reports
# Available and its API answers from the host, as the e2e will query it: on the NodePort of
# deploy/kind/prometheus/service.yaml, which deploy/kind/cluster.yaml publishes on the same
# port of 127.0.0.1 (kustomize/prometheus_test.go checks).
PROMETHEUS_HOST_URL="http://127.0.0.1:$(sed -n 's/.*nodePort: *\([0-9][0-9]*\).*/\1/p' "${REPO_ROOT}/deploy/kind/prometheus/service.yaml")"
deploy_prometheus() {
  local f="${REPO_ROOT}/deploy/kind/prometheus/prometheus.yaml" i status="" deadline
  [[ ${PROMETHEUS_HOST_URL} =~ :[0-9]+$ ]] || die "deploy/kind/prometheus/service.yaml names no nodePort: the host reaches Prometheus there"
  grep -q "^  image: ${KIT_PROMETHEUS_IMAGE}\$" "${f}" \
    || die "deploy/kind/prometheus/prometheus.yaml must use image ${KIT_PROMETHEUS_IMAGE} (scripts/lib/versions.sh)"
  grep -q "^  version: ${PROMETHEUS_RELEASE}\$" "${f}" \
    || die "deploy/kind/prometheus/prometheus.yaml must say version: ${PROMETHEUS_RELEASE}, the release its image holds (scripts/lib/versions.sh)"
  ensure_engine
  load_image "${KIT_PROMETHEUS_IMAGE}" "${NODE_CONTAINER}"
  kubectl_ apply -k "${REPO_ROOT}/deploy/kind/prometheus" >&2
  # Not kubectl wait: the object has no status.conditions until the operator first
  # reconciles it, and kubectl wait fails at once on that instead of waiting.
  deadline=$(($(date +%s) + 180))
  while :; do
    status=$(kubectl_ -n monitoring get prometheus grpc-kit \
      -o 'jsonpath={.status.conditions[?(@.type=="Available")].status}' 2>/dev/null) || true
    [[ ${status} != True && $(date +%s) -lt ${deadline} ]] || break
    sleep 1
  done
  [[ ${status} == True ]] || die "Prometheus monitoring/grpc-kit is not Available after 180s: kubectl -n monitoring describe prometheus grpc-kit; kubectl -n monitoring logs deploy/prometheus-operator"
  for ((i = 0; i < 30; i++)); do
    curl -fsS --max-time 2 "${PROMETHEUS_HOST_URL}/-/ready" >/dev/null 2>&1 && break
    sleep 1
  done
  curl -fsS --max-time 2 "${PROMETHEUS_HOST_URL}/-/ready" >/dev/null \
    || die "Prometheus is Available in the cluster but ${PROMETHEUS_HOST_URL}/-/ready does not answer from the host"
  info "Prometheus ready; its HTTP API answers on ${PROMETHEUS_HOST_URL}/api/v1/"
}

# ---- 23. our images -------------------------------------------------------------------------
# The kustomize manifests run grpc-k8s-kit/{hello,goodbye,greeter}:dev with IfNotPresent: load
# whichever `make images` has built (kind skips those the node already has).
APP_IMAGES=(grpc-k8s-kit/hello:dev grpc-k8s-kit/goodbye:dev grpc-k8s-kit/greeter:dev)
load_app_images() {
  local img missing=""
  ensure_engine
  for img in "${APP_IMAGES[@]}"; do
    if "${DOCKER}" image inspect "${img}" >/dev/null 2>&1; then
      load_image "${img}"
      info "${img}: loaded"
    else
      missing+=" ${img}"
    fi
  done
  [[ -z ${missing} ]] || info "not built yet:${missing} (make images, then make kind-up again to load them)"
}

summary() {
  cat >&2 <<EOF

Cluster '${CLUSTER_NAME}' is up ($([[ ${REUSE} == true ]] && echo reused || echo created), ${MODE} mode, node image ${NODE_IMAGE}).
  export KUBECONFIG=${KIT_CACHE}/kubeconfig
  export PATH=${KIT_BIN}:\$PATH      # kubectl ${KUBE_VERSION} and kind ${KIND_VERSION}
  kubectl get pods -A
Host ports (127.0.0.1 only): Traefik web (h2c) 8000, websecure (TLS) 8443, ping 9080;
Prometheus' HTTP API ${PROMETHEUS_HOST_URL}/api/v1/ (no UI);
NodePorts 30080-30084 are published on the same host ports. See deploy/kind/README.md.
EOF
}

main() {
  log "kind-up: cluster '${CLUSTER_NAME}', cache ${KIT_CACHE}"
  announce_host_changes
  step "prerequisites";                                     check_prerequisites
  step "container engine";                                  ensure_engine; check_runtime_fits_host; engine_preflight
  step "kind ${KIND_VERSION}";                              build_kind
  step "mode (AIRGAPPED=${AIRGAPPED})";                     choose_mode
  step "Kubernetes ${KUBE_VERSION} binaries";               airgap_only && "${REPO_ROOT}/scripts/airgap/build-k8s.sh"
  step "etcd, CoreDNS, crictl, pause";                      airgap_only && "${REPO_ROOT}/scripts/airgap/build-components.sh"
  step "node image";                                        ensure_engine; node_image
  step "Traefik ${TRAEFIK_VERSION} image";                  ensure_engine; traefik_image
  step "istiod ${ISTIO_VERSION} image";                     ensure_engine; istiod_image
  step "Debian ${DEBIAN_SUITE} base (clients, kube-router)"; ensure_engine; debian_image
  step "kube-router ${KUBE_ROUTER_VERSION} image";          ensure_engine; kube_router_image
  step "Prometheus ${PROMETHEUS_RELEASE} image";             ensure_engine; prometheus_image
  step "Prometheus Operator ${PROMETHEUS_OPERATOR_VERSION} images"; ensure_engine; prometheus_operator_images
  step "cluster";                                           ensure_engine; create_or_reuse_cluster
  step "kubectl and kubeconfig";                            kubectl_and_kubeconfig; record_cluster_config
  step "pod network (kube-router)";                         deploy_network
  step "nodes, kube-proxy and CoreDNS ready";               wait_system
  step "Gateway API ${GATEWAY_API_VERSION} CRDs";           gateway_api_crds
  step "Traefik, GatewayClass";                             deploy_traefik
  step "istiod (proxyless xDS control plane)";              deploy_istiod
  step "Prometheus Operator and its CRDs";                  deploy_prometheus_operator
  step "Prometheus (the kit's targets, cAdvisor)";          deploy_prometheus
  step "our images (make images) into the nodes";           load_app_images
  run_done
  summary
}

# Sourced (by scripts/test/upstream-path.sh), it only defines the functions.
[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
