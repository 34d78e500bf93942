# shellcheck shell=bash
# shellcheck disable=SC2034  # AUTO_MODE, AUTO_WHY and the rest are read by the scripts that source this
# What this host and its engine are, and what kind-up can do on them: the checks kind-up runs
# before it changes anything, and the report of scripts/doctor-host.sh (make doctor-host).
# Source after common.sh, engine.sh and cluster.sh. Each check prints what it found on one
# line and, for each problem, what would stop kind-up and the fix.

PREFLIGHT_PROBLEMS=0

# found LABEL TEXT: what a check found.
found() { printf '    %-16s %s\n' "$1:" "$2" >&2; }

# problem WHAT FIX: something that would stop kind-up or make e2e, and how to fix it.
problem() {
  PREFLIGHT_PROBLEMS=$((PREFLIGHT_PROBLEMS + 1))
  printf 'PROBLEM: %s\n    fix: %s\n' "$1" "$2" >&2
}

# advice WHAT: worth knowing, stops nothing.
advice() { printf 'NOTE: %s\n' "$*" >&2; }

# major VERSION: the number before the first dot (0 when there is none).
major() {
  local m=${1%%.*}
  m=${m#v}
  [[ ${m} =~ ^[0-9]+$ ]] && echo "${m}" || echo 0
}

# check_engine_store: the image store, and whether kind-up can load images from it. On the
# containerd store images are saved with `docker image save --platform` (cluster.sh,
# load_image), which needs Docker 28 (API 1.48) in both the engine and the CLI.
check_engine_store() {
  local store server client
  store=$(engine_image_store)
  server=$(engine_fact ServerVersion)
  found "image store" "${store}$([[ ${store} == containerd ]] && echo " (images load into kind with docker image save --platform linux/$(engine_arch) + kind load image-archive)")"
  [[ ${store} == containerd ]] || return 0
  client=$("${DOCKER}" version --format '{{.Client.Version}}' 2>/dev/null || true)
  if (($(major "${server}") < 28 || $(major "${client}") < 28)); then
    problem "this engine keeps images in containerd, where kind load docker-image fails for pulled multi-platform images (kind#3795); the workaround, docker image save --platform, needs Docker 28 or newer (engine ${server:-unknown}, docker CLI ${client:-unknown})" \
      "update the engine and the docker CLI to 28 or newer (Docker Desktop: its latest release), or turn the containerd image store off: Docker Desktop, Settings > General > 'Use containerd for pulling and storing images'; Docker Engine, \"features\": {\"containerd-snapshotter\": false} in /etc/docker/daemon.json, then restart it"
  fi
}

# check_engine_arch: our images are built for go env GOARCH (Makefile, GOARCH_HOST); the
# engine runs containers of its own architecture.
check_engine_arch() {
  local goarch earch
  goarch=$(go env GOARCH 2>/dev/null || true)
  earch=$(engine_arch)
  found "architecture" "engine ${earch} ($(engine_fact Architecture)), our images built for ${goarch:-? (no go)} (go env GOARCH)"
  [[ -n ${goarch} && ${goarch} != "${earch}" ]] || return 0
  problem "make images would build our images for ${goarch} (go env GOARCH) while the engine runs ${earch}: every pod of ours would fail with 'exec format error'" \
    "install a Go built for ${earch}$([[ $(uname -s) != Darwin ]] || echo " (on Apple silicon the darwin/arm64 one, not an amd64 Go under Rosetta)"), or export GOARCH=${earch} before make"
}

# minor_of VERSION: 37 for v1.37.0 (0 when VERSION is not v1.x).
minor_of() {
  local m=${1#v1.}
  m=${m%%.*}
  [[ $1 == v1.* && ${m} =~ ^[0-9]+$ ]] && echo "${m}" || echo 0
}

# kubectl_skew VERSION: why a kubectl of VERSION is not supported against the cluster
# (KUBE_VERSION); nothing when it is within one minor version either way.
kubectl_skew() {
  local have want
  have=$(minor_of "$1")
  want=$(minor_of "${KUBE_VERSION}")
  ((have >= want - 1 && have <= want + 1)) && return 0
  echo "kubectl ${1:-of unknown version} against a ${KUBE_VERSION} cluster: kubectl supports one minor version of skew either way (v1.$((want - 1)) to v1.$((want + 1)))"
}
KUBECTL_FIX="install kubectl v1.$(($(minor_of "${KUBE_VERSION}") - 1)) to v1.$(($(minor_of "${KUBE_VERSION}") + 1)) (brew install kubernetes-cli, or the kubectl release download) first on PATH"

# ---- CPUs and memory ------------------------------------------------------------------------
# What the cluster and make e2e ask the scheduler for, from the manifests' requests. A kind node
# reserves nothing for the system (kind sets no system-reserved or kube-reserved), so its
# allocatable CPUs and memory are about the engine's (docker info NCPU, MemTotal).
#                                      CPU   memory
#   kube-apiserver                    250m        -   kubeadm v1.37's static pods
#   kube-controller-manager           200m        -
#   kube-scheduler                    100m        -
#   etcd                              100m    100Mi
#   CoreDNS, 2 replicas               200m    140Mi   kubeadm's CoreDNS add-on
#   kindnet (upstream mode only)      100m     50Mi   kind v0.33.0, pkg/build/nodeimage/const_cni.go
#   Traefik                            50m     64Mi   deploy/traefik/deployment.yaml
#   istiod                            100m    256Mi   deploy/istiod/deployment.yaml
#   Prometheus Operator                10m     48Mi   deploy/prometheus-operator/deployment.yaml
#   Prometheus, its config reloader    30m    224Mi   deploy/kind/prometheus/prometheus.yaml
#   = the cluster                    1140m    882Mi
#   e2e: about 45 server pods at the     900m   1440Mi   e2e/components/shared-node (20m and
#     peak of its scale-outs                              32Mi each)
#   e2e: its 8 greeter Jobs when they    400m    256Mi   e2e/overlays (50m and 32Mi each)
#     overlap
# Memory: 2578 MiB requested at the peak; with less allocatable, pods stay Pending and the
# suite fails. CPU: 2.0 without the Jobs, 2.4 with all of them at once; the suite was tuned and
# measured on 2 CPUs (e2e/main_test.go, nodeSlots), where a Job that does not fit waits for
# CPU requests to free up, so 2 is the floor. What requests no memory (the API server,
# controller-manager and scheduler, kubelet, containerd, the engine VM's own system) comes on
# top and was not measured here (no laptop, and this VM has 24 GiB): 4 GiB is advised, not
# required.
KIT_MIN_CPUS=2
KIT_MIN_MEM_MIB=2578
KIT_ADVISED_MEM_MIB=4096

# resources_fix: how to give this engine more CPUs or memory.
resources_fix() {
  local os
  os=$(engine_fact OperatingSystem)
  case ${os} in
    *"Docker Desktop"*) echo "Docker Desktop: Settings > Resources, at least ${KIT_MIN_CPUS} CPUs and $((KIT_ADVISED_MEM_MIB / 1024)) GB of memory, Apply & restart" ;;
    *OrbStack*) echo "OrbStack: Settings > System, memory limit at least $((KIT_ADVISED_MEM_MIB / 1024)) GB" ;;
    *) echo "an engine VM needs at least ${KIT_MIN_CPUS} CPUs and $((KIT_ADVISED_MEM_MIB / 1024)) GiB: colima stop, then colima start --cpu 2 --memory 4; Docker Desktop: Settings > Resources; OrbStack: Settings > System; on Linux the engine has the machine's own CPUs and memory" ;;
  esac
}

