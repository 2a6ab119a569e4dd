#!/usr/bin/env bash
# Compares the chat example's /listen + /publish with nginx + nchan, Node + better-sse and the
# floor server, in one run, and writes docs/benchmarks.md.
#
#   bench/run.sh           every scenario against every server (about 6 minutes here)
#   bench/run.sh --quick   smoke run: tiny counts, 1 s each; the report goes under build/bench/results
#
# Each server runs alone, single-threaded, pinned to core 0; the load generator to core 1.
# Scenarios: (a) 1,000 and 10,000 subscribers, publishing as fast as accepted with 8 POSTs in
# flight (plus sse with 2 threads at 10,000); (s) the same with one publisher, 1 POST in flight;
# (b) 1,000 subscribers at 50 events/s; (c) 15,000 idle connections; (d) (a) at 1,000 with 1 %
# of the subscribers not reading. During (a) and (s) at 10,000, a fairness probe: GET / every
# 10 ms on a connection of its own, timed by the load generator.
#
# Environment:
#   BENCH_DURATION=10   measured seconds per run       BENCH_WARMUP=2   warm-up seconds
#   BENCH_PAUSE=2       seconds between servers        BENCH_WINDOW=8   POSTs outstanding in (a)
#   BENCH_SERVERS="sse nchan better-sse floor"         BENCH_OUT=docs/benchmarks.md
#   BENCH_BUILD_DIR=build/bench                        BENCH_MICRO=1    run sse_micro too
#   BENCH_B_ROUNDS=3    alternating rounds of (b); the median p99 per server is reported
#   BENCH_SCENARIOS="a s b c d"   which scenarios to run (the report leaves the others out; a
#                                 subset's report goes under build/bench/results, as --quick's)
#   BENCH_PROBE_INTERVAL_MS=10    the fairness probe's interval
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
command_line="bench/run.sh${*:+ $*}"
quick=0
for arg in "$@"; do
  case $arg in
  --quick) quick=1 ;;
  -h | --help)
    sed -n "2,22p" "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "bench/run.sh: unknown argument '$arg' (try --help)" >&2
    exit 2
    ;;
  esac
done

source scripts/deps.sh
ensure_packages "${SSE_BUILD_PACKAGES[@]}" nginx libnginx-mod-nchan libbenchmark-dev util-linux procps
ensure_node
ensure_node_modules bench/better-sse

build=${BENCH_BUILD_DIR:-build/bench}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSSE_BUILD_BENCH=ON -DSSE_BUILD_TESTS=OFF >/dev/null
targets=(chat sse_loadgen sse_floor_server)
[ "${BENCH_MICRO:-1}" = 1 ] && targets+=(sse_micro)
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"
chat=$root/$build/examples/chat
loadgen=$root/$build/bench/sse_loadgen
floor=$root/$build/bench/sse_floor_server
micro=$root/$build/bench/sse_micro
nchan_module=$(dpkg -L libnginx-mod-nchan | grep '/ngx_nchan_module\.so$' | head -1)
[ -n "$nchan_module" ] || { echo "bench/run.sh: ngx_nchan_module.so not found" >&2; exit 1; }

read -r -a servers <<<"${BENCH_SERVERS:-sse nchan better-sse floor}"
read -r -a scenarios <<<"${BENCH_SCENARIOS:-a s b c d}"
wants() { [[ " ${scenarios[*]} " == *" $1 "* ]]; }
window=${BENCH_WINDOW:-8}
probe_interval=${BENCH_PROBE_INTERVAL_MS:-10}
pause=${BENCH_PAUSE:-2}
if [ $quick = 1 ]; then
  duration=${BENCH_DURATION:-1} warmup=${BENCH_WARMUP:-0.5} pause=${BENCH_PAUSE:-0.5}
  a_subs=(20 50) b_subs=20 c_subs=100 d_subs=100 d_stall=0.05
else
  duration=${BENCH_DURATION:-10} warmup=${BENCH_WARMUP:-2}
  a_subs=(1000 10000) b_subs=1000 c_subs=15000 d_subs=1000 d_stall=0.01
