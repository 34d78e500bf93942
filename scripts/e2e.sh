#!/usr/bin/env bash
# make e2e: the end-to-end suite against the kind cluster from `make kind-up`.
# Builds the three images from this tree (FROM scratch, no registry), loads them into the
# node, then runs the Go suite in e2e/ (kubectl, the greeter and grpcurl against the live
# cluster). The distribution table ends the output and is written to e2e/out/.
#   E2E_RUN=TestTopologies/gateway-api make e2e    run one topology (or TestDoctor, ...)
#   E2E_KEEP=1 make e2e                leave the topologies deployed afterwards
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "${REPO_ROOT}/scripts/lib/engine.sh"
source "${REPO_ROOT}/scripts/lib/cluster.sh"
source "${REPO_ROOT}/scripts/lib/host.sh"

export DOCKER_BUILDKIT=0
ensure_engine
# The same checks as kind-up's step 2: images for the engine's architecture, enough CPUs and memory.
preflight_engine || die "${PREFLIGHT_PROBLEMS} problem(s) above: fix them first (make doctor-host checks again)"
require_cluster

log "images: build from this tree and load into ${CLUSTER_NAME}"
(cd "${REPO_ROOT}" && make --no-print-directory images)
for img in hello goodbye greeter; do
  load_image "grpc-k8s-kit/${img}:dev"
  info "loaded grpc-k8s-kit/${img}:dev"
done
log "clients in other languages: ${KIT_CLIENTS_IMAGE} (clients/)"
"${REPO_ROOT}/scripts/build-clients-image.sh"
load_image "${KIT_CLIENTS_IMAGE}" "${NODE_CONTAINER}"   # its Jobs run on the control plane
info "loaded ${KIT_CLIENTS_IMAGE}"

# Three lanes on the same cluster, one after the other: the suite; the node lane
# (TestNodes: drains, freezes and cuts off a worker, which every topology's pods share, so
# nothing else may run beside it); the cost lane (TestCost: the same load through each
# topology, one at a time, its CPU and memory read from Prometheus, which any other load
# would add to). make e2e runs all three (E2E_LANE=all); E2E_LANE=suite, nodes (make
# e2e-nodes) or cost (make e2e-cost) one of them. Every lane runs even when an earlier one
# failed, so one run reports them all. E2E_RUN runs one test.
# -parallel 7: go test may start the seven parallel tests (five deployments of the four
# topologies, the doctor, backend TLS) at once, whatever the host's CPU count; the suite's
# node gate (e2e/harness) decides how many share the nodes and which goes first.
base=(-tags e2e -count=1 -v -timeout 45m -parallel 7)
lanes=()
if [[ -n ${E2E_RUN:-} ]]; then
  lanes=("run:-run=${E2E_RUN}")
else
  lane_suite="suite:-skip=^(TestNodes|TestCost)\$"
  lane_nodes="nodes:-run=^TestNodes\$"
  lane_cost="cost:-run=^TestCost\$"
  case ${E2E_LANE:-all} in
    all) lanes=("${lane_suite}" "${lane_nodes}" "${lane_cost}") ;;
    suite) lanes=("${lane_suite}") ;;
    nodes) lanes=("${lane_nodes}") ;;
    cost) lanes=("${lane_cost}") ;;
    *) die "E2E_LANE=${E2E_LANE}: want all, suite, nodes or cost" ;;
  esac
fi
test_args=()
[[ -n ${E2E_KEEP:-} ]] && test_args+=(-keep)
cd "${REPO_ROOT}"
# Each lane's whole output goes to e2e/out/go-test-<lane>.log too; when a test fails, what
# the failed tests logged is printed again at the end (lib/failed-tests.awk), next to the
# closing lines.
mkdir -p e2e/out
status=0
verdicts=()
for lane in ${lanes[@]+"${lanes[@]}"}; do
  name=${lane%%:*}
  log "e2e lane ${name} (go test -tags e2e ${lane#*:} ./e2e)"
  lane_status=0
  KIT_CACHE="${KIT_CACHE}" KIT_CLIENTS_IMAGE="${KIT_CLIENTS_IMAGE}" DOCKER="${DOCKER}" \
    go test "${base[@]}" "${lane#*:}" ./e2e/ ${test_args[@]+-args "${test_args[@]}"} 2>&1 |
    tee "e2e/out/go-test-${name}.log" || lane_status=$?
  if ((lane_status != 0)); then
    awk -f scripts/lib/failed-tests.awk "e2e/out/go-test-${name}.log"
    status=${lane_status}
    verdicts+=("lane ${name}: FAIL (exit ${lane_status}), e2e/out/go-test-${name}.log")
  else
    verdicts+=("lane ${name}: ok")
  fi
done
# One closing line per lane, so the last lines of the run speak for all of them.
for v in ${verdicts[@]+"${verdicts[@]}"}; do log "${v}"; done
exit "${status}"
