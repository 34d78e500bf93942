#!/usr/bin/env bash
# Build Traefik from its Go module (github.com/traefik/traefik/v3 at TRAEFIK_VERSION) and wrap
# it in a FROM scratch image, $KIT_TRAEFIK_IMAGE.
#
# Traefik's go.mod has replace directives (forks of go-http-auth, mux), which
# `go install pkg@version` refuses, so we build inside a writable copy of the module
# (go_build_module --in that copy).
# TRAEFIK_VERSION v3.7.x does not build unchanged from the module proxy; patch_module makes
# three small edits to the copy (never to the module cache), each checked so that a version
# they no longer fit stops the build instead of building something else:
#   1. a stub for its nested module github.com/traefik/traefik/dynamic/ext
#      (pkg/config/dynamic/ext, replaced by a relative path in go.mod): a nested module is
#      left out of the module zip. Upstream's is two empty structs embedded in
#      dynamic.HTTPConfiguration and dynamic.Router, and the stub is the same, so the
#      dynamic configuration is unchanged.
#   2. the go-http-auth fork (replace github.com/abbot/go-http-auth) at the version v3.6.12
#      pins, v0.4.1-0.20200324110947-a37a7636d23e: the proxy refuses (403) the one v3.7.x pins,
#      v0.4.1-0.20260804094822-b975dcaa8c48 (traefik/traefik#13636). The binary's basicAuth and
#      digestAuth middlewares thus lack that fork commit's fixes; the kit uses neither.
#   3. no ACME DNS-01 challenge providers: pkg/provider/acme/provider.go stops importing
#      github.com/go-acme/lego/v5/providers/dns (every DNS provider's SDK, dependencies the
#      proxy refuses), and a certificate resolver with a dnsChallenge fails with an error
#      saying so. ACME's HTTP-01 and TLS-ALPN-01 challenges are unchanged; the kit uses no ACME.
# The web UI is not in the module zip; the binary embeds an empty UI, so the dashboard is off.
#
# Cold: ~11 min on 2 cores (measured for v3.6.12; v3.7.13 took 125 s with Go's build cache warm
# from that build). Binary ~144 MB (v3.6.12's was ~178 MB, the DNS-01 providers' SDKs included).
# Output: $KIT_CACHE/traefik/$TRAEFIK_VERSION/traefik
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
source "${REPO_ROOT}/scripts/lib/engine.sh"

export DOCKER_BUILDKIT=0
OUT="${KIT_CACHE}/traefik/${TRAEFIK_VERSION}"
MODULE=github.com/traefik/traefik/v3
# The go-http-auth fork version Traefik v3.6.12 pins, served by the proxy (patch 2).
HTTP_AUTH_FORK=github.com/containous/go-http-auth@v0.4.1-0.20200324110947-a37a7636d23e

