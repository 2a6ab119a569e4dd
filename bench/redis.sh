#!/usr/bin/env bash
# Scale-out through Redis (issue #9): the chat example in one process (no --redis), in one
# process on Redis, and as two processes on one Redis, measured in one run; writes the section
# "Scale-out through Redis" of docs/benchmarks.md (the rest of that file is bench/run.sh's).
#
#   bench/redis.sh           the whole run (about 6 minutes here)
#   bench/redis.sh --quick   smoke run: tiny counts, 1 s each; the report goes under build/bench/results
#   bench/redis.sh --quick --chat PATH --loadgen PATH
#                            the same with binaries already built (ctest's bench_redis_smoke): no
#                            install, no build; exit 77 when redis-server is missing
#
# Its own redis-server (free port, temporary directory, no persistence), the chat processes and
# the chat processes pinned to core 0, the load generator and Redis to core 1 (BENCH_REDIS_CPUS). Per setup: (b) 1,000 subscribers (split
# over the nodes) at 50 events/s, several rounds taking turns, the median p99 reported; (a) the
# same subscribers, publishing as fast as accepted with BENCH_WINDOW POSTs outstanding; (t) one
# subscriber per node, BENCH_T_WINDOW POSTs outstanding: what Redis itself accepts. Redis
# commands per event from INFO commandstats (reset before each run).
#
# Environment:
#   BENCH_DURATION=10   measured seconds per run       BENCH_WARMUP=2    warm-up seconds
#   BENCH_PAUSE=2       seconds between runs           BENCH_WINDOW=8    POSTs outstanding in (a)
#   BENCH_T_WINDOW=64   POSTs outstanding in (t)       BENCH_B_ROUNDS=5  rounds of (b)
#   BENCH_BUILD_DIR=build/bench                        BENCH_OUT=docs/benchmarks.md
#   BENCH_RESULTS=DIR   where the raw JSON goes (default under the build directory)
#   BENCH_REDIS_CPUS=1  Redis' core (0: beside the chat processes)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
command_line="bench/redis.sh${*:+ $*}"
quick=0 chat="" loadgen=""
while [ $# -gt 0 ]; do
  case $1 in
  --quick) quick=1 ;;
  --chat) chat=${2:?--chat needs a path}; shift ;;
  --loadgen) loadgen=${2:?--loadgen needs a path}; shift ;;
  -h | --help)
    sed -n "2,24p" "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "bench/redis.sh: unknown argument '$1' (try --help)" >&2
    exit 2
    ;;
  esac
  shift
done

build=${BENCH_BUILD_DIR:-build/bench}
if [ -n "$chat$loadgen" ]; then
  [ -n "$chat" ] && [ -n "$loadgen" ] || { echo "bench/redis.sh: give both --chat and --loadgen" >&2; exit 2; }
  for p in redis-server redis-cli node taskset; do
    if ! command -v "$p" >/dev/null; then
      echo "SKIPPED: $p not found (Debian packages: redis-server, nodejs, util-linux)"
      [ -n "${SSE_CI:-}" ] && { echo "SSE_CI is set: failing instead of skipping"; exit 1; }
      exit 77
    fi
  done
else
  source scripts/deps.sh
  ensure_packages "${SSE_BUILD_PACKAGES[@]}" libhiredis-dev redis-server util-linux procps
  ensure_node
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSSE_BUILD_BENCH=ON -DSSE_BUILD_TESTS=OFF -DSSE_REDIS=ON >/dev/null
  cmake --build "$build" -j"$(nproc)" --target chat sse_loadgen
  chat=$root/$build/examples/chat
  loadgen=$root/$build/bench/sse_loadgen
fi
cpus=$(nproc)
server_cpus=0 loadgen_cpus=1
[ "$cpus" -lt 2 ] && loadgen_cpus=0 # one core: everything shares it
# Redis runs beside the chat processes in no real deployment: by default it gets the load
# generator's core, so the chat processes have core 0 to themselves as in the in-process row.
redis_cpus=${BENCH_REDIS_CPUS:-$loadgen_cpus}

window=${BENCH_WINDOW:-8}
t_window=${BENCH_T_WINDOW:-64}
pause=${BENCH_PAUSE:-2}
if [ $quick = 1 ]; then
  duration=${BENCH_DURATION:-1} warmup=${BENCH_WARMUP:-0.3} pause=${BENCH_PAUSE:-0.2}
  subs=20 settle=0.2 b_rounds=${BENCH_B_ROUNDS:-1}
else
  duration=${BENCH_DURATION:-10} warmup=${BENCH_WARMUP:-2}
  subs=1000 settle=1 b_rounds=${BENCH_B_ROUNDS:-5}
fi
b_rate=50
stamp=$(date +%Y%m%d-%H%M%S)
if [ -n "${BENCH_RESULTS:-}" ]; then
  results=$BENCH_RESULTS
else
  results=$root/$build/results/redis-$stamp
  [ $quick = 1 ] && results=$root/$build/results/redis-quick-$stamp
fi
mkdir -p "$results/logs"
if [ $quick = 1 ]; then out=${BENCH_OUT:-$results/benchmarks.md}; else out=${BENCH_OUT:-docs/benchmarks.md}; fi

