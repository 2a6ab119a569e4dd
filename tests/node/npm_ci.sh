#!/usr/bin/env bash
# ctest fixture of test_sse_client_node: installs better-sse (package-lock.json) when
# node_modules is missing or older than the lock. Skips (exit 77) when npm is not installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/deps.sh"
if ! command -v npm >/dev/null; then
  echo "SKIPPED: npm not found. Install the Debian packages with 'sudo apt-get install nodejs npm'" \
       "(./scripts/test.sh installs them itself)."
  exit 77
fi
ensure_node_modules "$here" || {
  echo "npm ci in $here failed (output above): the test needs the npm registry once, for better-sse."
  exit 1
}