fi
b_rate=50
stamp=$(date +%Y%m%d-%H%M%S)
results=$root/$build/results/$stamp
[ $quick = 1 ] && results=$root/$build/results/quick-$stamp
mkdir -p "$results/logs"
ln -sfn "$results" "$root/$build/results/latest"
# docs/benchmarks.md only from a whole run: a smoke run or a subset would replace its sections.
if [ $quick = 1 ] || [ "${scenarios[*]}" != "a s b c d" ]; then
  out=${BENCH_OUT:-$results/benchmarks.md}
else
  out=${BENCH_OUT:-docs/benchmarks.md}
fi

# --- servers ----------------------------------------------------------------------------------
SERVER_PID="" MEASURE_PID="" BASE_URL="" NGINX_DIR=""

wait_for_url() { # LOG: sets BASE_URL from the "http://..." line a server prints
  for _ in $(seq 200); do
    BASE_URL=$(grep -o 'http://[^ ]*/' "$1" 2>/dev/null | head -1 || true)
    [ -n "$BASE_URL" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "bench/run.sh: the server did not start:" >&2
  cat "$1" >&2
  return 1
}

start_server() { # NAME LOG [THREADS] [CPUS]
  local name=$1 log=$2 threads=${3:-1} cpus=${4:-0}
  case $name in
  sse)
    taskset -c "$cpus" "$chat" --host 127.0.0.1 --port 0 --threads "$threads" >"$log" 2>&1 &
    SERVER_PID=$! MEASURE_PID=$!
    wait_for_url "$log"
    ;;
  floor)
    taskset -c "$cpus" "$floor" --host 127.0.0.1 --port 0 --page examples/chat/page.html >"$log" 2>&1 &
    SERVER_PID=$! MEASURE_PID=$!
    wait_for_url "$log"
    ;;
  better-sse)
    taskset -c "$cpus" node "$root/bench/better-sse/server.mjs" 0 >"$log" 2>&1 &
    SERVER_PID=$! MEASURE_PID=$!
    wait_for_url "$log"
    ;;
  nchan)
    local port
    port=$("$loadgen" --free-port)
    NGINX_DIR=$(mktemp -d /tmp/sse-bench-nchan.XXXXXX)
    sed -e "s|@DIR@|$NGINX_DIR|g" -e "s|@PORT@|$port|g" -e "s|@NCHAN_MODULE@|$nchan_module|g" \
      bench/nchan.conf.in >"$NGINX_DIR/nginx.conf"
    # The page chat serves at /, for the fairness probe. nginx's worker runs as nobody: it must
    # get through the mktemp directory (0700) to the file.
    mkdir "$NGINX_DIR/html"
    cp examples/chat/page.html "$NGINX_DIR/html/index.html"
    chmod 711 "$NGINX_DIR" && chmod 755 "$NGINX_DIR/html" && chmod 644 "$NGINX_DIR/html/index.html"
    taskset -c "$cpus" nginx -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" -e "$NGINX_DIR/error.log" >"$log" 2>&1 &
    SERVER_PID=$! MEASURE_PID=""
    for _ in $(seq 200); do
      MEASURE_PID=$(pgrep -P "$SERVER_PID" | head -1 || true) # the worker process
      if [ -n "$MEASURE_PID" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
      kill -0 "$SERVER_PID" 2>/dev/null || break
      MEASURE_PID=""
      sleep 0.05
    done
    if [ -z "$MEASURE_PID" ]; then
      echo "bench/run.sh: nginx did not start:" >&2
      cat "$log" "$NGINX_DIR/error.log" >&2 || true
      return 1
    fi
    BASE_URL=http://127.0.0.1:$port/
    ;;
  *)
    echo "bench/run.sh: unknown server '$name'" >&2
    return 1
    ;;
  esac
}

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 200); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  if [ -n "$NGINX_DIR" ]; then
    cp "$NGINX_DIR/error.log" "$results/logs/$current.nginx-error.log" 2>/dev/null || true
    rm -rf "$NGINX_DIR"
  fi
  SERVER_PID="" MEASURE_PID="" NGINX_DIR=""
}
trap stop_server EXIT

