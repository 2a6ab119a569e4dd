#!/usr/bin/env bash
# Builds the libFuzzer harnesses and fuzzes each for a bounded time; fails on any crash, leak
# or sanitizer report. Installs what it needs (clang and its fuzzer runtime).
#   SSE_FUZZ_SECONDS=60     seconds per harness (default 60)
#   SSE_FUZZ_BUILD_DIR=dir  build directory (default build/fuzz)
#   SSE_FUZZ_JOBS=n         build jobs (default: the number of cores)
#   ./tests/fuzz/run.sh [harness...]   only these (fuzz_http_parser, fuzz_format, fuzz_parser,
#                                      fuzz_http2)
# Each run starts from a fresh copy of tests/fuzz/corpus/<harness>, so the committed corpus is
# never modified; a crashing input is written to <build>/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/deps.sh
# fuzz_http2 needs the sse::http2 component: OpenSSL and nghttp2.
ensure_packages "${SSE_BUILD_PACKAGES[@]}" "${SSE_FUZZ_PACKAGES[@]}" libssl-dev libnghttp2-dev

seconds=${SSE_FUZZ_SECONDS:-60}
build=${SSE_FUZZ_BUILD_DIR:-build/fuzz}
harnesses=("$@")
[ ${#harnesses[@]} -eq 0 ] && harnesses=(fuzz_http_parser fuzz_format fuzz_parser fuzz_http2)

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DSSE_BUILD_FUZZ=ON -DSSE_BUILD_TESTS=OFF -DSSE_BUILD_EXAMPLES=OFF -DSSE_TLS=ON -DSSE_HTTP2=ON \
  -DSSE_WARNINGS_AS_ERRORS=ON >/dev/null
cmake --build "$build" -j"${SSE_FUZZ_JOBS:-$(nproc)}" --target "${harnesses[@]}"

# Any report is fatal, with a stack; leaks are checked at exit of each input (libFuzzer's
# -detect_leaks, on by default under ASan).
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

declare -A max_len=([fuzz_http_parser]=4096 [fuzz_format]=2048 [fuzz_parser]=4096 [fuzz_http2]=4096)
status=0
summary=()
mkdir -p "$build/artifacts"
for h in "${harnesses[@]}"; do
  corpus="$build/corpus/$h"
  log="$build/$h.log"
  rm -rf "$corpus" && mkdir -p "$corpus" && cp tests/fuzz/corpus/"$h"/* "$corpus"/
  echo "fuzzing $h for ${seconds} s (log: $log)"
  rc=0
  "$build/tests/fuzz/$h" -max_total_time="$seconds" -max_len="${max_len[$h]:-4096}" \
    -dict="tests/fuzz/$h.dict" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$h-" "$corpus" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  # A crash skips the final stats: take the last status line's count instead.
  [ -n "$runs" ] || runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  # A report that somehow did not stop the run still fails it.
  if [ "$rc" -eq 0 ] && grep -qE "ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:" "$log"; then
    rc=1
  fi
  if [ "$rc" -eq 0 ]; then
    summary+=("$h: ok, ${runs:-?} runs in ${seconds} s")
  else
    status=1
    summary+=("$h: FAILED (exit $rc) after ${runs:-?} runs; see $log and $build/artifacts/")
    grep -E "^fuzz_|ERROR:|runtime error:|SUMMARY:|Test unit written" "$log" | head -20 >&2 || true
  fi
done
printf '%s\n' "${summary[@]}"
exit $status
