#!/usr/bin/env bash
# Build promtool (Prometheus' rule checker and unit-test runner) from the Go module
# github.com/prometheus/prometheus at PROMETHEUS_VERSION (scripts/lib/versions.sh), once per
# version, into the kit's cache, and print its path. make test runs it first: the rule tests
# (kustomize/alerts_test.go) evaluate components/prometheus-rule with Prometheus' own code.
#
#   scripts/build-promtool.sh          build it unless cached; print its path on stdout
#   scripts/build-promtool.sh --path   print where it is (or will be); build nothing
#
# Built inside a copy of the module (go_build_module --copy): a build against the module's
# own go.mod and go.sum, whatever replace or exclude lines a release carries, which a
# scratch module requiring it (or `go install ...@version`) would not apply. A host binary,
# without the service-discovery plugins (Prometheus' build tag remove_all_sd): checking and
# testing rules needs none of them, and they bring in the cloud providers' SDKs.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

MODULE=github.com/prometheus/prometheus
PROMTOOL="${KIT_CACHE}/prometheus/${PROMETHEUS_VERSION}/promtool"

case ${1:-} in
  --path) echo "${PROMTOOL}"; exit 0 ;;
  "") ;;
  *) die "usage: $0 [--path]" ;;
esac

if [[ ! -x ${PROMTOOL} ]]; then
  need go "install Go (the version in go.mod)"
  ensure_cmds jq                # go_build_module reads the module's directory with it
  builder_lock promtool         # a second make test waits, then finds it built
  if [[ ! -x ${PROMTOOL} ]]; then
    info "promtool ${PROMETHEUS_VERSION}: building ./cmd/promtool (log ${KIT_LOGS}/build-promtool.log) ..."
    # GOWORK=off: the module ships a go.work naming modules its zip leaves out.
    # The tags go through GOFLAGS (go_build_module takes none), after what go env sets there.
    GOWORK=off GOFLAGS="$(go env GOFLAGS) -tags=remove_all_sd" \
      go_build_module --copy "${MODULE}" "${PROMETHEUS_VERSION}" ./cmd/promtool "${PROMTOOL}" \
      "-X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION}"
  fi
fi
echo "${PROMTOOL}"
