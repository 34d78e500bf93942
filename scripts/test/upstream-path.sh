#!/usr/bin/env bash
# kind-up's laptop path on stub hosts (scripts/test/lib/harness.sh): a PATH of symlinks to only
# the tools a laptop has (no dpkg, apt-get, flock or GNU timeout), with stub go, docker, kind
# and uname. Each case asserts the exit status, the output, the stub calls, and that no
# missing command was ever called. Touches nothing outside a temp dir.
# shellcheck disable=SC2016  # the single-quoted snippets are expanded by the bash under test
# shellcheck source=lib/harness.sh
source "$(dirname "$0")/lib/harness.sh"

NOJQ=()
for t in "${ALLOWED[@]}"; do [[ ${t} == jq ]] || NOJQ+=("${t}"); done
mkbin "${TMP}/bin-nojq" ${NOJQ[@]+"${NOJQ[@]}"}

for t in dpkg-query apt-get flock timeout; do
  if PATH="${TMP}/bin" command -v "${t}" >/dev/null; then echo "FAIL setup: ${t} is on the test PATH"; exit 1; fi
done

# The recorder itself: a call to a missing tool must be caught, or the cases below prove nothing.
run "${TMP}/bin" 'flock -n 8 || true'
if grep -qx flock "${TMP}/not-found"; then echo "PASS recorder catches a call to a missing command"; passed=$((passed + 1))
else echo "FAIL recorder: a call to flock was not recorded"; failed=$((failed + 1)); fi

run "${TMP}/bin" 'check_prerequisites'
expect "prerequisites: jq and curl present, no dpkg/apt-get: passes" ok "go version go0.0-stub"

run "${TMP}/bin-nojq" 'check_prerequisites'
expect "prerequisites: jq missing, no apt-get: fails naming jq and how to install it" fail \
  "not found: jq" "install"

run "${TMP}/bin" 'announce_host_changes'
expect "host changes: engine answers, tools present: none announced" ok "changes to this host outside ${TMP}/cache: none"

# Mode. A Debian-like host: its apt-get must never be called here.
mkdir -p "${TMP}/debian"
printf '#!/bin/sh\necho "apt-get $*" >> "${STUB_LOG}"; exit 1\n' > "${TMP}/debian/apt-get"
chmod +x "${TMP}/debian/apt-get"
DEB="${TMP}/bin:${TMP}/debian"

run "${DEB}" 'choose_mode; echo "MODE=${MODE}"' AIRGAPPED=auto STUB_REGISTRY=ok
expect "mode, Debian: registry answers: upstream" ok "MODE=upstream" "upstream images are available"
expect_call "mode, Debian: probes istiod's image too" '^docker manifest inspect istio/pilot:'

run "${DEB}" 'choose_mode; echo "MODE=${MODE}"' AIRGAPPED=auto STUB_REGISTRY=hang PULL_PROBE_SECONDS=1
expect "mode, Debian: registry hangs, no GNU timeout: probe gives up after 1s, air-gapped" ok \
  "MODE=airgapped" "no answer from its registry within 1s"
if ((SECS > 10)); then echo "FAIL mode probe took ${SECS}s, want about 1s"; failed=$((failed + 1)); fi

run "${DEB}" 'choose_mode; echo "MODE=${MODE}"' AIRGAPPED=auto STUB_REGISTRY=nohost
expect "mode, Debian: registry name does not resolve: air-gapped" ok "MODE=airgapped" "its registry's name does not resolve"

run "${DEB}" 'choose_mode; echo "MODE=${MODE}"' AIRGAPPED=auto STUB_UNPULLABLE=istio/pilot
expect "mode, Debian: only istiod's image unpullable: air-gapped, naming it" ok "MODE=airgapped" "istio/pilot:"

run "${DEB}" 'choose_mode; echo "MODE=${MODE}"' AIRGAPPED=auto STUB_REGISTRY=ratelimit
expect "mode, Debian: rate-limited (toomanyrequests): air-gapped, saying so and how to avoid it" ok \
  "MODE=airgapped" "toomanyrequests" "docker login"

# Defect 3: where air-gapped mode is impossible, a probe can only turn a working run into a
# failed one: auto is upstream there, without probing.
run "${TMP}/bin" 'choose_mode; echo "MODE=${MODE}"' AIRGAPPED=auto STUB_REGISTRY=hang STUB_UNAME_S=Darwin
expect "mode, macOS: registry hangs: upstream anyway (air-gapped is impossible here)" ok "MODE=upstream" "Darwin"
expect_call "mode, macOS: no registry probe" '!^docker manifest'

