#!/usr/bin/env bash
# ctest fixture of the browser tests: installs their npm packages (package-lock.json) when
# node_modules is missing or older than the lock. Skips (exit 77) when npm is not installed;
# the browser tests then skip themselves too (tests/require.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/deps.sh"
if ! command -v npm >/dev/null; then
  echo "SKIPPED: npm not found, so the browser tests cannot run. Install the Debian packages" \
       "with 'sudo apt-get install nodejs npm' (./scripts/test.sh installs them itself)."
  exit 77
fi
ensure_node_modules "$here" || {
  echo "npm ci in $here failed (output above): the browser tests need the npm registry once," \
       "to install playwright-core."
  exit 1
}
