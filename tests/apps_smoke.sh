#!/usr/bin/env bash
# Smoke test of one example app (progress, dashboard or tokens): starts it on port 0, hits its
# endpoints with curl, checks the stream bytes, stops it with SIGTERM and checks that it exits
# within 5 s.
#   tests/apps_smoke.sh progress build/examples/progress
set -euo pipefail
app=$1
bin=$2
case $app in
  progress) flags=(--step-ms 20 --max-tasks 3) ;;
  dashboard) flags=(--interval-ms 100) ;;
  tokens) flags=(--token-ms 5) ;;
  *) echo "unknown app '$app'"; exit 2 ;;
esac

out=$(mktemp)
"$bin" --host 127.0.0.1 --port 0 --threads 2 "${flags[@]}" >"$out" 2>&1 &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 100); do grep -q 'http://' "$out" && break; sleep 0.05; done
url=$(grep -o 'http://[^ ]*' "$out" | head -1)
[ -n "$url" ] || { echo "no URL printed"; cat "$out"; exit 1; }
grep -q "^$app: serving http://127.0.0.1:[0-9]*/\$" "$out" || { echo "unexpected banner:"; cat "$out"; exit 1; }

fail() { echo "$app smoke: $*"; exit 1; }
# status URL [curl args...]: the HTTP status code only.
status() { local u=$1; shift; curl -s -o /dev/null -w '%{http_code}' "$@" "$u"; }
# Counts the lines of $1 that are exactly $2.
count_lines() { local n=0 line; while IFS= read -r line; do [ "$line" = "$2" ] && n=$((n + 1)); done <<<"$1"; echo $n; }

page=$(curl -sf "$url") || fail "page not served"
[[ $page == *EventSource* ]] || fail "page has no EventSource"