run "${TMP}/bin" 'choose_mode; echo "MODE=${MODE}"' AIRGAPPED=auto STUB_REGISTRY=nohost
expect "mode, Linux without apt-get: registry unreachable: upstream anyway" ok "MODE=upstream" "Debian-like"
expect_call "mode, Linux without apt-get: no registry probe" '!^docker manifest'

run "${TMP}/bin" 'choose_mode; echo "MODE=${MODE}"' AIRGAPPED=0
expect "mode: AIRGAPPED=0: upstream without probing" ok "MODE=upstream"
expect_call "mode: AIRGAPPED=0: no registry probe" '!^docker manifest'

run "${TMP}/bin" 'pull traefik:v0' STUB_UNAME_S=Darwin STUB_UNPULLABLE=traefik
expect "pull fails on macOS: the advice is not AIRGAPPED=1 (impossible there)" fail "cannot pull traefik:v0" "!AIRGAPPED=1"

# Defect 4: kind's node image for Kubernetes 1.35+ does not boot on cgroup v1.
run "${DEB}" 'choose_mode; echo "MODE=${MODE}"' AIRGAPPED=auto STUB_REGISTRY=ok STUB_CGROUP=1
expect "mode, Debian, cgroup v1: air-gapped although the registry answers" ok "MODE=airgapped" "cgroup v1"
expect_call "mode, Debian, cgroup v1: no registry probe" '!^docker manifest'

run "${DEB}" 'choose_mode; echo "MODE=${MODE}"' AIRGAPPED=0 STUB_CGROUP=1
expect "mode, cgroup v1, AIRGAPPED=0: stops at once with the reason" fail "cgroup v1" "!MODE="

run "${TMP}/bin" 'choose_mode; echo "MODE=${MODE}"' AIRGAPPED=auto STUB_CGROUP=1 STUB_UNAME_S=Darwin
expect "mode, macOS, engine VM on cgroup v1: neither mode works: stops, saying why" fail "cgroup v1" "!MODE="

# Defect 1 (kind#3795): a pulled multi-platform image on Docker's containerd image store.
run "${TMP}/bin" 'load_image grpc-k8s-kit/traefik:v0' STUB_STORE=containerd STUB_ARCH=aarch64
expect "load, containerd image store: succeeds" ok
expect_call "load, containerd image store: docker image save --platform linux/<engine arch>" \
  '^docker image save --platform linux/arm64 -o [^ ]+\.tar grpc-k8s-kit/traefik:v0$'
expect_call "load, containerd image store: kind load image-archive of that archive" \
  '^kind load image-archive [^ ]+\.tar --name grpc-k8s-kit$'
expect_call "load, containerd image store: not kind load docker-image (its docker save lists every platform)" \
  '!^kind load docker-image'
run "${TMP}/bin" 'load_image grpc-k8s-kit/traefik:v0' STUB_STORE=classic
expect_call "load, classic image store: kind load docker-image (it skips images the node has)" \
  '^kind load docker-image grpc-k8s-kit/traefik:v0 --name grpc-k8s-kit$'
run "${TMP}/bin" 'preflight_engine' STUB_STORE=containerd STUB_SERVER_VERSION=27.5.1
expect "load, containerd image store on engine 27: refused early (docker image save --platform needs 28)" fail \
  "27.5.1" "28"

# Defect 2: on macOS kind-up links the host's kubectl into ${KIT_BIN}; the summary tells users
# to put ${KIT_BIN} on PATH, and common.sh puts it first again, so it is there twice.
KB="${TMP}/cache/bin"
mkdir -p "${TMP}/host-kubectl" "${TMP}/link-kubectl"
cp "${STUBS}/kubectl" "${TMP}/host-kubectl/kubectl"
run "${KB}:${TMP}/bin:${TMP}/host-kubectl" \
  'kubectl_and_kubeconfig; kubectl_and_kubeconfig; echo "TARGET=$(readlink "${KUBECTL}")"' STUB_UNAME_S=Darwin
expect "kubectl on macOS, KIT_BIN on PATH, second run: links the host's kubectl, not itself" ok \
  "TARGET=${TMP}/host-kubectl/kubectl" "kubectl v1.37.0 at ${KB}/kubectl"
# A kubectl on PATH that is itself a link to the kit's own (a regular file there).
rm -f "${KB}/kubectl"
cp "${STUBS}/kubectl" "${KB}/kubectl"
ln -s "${KB}/kubectl" "${TMP}/link-kubectl/kubectl"
run "${TMP}/bin:${TMP}/link-kubectl" 'kubectl_and_kubeconfig' STUB_UNAME_S=Darwin
expect "kubectl on macOS that resolves into KIT_BIN: refused, not linked to itself" fail \
  "resolves to ${KB}/kubectl"
