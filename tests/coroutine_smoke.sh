#!/usr/bin/env bash
# Smoke test of the coroutine example: a bad token gets 403, a good one a stream that receives
# what is published.
set -euo pipefail
bin=$1
out=$(mktemp)
"$bin" --host 127.0.0.1 --port 0 --token secret >"$out" 2>&1 &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; rm -f "$out" "$out.stream"' EXIT
for _ in $(seq 100); do grep -q 'http://' "$out" && break; sleep 0.05; done
url=$(grep -o 'http://[^ ]*' "$out" | head -1)
[ -n "$url" ] || { echo "no URL printed"; cat "$out"; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' "${url}listen?token=wrong")
[ "$code" = 403 ] || { echo "a wrong token got $code"; exit 1; }
curl -sN -m 5 "${url}listen?token=secret" >"$out.stream" &
for _ in $(seq 100); do
  reply=$(curl -sf -X POST --data-binary 'hello from a coroutine' "${url}publish") || true
  [[ $reply == *'"receivers":1'* ]] && break
  sleep 0.05
done
[[ $reply == *'"receivers":1'* ]] || { echo "publish reached no stream: $reply"; exit 1; }
for _ in $(seq 100); do grep -q '^data: hello from a coroutine$' "$out.stream" && break; sleep 0.05; done
grep -q '^data: hello from a coroutine$' "$out.stream" || { echo "stream:"; cat "$out.stream"; exit 1; }
kill -TERM $pid
wait $pid
echo "coroutine smoke: ok"
