#!/usr/bin/env bash
# The chat example behind a real nginx (tests/nginx/nginx.conf.in, the settings of
# docs/deployment.md with a short proxy_read_timeout):
#   a. GET /listen through nginx: 200, text/event-stream;
#   b. a published event reaches a stream through nginx at once (not buffered);
#   c. heartbeats keep an idle stream open past proxy_read_timeout, while a server whose
#      heartbeat is longer than proxy_read_timeout (the control) has its stream cut by nginx.
# Usage: nginx_test.sh CHAT_BINARY. Needs /usr/sbin/nginx (Debian package nginx), curl, python3.
# Runs as the current user; everything it writes is in one temp dir, removed at exit.
set -euo pipefail

chat=${1:?usage: nginx_test.sh CHAT_BINARY}
here=$(cd "$(dirname "$0")" && pwd)
template=$here/nginx.conf.in
doc=$here/../../docs/deployment.md
nginx=/usr/sbin/nginx

fail() {
  echo "nginx_test: FAIL: $*" >&2
  if [ -n "${dir:-}" ] && [ -f "$dir/error.log" ]; then
    echo "--- nginx error.log (last 20 lines)" >&2
    tail -n 20 "$dir/error.log" >&2
  fi
  exit 1
}
now_ms() { date +%s%3N; }

[ -x "$chat" ] || fail "chat binary '$chat' not found or not executable"
[ -x "$nginx" ] || fail "$nginx not found: install the Debian package nginx (scripts/deps.sh lists it in SSE_TEST_PACKAGES: apt-get install nginx)"
command -v curl >/dev/null || fail "curl not found"
[ -f "$template" ] || fail "template $template missing"

# The short read timeout the test is about, read from the template (e.g. "2s" -> 2).
read_timeout=$(sed -n 's/^[[:space:]]*proxy_read_timeout[[:space:]]*\([0-9][0-9]*\)s;.*/\1/p' "$template" | head -1)
[ -n "$read_timeout" ] || fail "no 'proxy_read_timeout Ns;' in $template"

# The template's SSE block must be the doc's (all but the read timeout).
if [ -f "$doc" ]; then
  while IFS= read -r line; do
    line=$(echo "$line" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
    case "$line" in "" | "#"* | proxy_read_timeout*) continue ;; esac
    grep -qF -- "$line" "$doc" || fail "'$line' (tests/nginx/nginx.conf.in) is not in docs/deployment.md"
  done < <(sed -n '/# BEGIN sse-proxy/,/# END sse-proxy/p' "$template")
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/sse-nginx-test.XXXXXX")
chat_pids=()   # the chat processes
stream_pids=() # the subshells running curl streams through nginx
nginx_pid=""

