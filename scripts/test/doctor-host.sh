#!/usr/bin/env bash
# make doctor-host (scripts/doctor-host.sh) on stub hosts (scripts/test/lib/harness.sh): a Docker
# Desktop-like Mac (containerd image store, arm64), a colima-like Mac (2 CPUs, 2 GiB) and a
# cgroup v1 Debian host (as this kit's own VM). Each prints what kind-up would do and every
# problem with its fix, changes nothing and, unless asked, probes no registry.
# shellcheck disable=SC2016  # the single-quoted snippets are expanded by the bash under test
# shellcheck source=lib/harness.sh
source "$(dirname "$0")/lib/harness.sh"
export SOURCE=scripts/doctor-host.sh

mkdir -p "${TMP}/mac" "${TMP}/debian"
cp "${STUBS}/kubectl" "${TMP}/mac/kubectl"
# ifconfig: lo0 with 127.0.0.1 only, as a Mac has until the aliases are added.
printf '#!/bin/sh\nprintf "lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 16384\\n\\tinet 127.0.0.1 netmask 0xff000000\\n"\n' > "${TMP}/mac/ifconfig"
printf '#!/bin/sh\necho "apt-get $*" >> "${STUB_LOG}"; exit 1\n' > "${TMP}/debian/apt-get"
chmod +x "${TMP}/mac/"* "${TMP}/debian/apt-get"
MAC="${TMP}/bin:${TMP}/mac"
DEB="${TMP}/bin:${TMP}/debian"
DESKTOP=(STUB_UNAME_S=Darwin STUB_UNAME_M=arm64 STUB_GOARCH=arm64 STUB_GOOS=darwin STUB_ARCH=aarch64
  STUB_STORE=containerd STUB_NCPU=8 STUB_MEM=8217473024 STUB_OS="Docker Desktop" STUB_SERVER_VERSION=29.1.3)
COLIMA=(STUB_UNAME_S=Darwin STUB_UNAME_M=arm64 STUB_GOARCH=arm64 STUB_GOOS=darwin STUB_ARCH=aarch64
  STUB_STORE=classic STUB_NCPU=2 STUB_MEM=2061381632 STUB_OS="Ubuntu 24.04.1 LTS" STUB_SERVER_VERSION=27.4.0)
CGV1=(STUB_CGROUP=1 STUB_NCPU=2 STUB_MEM=25276194816 STUB_SERVER_VERSION=20.10.24 STUB_OS="Debian GNU/Linux 12 (bookworm)")

run "${MAC}" 'doctor_main' "${DESKTOP[@]}"
expect "Docker Desktop-like Mac: no problem" ok "containerd" "docker image save --platform linux/arm64" \
  "engine arm64 (aarch64)" "8 CPU(s), 7836 MiB" "cgroup" "v2" "mode (AIRGAPPED=auto)" "upstream" \
  "air-gapped mode needs a Debian-like Linux host and this is Darwin" "v1.37.0 (${TMP}/mac/kubectl)" "!PROBLEM"
expect "Docker Desktop-like Mac: the loopback aliases make test needs, with the command" ok \
  "sudo ifconfig lo0 alias 127.0.0.\$i up"
expect "Docker Desktop-like Mac: the images upstream mode pulls, not probed unless asked" ok \
  "istio/pilot:" "not probed" "PROBE=1"
expect_call "Docker Desktop-like Mac: no registry probe without PROBE=1" '!^docker manifest'
expect_call "Docker Desktop-like Mac: changes nothing (no pull, save, tag, run)" '!^docker (pull|image save|tag|run|rm|create)'

run "${MAC}" 'doctor_main' "${DESKTOP[@]}" PROBE=1 STUB_REGISTRY=ratelimit
expect "Docker Desktop-like Mac, PROBE=1, rate-limited: says so per image, still no problem for the mode" ok \
  "toomanyrequests" "docker login"
expect_call "Docker Desktop-like Mac, PROBE=1: probes istiod's image too" '^docker manifest inspect istio/pilot:'

run "${MAC}" 'doctor_main' "${COLIMA[@]}"
expect "colima-like Mac (2 CPUs, 2 GiB): the memory problem, its number and the fix" fail \
  "PROBLEM: the engine has 1965 MiB of memory" "2578 MiB" "colima start --cpu 2 --memory 4" "classic"

run "${DEB}" 'doctor_main' "${CGV1[@]}"
expect "cgroup v1 Debian host: auto chooses air-gapped, and why" ok "v1" "airgapped" \
  "upstream mode cannot run here" "cgroup v1" "!PROBLEM"
expect_call "cgroup v1 Debian host: nothing installed" '!^apt-get'

run "${DEB}" 'doctor_main' "${CGV1[@]}" AIRGAPPED=0
expect "cgroup v1 Debian host, AIRGAPPED=0: a problem, with the fix" fail \
  "PROBLEM: AIRGAPPED=0: upstream mode cannot run here" "systemd.unified_cgroup_hierarchy=1"

run "${TMP}/bin" 'doctor_main' STUB_ENGINE=denied
expect "Linux user outside the docker group: docker info's error and the docker group" fail \
  "permission denied while trying to connect" "docker group"

finish