# patch_module DIR: the three edits above, in the writable module copy DIR.
patch_module() {
  local dir=$1 f json
  # 1. The nested dynamic/ext module: go.mod must still replace it by that directory.
  grep -q '^replace github.com/traefik/traefik/dynamic/ext => ./pkg/config/dynamic/ext$' \
    "${dir}/go.mod" || die "patch 1: ${MODULE}@${TRAEFIK_VERSION} no longer replaces dynamic/ext by ./pkg/config/dynamic/ext"
  [[ ! -e ${dir}/pkg/config/dynamic/ext ]] \
    || die "patch 1: pkg/config/dynamic/ext is in the module zip now: drop this patch"
  mkdir -p "${dir}/pkg/config/dynamic/ext"
  printf 'module github.com/traefik/traefik/dynamic/ext\n\ngo 1.24.0\n' \
    > "${dir}/pkg/config/dynamic/ext/go.mod"
  cat > "${dir}/pkg/config/dynamic/ext/ext.go" <<'GO'
// Package ext: stub written by grpc-k8s-kit's build-traefik.sh (the nested module is not in
// the module zip). Empty, as upstream's: no extension fields in the dynamic configuration.
package ext

// HTTP is embedded in dynamic.HTTPConfiguration.
type HTTP struct{}

// Router is embedded in dynamic.Router.
type Router struct{}
GO
  # 2. The go-http-auth fork: replace it at the version v3.6.12 pins, with its go.sum lines.
  grep -q '^	github.com/abbot/go-http-auth => github.com/containous/go-http-auth ' "${dir}/go.mod" \
    || die "patch 2: ${MODULE}@${TRAEFIK_VERSION} no longer replaces go-http-auth by the containous fork"
  (cd "${dir}" && go mod edit -replace "github.com/abbot/go-http-auth=${HTTP_AUTH_FORK}")
  json=$(go mod download -json "${HTTP_AUTH_FORK}") || die "patch 2: cannot download ${HTTP_AUTH_FORK}"
  printf '%s %s %s\n%s %s/go.mod %s\n' \
    "${HTTP_AUTH_FORK%@*}" "${HTTP_AUTH_FORK#*@}" "$(jq -r .Sum <<<"${json}")" \
    "${HTTP_AUTH_FORK%@*}" "${HTTP_AUTH_FORK#*@}" "$(jq -r .GoModSum <<<"${json}")" >> "${dir}/go.sum"
  # 3. No DNS-01 providers: drop the import, and make its one use an error.
  f="${dir}/pkg/provider/acme/provider.go"
  if ! grep -q '^	"github.com/go-acme/lego/v5/providers/dns"$' "${f}" \
    || ! grep -q '^		provider, err = dns.NewDNSChallengeProviderByName(p.DNSChallenge.Provider)$' "${f}"; then
    die "patch 3: ${f#"${dir}/"} no longer uses lego's DNS providers as this patch expects"
  fi
  sed -i -e '\#^	"github.com/go-acme/lego/v5/providers/dns"$#d' \
    -e 's#^		provider, err = dns.NewDNSChallengeProviderByName(p.DNSChallenge.Provider)$#		provider, err = nil, fmt.Errorf("ACME DNS-01 challenge provider %q: this Traefik build (grpc-k8s-kit, air-gapped) has no DNS-01 providers", p.DNSChallenge.Provider)#' \
    "${f}"
  ! grep -q 'providers/dns\|dns\.NewDNSChallengeProviderByName' "${f}" || die "patch 3 did not apply"
}

build_binary() {
  if [[ -x ${OUT}/traefik ]]; then
    info "traefik ${TRAEFIK_VERSION}: binary cached"
    return 0
  fi
  info "traefik ${TRAEFIK_VERSION}: building ./cmd/traefik (log ${KIT_LOGS}/build-traefik.log; ~11 min cold) ..."
  local pkg=${MODULE}/pkg/version src dir="${KIT_CACHE}/src/traefik-${TRAEFIK_VERSION}"
  src=$(module_dir "${MODULE}@${TRAEFIK_VERSION}")
  [[ -d ${src} ]] || die "cannot download ${MODULE}@${TRAEFIK_VERSION} from the Go module proxy"
  rm -rf "${dir}"
  mkdir -p "${dir%/*}"
  cp -r "${src}" "${dir}"
  chmod -R u+w "${dir}"   # module cache files are read-only
  patch_module "${dir}"
  GOOS=linux go_build_module --in "${dir}" "${MODULE}" "${TRAEFIK_VERSION}" ./cmd/traefik \
    "${OUT}/traefik" "-X ${pkg}.Version=${TRAEFIK_VERSION} -X ${pkg}.BuildDate=1970-01-01T00:00:00Z"
  rm -rf "${dir}"
}

# 65532: the non-root uid deploy/traefik's securityContext names.
build_image() {
  scratch_image traefik "${OUT}/traefik" "${KIT_TRAEFIK_IMAGE}" /traefik 65532
}

main() {
  require_airgap_host
  builder_lock traefik
  need go "install Go (see go.mod for the version)"
  build_binary
  [[ ${1:-image} == binary ]] && return 0
  build_image
}

main "$@"
