#!/usr/bin/env bash
# The examples' GET /metrics, checked by Prometheus' own promtool (format and lint) after some
# traffic; on chat, also that the values move as a client connects, publishes and leaves.
#   tests/metrics_promtool.sh CHAT [OTHER_EXAMPLE...]
set -euo pipefail
chat=$1
shift
promtool=${SSE_PROMTOOL:-promtool}
pid=
out=$(mktemp)
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -f "$out" "$out".*' EXIT

fail() { echo "metrics: $*"; exit 1; }

# start BIN: runs BIN on a free port; sets pid and url.
start() {
  "$1" --host 127.0.0.1 --port 0 --threads 2 >"$out" 2>&1 &
  pid=$!
  url=
  for _ in $(seq 100); do grep -q 'http://' "$out" && break; sleep 0.05; done
  url=$(grep -o 'http://[^ ]*' "$out" | head -1)
  [ -n "$url" ] || { cat "$out"; fail "$1 printed no URL"; }
}
stop() {
  kill -TERM "$pid"
  wait "$pid" || fail "exit status $? after SIGTERM"
  pid=
}

# scrape: GET /metrics into $out.metrics, checked by promtool and for its Content-Type.
scrape() {
  local type
  type=$(curl -sf -o "$out.metrics" -w '%{content_type}' "${url}metrics") || fail "GET /metrics failed"
  [ "$type" = "text/plain; version=0.0.4; charset=utf-8" ] || fail "Content-Type is '$type'"
  "$promtool" check metrics <"$out.metrics" || { cat "$out.metrics"; fail "promtool check metrics failed"; }
}
# value NAME: the sample NAME (with its labels, if any) of the last scrape.
value() {
  local v
  v=$(awk -v n="$1" '$1 == n { print $2 }' "$out.metrics")
  [ -n "$v" ] || { cat "$out.metrics"; fail "no sample $1"; }
  echo "$v"
}
# until_value NAME WANT: scrapes until NAME is WANT (the I/O threads count on their own time).
until_value() {
  for _ in $(seq 100); do
    scrape
    [ "$(value "$1")" = "$2" ] && return 0
    sleep 0.05
  done
  cat "$out.metrics"
  fail "$1 is $(value "$1"), not $2"
}
# expect NAME OP NUMBER: the last scrape's NAME compared with NUMBER (-eq, -gt, ...).
expect() {
  [ "$(value "$1")" "$2" "$3" ] || { cat "$out.metrics"; fail "$1 is $(value "$1"), expected $2 $3"; }
}

start "$chat"
until_value sse_connections 1 # the scrape's own connection
for name in sse_connections sse_streams sse_subscribers sse_topics sse_events_published_total \
  sse_events_delivered_total sse_events_dropped_total sse_subscribers_evicted_total \
  sse_events_refused_total sse_bytes_written_total sse_history_bytes \
  'sse_requests_total{code="2xx"}' 'sse_requests_total{code="4xx"}'; do
  grep -q "^# TYPE ${name%%\{*} " "$out.metrics" || fail "no TYPE line for $name"
  grep -q "^# HELP ${name%%\{*} " "$out.metrics" || fail "no HELP line for $name"
  value "$name" >/dev/null
done
expect sse_streams -eq 0
expect sse_events_published_total -eq 0
bytes0=$(value sse_bytes_written_total)

# A client connects.
curl -sN -m 20 "${url}listen" >"$out.stream" &
listener=$!
until_value sse_streams 1 # counted after the handler has subscribed
expect sse_subscribers -eq 1
expect sse_topics -eq 2 # chat, and chat:presence for the room's list
expect sse_connections -eq 2

# It publishes, and gets what it published.
curl -sf -X POST --data-binary 'hello metrics' "${url}publish" >/dev/null || fail "publish failed"
curl -sf -H 'Content-Type: application/json' -d '{"user":"ann","text":"hi"}' "${url}message" ||
  fail "message failed"
for _ in $(seq 100); do grep -q '^data: hello metrics$' "$out.stream" && break; sleep 0.05; done
grep -q '^data: hello metrics$' "$out.stream" || fail "the listener did not get the event"
until_value sse_events_delivered_total 2
expect sse_events_published_total -eq 2
expect sse_history_bytes -gt 0
expect sse_bytes_written_total -gt "$bytes0"
# Something refused: a 404, and an event larger than the broker takes (413).
curl -s -o /dev/null "${url}nowhere"
head -c 60000 /dev/zero | tr '\0' '\n' >"$out.big"
curl -s -o /dev/null -X POST --data-binary @"$out.big" "${url}publish"
scrape
expect 'sse_requests_total{code="4xx"}' -eq 2
expect sse_events_refused_total -eq 1
expect 'sse_requests_total{code="2xx"}' -gt 3

# It leaves.
kill "$listener"
wait "$listener" 2>/dev/null || true
# Its connection closes last (after the stream and the subscription end): wait for that.
until_value sse_connections 1
expect sse_streams -eq 0
expect sse_subscribers -eq 0
expect sse_topics -eq 0
expect sse_streams_opened_total -eq 1
stop

# Every other serving example: its /metrics passes promtool too.
for bin in "$@"; do
  start "$bin"
  curl -sf -o /dev/null "$url" || fail "$bin: page not served"
  scrape
  expect 'sse_requests_total{code="2xx"}' -ge 1
  stop
done
echo "metrics: ok"