# --- Redis ------------------------------------------------------------------------------------
redis_dir=$(mktemp -d /tmp/sse-bench-redis.XXXXXX)
redis_pid="" redis_port=""
start_redis() {
  for _ in 1 2 3 4 5; do # the port may be taken between --free-port and redis' bind
    redis_port=$("$loadgen" --free-port)
    taskset -c "$redis_cpus" redis-server --bind 127.0.0.1 --port "$redis_port" --save "" \
      --appendonly no --dir "$redis_dir" --logfile "$redis_dir/redis.log" --daemonize no &
    redis_pid=$!
    for _ in $(seq 100); do
      redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && return 0
      kill -0 "$redis_pid" 2>/dev/null || break
      sleep 0.05
    done
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  done
  echo "bench/redis.sh: redis-server did not start:" >&2
  cat "$redis_dir/redis.log" >&2 || true
  return 1
}
rcli() { redis-cli -p "$redis_port" "$@"; }

# --- chat processes ---------------------------------------------------------------------------
node_pids=() node_urls=()
start_node() { # LOG [--redis HOST:PORT]
  local log=$1
  shift
  taskset -c "$server_cpus" "$chat" --host 127.0.0.1 --port 0 --threads 1 "$@" >"$log" 2>&1 &
  local pid=$! url=""
  for _ in $(seq 200); do
    url=$(grep -o 'http://[^ ]*/' "$log" 2>/dev/null | head -1 || true)
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$url" ]; then
    echo "bench/redis.sh: chat did not start:" >&2
    cat "$log" >&2
    return 1
  fi
  node_pids+=("$pid")
  node_urls+=("$url")
}

stop_nodes() {
  local pid
  for pid in "${node_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${node_pids[@]}"; do
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  node_pids=() node_urls=()
}

cleanup() {
  stop_nodes
  if [ -n "$redis_pid" ]; then
    kill -TERM "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  rm -rf "$redis_dir"
}
trap cleanup EXIT

# measure LABEL SETUP -- LOADGEN_ARGS...: SETUP is inproc (one chat, no --redis), redis1 (one
# chat on Redis) or redis2 (two chats on Redis; subscribers and publisher connections alternate).
measure() {
  local label=$1 setup=$2
  shift 3
  echo "== $label" >&2
  local nodes=1 redis_args=() pids=()
  [ "$setup" = redis2 ] && nodes=2
  if [ "$setup" != inproc ]; then
    rcli flushall >/dev/null
    rcli config resetstat >/dev/null
    redis_args=(--redis "127.0.0.1:$redis_port")
  fi
  for n in $(seq "$nodes"); do
    start_node "$results/logs/$label.node$n.log" "${redis_args[@]}" || { stop_nodes; return 0; }
  done
  local urls=() pid url
  # A topic of its own: the chat's own topic also carries its presence lists.
  for url in "${node_urls[@]}"; do
    urls+=(--sub-url "${url}listen?topic=bench" --pub-url "${url}publish?topic=bench")
  done
  for pid in "${node_pids[@]}"; do pids+=(--server-pid "$pid"); done
  [ "$setup" != inproc ] && pids+=(--server-pid "$redis_pid")
  taskset -c "$loadgen_cpus" "$loadgen" "${urls[@]}" "${pids[@]}" --label "$label" --json --settle "$settle" "$@" \
    >"$results/$label.json" 2>"$results/logs/$label.loadgen.log" ||
    echo "bench/redis.sh: the load generator failed for $label (see $results/logs/$label.loadgen.log)" >&2
  if [ "$setup" != inproc ]; then
    rcli info commandstats >"$results/$label.commandstats.txt" || true
    rcli info cpu >>"$results/$label.commandstats.txt" || true
  fi
  stop_nodes
  sleep "$pause"
}

start_redis
setups=(inproc redis1 redis2)
common=(--size 64 --duration "$duration" --warmup "$warmup")
t_start=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# (b) first: latency is the figure most sensitive to a shared machine, so the setups take turns.
for round in $(seq "$b_rounds"); do
  for s in "${setups[@]}"; do
    measure "b-$s-r$round" "$s" -- --subs "$subs" --rate "$b_rate" --window "$window" "${common[@]}"
  done
done
for s in "${setups[@]}"; do
  measure "a-$s" "$s" -- --subs "$subs" --rate max --window "$window" "${common[@]}"
done
for s in "${setups[@]}"; do
  n=1
  [ "$s" = redis2 ] && n=2
  measure "t-$s" "$s" -- --subs "$n" --rate max --window "$t_window" "${common[@]}"
done
t_end=$(date +%s)

json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- include examples bench 2>/dev/null || commit="$commit + uncommitted changes"
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
  "duration": $duration, "warmup": $warmup, "pause": $pause, "window": $window, "t_window": $t_window,
  "subs": $subs, "b_rate": $b_rate, "b_rounds": $b_rounds,
  "server_cpus": "$server_cpus", "loadgen_cpus": "$loadgen_cpus", "redis_cpus": "$redis_cpus",
  "sse_commit": $(json_str "$commit"),
  "redis_version": $(json_str "$(redis-server --version | head -1)"),
  "compiler": $(json_str "$( (c=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null); [ -n "$c" ] && "$c" --version | head -1) || echo unknown)"),
  "load_before": $(json_str "$load_before")
}
EOF
node bench/redis_report.mjs "$results" "$out" $([ $quick = 1 ] && echo --check)
echo "bench/redis.sh: $((t_end - t_start)) s; raw results in $results" >&2
