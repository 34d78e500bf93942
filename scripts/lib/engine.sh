# shellcheck shell=bash
# Docker engine: use the one that answers, else install Debian's and start dockerd.
# Source after common.sh.

# Debian package name of the Docker engine (the only place it is written).
DOCKER_ENGINE_DEB_PACKAGE=docker.io

ENGINE_DIR="${KIT_CACHE}/engine"
DOCKERD_LOG="${ENGINE_DIR}/dockerd.log"
DOCKERD_PID="${ENGINE_DIR}/dockerd.pid"
# Installed outside the cache so `rm -rf $KIT_CACHE` cannot pull it from under a running dockerd.
RUNC_WRAPPER_PATH=/usr/local/libexec/grpc-k8s-kit/runc-wrapper
RUNC_WRAPPER_NAME=kit-runc

# Debian's engine package puts its own CLI here. A newer docker client earlier in PATH may speak
# an API version that engine does not; then this one is used ($DOCKER, see common.sh).
# (Overridable for scripts/test, whose stub engines must never reach a real one.)
DEBIAN_DOCKER_CLI=${DEBIAN_DOCKER_CLI:-/usr/bin/docker}
# docker info's own error (its last lines) when no engine answers: "permission denied" is not
# "not running", and the fix differs.
ENGINE_ERROR=""

engine_alive() {
  local err
  err=$("${DOCKER}" info 2>&1 >/dev/null) && return 0
  ENGINE_ERROR=$(printf '%s\n' "${err}" | grep -v '^[[:space:]]*$' | tail -n 3)
  [[ ${DOCKER} == docker && -x ${DEBIAN_DOCKER_CLI} && $(command -v docker) != "${DEBIAN_DOCKER_CLI}" ]] \
    && "${DEBIAN_DOCKER_CLI}" info >/dev/null 2>&1 || return 1
  DOCKER=${DEBIAN_DOCKER_CLI}
  info "the docker CLI on PATH cannot talk to this engine: using ${DOCKER}"
}

# engine_error_fix: what to do about ENGINE_ERROR.
engine_error_fix() {
  case ${ENGINE_ERROR} in
    *"permission denied"*)
      echo "this user may not use the engine's socket: add it to the docker group" \
        "(sudo usermod -aG docker \"\$USER\", then log out and in again, or newgrp docker)," \
        "or run make as a user who can" ;;
    *"command not found"* | *"No such file"*)
      echo "install Docker (Docker Desktop, OrbStack or colima on macOS; your distribution's docker" \
        "package on Linux), or run this as root on Debian/Ubuntu to have it install Debian's" ;;
    *)
      echo "start one (Docker Desktop, OrbStack, colima start, or your system's docker service)," \
        "or run this as root on Debian/Ubuntu to have it start Debian's" ;;
  esac
}

