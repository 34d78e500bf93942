#!/usr/bin/env bash
# make smoke: a FROM scratch pod built from this repo becomes Ready in the kind cluster and
# answers from the host, directly (NodePort, 127.0.0.1:30080) and through Traefik
# (127.0.0.1:8000, Ingress class "traefik"). Needs make kind-up first.
#
# The pod runs services/hello (image grpc-k8s-kit/hello:dev, built here the way `make images`
# does); on a tree without services/hello, a tiny stand-in HTTP server instead.
# KEEP=1 leaves the kit-smoke namespace in place for a look around.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "${REPO_ROOT}/scripts/lib/engine.sh"
source "${REPO_ROOT}/scripts/lib/cluster.sh"

export DOCKER_BUILDKIT=0
STEP_TOTAL=5
ARCH=$(go env GOARCH)
SMOKE_NS=kit-smoke

# build_image: prints the image reference to deploy.
build_image() {
  local img
  if [[ -d ${REPO_ROOT}/services/hello ]]; then
    img=grpc-k8s-kit/hello:dev
    info "building ${img} from ./services/hello (Dockerfile stage 'prebuilt')"
    (cd "${REPO_ROOT}" \
      && CGO_ENABLED=0 GOOS=linux GOARCH="${ARCH}" logged "${KIT_LOGS}/smoke-build.log" \
           go build -trimpath -ldflags='-s -w' -o "bin/linux-${ARCH}/hello" ./services/hello \
      && logged "${KIT_LOGS}/smoke-image.log" "${DOCKER}" build --target prebuilt --build-arg BINARY=hello \
           --build-arg TARGETARCH="${ARCH}" -t "${img}" .)
  else
    img=grpc-k8s-kit/smoke:dev
    local dir="${KIT_CACHE}/smoke"
    info "./services/hello not found: building the stand-in server ${img}"
    rm -rf "${dir}"; mkdir -p "${dir}"
    (cd "${REPO_ROOT}/scripts/smoke" && CGO_ENABLED=0 GOOS=linux GOARCH="${ARCH}" \
      logged "${KIT_LOGS}/smoke-build.log" go build -trimpath -ldflags='-s -w' -o "${dir}/app" fallback-server.go)
    printf 'FROM scratch\nCOPY app /app\nUSER 65532:65532\nENTRYPOINT ["/app"]\n' > "${dir}/Dockerfile"
    logged "${KIT_LOGS}/smoke-image.log" "${DOCKER}" build -t "${img}" "${dir}"
  fi
  echo "${img}"
}

deploy() {
  local img=$1
  kubectl_ delete namespace "${SMOKE_NS}" --ignore-not-found --wait=true >&2
  sed "s|SMOKE_IMAGE|${img}|" "${REPO_ROOT}/scripts/smoke/smoke.yaml" | kubectl_ apply -f - >&2
  kubectl_ -n "${SMOKE_NS}" rollout status deployment/smoke --timeout=120s >&2 || {
    kubectl_ -n "${SMOKE_NS}" describe pods >&2
    die "smoke pod did not become Ready"
  }
  kubectl_ -n "${SMOKE_NS}" get pods -o wide >&2
}

# expect_ok NAME CURL_ARGS...: retry for up to 30 s until curl gets a 2xx.
expect_ok() {
  local name=$1 i code=""; shift
  for ((i = 0; i < 30; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" || true)
    [[ ${code} == 2* ]] && { info "PASS ${name}: HTTP ${code}"; return 0; }
    sleep 1
  done
  die "FAIL ${name}: last HTTP status '${code}' (curl $*)"
}

cleanup() {
  if [[ ${KEEP:-0} == 1 ]]; then
    info "KEEP=1: namespace ${SMOKE_NS} left in place"
  else
    kubectl_ delete namespace "${SMOKE_NS}" --wait=false >&2
  fi
}

main() {
  step "cluster";           ensure_engine; require_cluster
  step "image";             local img; img=$(build_image)
  step "load into node";    load_image "${img}"
  step "deploy, wait Ready"; deploy "${img}"
  step "reach from host"
  expect_ok "NodePort 127.0.0.1:30080/healthz" http://127.0.0.1:30080/healthz
  expect_ok "Traefik 127.0.0.1:8000 (Ingress, Host smoke.kit.test)" -H 'Host: smoke.kit.test' http://127.0.0.1:8000/healthz
  cleanup
  run_done
  log "smoke: PASS (${img})"
}

main "$@"
