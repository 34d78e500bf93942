# shellcheck shell=bash
# shellcheck disable=SC2034  # variables used by the scripts that source this file
# kind cluster helpers shared by kind-up.sh, kind-down.sh, smoke.sh and e2e.sh. Source after
# common.sh and engine.sh.

NODE_CONTAINER="${CLUSTER_NAME}-control-plane"

# Always our binaries: the kubectl on PATH may be anything (on this kit's CI VM an odd v1.32).
KIND="${KIT_BIN}/kind"
KUBECTL="${KIT_BIN}/kubectl"

# kind runs `docker` from PATH: an explicit $DOCKER's directory goes first, for kind only.
kind_() {
  if [[ ${DOCKER} == */* ]]; then PATH="${DOCKER%/*}:${PATH}" "${KIND}" "$@"; else "${KIND}" "$@"; fi
}
kubectl_() { "${KUBECTL}" --kubeconfig "${KIT_CACHE}/kubeconfig" "$@"; }

cluster_exists() {
  [[ -x ${KIND} ]] || return 1
  kind_ get clusters 2>/dev/null | grep -qx "${CLUSTER_NAME}"
}

node_running() {
  [[ $("${DOCKER}" inspect -f '{{.State.Running}}' "${NODE_CONTAINER}" 2>/dev/null) == true ]]
}

# nodes_running: every node container of the cluster runs and none is paused (a node-loss
# test that died before restoring its node leaves one paused).
nodes_running() {
  local n
  for n in $(kind_ get nodes --name "${CLUSTER_NAME}" 2>/dev/null); do
    [[ $("${DOCKER}" inspect -f '{{.State.Running}} {{.State.Paused}}' "${n}" 2>/dev/null) == "true false" ]] || return 1
  done
}

api_answers() {
  [[ -x ${KUBECTL} && -f ${KIT_CACHE}/kubeconfig ]] || return 1
  kubectl_ get --raw /readyz --request-timeout=5s >/dev/null 2>&1
}

# wait_established SECONDS CRD...: until every CRD's Established condition is True.
# Not `kubectl wait --for=condition=Established`: for a CRD the API server has just created,
# status.conditions is still null, and kubectl's wait (v1.3x) fails at once with
# ".status.conditions accessor error: <nil> is of the type <nil>" instead of waiting.
wait_established() {
  local limit=$1 deadline crd status
  shift
  deadline=$(($(date +%s) + limit))
  for crd in "$@"; do
    while :; do
      status=$(kubectl_ get "crd/${crd}" -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}' 2>&1) || true
      [[ ${status} == True ]] && break
      (($(date +%s) < deadline)) \
        || die "CRD ${crd} is not Established after ${limit}s (last answer: ${status:-no condition yet})"
      sleep 1
    done
  done
}

# require_cluster: for scripts that need a running cluster (smoke, e2e).
require_cluster() {
  cluster_exists || die "no kind cluster '${CLUSTER_NAME}': run make kind-up"
  node_running || die "kind node ${NODE_CONTAINER} is not running: run make kind-up (it recreates it)"
  api_answers || die "the API server of '${CLUSTER_NAME}' does not answer with ${KIT_CACHE}/kubeconfig: run make kind-up"
}

# load_image IMAGE [NODE]: make a local docker image available to the containerd of NODE (a
# node container's name), or of every node.
# `kind load docker-image` runs a plain `docker save` and imports the archive with
# `ctr images import --all-platforms`. On Docker's containerd image store that archive lists
# every platform of a pulled multi-platform image (Traefik's, istiod's) while only the
# engine's own was pulled, and the import dies with "ctr: content digest ... not found"
# (kind#3795, #4224). There the image is saved for the engine's platform only and loaded with
# `kind load image-archive`, the workaround kind documents (PR #4247). The classic store
# keeps `kind load docker-image`: it skips an image the node already has (image-archive
# loads every time), and it works with engines older than Docker 28, whose `docker image
# save` has no --platform (Debian's engine, which air-gapped mode starts, is one).
load_image() {
  local nodes=()
  [[ -z ${2:-} ]] || nodes=(--nodes "$2")
  if [[ $(engine_image_store) == containerd ]]; then
    local dir
    dir=$(mktemp -d "${KIT_CACHE}/load-image.XXXXXX")
    logged "${KIT_LOGS}/kind-load.log" "${DOCKER}" image save --platform "linux/$(engine_arch)" -o "${dir}/image.tar" "$1"
    logged "${KIT_LOGS}/kind-load.log" kind_ load image-archive "${dir}/image.tar" --name "${CLUSTER_NAME}" ${nodes[@]+"${nodes[@]}"}
    rm -rf "${dir}"
  else
    logged "${KIT_LOGS}/kind-load.log" kind_ load docker-image "$1" --name "${CLUSTER_NAME}" ${nodes[@]+"${nodes[@]}"}
  fi
}

# host_cgroup_v1: true when the engine (and so every kind node) runs cgroup v1.
host_cgroup_v1() { [[ $(engine_cgroup_version) == 1 ]]; }

# host_lacks_cap NUMBER: true when the capability is not in our bounding set (engine.sh).
host_lacks_cap() { [[ " $(missing_bounding_caps) " == *" $1 "* ]]; }
CAP_SYS_RESOURCE=24
