#!/usr/bin/env bash
# The chat example's access rules (a before-route hook): --publish-token guards the publish
# routes (401), --subscribe-token the private.* topics (403 before any subscription), and
# --access-log prints a line per request.
set -euo pipefail
chat=$1
out=$(mktemp)
"$chat" --host 127.0.0.1 --port 0 --publish-token pub-secret --subscribe-token sub-secret \
  --access-log >"$out" 2>"$out.log" &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; rm -f "$out" "$out.log" "$out.stream"' EXIT
for _ in $(seq 100); do grep -q 'http://' "$out" && break; sleep 0.05; done
url=$(grep -o 'http://[^ ]*' "$out" | head -1)
[ -n "$url" ] || { echo "no URL printed"; cat "$out" "$out.log"; exit 1; }
fail() { echo "FAIL: $*"; cat "$out.log"; exit 1; }
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

[ "$(code -X POST --data-binary hi "${url}publish")" = 401 ] || fail "publish without a token"
[ "$(code -X POST -H 'Authorization: Bearer wrong' --data-binary hi "${url}publish")" = 401 ] ||
  fail "publish with a wrong token"
[ "$(code -X POST -H 'Content-Type: application/json' -d '{"user":"a","text":"b"}' "${url}message")" = 401 ] ||
  fail "message without a token"
[ "$(code "${url}listen?topic=private.room")" = 403 ] || fail "private topic without a token"
[ "$(code -H 'Cookie: sse_token=wrong' "${url}listen?topic=private.room")" = 403 ] ||
  fail "private topic with a wrong cookie"
curl -sN -m 4 -H 'Cookie: theme=dark; sse_token=sub-secret' "${url}listen?topic=private.room" >"$out.stream" &
for _ in $(seq 100); do
  reply=$(curl -s -X POST -H 'Authorization: Bearer pub-secret' --data-binary 'for members' \
    "${url}publish?topic=private.room") || true
  [[ $reply == *'"receivers":1'* ]] && break
  sleep 0.05
done
[[ $reply == *'"receivers":1'* ]] || fail "an authorised publish reached no subscriber: $reply"
for _ in $(seq 100); do grep -q '^data: for members$' "$out.stream" && break; sleep 0.05; done
grep -q '^data: for members$' "$out.stream" || fail "the private stream did not get the event"
# Public topics stay open to anyone.
[ "$(code -m 1 "${url}listen?topic=lobby")" = 200 ] || fail "a public topic"
grep -q '"POST /publish" 401' "$out.log" || fail "no access log line for the refused publish"
grep -q '"GET /listen?topic=private.room" 403' "$out.log" || fail "no access log line for the 403"
kill -TERM $pid
wait $pid || true
echo "chat auth smoke: ok"
