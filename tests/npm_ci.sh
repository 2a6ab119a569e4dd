#!/usr/bin/env bash
# ctest fixture of the tests that run on Node: installs DIR's npm packages (its
# package-lock.json) when node_modules is missing or older than the lock. Skips (exit 77) when
# npm is not installed; the tests that need DIR then skip themselves too (tests/require.sh).
#   tests/npm_ci.sh DIR WHAT    (WHAT: which packages, for the messages)
set -euo pipefail
dir=$(cd "$1" && pwd)
what=$2
source "$(dirname "$0")/../scripts/deps.sh"
if ! command -v npm >/dev/null; then
  echo "SKIPPED: npm not found, so the tests that need $what cannot run. Install the Debian" \
       "packages with 'sudo apt-get install nodejs npm' (./scripts/test.sh installs them itself)."
  exit 77
fi
ensure_node_modules "$dir" || {
  echo "npm ci in $dir failed (output above): the tests need the npm registry once, to install $what."
  exit 1
}
