# Sourced by the other scripts: installs what is missing, from Debian's archive and npm only.

# ensure_packages PKG...: apt-get installs the Debian packages that are not installed yet.
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing Debian packages (a few minutes on a fresh machine): ${missing[*]}" >&2
  local sudo="" log
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "run as root, or install sudo, to install them" >&2; return 1; }
    sudo="sudo"
  fi
  log=$(mktemp)
  # apt's output goes to a log, shown only when it fails.
  if ! { $sudo apt-get update -qq &&
         DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
           "${missing[@]}"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "apt-get failed installing: ${missing[*]}" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
  echo "installed: ${missing[*]}" >&2
}

# ensure_node_modules DIR: npm ci in DIR when its node_modules is missing or older than the lock.
ensure_node_modules() {
  local dir=$1
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
    echo "installing npm packages in $dir (package-lock.json)" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) && touch "$dir/node_modules"
  fi
}

# ensure_node: Node.js and npm for the browser tests; Debian's when the machine has none.
ensure_node() {
  command -v node >/dev/null && command -v npm >/dev/null && return 0
  ensure_packages nodejs npm
}

SSE_BUILD_PACKAGES=(cmake make g++ libasio-dev nlohmann-json3-dev)
SSE_TEST_PACKAGES=(catch2 clang curl chromium nginx libbenchmark-dev python3-requests)
# promtool checks the examples' /metrics (Prometheus' own server is not run).
SSE_TEST_PACKAGES+=(prometheus)
# clang's sanitizer runtime is only a Recommends (of libclang-common-14-dev, under clang);
# python3 picks free ports in tests.
SSE_TEST_PACKAGES+=(libclang-rt-14-dev python3)
# The optional sse::redis component: built when hiredis is found, tested against a redis-server
# each test starts itself. Not build packages: the core builds without them.
SSE_TEST_PACKAGES+=(libhiredis-dev redis-server)
# The optional sse::tls and sse::http2 components (HTTPS, HTTP/2): built when OpenSSL and nghttp2
# are found; tests/h2_smoke.sh and bench/h2.sh make their certificates with openssl, and the
# smoke checks multiplexing with nghttp (nghttp2-client). Not build packages either.
SSE_TEST_PACKAGES+=(libssl-dev libnghttp2-dev openssl nghttp2-client)
# libFuzzer is in libclang-rt-14-dev too.
SSE_FUZZ_PACKAGES=(clang libclang-rt-14-dev)