# stop_pids SIGNAL PID...: sends SIGNAL, waits up to 2 s for each, then SIGKILL.
stop_pids() {
  local sig=$1 p
  shift
  for p in "$@"; do kill "-$sig" "$p" 2>/dev/null; done
  for p in "$@"; do
    for _ in $(seq 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$p" 2>/dev/null
  done
}

cleanup() {
  local rc=$?
  set +e
  if [ -n "$nginx_pid" ]; then
    # The master (from its pid file, else the background job) stops its worker on SIGTERM.
    local master=$nginx_pid
    [ -s "$dir/nginx.pid" ] && master=$(cat "$dir/nginx.pid")
    [ "$master" != "$nginx_pid" ] && kill -TERM "$master" 2>/dev/null
    stop_pids TERM "$nginx_pid"
  fi
  # Without nginx the streams' curl ends by itself (signal 0: only wait, then SIGKILL).
  [ ${#stream_pids[@]} -gt 0 ] && stop_pids 0 "${stream_pids[@]}"
  [ ${#chat_pids[@]} -gt 0 ] && stop_pids TERM "${chat_pids[@]}"
  wait 2>/dev/null
  rm -rf "$dir"
  exit $rc
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    fail "python3 is needed to pick a free port"
}

# start_chat NAME HEARTBEAT: starts chat; sets chat_port.
start_chat() {
  local name=$1 heartbeat=$2
  "$chat" --host 127.0.0.1 --port 0 --threads 1 --heartbeat "$heartbeat" >"$dir/$name.log" 2>&1 &
  chat_pids+=($!)
  chat_port=""
  for _ in $(seq 100); do
    chat_port=$(grep -so 'http://127\.0\.0\.1:[0-9]*/' "$dir/$name.log" | head -1 | sed 's|.*:\([0-9]*\)/|\1|') || true
    [ -n "$chat_port" ] && return 0
    kill -0 "${chat_pids[-1]}" 2>/dev/null || break
    sleep 0.05
  done
  fail "chat ($name) did not print its URL: $(cat "$dir/$name.log")"
}

# wait_for FILE REGEX TIMEOUT_MS: polls FILE for a line matching REGEX (grep -E).
wait_for() {
  local file=$1 re=$2 deadline=$(($(now_ms) + $3))
  while [ "$(now_ms)" -le "$deadline" ]; do
    grep -qE -- "$re" "$file" 2>/dev/null && return 0
    sleep 0.01
  done
  return 1
}

# open_stream NAME PATH: curl -N through nginx, the response head into $dir/NAME.head (-D is
# written as it arrives; -i would hold the head back until body bytes come), the body into
# $dir/NAME.out; when curl ends, $dir/NAME.end gets "EXIT_CODE END_MS". Waits for the head.
open_stream() {
  local name=$1 path=$2
  (
    rc=0
    curl -sN --compressed -D "$dir/$name.head" -o "$dir/$name.out" "http://127.0.0.1:$port$path" 2>/dev/null || rc=$?
    echo "$rc $(now_ms)" >"$dir/$name.end"
  ) &
  stream_pids+=($!)
  wait_for "$dir/$name.head" $'^\r?$' 3000 || fail "stream $name ($path): no response head within 3 s"
  [ ! -f "$dir/$name.end" ] || fail "stream $name ($path): ended at once: $(cat "$dir/$name.head")"
  grep -qE '^HTTP/1\.1 200' "$dir/$name.head" || fail "stream $name ($path): $(head -1 "$dir/$name.head")"
  grep -qiE '^content-type: text/event-stream' "$dir/$name.head" || fail "stream $name ($path): not text/event-stream"
}

# publish MARKER: POST /publish through nginx, a plain-text body; sets pub_code.
publish() {
  pub_code=$(curl -s -o "$dir/publish.out" -w '%{http_code}' -m 5 -X POST \
    -H 'Content-Type: text/plain; charset=utf-8' --data-binary "$1" "http://127.0.0.1:$port/publish") || true
  [ "$pub_code" = 200 ] || fail "POST /publish through nginx answered '$pub_code': $(cat "$dir/publish.out" 2>/dev/null)"
}

# --- the two chats and nginx
start_chat app 1
app_port=$chat_port
start_chat control 30
control_port=$chat_port

user_line="# not root: nginx runs as the current user without a user directive"
[ "$(id -u)" = 0 ] && user_line="user $(id -un) $(id -gn);"

started=""
for _ in 1 2 3; do # a free port may be taken before nginx binds it: retry
  port=$(free_port)
  sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@APP_PORT@|$app_port|g" \
    -e "s|@CONTROL_PORT@|$control_port|g" -e "s|@USER@|$user_line|g" "$template" >"$dir/nginx.conf"
  "$nginx" -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/nginx-t.log" 2>&1 ||
    fail "nginx -t rejected the config: $(cat "$dir/nginx-t.log")"
  "$nginx" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/nginx.stdout" 2>&1 &
  nginx_pid=$!
  for _ in $(seq 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -m 1 "http://127.0.0.1:$port/" 2>/dev/null) || true
    [ "$code" = 200 ] && { started=1; break; }
    kill -0 "$nginx_pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$started" ] && break
  kill -TERM "$nginx_pid" 2>/dev/null || true
  wait "$nginx_pid" 2>/dev/null || true
  nginx_pid=""
  grep -q 'Address already in use' "$dir/error.log" 2>/dev/null || break # only a port race is worth a retry
done
[ -n "$started" ] || fail "nginx did not start or does not proxy GET / to chat: $(cat "$dir/nginx.stdout" 2>/dev/null)"
echo "nginx_test: nginx $("$nginx" -v 2>&1 | sed 's/.*nginx\///') on 127.0.0.1:$port -> chat :$app_port (heartbeat 1 s), control chat :$control_port (heartbeat 30 s); proxy_read_timeout ${read_timeout}s"

# --- a. GET /listen through nginx: 200, text/event-stream, not compressed (a browser sends
# Accept-Encoding, so do the streams here: --compressed)
curl -s --compressed -o /dev/null -D "$dir/a.head" -m 1 "http://127.0.0.1:$port/listen" 2>/dev/null || true
grep -qE '^HTTP/1\.1 200' "$dir/a.head" || fail "a. GET /listen through nginx: $(head -1 "$dir/a.head" 2>/dev/null)"
grep -qiE '^content-type: text/event-stream' "$dir/a.head" ||
  fail "a. GET /listen through nginx: no Content-Type: text/event-stream in: $(cat "$dir/a.head")"
grep -qi '^content-encoding:' "$dir/a.head" &&
  fail "a. GET /listen through nginx is compressed (gzip must be off for text/event-stream): $(cat "$dir/a.head")"
echo "nginx_test: a. GET /listen through nginx: 200, text/event-stream, no Content-Encoding: ok"

# --- b. an event arrives through nginx at once
open_stream b /listen
marker="nginx-b-$$-$RANDOM-$(now_ms)"
t0=$(now_ms)
publish "$marker"
wait_for "$dir/b.out" "^data: $marker"$'\r?$' 1000 ||
  fail "b. 'data: $marker' not on the stream within 1 s of POST /publish (buffered?); stream: $(cat "$dir/b.out")"
latency_b=$(($(now_ms) - t0))
echo "nginx_test: b. published event on the stream through nginx after ${latency_b} ms (POST included; limit 1000 ms): ok"

# --- c. heartbeats keep an idle stream open past proxy_read_timeout; without them nginx cuts it
open_stream c /listen
c_start=$(now_ms)
open_stream control /control/listen
control_start=$(now_ms)
idle_ms=$((3 * read_timeout * 1000))
while [ $(($(now_ms) - c_start)) -lt "$idle_ms" ]; do
  [ -f "$dir/c.end" ] && fail "c. the idle stream ended after $(($(cut -d' ' -f2 "$dir/c.end") - c_start)) ms though heartbeats were sent (curl exit $(cut -d' ' -f1 "$dir/c.end")); stream: $(cat "$dir/c.out")"
  sleep 0.1
done
marker="nginx-c-$$-$RANDOM-$(now_ms)"
t0=$(now_ms)
publish "$marker"
wait_for "$dir/c.out" "^data: $marker"$'\r?$' 1000 ||
  fail "c. after ${idle_ms} ms idle, 'data: $marker' did not arrive on the same stream; stream: $(cat "$dir/c.out")"
latency_c=$(($(now_ms) - t0))
heartbeats=$(grep -c '^:' "$dir/c.out" || true)
[ "$heartbeats" -ge 2 ] || fail "c. only $heartbeats heartbeat comment lines on the idle stream; stream: $(cat "$dir/c.out")"
echo "nginx_test: c. idle stream alive after ${idle_ms} ms (${heartbeats} heartbeats); event then arrived in ${latency_c} ms: ok"

# The control: its stream was cut by nginx after about proxy_read_timeout.
[ -f "$dir/control.end" ] ||
  fail "c. control: the stream without heartbeats is still open after ${idle_ms} ms; proxy_read_timeout ${read_timeout}s did not bite, so the check above proves nothing"
control_ms=$(($(cut -d' ' -f2 "$dir/control.end") - control_start))
control_rc=$(cut -d' ' -f1 "$dir/control.end")
lo=$((read_timeout * 1000 - 300)) hi=$((read_timeout * 1000 + 2500))
if [ "$control_ms" -lt "$lo" ] || [ "$control_ms" -gt "$hi" ]; then
  fail "c. control: stream ended after ${control_ms} ms, expected about $((read_timeout * 1000)) ms (proxy_read_timeout)"
fi
grep -qs '^:' "$dir/control.out" && fail "c. control: the 30 s heartbeat server sent a heartbeat; the control is not idle"
grep -q 'upstream timed out' "$dir/error.log" ||
  fail "c. control: nginx's error.log does not say 'upstream timed out'"
echo "nginx_test: c. control (heartbeat 30 s): nginx closed the idle stream after ${control_ms} ms (curl exit ${control_rc}, 'upstream timed out' logged): ok"

echo "nginx_test: all checks passed (proxy_read_timeout ${read_timeout}s; latency ${latency_b} ms, after idle ${latency_c} ms; control cut at ${control_ms} ms)"