# missing_bounding_caps: capabilities below cap_last_cap absent from our bounding set
# (these are what `--privileged` asks for and runc then fails to apply). None off Linux: there
# the engine runs in a VM whose capabilities we cannot see.
missing_bounding_caps() {
  [[ -r /proc/self/status ]] || return 0
  local bnd last i out=""
  bnd=$((16#$(awk '/^CapBnd:/{print $2}' /proc/self/status)))
  last=$(cat /proc/sys/kernel/cap_last_cap)
  for ((i = 0; i <= last; i++)); do
    (( (bnd >> i) & 1 )) || out+=" ${i}"
  done
  echo "${out# }"
}

# can_start_dockerd: no engine answers, and this script may install and start Debian's.
can_start_dockerd() { [[ $(uname -s) == Linux && $(id -u) == 0 ]] && debian_like; }

# dockerd_packages: the Debian packages start_dockerd will install (space-separated).
dockerd_packages() {
  local extra=""
  [[ -z $(missing_bounding_caps) ]] || extra="jq runc"
  # shellcheck disable=SC2086  # one command per word
  missing_packages "dockerd:${DOCKER_ENGINE_DEB_PACKAGE}" setsid:util-linux ${extra}
}

# engine_changes: when no engine answers, what ensure_engine will change on this host, one line
# each (nothing when it cannot start one here: it fails instead).
engine_changes() {
  can_start_dockerd || return 0
  echo "start dockerd in the background, outliving this run (--live-restore, log ${DOCKERD_LOG})"
  local missing
  missing=$(missing_bounding_caps)
  [[ -z ${missing} ]] || echo "install ${RUNC_WRAPPER_PATH} and make it dockerd's default runtime" \
    "'${RUNC_WRAPPER_NAME}' (the capability bounding set lacks number(s) ${missing})"
}

install_runc_wrapper() {
  ensure_cmds jq runc
  install -D -m 0755 "${REPO_ROOT}/scripts/airgap/runc-wrapper" "${RUNC_WRAPPER_PATH}"
}

start_dockerd() {
  can_start_dockerd || die "no Docker engine answers: ${DOCKER} info says: ${ENGINE_ERROR:-nothing}." \
    "Fix: $(engine_error_fix)."
  ensure_cmds "dockerd:${DOCKER_ENGINE_DEB_PACKAGE}" setsid:util-linux
  mkdir -p "${ENGINE_DIR}"
  local args=(--live-restore)
  local missing
  missing=$(missing_bounding_caps)
  if [[ -n ${missing} ]]; then
    info "capability bounding set lacks capability number(s) ${missing}: registering runc wrapper '${RUNC_WRAPPER_NAME}' as the default runtime"
    install_runc_wrapper
    args+=(--add-runtime "${RUNC_WRAPPER_NAME}=${RUNC_WRAPPER_PATH}" --default-runtime "${RUNC_WRAPPER_NAME}")
  fi
  log "starting dockerd ${args[*]} (log ${DOCKERD_LOG})"
  # setsid: dockerd must outlive this script and not get its terminal's signals. It must not
  # inherit any fd above stderr either: a lock held on one (common.sh's builds use 8 and 9; a
  # caller's `flock FILE make kind-up` another) would stay held for as long as dockerd runs.
  (
    for n in /proc/self/fd/*; do
      n=${n##*/}
      ((n > 2)) && eval "exec $n>&-" 2>/dev/null
    done
    exec setsid dockerd "${args[@]}" >>"${DOCKERD_LOG}" 2>&1 < /dev/null
  ) &
  echo $! > "${DOCKERD_PID}"
  local i
  for ((i = 0; i < 60; i++)); do
    engine_alive && { info "dockerd up (pid $(cat "${DOCKERD_PID}"))"; return 0; }
    kill -0 "$(cat "${DOCKERD_PID}")" 2>/dev/null || break
    sleep 1
  done
  tail -n 30 "${DOCKERD_LOG}" >&2
  die "dockerd did not come up; see ${DOCKERD_LOG}"
}

# check_runtime_fits_host: warn when an engine we did not start cannot run privileged containers.
check_runtime_fits_host() {
  [[ -n $(missing_bounding_caps) ]] || return 0
  local rt
  rt=$("${DOCKER}" info --format '{{.DefaultRuntime}}' 2>/dev/null || true)
  [[ ${rt} == "${RUNC_WRAPPER_NAME}" ]] && return 0
  warn "this host lacks capabilities that --privileged asks for (numbers: $(missing_bounding_caps)) and" \
       "the running engine's default runtime is '${rt}'. If kind fails with 'unable to apply caps'," \
       "stop that engine and rerun: this script then starts dockerd with a runc wrapper."
}

# ensure_engine: called before every step that uses docker.
ensure_engine() {
  if engine_alive; then
    return 0
  fi
  if [[ -f ${DOCKERD_PID} ]] && kill -0 "$(cat "${DOCKERD_PID}")" 2>/dev/null; then
    # Ours, still starting or stuck: give it a moment before starting another.
    local i
    for ((i = 0; i < 20; i++)); do engine_alive && return 0; sleep 1; done
    die "dockerd (pid $(cat "${DOCKERD_PID}")) runs but does not answer; see ${DOCKERD_LOG}"
  fi
  if [[ -f ${DOCKERD_PID} ]]; then
    warn "dockerd we started earlier (pid $(cat "${DOCKERD_PID}")) is gone; restarting it (running containers survive thanks to --live-restore)"
  elif can_start_dockerd; then
    log "no Docker engine answers: starting one"
  fi
  start_dockerd
}

# ---- what the engine is: docker info, read once per run ------------------------------------
ENGINE_FACTS=""

# load_engine_facts: read the docker info fields below once (after ensure_engine). The
# engine_* functions call it too, but from a $(...) subshell what they read is not kept.
load_engine_facts() {
  [[ -z ${ENGINE_FACTS} ]] || return 0
  ENGINE_FACTS=$("${DOCKER}" info --format 'Architecture={{.Architecture}}
NCPU={{.NCPU}}
MemTotal={{.MemTotal}}
CgroupVersion={{.CgroupVersion}}
DriverStatus={{.DriverStatus}}
ServerVersion={{.ServerVersion}}
OperatingSystem={{.OperatingSystem}}' 2>/dev/null) || ENGINE_FACTS=""
}

# engine_fact NAME: one of the fields above, empty when no engine answers.
engine_fact() {
  load_engine_facts
  sed -n "s/^$1=//p" <<<"${ENGINE_FACTS}" | head -n 1
}

# go_arch NAME: Go's name (GOARCH) of an architecture as uname -m or docker info print it.
go_arch() {
  case $1 in
    x86_64 | amd64) echo amd64 ;;
    aarch64 | arm64) echo arm64 ;;
    armv7l | armhf | arm) echo arm ;;
    *) echo "$1" ;;
  esac
}