# check_engine_resources: the engine's CPUs and memory against the figures above.
check_engine_resources() {
  local cpus mem_mib
  cpus=$(engine_fact NCPU)
  mem_mib=$(( $(engine_fact MemTotal) / 1048576 ))
  found "CPUs, memory" "${cpus} CPU(s), ${mem_mib} MiB (needs ${KIT_MIN_CPUS} CPUs and ${KIT_MIN_MEM_MIB} MiB; ${KIT_ADVISED_MEM_MIB} MiB advised)"
  if ((cpus < KIT_MIN_CPUS)); then
    problem "the engine has ${cpus} CPU(s): the cluster requests 1.1 CPUs and make e2e 0.9 more at its peak, ${KIT_MIN_CPUS} CPUs in all" "$(resources_fix)"
  fi
  if ((mem_mib < KIT_MIN_MEM_MIB)); then
    problem "the engine has ${mem_mib} MiB of memory: the cluster's pods request 882 MiB and make e2e's ${KIT_MIN_MEM_MIB} MiB in all at its peak (pods that do not fit stay Pending)" "$(resources_fix)"
  elif ((mem_mib < KIT_ADVISED_MEM_MIB)); then
    advice "the engine has ${mem_mib} MiB of memory, enough for what the pods request (${KIT_MIN_MEM_MIB} MiB); the control plane, kubelet and the engine's own system use more, unmeasured here: ${KIT_ADVISED_MEM_MIB} MiB is advised"
  fi
}

# ---- mode --------------------------------------------------------------------------------
PULL_PROBE_SECONDS=${PULL_PROBE_SECONDS:-5}
# What upstream mode pulls: kind's node, Traefik, istiod, the Debian base of the clients image (versions.sh).
UPSTREAM_IMAGES=("${KIND_NODE_UPSTREAM}" "${TRAEFIK_UPSTREAM_IMAGE}" "${ISTIOD_UPSTREAM_IMAGE}" "${DEBIAN_UPSTREAM_IMAGE}")