current=""
# measure LABEL SERVER THREADS CPUS -- LOADGEN_ARGS...: one server, one load-generator run.
measure() {
  local label=$1 server=$2 threads=$3 cpus=$4
  shift 5
  current=$label
  echo "== $label" >&2
  if ! start_server "$server" "$results/logs/$label.server.log" "$threads" "$cpus"; then
    stop_server
    return 0
  fi
  taskset -c 1 "$loadgen" --sub-url "${BASE_URL}listen" --pub-url "${BASE_URL}publish" \
    --server-pid "$MEASURE_PID" --label "$label" --json "$@" \
    >"$results/$label.json" 2>"$results/logs/$label.loadgen.log" ||
    echo "bench/run.sh: the load generator failed for $label (see $results/logs/$label.loadgen.log)" >&2
  stop_server
  sleep "$pause"
}

common=(--size 64 --duration "$duration" --warmup "$warmup" --window "$window")
# One publisher: its next POST goes when the previous one is answered, so the server never has
# two events at hand at once and cannot batch them.
single=(--size 64 --duration "$duration" --warmup "$warmup" --window 1)
# The fairness probe rides along the largest fan-outs: an unrelated GET / on the same server,
# one at a time on a keep-alive connection, in the same run as the deliveries it competes with.
probe_subs=${a_subs[-1]}
probe=(--probe-path / --probe-interval-ms "$probe_interval")
probe_at() { # N: sets probe_args to the probe's options at N subscribers, or to nothing
  probe_args=()
  if [ "$1" = "$probe_subs" ]; then probe_args=("${probe[@]}"); fi
}
t_start=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
busy_before=$(ps -eo pcpu=,comm= --sort=-pcpu | awk '$1 >= 20 { printf "%s%s (%s %% CPU)", sep, $2, $1; sep=", " }')

# One max-rate scenario (a: 8 publishers, s: 1) at subscriber count $2 on every server.
max_rate() {
  local scenario=$1 n=$2
  shift 2
  probe_at "$n"
  for s in "${servers[@]}"; do
    measure "$scenario-$n-$s" "$s" 1 0 -- --subs "$n" --rate max "$@" "${probe_args[@]}"
  done
}
for n in "${a_subs[@]}"; do
  wants a || break
  max_rate a "$n" "${common[@]}"
  if [ "$n" = "${a_subs[-1]}" ] && [[ " ${servers[*]} " == *" sse "* ]]; then
    measure "a-$n-sse-2threads" sse 2 0,1 -- --subs "$n" --rate max "${common[@]}"
  fi
done
for n in "${a_subs[@]}"; do
  wants s || break
  max_rate s "$n" "${single[@]}"
done
# Latency is the most sensitive figure on a shared machine: the servers take turns, several
# rounds, and each server's run with the median p99 stands for it (all p99s are reported).
b_rounds=${BENCH_B_ROUNDS:-$([ $quick = 1 ] && echo 1 || echo 3)}
wants b || b_rounds=0
for round in $(seq "$b_rounds"); do
  for s in "${servers[@]}"; do
    measure "b-$s-r$round" "$s" 1 0 -- --subs "$b_subs" --rate "$b_rate" "${common[@]}"
  done
done
for s in "${servers[@]}"; do
  node -e '
    const fs = require("fs");
    const [dir, s, n] = [process.argv[1], process.argv[2], Number(process.argv[3])];
    const runs = [];
    for (let i = 1; i <= n; ++i) {
      try { runs.push(JSON.parse(fs.readFileSync(`${dir}/b-${s}-r${i}.json`, "utf8"))); } catch {}
    }
    if (!runs.length) process.exit(0);
    runs.sort((a, b) => a.latency_us.p99 - b.latency_us.p99);
    const median = runs[Math.floor((runs.length - 1) / 2)];
    median.label = `b-${s}`;
    median.rounds_p99_us = runs.map((r) => r.latency_us.p99);
    fs.writeFileSync(`${dir}/b-${s}.json`, JSON.stringify(median));
  ' "$results" "$s" "$b_rounds"
