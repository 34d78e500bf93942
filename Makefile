# grpc-k8s-kit: gRPC services balanced across Kubernetes pods.
#
#   make test                 unit + loopback integration + render tests (no cluster)
#   make kind-up && make e2e  a kind cluster (air-gapped capable) and the end-to-end suite
#
# Every target is a thin wrapper: the logic lives in Go (tests, commands) or scripts/.

SHELL         := /usr/bin/env bash
# make 3.81 (macOS's) ignores .SHELLFLAGS and runs recipes with plain `bash -c`: a recipe of
# several commands must stop on its own (set -e, or `|| exit 1` in a loop). scripts/test/makefile.sh.
.SHELLFLAGS   := -eu -o pipefail -c
GO            ?= go
DOCKER        ?= docker
TOOLS         := $(GO) tool -modfile=tools/go.mod
BIN           := bin
GOARCH_HOST   := $(shell $(GO) env GOARCH)
LINUX_BIN     := $(BIN)/linux-$(GOARCH_HOST)
VERSION       ?= v1
IMAGE_PREFIX  ?= grpc-k8s-kit
IMAGE_TAG     ?= dev
BINARIES      := hello goodbye greeter

.PHONY: all build build-linux images clients-image generate proto-lint proto-breaking proto-check lint-scripts \
        test-scripts promtool test test-short bench demo certs backend-certs doctor-host kind-up kind-down e2e e2e-nodes e2e-cost smoke clean help

all: build

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

build: ## build hello, goodbye and greeter for this machine into bin/
	$(GO) build -o $(BIN)/ ./services/hello ./services/goodbye ./client/greeter

build-linux: ## static linux binaries for the container images
	CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH_HOST) $(GO) build -trimpath -ldflags='-s -w' \
	  -o $(LINUX_BIN)/ ./services/hello ./services/goodbye ./client/greeter

# The classic builder (DOCKER_BUILDKIT=0, as e2e.sh and smoke.sh use): it needs no buildx
# plugin and runs the "prebuilt" stage, FROM scratch, with nothing from a registry. BuildKit
# (DOCKER_BUILDKIT=1 make images) needs none either, as the Dockerfile names no frontend image.
DOCKER_BUILDKIT ?= 0
images: build-linux ## FROM scratch images from host-built binaries (no registry needed)
	@for b in $(BINARIES); do \
	  echo "==> image $(IMAGE_PREFIX)/$$b:$(IMAGE_TAG)"; \
	  DOCKER_BUILDKIT=$(DOCKER_BUILDKIT) $(DOCKER) build -q --target prebuilt --build-arg BINARY=$$b \
	    --build-arg TARGETARCH=$(GOARCH_HOST) -t $(IMAGE_PREFIX)/$$b:$(IMAGE_TAG) . || exit 1; \
	done

clients-image: ## the clients in other languages (clients/: Python, Node, C++) in one image, FROM make kind-up's Debian base
	scripts/build-clients-image.sh

generate: ## regenerate Go code from proto/ (buf + local plugins via go tool)
	$(TOOLS) buf generate

proto-lint: ## buf lint
	$(TOOLS) buf lint

proto-breaking: ## buf breaking against main
	$(TOOLS) buf breaking --against '.git#branch=main'

proto-check: proto-lint ## fail if generated code is stale
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(TOOLS) buf generate -o "$$tmp"; \
	if ! diff -r "$$tmp/proto" proto --exclude='*.proto' -q; then \
	  echo "generated code is stale: run 'make generate' and commit" >&2; exit 1; fi; \
	echo "generated code is up to date"

# Every shell script: *.sh, and the files without an extension whose first line is a sh/bash shebang.
SHELL_SCRIPTS = $(shell find scripts .ci -type f \( -name '*.sh' -o ! -name '*.*' \
                  -exec awk 'FNR == 1 { exit !/^\#!.*sh/ }' {} \; \) -print | sort)

lint-scripts: ## shellcheck every shell script
	@command -v shellcheck >/dev/null 2>&1 || { echo "shellcheck not found: install it" \
	  "(Debian/Ubuntu: apt-get install shellcheck; macOS: brew install shellcheck)" >&2; exit 1; }
	shellcheck -x -P SCRIPTDIR $(SHELL_SCRIPTS)

test-scripts: ## scripts/test/*.sh: kind-up's laptop path and doctor-host on stub hosts; bash 3.2 constructs; the Makefile under make 3.81; make e2e's failure digest
	@for t in scripts/test/*.sh; do echo "==> $$t"; bash "$$t" || exit 1; done

# promtool: the rule tests (kustomize/alerts_test.go) run the PrometheusRule in Prometheus'
# own evaluator. Built once per version into the kit's cache (scripts/TIMINGS.md has how long);
# after that this only finds it.
promtool: ## build promtool (Prometheus' rule checker) into the kit's cache, once per version
	@scripts/build-promtool.sh >/dev/null

test: proto-check lint-scripts test-scripts promtool ## the whole offline suite (what CI runs first), with scripts/airgap/k8s/apicheck (the cluster's Kubernetes source)
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/...
	$(GO) test -count=1 ./...
	$(GO) test -count=1 -tags e2e ./e2e/harness/
	cd scripts/airgap/k8s && $(GO) vet ./... && $(GO) test -count=1 ./...

test-short: promtool ## unit and render tests; leaves out the loopback integration tests (internal/loopback)
	$(GO) test -short ./...

bench: ## our Hello server vs grpc-go's example greeter_server, same load
	$(GO) run ./internal/bench

demo: ## 3 Hello + 3 Goodbye servers on loopback, round_robin vs pick_first
	$(GO) run ./internal/demo

certs: ## throwaway CA + server certificate for the TLS listeners, in out/certs (never committed)
	$(GO) run ./internal/certgen/cmd/certgen -out out/certs

backend-certs: ## backend certificate for components/backend-tls in namespace NS, in out/backend-certs/NS (never committed)
	@test -n "$(NS)" || { echo "usage: make backend-certs NS=<namespace>"; exit 2; }
	$(GO) run ./internal/certgen/cmd/certgen -backend-namespace $(NS) -out out/backend-certs/$(NS)

doctor-host: ## what kind-up would do here and what would stop it, with fixes; changes nothing (PROBE=1 asks the registry)
	scripts/doctor-host.sh

kind-up: ## create (or reuse) the kind cluster; AIRGAPPED=1 builds every image locally
	scripts/kind-up.sh

kind-down: ## delete the kind cluster
	scripts/kind-down.sh

smoke: ## a FROM scratch pod of ours Ready in the cluster and reachable from the host
	scripts/smoke.sh

e2e: ## end-to-end: the suite, the node lane, the cost lane (E2E_LANE=suite, nodes or cost: one of them)
	scripts/e2e.sh

e2e-nodes: ## the node lane alone (drain, frozen, cut off a worker)
	E2E_LANE=nodes scripts/e2e.sh

e2e-cost: ## the cost lane alone (the same load through each topology: latency, CPU and memory per component)
	E2E_LANE=cost scripts/e2e.sh

clean:
	rm -rf $(BIN)