case $app in
progress)
  reply=$(curl -sf -X POST "${url}tasks") || fail "POST /tasks failed"
  [[ $reply =~ \"id\":\"([0-9a-f]+)\" ]] || fail "no id in $reply"
  id=${BASH_REMATCH[1]}
  [ "$(status "${url}tasks" -X POST)" = 201 ] || fail "second POST /tasks was not 201"
  [ "$(status "${url}tasks" -X POST)" = 201 ] || fail "third POST /tasks was not 201"
  [ "$(status "${url}tasks" -X POST)" = 429 ] || fail "a fourth running task was not refused with 429"
  # The stream ends by itself after `done`: curl exits 0 well before its timeout.
  stream=$(curl -sN -m 10 "${url}tasks/$id/events") || fail "the stream did not end (curl exit $?)"
  [[ $stream == *$'event: progress\nid: 100\ndata: {"percent":100}\n\nevent: done\ndata: {'* ]] ||
    fail "stream lacks the final progress and done events: $stream"
  [ "$(count_lines "$stream" 'event: done')" = 1 ] || fail "not exactly one done event"
  [ "$(status "${url}tasks/$id/events")" = 204 ] || fail "a finished task's events did not answer 204"
  [ "$(status "${url}tasks/0123456789abcdef/events")" = 404 ] || fail "an unknown task did not answer 404"
  for _ in $(seq 100); do
    stats=$(curl -sf "${url}stats")
    [[ $stats == *'"running":0'* && $stats == *'"streams":0'* ]] && break
    sleep 0.05
  done
  [[ $stats == *'"running":0'* && $stats == *'"streams":0'* && $stats == *'"finished_kept":3'* ]] ||
    fail "stats after the tasks: $stats"
  # A client's one stream for all its tasks: a connect gets what they sent so far, a reconnect
  # with the last id nothing old.
  reply=$(curl -sf -X POST "${url}tasks?client=smoke") || fail "POST /tasks?client=smoke failed"
  [[ $reply =~ \"id\":\"([0-9a-f]+)\" ]] || fail "no id in $reply"
  id=${BASH_REMATCH[1]}
  for _ in $(seq 200); do
    task=$(curl -s "${url}tasks/$id" || true)
    [[ $task == *'"state":"done"'* ]] && break
    sleep 0.05
  done
  [[ $task == *'"percent":100'* && $task == *'"state":"done"'* && $task == *'"ms":'* ]] || fail "task state: $task"
  stream=$(curl -sN -m 0.5 "${url}events?client=smoke" || true)
  [[ $stream == *$'event: done\nid: '*$'\ndata: {"ms":'*'"percent":100,"task":"'$id'"}'* ]] ||
    fail "the client stream lacks the task's done: $stream"
  [ "$(count_lines "$stream" 'event: done')" = 1 ] || fail "not exactly one done on the client stream"
  last=$(grep '^id: ' <<<"$stream" | tail -1 | cut -c5-)
  again=$(curl -sN -m 0.3 -H "Last-Event-ID: $last" "${url}events?client=smoke" || true)
  [ "$(count_lines "$again" 'event: done')" = 0 ] || fail "a reconnect after done got it again: $again"
  [ "$(status "${url}events")" = 400 ] || fail "/events without a client was not 400"
  [ "$(status "${url}tasks?client=a%20b" -X POST)" = 400 ] || fail "a bad client id was not 400"
  [ "$(status "${url}tasks/0123456789abcdef")" = 404 ] || fail "an unknown task's state was not 404"
  ;;
dashboard)
  info=$(curl -sf "${url}info") || fail "GET /info failed"
  [[ $info == *'"interval_ms":100'* ]] || fail "info: $info"
  sleep 1.2
  # History: a new subscriber gets the samples so far at once (in 0.3 s only ~3 new ones come).
  stream=$(curl -sN -m 0.3 "${url}events" || true)
  n=$(count_lines "$stream" 'event: metrics')
  [ "$n" -ge 8 ] || fail "only $n samples replayed at once: $stream"
  [[ $stream == *'data: {"cpu":'*'"load":['*'"mem":{'*'"t":'* ]] || fail "sample has unexpected JSON: $stream"
  # Resume: a reconnect with the id of an earlier sample starts right after it.
  ids=$(grep '^id: ' <<<"$stream" | cut -c5-)
  second=$(sed -n 2p <<<"$ids")
  third=$(sed -n 3p <<<"$ids")
  resumed=$(curl -sN -m 0.3 -H "Last-Event-ID: $second" "${url}events" || true)
  first_id=$(grep -m1 '^id: ' <<<"$resumed" | cut -c5-)
  [ "$first_id" = "$third" ] || fail "resume after $second started at $first_id, not $third"
  ;;
tokens)
  q='generate?prompt=Alice%20was%20beginning&seed=7&max_tokens=20'
  a=$(curl -sN -m 10 "$url$q") || fail "the stream did not end (curl exit $?)"
  b=$(curl -sN -m 10 "$url$q") || fail "the second stream did not end"
  [ "$(count_lines "$a" 'event: token')" = 20 ] || fail "not 20 tokens: $a"
  [[ $a == *$'event: done\n'*'data: {"tokens":20}'* ]] || fail "no done event: $a"
  [ "$(grep '^data: ' <<<"$a")" = "$(grep '^data: ' <<<"$b")" ] || fail "same prompt and seed gave different replies"
  # A reconnect with Last-Event-ID goes on after that token, with the same tokens.
  resumed=$(curl -sN -m 10 -H 'Last-Event-ID: 15' "$url$q") || fail "the resumed stream did not end"
  [ "$(grep -A1 '^id: [0-9]' <<<"$resumed" | grep '^data: ')" = "$(grep -A1 '^id: 1[6-9]$\|^id: 20$' <<<"$a" | grep '^data: ')" ] ||
    fail "resume after token 15 did not give tokens 16-20: $resumed"
  [ "$(grep -m1 '^id: ' <<<"$resumed")" = 'id: 16' ] || fail "resume started at $(grep -m1 '^id: ' <<<"$resumed")"
  # A finished reply is not started again: after `done` a reconnecting EventSource (whatever the
  # client) gets 204 and stops; one that saw the last token but not `done` gets only `done`.
  [ "$(status "$url$q" -H 'Last-Event-ID: done')" = 204 ] || fail "a reconnect after done was not 204"
  [ "$(status "$url$q&lastEventId=done")" = 204 ] || fail "?lastEventId=done was not 204"
  tail=$(curl -sN -m 10 -H 'Last-Event-ID: 20' "$url$q") || fail "the stream after the last token did not end"
  [ "$(count_lines "$tail" 'event: token')" = 0 ] || fail "tokens sent again after the last one: $tail"
  [ "$(count_lines "$tail" 'event: done')" = 1 ] || fail "no done after the last token: $tail"
  [[ $a == *$'event: done\nid: done\n'* ]] || fail "done has not the id done: $a"
  other=$(curl -sN -m 10 "${url}generate?prompt=Alice%20was%20beginning&seed=8&max_tokens=20")
  [ "$(grep '^data: ' <<<"$a")" != "$(grep '^data: ' <<<"$other")" ] || fail "another seed gave the same reply"
  [ "$(status "${url}generate?max_tokens=5000")" = 400 ] || fail "max_tokens=5000 was not refused"
  [ "$(status "${url}generate?seed=x")" = 400 ] || fail "seed=x was not refused"
  # A client that leaves mid-way cancels its reply.
  curl -sN -m 0.3 "${url}generate?max_tokens=2000" >/dev/null || true
  for _ in $(seq 100); do
    stats=$(curl -sf "${url}stats")
    [[ $stats == *'"active":0'* && $stats == *'"cancelled":1'* ]] && break
    sleep 0.05
  done
  [[ $stats == *'"active":0'* && $stats == *'"cancelled":1'* && $stats == *'"completed":5'* ]] ||
    fail "stats after a cancelled reply: $stats"
  ;;
esac

kill -TERM $pid
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
if kill -0 $pid 2>/dev/null; then fail "did not stop within 5 s of SIGTERM"; fi
wait $pid || fail "exited with status $?"
grep -q "^$app: stopped" "$out" || fail "no 'stopped' line: $(cat "$out")"
echo "$app smoke: ok"