done
for s in "${servers[@]}"; do
  wants c || break
  measure "c-$s" "$s" 1 0 -- --subs "$c_subs" --idle --settle 2 --duration "$([ $quick = 1 ] && echo 1 || echo 3)"
done
for s in "${servers[@]}"; do
  wants d || break
  measure "d-$s" "$s" 1 0 -- --subs "$d_subs" --stall-fraction "$d_stall" --rate max "${common[@]}"
done

if [ "${BENCH_MICRO:-1}" = 1 ]; then
  echo "== micro" >&2
  min_time=$([ $quick = 1 ] && echo 0.05 || echo 0.5)
  # The single-threaded benchmarks on core 0, as the servers; the concurrent ones (two
  # publishing threads, subscribe while another thread publishes) get both cores, nothing else
  # of this run being left on them.
  taskset -c 0 "$micro" --benchmark_format=json --benchmark_min_time="$min_time" \
    --benchmark_filter='^BM_(format|frame|broker)_' \
    >"$results/micro.json" 2>"$results/logs/micro.log" || echo "bench/run.sh: sse_micro failed" >&2
  SSE_MICRO_SAMPLE_SECONDS=$([ $quick = 1 ] && echo 0.2 || echo 2) \
    taskset -c 0,1 "$micro" --benchmark_format=json --benchmark_min_time="$min_time" \
    --benchmark_filter='^BM_(concurrent|subscribe)_' \
    >"$results/micro_mt.json" 2>"$results/logs/micro_mt.log" || echo "bench/run.sh: sse_micro (2 cores) failed" >&2
fi
t_end=$(date +%s)

# --- the report -------------------------------------------------------------------------------
json_list() { local IFS=,; echo "$*"; }
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- include examples 2>/dev/null || commit="$commit + uncommitted changes"
cat >"$results/meta.json" <<EOF
{
  "quick": $([ $quick = 1 ] && echo true || echo false),
  "date": $(json_str "$(date -u '+%Y-%m-%d %H:%M UTC')"),
  "nproc": $(nproc),
  "cpu_model": $(json_str "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"),
  "memory": $(json_str "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"),
  "kernel": $(json_str "$(uname -sr)"),
  "command": $(json_str "$command_line"),
  "wall_seconds": $((t_end - t_start)),
  "duration": $duration, "warmup": $warmup, "pause": $pause, "window": $window,
  "servers": [$(printf '"%s",' "${servers[@]}" | sed 's/,$//')],
  "scenarios": [$(printf '"%s",' "${scenarios[@]}" | sed 's/,$//')],
  "a_subs": [$(json_list "${a_subs[@]}")], "b_subs": $b_subs, "b_rate": $b_rate,
  "probe_subs": $probe_subs, "probe_path": "/", "probe_interval_ms": $probe_interval,
  "c_subs": $c_subs, "d_subs": $d_subs, "d_stall": $d_stall,
  "sse_commit": $(json_str "$commit"),
  "nginx_version": $(json_str "$(nginx -v 2>&1 | sed 's/^nginx version: //')"),
  "nchan_version": $(json_str "$(dpkg-query -W -f='${Version}' libnginx-mod-nchan)"),
  "node_version": $(json_str "$(node --version)"),
  "better_sse_version": $(json_str "$(node -p 'require("./bench/better-sse/node_modules/better-sse/package.json").version')"),
  "compiler": $(json_str "$("$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")" --version | head -1)"),
  "load_before": $(json_str "$load_before"),
  "busy_before": $(json_str "$busy_before")
}
EOF
node bench/report.mjs "$results" "$out"
echo "bench/run.sh: $((t_end - t_start)) s; raw results in $results" >&2