# pull_failure_reason REF: empty when REF is local or its manifest can be fetched within
# PULL_PROBE_SECONDS, else a short reason (no registry names are printed or stored).
pull_failure_reason() {
  local ref=$1 out rc=0
  "${DOCKER}" image inspect "${ref}" >/dev/null 2>&1 && return 0
  out=$(with_timeout "${PULL_PROBE_SECONDS}" "${DOCKER}" manifest inspect "${ref}" 2>&1 >/dev/null) || rc=$?
  ((rc == 0)) && return 0
  if ((rc == 124)); then echo "no answer from its registry within ${PULL_PROBE_SECONDS}s"
  elif grep -qi 'toomanyrequests\|too many requests\|rate limit' <<<"${out}"; then
    echo "its registry refuses more pulls from this address for now (toomanyrequests): \`docker login\` raises the limit; or wait, then rerun with AIRGAPPED=0"
  elif grep -qi 'no such host\|server misbehaving\|name resolution' <<<"${out}"; then echo "its registry's name does not resolve"
  elif grep -qi 'connection refused\|network is unreachable\|i/o timeout' <<<"${out}"; then echo "its registry cannot be reached"
  elif grep -qi 'unauthorized\|denied\|not found\|manifest unknown' <<<"${out}"; then echo "its registry refuses it"
  else echo "the registry probe failed (exit ${rc})"
  fi
}

# airgap_possible: air-gapped mode's builders can run here (Linux with apt-get: the node is a
# debootstrapped Debian rootfs).
airgap_possible() { [[ $(uname -s) == Linux ]] && debian_like; }

# host_kind: "Darwin", "Linux without apt-get", ... for messages.
host_kind() { echo "$(uname -s)$([[ $(uname -s) != Linux ]] || debian_like || echo " without apt-get")"; }

# upstream_blocker: why upstream mode cannot boot on this engine; nothing when it can.
# kind's node images for Kubernetes 1.35 and later dropped cgroup v1 (kind v0.31.0's release
# notes); kubelet 1.35+ refuses it by default (failCgroupV1), and the node image's base is
# Debian trixie, whose systemd 257 treats cgroup v1 as obsolete. Air-gapped mode's node is a
# bookworm rootfs with kubelet patched (cluster_config), which is how this kit's cgroup v1 VM runs.
upstream_blocker() {
  [[ $(engine_cgroup_version) == 1 ]] || return 0
  echo "the engine runs cgroup v1, which kind ${KIND_VERSION}'s node image (Kubernetes ${KUBE_VERSION}) does not support: kind dropped cgroup v1 from its node images for Kubernetes 1.35 and later"
}
CGROUP_V1_FIX="run the engine on cgroup v2: on Linux, boot with the kernel parameter systemd.unified_cgroup_hierarchy=1 (the default of current distributions); Docker Desktop, OrbStack and colima VMs of the last years run cgroup v2, so update yours"

# auto_mode [PROBE]: what AIRGAPPED=auto chooses for a new cluster on this host, in AUTO_MODE
# (upstream | airgapped | none: neither can run) and why, in AUTO_WHY. Where air-gapped mode is
# impossible (macOS, Linux without apt-get) the registry is not probed: a slow or failed probe
# (slow Wi-Fi, a proxy set only in the engine, a broken credential helper, a rate limit) could
# only turn a run that would work into a certain failure; a real pull error says more. With
# PROBE=0 (doctor-host's default) AUTO_MODE is "probe" where the choice depends on the probe.
auto_mode() {
  local probe=${1:-1} blocker why ref
  blocker=$(upstream_blocker)
  if [[ -n ${blocker} ]]; then
    if airgap_possible; then
      AUTO_MODE=airgapped; AUTO_WHY="upstream mode cannot run here: ${blocker}"
    else
      AUTO_MODE=none; AUTO_WHY="${blocker}; and air-gapped mode needs a Debian-like Linux host (this is $(host_kind))"
    fi
    return 0
  fi
  if ! airgap_possible; then
    AUTO_MODE=upstream
    AUTO_WHY="air-gapped mode needs a Debian-like Linux host and this is $(host_kind), so upstream without probing the registry"
    return 0
  fi
  if [[ ${probe} == 0 ]]; then
    AUTO_MODE=probe
    AUTO_WHY="it probes the ${#UPSTREAM_IMAGES[@]} upstream images (${PULL_PROBE_SECONDS}s each at most): upstream if all answer, else air-gapped"
    return 0
  fi
  for ref in "${UPSTREAM_IMAGES[@]}"; do
    why=$(pull_failure_reason "${ref}")
    if [[ -n ${why} ]]; then
      AUTO_MODE=airgapped; AUTO_WHY="${ref} cannot be pulled: ${why}"
      return 0
    fi
  done
  AUTO_MODE=upstream; AUTO_WHY="upstream images are available"
}

# engine_checks: the checks of a running engine, each problem counted in PREFLIGHT_PROBLEMS.
engine_checks() {
  load_engine_facts
  if [[ -z $(engine_fact NCPU) ]]; then
    problem "the engine answers docker info, but not with the fields these checks read (architecture, CPUs, memory, cgroup version): $("${DOCKER}" info --format '{{.CgroupVersion}}' 2>&1 | tail -n 1)" \
      "use Docker 20.10 or newer (engine and CLI)"
    return 0
  fi
  check_engine_arch
  check_engine_store
  check_engine_resources
}

# preflight_engine: kind-up's and e2e's checks of the running engine; fails when one found a
# problem (make doctor-host runs the same, and more).
preflight_engine() {
  PREFLIGHT_PROBLEMS=0
  engine_checks
  ((PREFLIGHT_PROBLEMS == 0))
}
