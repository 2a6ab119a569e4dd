#!/usr/bin/env bash
# HTTP/2 and HTTPS (issue #11): the chat example's fan-out over HTTP/1.1, HTTPS (HTTP/1.1 over
# TLS), h2c (cleartext HTTP/2 by prior knowledge) and h2 (HTTP/2 over TLS by ALPN), measured in
# one run, and the memory of idle TLS connections and HTTP/2 streams; writes the section
# "HTTP/2 and HTTPS" of docs/benchmarks.md (the rest of that file is bench/run.sh's).
#
#   bench/h2.sh           the whole run (about 7 minutes here)
#   bench/h2.sh --quick   smoke run: tiny counts, 1 s each; the report goes under build/bench/results
#   bench/h2.sh --quick --chat PATH --loadgen PATH
#                         the same with binaries already built (ctest's bench_h2_smoke; PATH of
#                         sse_h2_loadgen): no install, no build; exit 77 when a tool is missing
#
# One chat process per run (1 thread), pinned to core 0, HTTPS with a self-signed ECDSA P-256
# certificate made by `openssl` in a temporary directory; sse_h2_loadgen (sse_loadgen's code with
# TLS and nghttp2's HTTP/2 client) on core 1 for every row, so rows differ only in protocol.
# (a) 1,000 event streams, publishing as fast as accepted (BENCH_WINDOW HTTP/1.1 POSTs
# outstanding, over TLS for the HTTPS server), as bench/run.sh's (a): HTTP/1.1 and HTTPS over
# 1,000 connections, h2c and h2 over 10 and over 1,000 connections; BENCH_ROUNDS rounds taking
# turns, the median reported. (i) idle memory: BENCH_IDLE connections of one stream each, per
# protocol; (s) BENCH_STREAMS idle HTTP/2 streams over 100 connections.
#
# Environment:
#   BENCH_DURATION=6    measured seconds per run       BENCH_WARMUP=2    warm-up seconds
#   BENCH_PAUSE=1       seconds between runs           BENCH_WINDOW=8    POSTs outstanding
#   BENCH_ROUNDS=5      rounds of (a)                  BENCH_IDLE=5000   connections in (i)
#   BENCH_STREAMS=10000 streams in (s)                 BENCH_BUILD_DIR=build/bench
#   BENCH_OUT=docs/benchmarks.md                       BENCH_RESULTS=DIR (raw JSON; default
#                                                      under the build directory)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
command_line="bench/h2.sh${*:+ $*}"
quick=0 chat="" loadgen=""
while [ $# -gt 0 ]; do
  case $1 in
  --quick) quick=1 ;;
  --chat) chat=${2:?--chat needs a path}; shift ;;
  --loadgen) loadgen=${2:?--loadgen needs a path}; shift ;;
  -h | --help)
    sed -n "2,29p" "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "bench/h2.sh: unknown argument '$1' (try --help)" >&2
    exit 2
    ;;
  esac
  shift
done

build=${BENCH_BUILD_DIR:-build/bench}
if [ -n "$chat$loadgen" ]; then
  [ -n "$chat" ] && [ -n "$loadgen" ] || { echo "bench/h2.sh: give both --chat and --loadgen" >&2; exit 2; }
  for p in openssl node taskset; do
    if ! command -v "$p" >/dev/null; then
      echo "SKIPPED: $p not found (Debian packages: openssl, nodejs, util-linux)"
      [ -n "${SSE_CI:-}" ] && { echo "SSE_CI is set: failing instead of skipping"; exit 1; }
      exit 77
    fi
  done
else
  source scripts/deps.sh
  ensure_packages "${SSE_BUILD_PACKAGES[@]}" libssl-dev libnghttp2-dev openssl util-linux procps
  ensure_node
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSSE_BUILD_BENCH=ON -DSSE_BUILD_TESTS=OFF \
    -DSSE_TLS=ON -DSSE_HTTP2=ON >/dev/null
  cmake --build "$build" -j2 --target chat sse_h2_loadgen
  chat=$root/$build/examples/chat
  loadgen=$root/$build/bench/sse_h2_loadgen
fi
cpus=$(nproc)
server_cpus=0 loadgen_cpus=1
[ "$cpus" -lt 2 ] && loadgen_cpus=0 # one core: everything shares it

window=${BENCH_WINDOW:-8}
pause=${BENCH_PAUSE:-1}
if [ $quick = 1 ]; then
  duration=${BENCH_DURATION:-1} warmup=${BENCH_WARMUP:-0.3} pause=${BENCH_PAUSE:-0.2}
  subs=40 few=2 rounds=${BENCH_ROUNDS:-1} idle=${BENCH_IDLE:-100} streams=${BENCH_STREAMS:-200}
  stream_conns=2 settle=0.3 idle_duration=0.3
else
  duration=${BENCH_DURATION:-6} warmup=${BENCH_WARMUP:-2}
  subs=1000 few=10 rounds=${BENCH_ROUNDS:-5} idle=${BENCH_IDLE:-5000} streams=${BENCH_STREAMS:-10000}
  stream_conns=100 settle=2 idle_duration=2
fi
stamp=$(date +%Y%m%d-%H%M%S)
if [ -n "${BENCH_RESULTS:-}" ]; then
  results=$BENCH_RESULTS
else
  results=$root/$build/results/h2-$stamp
  [ $quick = 1 ] && results=$root/$build/results/h2-quick-$stamp
fi
mkdir -p "$results/logs"
if [ $quick = 1 ]; then out=${BENCH_OUT:-$results/benchmarks.md}; else out=${BENCH_OUT:-docs/benchmarks.md}; fi

