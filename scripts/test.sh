#!/usr/bin/env bash
# Builds sse and runs every test (unit, integration, package, examples, browser).
# Installs the Debian packages it needs when they are missing (ctest then installs the npm ones).
#   CXX=clang++           compiler (default g++)
#   SSE_CXX_STANDARD=20   C++ standard (default 17)
#   SSE_SANITIZE=thread   or address,undefined
#   SSE_BUILD_DIR=dir     build directory (default build/test)
#   SSE_CTEST_EXCLUDE=re  tests to leave out (ctest -E)
#   SSE_BUILD_BENCH=OFF   build no benchmark tools (and so run no benchmark smokes)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
ensure_packages "${SSE_BUILD_PACKAGES[@]}" "${SSE_TEST_PACKAGES[@]}"
ensure_node

build=${SSE_BUILD_DIR:-build/test}
flags=""
if [ -n "${SSE_SANITIZE:-}" ]; then
  flags="-fsanitize=${SSE_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all"
  # libstdc++'s error categories are defined in an anonymous namespace of the shared library,
  # so UBSan's vptr check cannot see their type and reports any virtual call on them.
  [[ $SSE_SANITIZE == *undefined* ]] && flags="$flags -fno-sanitize=vptr"
fi
# Under CI the optional components must build (SSE_REDIS, SSE_TLS, SSE_HTTP2=ON): a missing
# hiredis, OpenSSL or nghttp2 fails, never skips.
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  ${SSE_CI:+-DSSE_REDIS=ON -DSSE_TLS=ON -DSSE_HTTP2=ON} \
  -DCMAKE_CXX_COMPILER="${CXX:-g++}" -DCMAKE_CXX_STANDARD="${SSE_CXX_STANDARD:-17}" \
  -DCMAKE_CXX_FLAGS="$flags" -DSSE_WARNINGS_AS_ERRORS=ON -DSSE_BUILD_BENCH="${SSE_BUILD_BENCH:-ON}" >/dev/null
cmake --build "$build" -j"$(nproc)"
# SSE_CTEST_EXCLUDE=REGEX leaves those tests out (.ci/run's sanitizer stages: the browser and
# benchmark smokes, which ran in the plain stages).
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" ${SSE_CTEST_EXCLUDE:+-E "$SSE_CTEST_EXCLUDE"}
