#!/usr/bin/env bash
# Every example that serves exits non-zero within a second, saying why, when its port is taken.
#   examples_port_in_use.sh CHAT [OTHER_EXAMPLE...]
set -euo pipefail
holder=$1
out=$(mktemp)
"$holder" --host 127.0.0.1 --port 0 >"$out" 2>&1 &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; rm -f "$out" "$out.err"' EXIT
for _ in $(seq 100); do grep -q 'http://' "$out" && break; sleep 0.05; done
port=$(grep -o 'http://127.0.0.1:[0-9]*' "$out" | head -1 | sed 's/.*://')
[ -n "$port" ] || { echo "the port holder printed no URL"; cat "$out"; exit 1; }

status=0
for bin in "$@"; do
  name=$(basename "$bin")
  start=$(date +%s%N)
  set +e
  timeout 5 "$bin" --host 127.0.0.1 --port "$port" >/dev/null 2>"$out.err"
  rc=$?
  set -e
  ms=$((($(date +%s%N) - start) / 1000000))
  if [ "$rc" = 124 ]; then
    echo "FAIL $name: still running 5 s after failing to listen"; status=1
  elif [ "$rc" = 0 ]; then
    echo "FAIL $name: exit status 0 on a port in use"; status=1
  elif [ "$ms" -gt 1000 ]; then
    echo "FAIL $name: took $ms ms to exit"; status=1
  elif ! grep -q "cannot listen on 127.0.0.1:$port" "$out.err"; then
    echo "FAIL $name: no 'cannot listen' message:"; cat "$out.err"; status=1
  else
    echo "ok $name: exit $rc after $ms ms: $(head -1 "$out.err")"
  fi
done
exit $status
