#!/usr/bin/env bash
# The upstream-path scripts, and the script tests `make test` runs on a Mac, must run on bash
# 3.2 (macOS's /bin/bash; see scripts/lib/common.sh). No bash 3.2 can be installed here, so
# this is a static check: it fails naming file:line for each construct that needs bash 4 or
# later, and for arrays that start empty and are then expanded without the ${a[@]+"${a[@]}"}
# guard (bash < 4.4 calls them unbound under set -u). A line that ends with the comment
# "# bash32: ok, <why>" is skipped: it uses a bash 4 feature on purpose, with a 3.2 fallback.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "${ROOT}"
# This file is among them, but its rules below are data: it is not checked against itself.
FILES=(scripts/kind-up.sh scripts/kind-down.sh scripts/e2e.sh scripts/smoke.sh scripts/doctor-host.sh scripts/build-promtool.sh scripts/lib/*.sh)
for f in scripts/test/*.sh scripts/test/lib/*.sh; do [[ ${f} == */bash32.sh ]] || FILES+=("${f}"); done

# "ERE<TAB>what needs which bash"; full-line comments are not checked.
# shellcheck disable=SC2016  # regular expressions, not expansions
RULES='(declare|local|typeset) +-[a-zA-Z]*A	associative arrays (bash 4.0)
(declare|local|typeset) +-[a-zA-Z]*n	namerefs (bash 4.3)
(declare|local|typeset) +-[a-zA-Z]*g	declare -g (bash 4.2)
\$\{[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?(,|\^)	${var,,} / ${var^^} case changes (bash 4.0)
(^|[^A-Za-z0-9_-])(mapfile|readarray)([^A-Za-z0-9_-]|$)	mapfile/readarray (bash 4.0)
&>>	&>> (bash 4.0)
\{[A-Za-z_][A-Za-z0-9_]*\}[<>]	{fd}> automatic fd allocation (bash 4.1)
\$\{[A-Za-z_][A-Za-z0-9_]*\[-[0-9]	negative array index (bash 4.3)
\$\{[A-Za-z_][A-Za-z0-9_]*:[ 0-9]+:-[0-9]	negative substring length (bash 4.2)
(\[\[|\[) +-v |(^|[;&|!(]|(if|then|do|while|until|elif) )[[:space:]]*test +-v 	-v VAR test (bash 4.2)
(^|[^A-Za-z0-9_-])coproc([^A-Za-z0-9_-]|$)	coproc (bash 4.0)
\|&	|& (bash 4.0)
;;&|(^|[^;]);&	case fall-through ;& / ;;& (bash 4.0)
wait +-n	wait -n (bash 4.3)
\$\{[^}]*@[QEPAKaUuLk]\}	${var@Q} transformations (bash 4.4)
BASHPID|EPOCHSECONDS|EPOCHREALTIME	BASHPID / EPOCHSECONDS (bash 4.0 / 5.0)
shopt +-s +(globstar|lastpipe|autocd|direxpand|checkjobs)	shopt option (bash 4)
printf .*%\([^)]*\)T	printf %(...)T (bash 4.2)
command_not_found_handle	command_not_found_handle (bash 4.0: 3.2 never calls it)'

problems=0
report() { printf 'FAIL %s: %s\n' "$1" "$2"; problems=$((problems + 1)); }

for f in "${FILES[@]}"; do
  # Full-line comments and exempted lines emptied; keeps line numbers.
  code=$(sed -E -e 's/^[[:space:]]*#.*$//' -e 's/^.*# bash32: ok, .*$//' "${f}")
  while IFS=$'\t' read -r re what; do
    while IFS=: read -r n _; do
      report "${f}:${n}" "${what}"
    done < <(grep -nE -- "${re}" <<<"${code}" || true)
  done <<<"${RULES}"

  # Arrays that start empty: every expansion needs the guard (${#a[@]} is fine).
  while read -r a; do
    n=0
    while IFS= read -r line; do
      n=$((n + 1))
      # A line with the guard ${a[@]+...} is taken as guarded.
      [[ ${line} == *"\${${a}[@]+"* || ${line} == *"\${${a}[*]+"* ]] && continue
      [[ ${line} == *"\${${a}[@]"* || ${line} == *"\${${a}[*]"* ]] \
        && report "${f}:${n}" "\${${a}[@]} of an array that starts empty, unguarded (unbound under set -u before bash 4.4)"
    done <<<"${code}"
  done < <(grep -oE '(^|[^A-Za-z0-9_])[A-Za-z_][A-Za-z0-9_]*=\(\)' <<<"${code}" | grep -oE '[A-Za-z_][A-Za-z0-9_]*' | sort -u)
done

if ((problems == 0)); then
  printf 'PASS bash 3.2 constructs: none of bash 4+ in %d upstream-path and script-test files\n' "${#FILES[@]}"
  echo "1 passed, 0 failed"
else
  echo "0 passed, ${problems} failed"
  exit 1
fi
