#!/usr/bin/env bash
# Builds the chat example and runs it (flags go to chat: --host, --port, --threads). Installs the Debian packages it needs when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
ensure_packages "${SSE_BUILD_PACKAGES[@]}"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DSSE_BUILD_TESTS=OFF >/dev/null
cmake --build build/release -j"$(nproc)" --target chat
exec build/release/examples/chat "$@"
