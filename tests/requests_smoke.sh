#!/usr/bin/env bash
# Runs tests/requests_client.py against the chat example on a free port.
set -euo pipefail
chat=$1
python=${SSE_PYTHON:-/usr/bin/python3}
if ! "$python" -c 'import requests' 2>/dev/null; then
  echo "SKIP: $python has no 'requests' (Debian package python3-requests)"
  [ -n "${SSE_CI:-}" ] && { echo "SSE_CI is set: failing instead of skipping"; exit 1; }
  exit 77
fi
out=$(mktemp)
"$chat" --host 127.0.0.1 --port 0 >"$out" 2>&1 &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 100); do grep -q 'http://' "$out" && break; sleep 0.05; done
url=$(grep -o 'http://[^ ]*' "$out" | head -1)
[ -n "$url" ] || { echo "no URL printed"; cat "$out"; exit 1; }
"$python" "$(dirname "$0")/requests_client.py" "$url"