[[ -f ${KB}/kubectl && ! -L ${KB}/kubectl ]] || { echo "FAIL the kit's kubectl was replaced"; failed=$((failed + 1)); }
rm -f "${KB}/kubectl"

# Defect 5: colima's default VM (2 CPUs, 2 GiB) is too small for the cluster and make e2e.
run "${TMP}/bin" 'preflight_engine' STUB_NCPU=2 STUB_MEM=2061381632 STUB_OS="Ubuntu 24.04 LTS"
expect "resources: 2 CPUs and 2 GiB (colima's default): refused early, with the number and the fix" fail \
  "1965 MiB" "2578 MiB" "colima start --cpu 2 --memory 4"
run "${TMP}/bin" 'preflight_engine' STUB_NCPU=1 STUB_MEM=8589934592
expect "resources: 1 CPU: refused early, with the number" fail "1 CPU" "2 CPUs"
run "${TMP}/bin" 'preflight_engine' STUB_NCPU=2 STUB_MEM=3221225472
expect "resources: 2 CPUs and 3 GiB: enough, with advice" ok "4096 MiB"
run "${TMP}/bin" 'preflight_engine' STUB_NCPU=2 STUB_MEM=25276194816
expect "resources: 2 CPUs and 24 GiB (this kit's VM): enough" ok "!PROBLEM" "!NOTE"

# Defect 8: images are built for go env GOARCH; the engine runs its own architecture.
run "${TMP}/bin" 'preflight_engine' STUB_GOARCH=amd64 STUB_ARCH=aarch64
expect "arch: Go builds amd64, the engine runs arm64: refused, with the fix" fail "amd64" "arm64" "GOARCH"
run "${TMP}/bin" 'preflight_engine' STUB_GOARCH=arm64 STUB_ARCH=aarch64
expect "arch: Go and the engine both arm64 (aarch64): passes" ok "arm64"

# Defect 8: a Linux user outside the docker group gets docker info's own error, with the fix.
run "${TMP}/bin" 'ensure_engine' STUB_ENGINE=denied
expect "engine: permission denied: docker info's error and the docker group" fail \
  "permission denied while trying to connect" "docker group"
run "${TMP}/bin" 'ensure_engine' STUB_ENGINE=down STUB_UNAME_S=Darwin
expect "engine: none answers on macOS: docker info's error" fail "Cannot connect to the Docker daemon"

# Defect 8: on macOS the host's kubectl is used; one minor version of skew either way at most.
run "${KB}:${TMP}/bin:${TMP}/host-kubectl" 'kubectl_and_kubeconfig' STUB_UNAME_S=Darwin STUB_KUBECTL_VERSION=v1.33.4
expect "kubectl on macOS, v1.33 against a v1.37 cluster: refused, with both versions" fail "v1.33.4" "v1.37.0" "!kubeconfig at"
run "${KB}:${TMP}/bin:${TMP}/host-kubectl" 'kubectl_and_kubeconfig' STUB_UNAME_S=Darwin STUB_KUBECTL_VERSION=v1.38.0
expect "kubectl on macOS, v1.38 against a v1.37 cluster: within the skew" ok "kubectl v1.38.0 at"
rm -f "${KB}/kubectl"

run "${TMP}/bin" 'preflight_engine' STUB_OLD_ENGINE=1
expect "preflight: an engine whose docker info lacks the fields used: a problem, not a shell error" fail \
  "PROBLEM" "20.10" "!syntax error"

run "${TMP}/bin" 'heavy sleep 0 && builder_lock test && echo LOCKS-OK'
expect "locks without flock: heavy and builder_lock run, with a note" ok "LOCKS-OK" "flock not found"

run "${TMP}/bin" 'rc=0; with_timeout 1 sleep 20 || rc=$?; echo "rc=${rc}"; with_timeout 5 true && echo quick-ok'
expect "with_timeout: kills a slow command (exit 124), passes a quick one" ok "rc=124" "quick-ok"
if ((SECS > 10)); then echo "FAIL with_timeout took ${SECS}s"; failed=$((failed + 1)); fi

