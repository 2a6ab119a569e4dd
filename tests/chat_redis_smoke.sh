#!/usr/bin/env bash
# Two chat processes on one real redis-server (--redis), driven with curl (issue #9):
#   a. `curl -N` on node B gets what is POSTed to node A (/publish and /message);
#   b. a client that got ids from A resumes on B with Last-Event-ID: exactly what it missed,
#      in order, none twice;
#   c. redis-server killed: POST /publish and new GET /listen answer 503 with Retry-After, an
#      open stream on B stays open and keeps receiving heartbeats (--heartbeat 1);
#   d. redis-server restarted on the same port and directory (AOF, fsync always): publishing
#      works again, the open stream gets the new events, and a client resuming with an id from
#      before the kill misses nothing that was acknowledged.
# Usage: chat_redis_smoke.sh CHAT_BINARY (built with the Redis component). Needs redis-server
# and redis-cli (Debian package redis-server), curl. Everything it writes is in one temp dir,
# removed at exit (kept, and named, when the test fails).
set -euo pipefail

chat=${1:?usage: chat_redis_smoke.sh CHAT_BINARY}
[ -x "$chat" ] || { echo "chat binary '$chat' not found or not executable" >&2; exit 1; }
redis=${SSE_REDIS_SERVER:-redis-server}

dir=$(mktemp -d /tmp/sse-chat-redis-XXXXXX)
pids=()          # chat processes and curl streams, stopped at exit
redis_pid=''
ok=0
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$p" 2>/dev/null || true
  done
  [ -n "$redis_pid" ] && kill -KILL "$redis_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ $ok = 1 ]; then rm -rf "$dir"; else echo "chat_redis_smoke: logs kept in $dir" >&2; fi
}
trap cleanup EXIT