# engine_arch: the architecture the engine runs containers for, as Go names it.
engine_arch() { go_arch "$(engine_fact Architecture)"; }

# engine_image_store: containerd when the engine keeps images in containerd (its DriverStatus
# names the snapshotter: the default of Docker Desktop, OrbStack and new Docker Engine 29
# installs), else classic (graph drivers such as overlay2).
engine_image_store() {
  if [[ $(engine_fact DriverStatus) == *io.containerd.snapshotter* ]]; then echo containerd; else echo classic; fi
}

# engine_cgroup_version: 1 or 2, as the engine reports it (on macOS, of its VM); on Linux,
# from /sys/fs/cgroup when the engine does not say.
engine_cgroup_version() {
  local v
  v=$(engine_fact CgroupVersion)
  if [[ -z ${v} && $(uname -s) == Linux ]]; then
    if [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]]; then v=2; else v=1; fi
  fi
  echo "${v}"
}

# scratch_image NAME BINARY IMAGE PATH UID: a FROM scratch image IMAGE holding BINARY at PATH
# (also its entrypoint), run as the numeric UID (no /etc/passwd in a scratch image). The
# label kit.key is the binary's hash: an image built from this very binary is kept, not
# rebuilt. NAME names the log (${KIT_LOGS}/build-NAME-image.log) and the messages.
scratch_image() {
  local name=$1 binary=$2 image=$3 path=$4 uid=$5 key
  key=$(sha256sum "${binary}" | cut -c1-12)
  if [[ $("${DOCKER}" image inspect -f '{{index .Config.Labels "kit.key"}}' "${image}" 2>/dev/null) == "${key}" ]]; then
    info "${name} image: cached (${image})"
    return 0
  fi
  ensure_engine
  local ctx
  ctx=$(mktemp -d "${KIT_CACHE}/${name}-image.XXXXXX")
  cp "${binary}" "${ctx}/binary"
  cat > "${ctx}/Dockerfile" <<DOCKERFILE
FROM scratch
COPY binary ${path}
USER ${uid}:${uid}
LABEL kit.key=${key}
ENTRYPOINT ["${path}"]
DOCKERFILE
  logged "${KIT_LOGS}/build-${name}-image.log" "${DOCKER}" build -t "${image}" "${ctx}"
  rm -rf "${ctx}"
  info "${name} image: ${image}"
}
