#!/usr/bin/env bash
# Smoke test of the benchmark tools: the load generator against the chat example (1 thread) and
# against the floor server, 20 subscribers, 1 s publishing as fast as accepted. Each must deliver
# something and lose nothing. Then chat again with one publisher (1 POST in flight) and the
# fairness probe (GET / every 10 ms): every probe sent must be answered 2xx.
#   bench/smoke.sh CHAT SSE_LOADGEN SSE_FLOOR_SERVER
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 CHAT SSE_LOADGEN SSE_FLOOR_SERVER" >&2; exit 2; }
chat=$1 loadgen=$2 floor=$3
tmp=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

field() { # NAME JSON: the number after "NAME":
  grep -o "\"$1\":[-0-9.]*" <<<"$2" | head -1 | cut -d: -f2
}

check() { # NAME [LOADGEN_ARGS... --] COMMAND...
  local name=$1 extra=()
  shift
  if [[ " $* " == *" -- "* ]]; then
    while [ "$1" != -- ]; do extra+=("$1"); shift; done
    shift
  fi
  "$@" >"$tmp/$name.log" 2>&1 &
  pid=$!
  local url=""
  for _ in $(seq 100); do
    url=$(grep -o 'http://[^ ]*/' "$tmp/$name.log" | head -1 || true)
    [ -n "$url" ] && break
    sleep 0.05
  done
  [ -n "$url" ] || { echo "$name: no URL printed"; cat "$tmp/$name.log"; exit 1; }
  local out
  out=$("$loadgen" --sub-url "${url}listen" --pub-url "${url}publish" --subs 20 --duration 1 \
    --warmup 0.2 --rate max --settle 0.2 --server-pid "$pid" --json "${extra[@]}")
  local established deliveries lost published
  established=$(field established "$out")
  deliveries=$(field deliveries "$out")
  lost=$(field lost "$out")
  published=$(field published "$out")
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
  if [ "$established" != 20 ] || [ "${deliveries:-0}" -le 0 ] || [ "$lost" != 0 ] || [ "${published:-0}" -le 0 ]; then
    echo "$name: FAILED (established=$established deliveries=$deliveries lost=$lost published=$published)"
    echo "$out"
    exit 1
  fi
  if [ ${#extra[@]} -gt 0 ] && [[ " ${extra[*]} " == *" --probe-path "* ]]; then
    local sent ok unanswered
    sent=$(field sent "$out")
    ok=$(field ok "$out")
    unanswered=$(field unanswered "$out")
    if [ "${sent:-0}" -le 0 ] || [ "$ok" != "$sent" ] || [ "$unanswered" != 0 ]; then
      echo "$name: probe FAILED (sent=$sent ok=$ok unanswered=$unanswered)"
      echo "$out"
      exit 1
    fi
    echo "$name: probe ok ($sent GET / answered 2xx)"
  fi
  echo "$name: ok ($deliveries deliveries in the window, $published published, 0 lost)"
}

check chat "$chat" --host 127.0.0.1 --port 0 --threads 1
check floor "$floor" --host 127.0.0.1 --port 0
check chat-1-publisher-probe --window 1 --probe-path / -- "$chat" --host 127.0.0.1 --port 0 --threads 1
echo "bench smoke: ok"
