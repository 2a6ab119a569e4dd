#!/usr/bin/env bash
# Runs a test when the programs it needs are installed; otherwise skips it: exit 77 (the tests'
# SKIP_RETURN_CODE) with a message naming the Debian packages to install.
#   tests/require.sh PROGRAM=DEBIAN_PACKAGE... -- COMMAND [ARG...]
# PROGRAM is a name looked up in PATH or an absolute path; chromium stands for $SSE_CHROMIUM
# when that is set (the browser tests' override, tests/browser/harness.mjs). With SSE_CI set
# (.ci/run) a missing program fails the test instead.
set -euo pipefail
programs=() packages=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  program=${1%%=*} package=${1#*=}
  shift
  [ "$program" = chromium ] && [ -n "${SSE_CHROMIUM:-}" ] && program=$SSE_CHROMIUM
  if ! command -v "$program" >/dev/null; then
    programs+=("$program")
    packages+=("$package")
  fi
done
[ "${1:-}" = -- ] || { echo "usage: $0 PROGRAM=DEBIAN_PACKAGE... -- COMMAND [ARG...]" >&2; exit 2; }
shift
if [ ${#programs[@]} -gt 0 ]; then
  echo "SKIPPED: ${programs[*]} not found. Install the Debian packages with" \
       "'sudo apt-get install ${packages[*]}' (./scripts/test.sh installs them itself)."
  # CI installs everything: there a missing program is a missing install step, not a skip.
  [ -n "${SSE_CI:-}" ] && { echo "SSE_CI is set: failing instead of skipping"; exit 1; }
  exit 77
fi
exec "$@"
