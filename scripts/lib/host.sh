# shellcheck shell=bash
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

# preflight_engine: the checks of a running engine; fails when one found a problem.
preflight_engine() {
  PREFLIGHT_PROBLEMS=0
  load_engine_facts
  check_engine_store
  ((PREFLIGHT_PROBLEMS == 0))
}
