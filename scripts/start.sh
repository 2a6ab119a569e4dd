#!/usr/bin/env bash
# Builds the chat example and runs it (flags go to chat: --host, --port, --threads, ...; --help
# lists them). Installs the Debian packages it needs when missing.
#
# HTTPS (HTTP/2 and HTTP/1.1 by ALPN): pass a certificate and its key, e.g. a self-signed pair
# for local use, made once with
#   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
#     -keyout key.pem -out cert.pem -subj /CN=localhost \
#     -addext subjectAltName=DNS:localhost,IP:127.0.0.1
#   ./scripts/start.sh --tls-cert cert.pem --tls-key key.pem
# then open https://localhost:8080/ (the browser warns once about the self-signed certificate;
# curl wants --cacert cert.pem). Without them chat serves HTTP/1.1, and HTTP/2 in cleartext to
# clients that speak it by prior knowledge (curl --http2-prior-knowledge).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

usage_tls() {
  cat >&2 <<'EOF'
start.sh: --tls-cert and --tls-key need a PEM certificate and its key. A self-signed pair for
local use:
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -keyout key.pem -out cert.pem -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1
  ./scripts/start.sh --tls-cert cert.pem --tls-key key.pem
EOF
}

# With --tls-cert/--tls-key the HTTPS components must be built (they are optional otherwise).
tls=() tls_files=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --tls-cert | --tls-key)
      tls=(-DSSE_TLS=ON -DSSE_HTTP2=ON)
      tls_files+=("${args[i + 1]:-}") ;;
  esac
done
if [ ${#tls[@]} -gt 0 ]; then
  for f in "${tls_files[@]}"; do
    [ -n "$f" ] && [ -r "$f" ] || { echo "start.sh: cannot read '$f'" >&2; usage_tls; exit 2; }
  done
  [ ${#tls_files[@]} = 2 ] || { usage_tls; exit 2; }
fi

ensure_packages "${SSE_BUILD_PACKAGES[@]}"
[ ${#tls[@]} -eq 0 ] || ensure_packages libssl-dev libnghttp2-dev
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DSSE_BUILD_TESTS=OFF "${tls[@]}" >/dev/null
cmake --build build/release -j"$(nproc)" --target chat
exec build/release/examples/chat "$@"