# A CRD the API server has just created has no status.conditions yet; kubectl wait fails on
# that (it does not wait), so kind-up polls. This kubectl answers nothing twice, then True;
# a CRD named never-established never is.
cat > "${TMP}/kubectl-crd" <<'EOF'
#!/bin/sh
n=$(cat "${STUB_COUNT}" 2>/dev/null || echo 0); echo $((n + 1)) > "${STUB_COUNT}"
case "$*" in *never-established*) exit 0 ;; esac
[ "${n}" -lt 2 ] || printf True
EOF
chmod +x "${TMP}/kubectl-crd"
run "${TMP}/bin" 'cp "'"${TMP}"'/kubectl-crd" "${KUBECTL}"; wait_established 20 a.example.com && echo ESTABLISHED' \
  STUB_COUNT="${TMP}/crd-count"
expect "CRD without conditions yet: waits until Established" ok ESTABLISHED
rm -f "${TMP}/crd-count"
run "${TMP}/bin" 'cp "'"${TMP}"'/kubectl-crd" "${KUBECTL}"; wait_established 2 never-established.example.com' \
  STUB_COUNT="${TMP}/crd-count"
expect "CRD never Established: fails after its limit, naming it" fail \
  "never-established.example.com is not Established after 2s"
rm -f "${TMP}/crd-count" "${KB}/kubectl"

# The Prometheus Operator's images, upstream: the repositories its module's Makefile names
# (kind-up writes no registry name), the release's tag, re-tagged to the kit's local names.
mkdir -p "${TMP}/po-module"
printf 'IMAGE_OPERATOR?=example.invalid/po/prometheus-operator\nIMAGE_RELOADER?=example.invalid/po/prometheus-config-reloader\n' \
  > "${TMP}/po-module/Makefile"
run "${TMP}/bin" 'MODE=upstream; prometheus_operator_images' STUB_MODDIR="${TMP}/po-module"
expect "operator images, upstream: pulled as the module's Makefile names them" ok
expect_call "operator images, upstream: the operator's image at the pinned tag" \
  '^docker pull example\.invalid/po/prometheus-operator:v[0-9]+\.[0-9]+\.[0-9]+$'
expect_call "operator images, upstream: the config reloader's, re-tagged to the name the operator's flag gives" \
  '^docker tag example\.invalid/po/prometheus-config-reloader:(v[0-9.]+) grpc-k8s-kit/prometheus-config-reloader:\1$'
run "${TMP}/bin" 'MODE=upstream; prometheus_operator_images'
expect "operator images, upstream, module not downloadable: stops naming the module" fail \
  "cannot download github.com/prometheus-operator/prometheus-operator@v"
expect_call "operator images, upstream, module not downloadable: nothing pulled" '!^docker pull'
printf 'IMAGE_OPERATOR?=example.invalid/po/prometheus-operator\n' > "${TMP}/po-module/Makefile"
run "${TMP}/bin" 'MODE=upstream; prometheus_operator_images' STUB_MODDIR="${TMP}/po-module"
expect "operator images, upstream, Makefile without IMAGE_RELOADER: stops saying so" fail \
  "its Makefile no longer sets IMAGE_RELOADER"

# The metrics pipeline's steps check that the manifests name the images versions.sh builds
# (each version is written there once), and wait for every CRD they apply. This kubectl
# answers True to every query and records its calls.
cat > "${TMP}/kubectl-true" <<'EOF'
#!/bin/sh
echo "kubectl $*" >> "${STUB_LOG}"
case "$*" in *jsonpath=*) printf True ;; esac
exit 0
EOF
chmod +x "${TMP}/kubectl-true"
SETUP_TRUE='cp "'"${TMP}"'/kubectl-true" "${KUBECTL}"; '
run "${TMP}/bin" "${SETUP_TRUE}"'deploy_prometheus_operator' STUB_CLUSTER=grpc-k8s-kit
expect "operator step: CRDs, then the operator" ok "Prometheus Operator ready"
expect_call "operator step: CRDs applied server-side" \
  '^kubectl .* apply --server-side --force-conflicts -k [^ ]*/deploy/prometheus-operator/crds$'
for crd in prometheuses servicemonitors podmonitors probes prometheusrules; do
  expect_call "operator step: waits for the CRD ${crd}" "get crd/${crd}\.monitoring\.coreos\.com "
done
expect_call "operator step: images loaded into the control plane only" \
  '^kind load docker-image grpc-k8s-kit/prometheus-config-reloader:v[0-9.]+ --name grpc-k8s-kit --nodes grpc-k8s-kit-control-plane$'
run "${TMP}/bin" "${SETUP_TRUE}"'KIT_PROMETHEUS_OPERATOR_IMAGE=grpc-k8s-kit/prometheus-operator:v9.9.9; deploy_prometheus_operator'
expect "operator step: a deployment.yaml naming another image stops it" fail \
  "must use image grpc-k8s-kit/prometheus-operator:v9.9.9"