# --- the certificate --------------------------------------------------------------------------
tmp=$(mktemp -d /tmp/sse-bench-h2.XXXXXX)
server_pid=""
stop_server() {
  [ -n "$server_pid" ] || return 0
  # Two signals: the first starts the chat example's drain, the second stops it at once.
  kill -TERM "$server_pid" 2>/dev/null || true
  sleep 0.05
  kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq 200); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
cleanup() {
  stop_server
  rm -rf "$tmp"
}
trap cleanup EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>"$tmp/openssl.log" ||
  { cat "$tmp/openssl.log" >&2; echo "bench/h2.sh: openssl could not make a certificate" >&2; exit 1; }

# --- the server -------------------------------------------------------------------------------
base_url=""
start_server() { # LOG plain|tls
  local log=$1 mode=$2 tls_args=()
  [ "$mode" = tls ] && tls_args=(--tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem")
  taskset -c "$server_cpus" "$chat" --host 127.0.0.1 --port 0 --threads 1 "${tls_args[@]}" >"$log" 2>&1 &
  server_pid=$!
  base_url=""
  for _ in $(seq 200); do
    base_url=$(grep -o 'https\?://[^ ]*/' "$log" 2>/dev/null | head -1 || true)
    [ -n "$base_url" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "bench/h2.sh: chat did not start:" >&2
  cat "$log" >&2
  return 1
}

# measure LABEL plain|tls -- LOADGEN_ARGS...: one server, one load-generator run. A topic of its
# own: the chat topic also carries presence lists.
measure() {
  local label=$1 mode=$2
  shift 3
  echo "== $label" >&2
  if ! start_server "$results/logs/$label.server.log" "$mode"; then
    stop_server
    return 0
  fi
  taskset -c "$loadgen_cpus" "$loadgen" --sub-url "${base_url}listen?topic=bench" \
    --pub-url "${base_url}publish?topic=bench" --server-pid "$server_pid" --label "$label" --json "$@" \
    >"$results/$label.json" 2>"$results/logs/$label.loadgen.log" ||
    echo "bench/h2.sh: the load generator failed for $label (see $results/logs/$label.loadgen.log)" >&2
  stop_server
  sleep "$pause"
}

common=(--size 64 --duration "$duration" --warmup "$warmup" --window "$window" --rate max --settle 0.5)
t_start=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# (a): the setups take turns, round after round.
for round in $(seq "$rounds"); do
  measure "a-h1-r$round" plain -- --subs "$subs" "${common[@]}"
  measure "a-h2c-$few-r$round" plain -- --subs "$subs" --h2 --conns "$few" "${common[@]}"
  measure "a-h2c-$subs-r$round" plain -- --subs "$subs" --h2 --conns "$subs" "${common[@]}"
  measure "a-h1tls-r$round" tls -- --subs "$subs" "${common[@]}"
  measure "a-h2tls-$few-r$round" tls -- --subs "$subs" --h2 --conns "$few" "${common[@]}"
  measure "a-h2tls-$subs-r$round" tls -- --subs "$subs" --h2 --conns "$subs" "${common[@]}"
done
# (i) idle connections, one stream each; (s) many streams over few connections.
idle_args=(--idle --settle "$settle" --duration "$idle_duration")
measure i-h1 plain -- --subs "$idle" "${idle_args[@]}"
measure i-h2c plain -- --subs "$idle" --h2 --conns "$idle" "${idle_args[@]}"
measure i-h1tls tls -- --subs "$idle" "${idle_args[@]}"
measure i-h2tls tls -- --subs "$idle" --h2 --conns "$idle" "${idle_args[@]}"
measure s-h2c plain -- --subs "$streams" --h2 --conns "$stream_conns" "${idle_args[@]}"
measure s-h2tls tls -- --subs "$streams" --h2 --conns "$stream_conns" "${idle_args[@]}"
t_end=$(date +%s)

json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- include examples bench 2>/dev/null || commit="$commit + uncommitted changes"
nghttp2_version=$(sed -n 's/^#define NGHTTP2_VERSION "\(.*\)"/\1/p' /usr/include/nghttp2/nghttp2ver.h 2>/dev/null || true)
cat >"$results/meta.json" <<EOF
{
  "quick": $([ $quick = 1 ] && echo true || echo false),
  "date": $(json_str "$(date -u '+%Y-%m-%d %H:%M UTC')"),
  "nproc": $cpus,
  "cpu_model": $(json_str "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"),
  "memory": $(json_str "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"),
  "kernel": $(json_str "$(uname -sr)"),
  "command": $(json_str "$command_line"),
  "wall_seconds": $((t_end - t_start)),
  "duration": $duration, "warmup": $warmup, "pause": $pause, "window": $window, "rounds": $rounds,
  "subs": $subs, "few": $few, "idle": $idle, "streams": $streams, "stream_conns": $stream_conns,
  "server_cpus": "$server_cpus", "loadgen_cpus": "$loadgen_cpus",
  "sse_commit": $(json_str "$commit"),
  "openssl_version": $(json_str "$(openssl version | cut -d' ' -f1-2)"),
  "nghttp2_version": $(json_str "${nghttp2_version:-unknown}"),
  "compiler": $(json_str "$( (c=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null); [ -n "$c" ] && "$c" --version | head -1) || echo unknown)"),
  "load_before": $(json_str "$load_before")
}
EOF
node bench/h2_report.mjs "$results" "$out" $([ $quick = 1 ] && echo --check)
echo "bench/h2.sh: $((t_end - t_start)) s; raw results in $results" >&2
