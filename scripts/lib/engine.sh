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

engine_alive() { docker info >/dev/null 2>&1; }

# missing_bounding_caps: capabilities below cap_last_cap absent from our bounding set
# (these are what `--privileged` asks for and runc then fails to apply).
missing_bounding_caps() {
  local bnd last i out=()
  bnd=$((16#$(awk '/^CapBnd:/{print $2}' /proc/self/status)))
  last=$(cat /proc/sys/kernel/cap_last_cap)
  for ((i = 0; i <= last; i++)); do
    (( (bnd >> i) & 1 )) || out+=("${i}")
  done
  echo "${out[*]}"
}

install_runc_wrapper() {
  apt_install jq runc
  install -D -m 0755 "${REPO_ROOT}/scripts/airgap/runc-wrapper" "${RUNC_WRAPPER_PATH}"
}

start_dockerd() {
  apt_install "${DOCKER_ENGINE_DEB_PACKAGE}"
  need dockerd "apt-get install ${DOCKER_ENGINE_DEB_PACKAGE}"
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
  # setsid: dockerd must outlive this script and not get its terminal's signals.
  setsid dockerd "${args[@]}" >>"${DOCKERD_LOG}" 2>&1 < /dev/null &
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
  rt=$(docker info --format '{{.DefaultRuntime}}' 2>/dev/null || true)
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
  else
    log "no Docker engine answers: starting one"
  fi
  start_dockerd
}
