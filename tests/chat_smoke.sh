#!/usr/bin/env bash
# Smoke test of the chat example: starts, serves its page and a stream, publishes, stops on SIGTERM.
set -euo pipefail
chat=$1
out=$(mktemp)
"$chat" --host 127.0.0.1 --port 0 --threads 2 >"$out" 2>&1 &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; rm -f "$out" "$out.stream" "$out.big"' EXIT
for _ in $(seq 100); do grep -q 'http://' "$out" && break; sleep 0.05; done
url=$(grep -o 'http://[^ ]*' "$out" | head -1)
[ -n "$url" ] || { echo "no URL printed"; cat "$out"; exit 1; }

page=$(curl -sf "$url") || { echo "page not served"; exit 1; }
[[ $page == *EventSource* ]] || { echo "page has no EventSource"; exit 1; }
# A bad name for the room's list is refused; a good one is listed, live.
for bad in '' '%20%20' '%01ann' '%ff' "$(printf 'x%.0s' $(seq 65))"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "${url}listen?user=$bad")
  [ "$code" = 400 ] || { echo "user=$bad got $code"; exit 1; }
done
curl -sN -m 3 "${url}listen?user=ann" >"$out.stream" &
for _ in $(seq 100); do
  reply=$(curl -sf -X POST --data-binary $'hello\nsmoke' "${url}publish") || true
  [[ $reply == *'"receivers":1'* ]] && break
  sleep 0.05
done
curl -sf -H 'Content-Type: application/json' -d '{"user":"ann","text":"hi"}' "${url}message"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary $'\xff' "${url}publish")
[ "$code" = 400 ] || { echo "invalid UTF-8 got $code"; exit 1; }
# An event too large for the broker (60,000 empty lines: within max_body, ~420 KB framed) is
# refused with a clear 413, and the listener stays connected.
head -c 60000 /dev/zero | tr '\0' '\n' >"$out.big"
reply=$(curl -s -w '\n%{http_code}' -X POST --data-binary @"$out.big" "${url}publish")
[[ $reply == *$'\n413' && $reply == *'bytes per event'* ]] || { echo "oversized event got: $reply"; exit 1; }
curl -sf -X POST --data-binary 'after the big one' "${url}publish" >/dev/null
sleep 0.3
grep -q '^data: hello$' "$out.stream" && grep -q '^data: smoke$' "$out.stream" &&
  grep -q '^event: chat$' "$out.stream" && grep -q '^data: after the big one$' "$out.stream" &&
  grep -q '^event: presence$' "$out.stream" && grep -qF '"users":["ann"]' "$out.stream" ||
  { echo "stream:"; cat "$out.stream"; exit 1; }

kill -TERM $pid
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
if kill -0 $pid 2>/dev/null; then echo "chat did not stop on SIGTERM"; exit 1; fi
wait $pid
echo "chat smoke: ok"