fail() {
  echo "chat_redis_smoke: FAIL: $*" >&2
  for f in "$dir"/redis.log "$dir"/chat-a.out "$dir"/chat-b.out; do
    [ -f "$f" ] && { echo "--- $f (last 15 lines)" >&2; tail -n 15 "$f" >&2; }
  done
  exit 1
}

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 50 ms (nothing to wait on: processes
# and files written by other processes) until it succeeds, or fails the test after SECONDS.
wait_until() {
  local secs=$1 what=$2
  shift 2
  local end=$(( $(date +%s%3N) + secs * 1000 ))
  until "$@"; do
    [ "$(date +%s%3N)" -lt $end ] || fail "timed out after ${secs} s waiting for $what"
    sleep 0.05
  done
}

# ---- redis-server -----------------------------------------------------------------------
redis_port=''
redis_up() { [ "$(redis-cli -p "$redis_port" --no-raw ping 2>/dev/null)" = PONG ]; }
# Starts redis-server on $redis_port in $dir with AOF (fsync on every write); returns 1 if
# it exits before answering PING (the port was taken).
launch_redis() {
  "$redis" --port "$redis_port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly yes \
    --appendfsync always --daemonize no --logfile "$dir/redis.log" &
  redis_pid=$!
  local end=$(( $(date +%s%3N) + 10000 ))
  while [ "$(date +%s%3N)" -lt $end ]; do
    kill -0 "$redis_pid" 2>/dev/null || { wait "$redis_pid" || true; redis_pid=''; return 1; }
    redis_up && return 0
    sleep 0.05
  done
  fail "redis-server on port $redis_port did not answer PING within 10 s"
}
for _ in $(seq 10); do       # a free port: one redis-server could bind
  redis_port=$(( 20000 + RANDOM % 30000 ))
  launch_redis && break
  redis_port=''
done
[ -n "$redis_port" ] || fail "redis-server did not start on any of 10 ports"
kill_redis() { kill -KILL "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; redis_pid=''; }

# ---- two chat processes -----------------------------------------------------------------
start_chat() {   # NAME: starts chat on a port of its own, sets url_NAME
  local out=$dir/chat-$1.out
  "$chat" --host 127.0.0.1 --port 0 --threads 2 --heartbeat 1 --drain 0 \
    --redis "127.0.0.1:$redis_port" >"$out" 2>&1 &
  pids+=($!)
  wait_until 10 "chat $1 to print its URL" grep -q 'http://' "$out"
  local url
  url=$(grep -o 'http://[^ ]*' "$out" | head -1)
  url=${url%/}
  printf -v "url_$1" '%s' "$url"
}
start_chat a
start_chat b

# POST helpers: print the status code, then the body, one line each ("-" for no body).
publish() {   # URL BODY
  curl -s -m 5 -D "$dir/last.h" -o "$dir/last.body" -w '%{http_code}' -X POST --data-binary "$2" "$1/publish"
}
message() {   # URL USER TEXT
  curl -s -m 5 -D "$dir/last.h" -o "$dir/last.body" -w '%{http_code}' \
    -H 'Content-Type: application/json' -d "{\"user\":\"$2\",\"text\":\"$3\"}" "$1/message"
}
id_of_last() { sed -n 's/.*"id":"\([^"]*\)".*/\1/p' "$dir/last.body"; }

# Streams: curl -N -i into a file (headers, then the body as it arrives).
status_of() { head -n 1 "$1" 2>/dev/null | tr -d '\r'; }
headers_done() { grep -q $'^\r$' "$1" 2>/dev/null; }
# open_stream NAME URL [CURL_ARG...]: GET URL/listen until it answers 200 (503 while a node is
# still connecting to Redis), leaving the stream open; sets stream_pid.
open_stream() {
  local name=$1 url=$2
  shift 2
  local end=$(( $(date +%s%3N) + 10000 ))
  for (( attempt = 0; ; attempt++ )); do
    local file=$dir/$name.stream
    curl -sN -i "$@" "$url/listen" >"$file" &
    stream_pid=$!
    while kill -0 $stream_pid 2>/dev/null && ! headers_done "$file"; do
      [ "$(date +%s%3N)" -lt $end ] || fail "no answer to GET $url/listen within 10 s"
      sleep 0.02
    done
    if [[ $(status_of "$file") == 'HTTP/1.1 200'* ]]; then pids+=($stream_pid); return 0; fi
    kill $stream_pid 2>/dev/null || true
    wait $stream_pid 2>/dev/null || true
    [ "$(date +%s%3N)" -lt $end ] || fail "GET $url/listen did not answer 200 within 10 s: $(status_of "$file")"
    sleep 0.1
  done
}
close_stream() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# The complete events of a stream file, one line each: ID<TAB>NAME<TAB>DATA (data lines joined
# with a literal \n). Skips the HTTP headers, comments (heartbeats) and the chat's presence
# lists (each process's own, never replayed).
events() {
  tr -d '\r' <"$1" | awk '
    !body { if ($0 == "") body = 1; next }
    $0 == "" { if (has && name != "presence") print id "\t" name "\t" data; id = ""; name = ""; data = ""; has = 0; nd = 0; next }
    /^:/ { next }
    /^id: / { id = substr($0, 5); has = 1; next }
    /^event: / { name = substr($0, 8); has = 1; next }
    /^data: / { data = (nd ? data "\\n" : "") substr($0, 7); nd = 1; has = 1; next }'
}
datas() { events "$1" | cut -f3; }
has_data() { datas "$1" | grep -qxF -- "$2"; }
heartbeats() { tr -d '\r' <"$1" | grep -c '^:' || true; }

expect_list() {   # WHAT FILE EXPECTED_LINE...: the data of FILE's events is exactly these lines
  local what=$1 file=$2
  shift 2
  local want got
  want=$(printf '%s\n' "$@")
  got=$(datas "$file")
  [ "$got" = "$want" ] || fail "$what: expected events
$want
got
$got
(stream: $(events "$file"))"
  local ids
  ids=$(events "$file" | cut -f1)
  [ "$(sort <<<"$ids" | uniq -d)" = '' ] || fail "$what: an id came twice: $ids"
}

# ---- a. what is POSTed to A reaches a stream on B -----------------------------------------
open_stream live "$url_b"
live_pid=$stream_pid
code=''
wait_until 10 "node A to accept POST /publish (connected to Redis)" \
  eval '[ "$(publish "$url_a" "ping from a")" = 200 ]'
acked=("ping from a")
[ -n "$(id_of_last)" ] || fail "POST /publish answered no id: $(cat "$dir/last.body")"
code=$(message "$url_a" ann 'hi from a')
[ "$code" = 204 ] || fail "POST /message on A answered $code: $(cat "$dir/last.body")"
chat_json='"text":"hi from a","time":"'   # nlohmann::json orders the keys: text, time, user
wait_until 5 "B's stream to get the /publish and /message sent to A" \
  eval 'has_data "$dir/live.stream" "ping from a" && datas "$dir/live.stream" | grep -qF "$chat_json"'
datas "$dir/live.stream" | grep -F "$chat_json" | grep -qF '"user":"ann"' ||
  fail "the /message event on B lost its user: $(datas "$dir/live.stream")"
[ "$(events "$dir/live.stream" | grep -F "$chat_json" | cut -f2)" = chat ] ||
  fail "the /message event on B is not named chat: $(events "$dir/live.stream")"
acked+=("$(datas "$dir/live.stream" | grep -F "$chat_json")")
echo "a. B's stream got A's /publish and /message"

# ---- b. ids from A, resumed on B ------------------------------------------------------------
open_stream froma "$url_a"
froma_pid=$stream_pid
code=$(publish "$url_a" "seen on a"); [ "$code" = 200 ] || fail "POST /publish answered $code"
seen_id=$(id_of_last)
acked+=("seen on a")
wait_until 5 "A's stream to get 'seen on a'" has_data "$dir/froma.stream" "seen on a"
[ "$(events "$dir/froma.stream" | tail -n 1 | cut -f1)" = "$seen_id" ] ||
  fail "the event's id on A's stream is not the id POST /publish answered ($seen_id): $(events "$dir/froma.stream")"
close_stream "$froma_pid"
missed=() missed_ids=()
for i in 1 2 3; do
  if [ $i = 2 ]; then code=$(publish "$url_b" "missed $i"); else code=$(publish "$url_a" "missed $i"); fi
  [ "$code" = 200 ] || fail "POST /publish of 'missed $i' answered $code"
  missed+=("missed $i")
  missed_ids+=("$(id_of_last)")
done
acked+=("${missed[@]}")
open_stream resumed "$url_b" -H "Last-Event-ID: $seen_id"
resumed_pid=$stream_pid
code=$(publish "$url_a" "live after resume"); [ "$code" = 200 ] || fail "POST /publish answered $code"
acked+=("live after resume")
wait_until 5 "the resumed stream on B to get 'live after resume'" \
  has_data "$dir/resumed.stream" "live after resume"
sleep 0.2   # anything doubled or out of order would come with or right after it
close_stream "$resumed_pid"
expect_list "resume on B from A's id" "$dir/resumed.stream" "${missed[@]}" "live after resume"
[ "$(events "$dir/resumed.stream" | head -n 3 | cut -f1)" = "$(printf '%s\n' "${missed_ids[@]}")" ] ||
  fail "the replayed events' ids are not those POST /publish answered (${missed_ids[*]}): $(events "$dir/resumed.stream")"
echo "b. resumed on B with A's id $seen_id: exactly the 3 missed events, then live"

# ---- c. redis-server killed ---------------------------------------------------------------
before_kill_id=$seen_id    # acknowledged before the kill: every event after it must survive
kill_redis
attempt=0
try_outage() {
  attempt=$((attempt + 1))
  [ "$(publish "$url_a" "refused $attempt")" = 503 ]
}
wait_until 10 "POST /publish on A to answer 503 without Redis" try_outage
echo "   (503 after $attempt POST /publish on A; $(grep -i '^Retry-After: ' "$dir/last.h" | tr -d '\r'))"
grep -qi '^Retry-After: ' "$dir/last.h" || fail "503 without Retry-After: $(cat "$dir/last.h")"
code=$(publish "$url_b" "refused on b")
[ "$code" = 503 ] || fail "POST /publish on B without Redis answered $code"
grep -qi '^Retry-After: ' "$dir/last.h" || fail "503 on B without Retry-After: $(cat "$dir/last.h")"
code=$(curl -s -m 5 -D "$dir/last.h" -o /dev/null -w '%{http_code}' "$url_b/listen")
[ "$code" = 503 ] || fail "a new GET /listen on B without Redis answered $code"
grep -qi '^Retry-After: ' "$dir/last.h" || fail "GET /listen 503 without Retry-After: $(cat "$dir/last.h")"
beats=$(heartbeats "$dir/live.stream")
wait_until 5 "two more heartbeats on B's open stream while Redis is down" \
  eval '[ "$(heartbeats "$dir/live.stream")" -ge $((beats + 2)) ]'
kill -0 "$live_pid" 2>/dev/null || fail "B's open stream was closed when Redis went down"
echo "c. without Redis: 503 + Retry-After (publish on A and B, new listen on B); B's stream open, heartbeats"

# ---- d. redis-server back on the same port, with its AOF -----------------------------------
launch_redis || fail "redis-server did not restart on port $redis_port"
# Each node reconnects on its own schedule; a publish refused meanwhile (503) is not
# acknowledged and must never show up, so each try has its own text.
try_back() {   # URL NODE
  attempt=$((attempt + 1))
  last_try="back on $2, try $attempt"
  [ "$(publish "$1" "$last_try")" = 200 ]
}
for node in a b; do
  attempt=0
  url_var=url_$node
  wait_until 15 "POST /publish on ${node^^} to work again after the restart" try_back "${!url_var}" "${node^^}"
  acked+=("$last_try")
  echo "   (POST /publish on ${node^^} accepted again at try $attempt after the restart)"
done
wait_until 10 "B's open stream to get the events published after the restart" \
  has_data "$dir/live.stream" "$last_try"
kill -0 "$live_pid" 2>/dev/null || fail "B's open stream closed"
sleep 0.2
expect_list "B's stream, open across the outage" "$dir/live.stream" "${acked[@]}"
# A client that saw $before_kill_id (before the kill) resumes on B: everything acknowledged since.
open_stream late "$url_b" -H "Last-Event-ID: $before_kill_id"
late_pid=$stream_pid
code=$(publish "$url_b" "last"); [ "$code" = 200 ] || fail "POST /publish answered $code"
acked+=("last")
wait_until 5 "the late resume to get 'last'" has_data "$dir/late.stream" "last"
sleep 0.2
close_stream "$late_pid"
expect_list "resume on B from an id from before the kill" "$dir/late.stream" \
  "${missed[@]}" "live after resume" "${acked[@]: -3}"
echo "d. after the restart: publishing works, B's open stream got every acknowledged event once," \
     "in order; resume from $before_kill_id missed nothing"

close_stream "$live_pid"
ok=1
echo "chat redis smoke: ok"