expect_call "operator step: another image: nothing applied" '!apply'
run "${TMP}/bin" "${SETUP_TRUE}"'PROMETHEUS_RELEASE=v9.9.9; deploy_prometheus'
expect "Prometheus step: a Prometheus object of another release stops it" fail "must say version: v9.9.9"
expect_call "Prometheus step: another release: nothing applied" '!apply'
rm -f "${TMP}/cache/bin/kubectl"

# A cluster is reused only if it was created from this run's kind config (recorded in the
# cluster): the feature gates and port mappings apply only at creation. This kubectl answers
# /readyz and returns the recorded config from ${STUB_RECORD} (none if the file is absent).
cat > "${TMP}/kubectl-record" <<'EOF'
#!/bin/sh
echo "kubectl $*" >> "${STUB_LOG}"
case "$*" in
  *"get configmap grpc-k8s-kit-kind-config"*) [ ! -f "${STUB_RECORD}" ] || cat "${STUB_RECORD}" ;;
  *"create configmap"*) echo "kind: ConfigMap" ;;
  # As the real one does, apply reads its stdin to the end: a stub that did not could exit
  # before `create ... | apply` wrote, and pipefail would see the writer's SIGPIPE (141).
  *" apply "*) cat > /dev/null ;;
esac
exit 0
EOF
chmod +x "${TMP}/kubectl-record"
REC="${TMP}/recorded.yaml"
EXISTING=(STUB_CLUSTER=grpc-k8s-kit STUB_NODE_RUNNING=1 STUB_RECORD="${REC}")
SETUP='cp "'"${TMP}"'/kubectl-record" "${KUBECTL}"; '
run "${TMP}/bin" "${SETUP}"'grep -q "^  GRPCContainerProbeTLS: true$" "$(cluster_config)" && echo GATE-IN-CONFIG'
expect "cluster config: the feature gate GRPCContainerProbeTLS is in the config kind-up creates from" ok GATE-IN-CONFIG

run "${TMP}/bin" "${SETUP}"'cp "$(cluster_config)" "'"${REC}"'"; create_or_reuse_cluster; echo "REUSE=${REUSE}"' "${EXISTING[@]}"
expect "cluster created from this config: reused" ok "REUSE=true" "created from this config: reusing it"
expect_call "cluster created from this config: not deleted" '!^kind (delete|create) cluster'

run "${TMP}/bin" "${SETUP}"'echo "WORKERS=$(grep -c "^- role: worker$" "$(cluster_config)")"' KIND_WORKERS=2
expect "cluster config: KIND_WORKERS=2 adds two workers to the nodes list" ok "WORKERS=2"

run "${TMP}/bin" "${SETUP}"'cp "$(cluster_config)" "'"${REC}"'"; create_or_reuse_cluster; echo "REUSE=${REUSE}"' "${EXISTING[@]}" STUB_WORKERS=0
expect "cluster from this config with another node count: recreated, saying why" ok "REUSE=false" "has 1 nodes, not 3"
expect_call "cluster with another node count: deleted" '^kind delete cluster --name grpc-k8s-kit$'

run "${TMP}/bin" "${SETUP}"'grep -v GRPCContainerProbeTLS "$(cluster_config)" > "'"${REC}"'"; create_or_reuse_cluster; echo "REUSE=${REUSE}"; record_cluster_config' "${EXISTING[@]}"
expect "cluster created without the feature gate: recreated, saying why" ok "REUSE=false" \
  "was created from another kind config" "kind-config-grpc-k8s-kit.previous.yaml" "recorded the kind config"
expect_call "cluster created without the feature gate: deleted" '^kind delete cluster --name grpc-k8s-kit$'
expect_call "cluster created without the feature gate: created from this config" \
  '^kind create cluster --name grpc-k8s-kit .*--config [^ ]*/kind-config-grpc-k8s-kit\.yaml'
expect_call "cluster created: the config recorded in the cluster" \
  '^kubectl .*-n kube-system create configmap grpc-k8s-kit-kind-config --from-file=config=[^ ]*/kind-config-grpc-k8s-kit\.yaml'

rm -f "${REC}"
run "${TMP}/bin" "${SETUP}"'create_or_reuse_cluster; echo "REUSE=${REUSE}"' "${EXISTING[@]}"
expect "cluster without a recorded config (an older kind-up made it): recreated, saying why" ok "REUSE=false" \
  "has no record of the kind config"
expect_call "cluster without a recorded config: deleted" '^kind delete cluster --name grpc-k8s-kit$'
rm -f "${TMP}/cache/bin/kubectl"

finish
