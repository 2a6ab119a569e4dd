#!/usr/bin/env bash
# HTTPS and HTTP/2 of the chat example, with real clients. A self-signed certificate for
# localhost and 127.0.0.1 (openssl req) in a temporary directory; the chat started twice on
# port 0, with --tls-cert/--tls-key (HTTPS: h2 and http/1.1 by ALPN) and without (HTTP/1.1,
# and h2c by prior knowledge). Checked:
#   - curl --http2 over TLS (the certificate verified, not -k): a stream gets what is POSTed,
#     HTTP/2 both ways; curl --http1.1 and curl --no-alpn over TLS: the same over HTTP/1.1;
#   - curl --http2-prior-knowledge (h2c): a stream, POSTs, the page, /metrics, a 400, a 404;
#     plain curl (HTTP/1.1) on the same port;
#   - nghttp: two streams, the page and /metrics as streams 1, 3, 5, 7 of ONE connection, over
#     TLS and h2c: the short ones end while the streams stay open, then one message POSTed
#     arrives on both streams;
#   - a missing or bad certificate or key: the example exits non-zero at once, saying which file;
#   - a TLS handshake that stalls (a connection that sends nothing, one that sends half a
#     ClientHello) is cut off by the server's default 10 s handshake timeout (the examples have
#     no flag for it). These two wait beside the other checks, so the test takes ~11 s.
#   tests/h2_smoke.sh build/examples/chat
set -euo pipefail
chat=$1
dir=$(mktemp -d)
pids=() server_pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "h2 smoke: FAIL: $*"; exit 1; }
# wait_for FILE PATTERN [TENTHS]: until grep -q PATTERN FILE (default 5 s).
wait_for() {
  local i
  for ((i = 0; i < ${3:-50}; i++)); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
elapsed_ms() { echo $((($(date +%s%N) - $1) / 1000000)); }

# A self-signed pair for localhost and 127.0.0.1, which curl then verifies (--cacert).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>"$dir/openssl.err" ||
  { cat "$dir/openssl.err"; fail "openssl req could not make a certificate"; }
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$dir/other_key.pem" 2>/dev/null
echo "not a PEM file" >"$dir/junk.pem"
tls=(--cacert "$dir/cert.pem")

# start NAME ARGS...: the chat on port 0; sets url (its banner's URL) and port.
start() {
  local name=$1
  shift
  "$chat" --host 127.0.0.1 --port 0 --threads 2 "$@" >"$dir/$name.out" 2>&1 &
  pids+=($!)
  server_pids+=($!)
  wait_for "$dir/$name.out" 'https\?://' || { cat "$dir/$name.out"; fail "$name: no URL printed"; }
  url=$(grep -o 'https\?://[^ ]*' "$dir/$name.out" | head -1)
  port=${url##*:}
  port=${port%/}
}

# stall NAME BYTES: a raw TCP connection to the TLS port that sends BYTES (printf format) and
# then nothing; in the background, it writes "RC MS" to $dir/NAME.stall once the server closes
# it, or after 15 s (RC 124).
stall() {
  local name=$1 bytes=$2
  (
    t0=$(date +%s%N)
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    # shellcheck disable=SC2059
    printf "$bytes" >&3
    rc=0
    timeout 15 cat <&3 >/dev/null 2>&1 || rc=$?
    echo "$rc $(elapsed_ms "$t0")" >"$dir/$name.stall"
  ) &
  pids+=($!)
}

# check_stream LABEL VERSION URL CURL_ARGS...: a stream opened by curl (with CURL_ARGS) is
# answered in HTTP/VERSION and gets a POST /publish and a POST /message (made with the same
# CURL_ARGS, also answered in HTTP/VERSION) while it is open.
check_stream() {
  local label=$1 version=$2 base=$3
  shift 3
  local user="u-$label" f="$dir/stream-$label" cpid reply
  curl -sN -m 20 "$@" -D "$f.head" "${base}listen?user=$user" >"$f.body" 2>"$f.err" &
  cpid=$!
  pids+=("$cpid")
  wait_for "$f.body" "\"joined\":\"$user\"" ||
    { cat "$f.head" "$f.body" "$f.err"; fail "$label: the stream did not open (no presence event)"; }
  head -1 "$f.head" | grep -q "^HTTP/$version 200" ||
    fail "$label: the stream was answered '$(head -1 "$f.head")', not HTTP/$version 200"
  reply=$(curl -s -m 5 "$@" -X POST --data-binary "published over $label" \
    -w '\n%{http_code} %{http_version}' "${base}publish") || fail "$label: POST /publish failed"
  [[ $reply == *'"receivers":'[1-9]* && $reply == *$'\n'"200 $version" ]] ||
    fail "$label: POST /publish answered: $reply (wanted 200 in HTTP/$version, a receiver)"
  reply=$(curl -s -m 5 "$@" -H 'Content-Type: application/json' \
    -d "{\"user\":\"$user\",\"text\":\"said over $label\"}" -w '%{http_code} %{http_version}' \
    "${base}message") || fail "$label: POST /message failed"
  [ "$reply" = "204 $version" ] || fail "$label: POST /message answered '$reply', not '204 $version'"
  wait_for "$f.body" "^data: published over $label\$" &&
    wait_for "$f.body" "\"text\":\"said over $label\"" ||
    { cat "$f.body"; fail "$label: the stream did not get what was POSTed"; }
  kill "$cpid" 2>/dev/null || true
  wait "$cpid" 2>/dev/null || true
  echo "ok: $label: a stream in HTTP/$version gets what is POSTed"
}

# check_multiplexed LABEL URL NGHTTP_ARGS...: nghttp asks for two streams, the page and
# /metrics at once; all four are streams 1, 3, 5, 7 of one connection, answered 200; the page
# and /metrics end while both streams stay open, and then a message POSTed arrives on both.
check_multiplexed() {
  local label=$1 base=$2
  shift 2
  local log="$dir/nghttp-$label.log" npid msg="over one connection ($label) $RANDOM" s summary
  nghttp -v --no-dep -t 10 "$@" "${base}listen?user=n1-$label" "${base}listen?user=n2-$label" \
    "$base" "${base}metrics" >"$log" 2>&1 &
  npid=$!
  pids+=("$npid")
  # Both streams answered (their first DATA, the presence list, comes once they are listening).
  wait_for "$log" 'recv DATA frame <[^>]*stream_id=1>' && wait_for "$log" 'recv DATA frame <[^>]*stream_id=3>' ||
    { cat "$log"; fail "$label: nghttp's two streams did not both open"; }
  curl -sf -m 5 "${tls[@]}" -X POST --data-binary "$msg" "${base}publish" >/dev/null ||
    fail "$label: POST /publish failed"
  for _ in $(seq 50); do
    [ "$(grep -cx "data: $msg" "$log")" -ge 2 ] && break
    sleep 0.1
  done
  kill "$npid" 2>/dev/null || true
  wait "$npid" 2>/dev/null || true
  # nghttp -v writes each DATA frame's payload just before the frame's "recv DATA frame" line,
  # and "; END_STREAM" on the line after it.
  summary=$(awk -v msg="data: $msg" '
    / Connected$/ { print "connected" }
    /send HEADERS frame/ && match($0, /stream_id=[0-9]+/) { print "opened " substr($0, RSTART + 10, RLENGTH - 10) }
    /recv \(stream_id=[0-9]+\) :status: / { s = $0; sub(/.*stream_id=/, "", s); sub(/\).*:status: /, " ", s); print "status " s }
    $0 == msg { pending = 1 }
    /recv DATA frame/ && match($0, /stream_id=[0-9]+/) {
      frame = substr($0, RSTART + 10, RLENGTH - 10)
      if (pending) print "message " frame
      pending = 0; after_frame = 1; next
    }
    after_frame && /; END_STREAM/ { print "ended " frame }
    { after_frame = 0 }' "$log")
  ok=1
  [ "$(grep -cx connected <<<"$summary")" = 1 ] || ok=0
  for s in 1 3 5 7; do
    grep -qx "opened $s" <<<"$summary" && grep -qx "status $s 200" <<<"$summary" || ok=0
  done
  for s in 5 7; do grep -qx "ended $s" <<<"$summary" || ok=0; done
  for s in 1 3; do
    grep -qx "message $s" <<<"$summary" && ! grep -qx "ended $s" <<<"$summary" || ok=0
  done
  [ "$(grep -c '^opened' <<<"$summary")" = 4 ] || ok=0
  [ $ok = 1 ] || { cat "$log"; echo "summary:"; echo "$summary"; fail "$label: nghttp did not multiplex as expected"; }
  echo "ok: $label: nghttp multiplexed streams 1, 3, 5, 7 over one connection"
}

# ---- HTTPS -----------------------------------------------------------------------------------
start https --tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem"
https_url=$url
grep -q '^sse chat: serving https://127.0.0.1:[0-9]*/$' "$dir/https.out" ||
  { cat "$dir/https.out"; fail "unexpected banner for HTTPS"; }
stall nothing ''
stall half_hello '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03'
stall_start=$(date +%s%N)

version=$(curl -s -m 5 "${tls[@]}" --http2 -o "$dir/page" -w '%{http_code} %{http_version}' "$https_url") ||
  fail "GET / over HTTPS failed"
[ "$version" = "200 2" ] || fail "GET / over HTTPS with --http2 answered '$version', not '200 2' (ALPN h2)"
grep -q EventSource "$dir/page" || fail "the page over h2 has no EventSource"
check_stream h2-tls 2 "$https_url" "${tls[@]}" --http2
check_stream h1-tls 1.1 "$https_url" "${tls[@]}" --http1.1
check_stream no-alpn 1.1 "$https_url" "${tls[@]}" --no-alpn
check_multiplexed tls "$https_url"

# ---- cleartext: HTTP/1.1 and h2c on one port -------------------------------------------------
start plain
plain_url=$url
check_stream h2c 2 "$plain_url" --http2-prior-knowledge
check_stream h1 1.1 "$plain_url"
h2c=(--http2-prior-knowledge -m 5 -s)
[ "$(curl "${h2c[@]}" -o "$dir/page" -w '%{http_code} %{http_version}' "$plain_url")" = "200 2" ] &&
  grep -q EventSource "$dir/page" || fail "h2c: GET / did not serve the page in HTTP/2"
[ "$(curl "${h2c[@]}" -o "$dir/metrics" -w '%{http_code} %{http_version}' "${plain_url}metrics")" = "200 2" ] &&
  grep -q '^sse_' "$dir/metrics" || fail "h2c: GET /metrics did not answer metrics in HTTP/2"
[ "$(curl "${h2c[@]}" -o /dev/null -w '%{http_code} %{http_version}' "${plain_url}listen?user=")" = "400 2" ] ||
  fail "h2c: a bad user= was not refused with 400"
[ "$(curl "${h2c[@]}" -o /dev/null -w '%{http_code} %{http_version}' "${plain_url}no-such-route")" = "404 2" ] ||
  fail "h2c: an unknown route was not 404"
echo "ok: h2c: the page, /metrics, a 400 and a 404"
check_multiplexed h2c "$plain_url"

# ---- a certificate or key that cannot be used --------------------------------------------------
bad_case() { # WHAT EXPECTED_MESSAGE_PART ARGS...
  local what=$1 want=$2 t0 rc ms
  shift 2
  t0=$(date +%s%N)
  rc=0
  timeout 5 "$chat" --host 127.0.0.1 --port 0 "$@" >"$dir/bad.out" 2>&1 || rc=$?
  ms=$(elapsed_ms "$t0")
  [ $rc != 0 ] && [ $rc != 124 ] || fail "$what: exit status $rc (wanted a failure, at once)"
  [ "$ms" -lt 2000 ] || fail "$what: took $ms ms to exit"
  ! grep -q serving "$dir/bad.out" || fail "$what: it served anyway"
  grep -qF -- "$want" "$dir/bad.out" || { cat "$dir/bad.out"; fail "$what: no message naming '$want'"; }
  echo "ok: $what: exit $rc in $ms ms: $(head -1 "$dir/bad.out")"
}
bad_case "missing certificate" "certificate chain '$dir/missing.pem'" \
  --tls-cert "$dir/missing.pem" --tls-key "$dir/key.pem"
bad_case "missing key" "private key '$dir/missing.pem'" --tls-cert "$dir/cert.pem" --tls-key "$dir/missing.pem"
bad_case "certificate not PEM" "certificate chain '$dir/junk.pem'" --tls-cert "$dir/junk.pem" --tls-key "$dir/key.pem"
bad_case "key not PEM" "private key '$dir/junk.pem'" --tls-cert "$dir/cert.pem" --tls-key "$dir/junk.pem"
bad_case "key of another certificate" "$dir/other_key.pem" --tls-cert "$dir/cert.pem" --tls-key "$dir/other_key.pem"
bad_case "--tls-cert without --tls-key" "--tls-cert and --tls-key go together" --tls-cert "$dir/cert.pem"

# ---- the stalled handshakes, opened first ------------------------------------------------------
for name in nothing half_hello; do
  wait_for "$dir/$name.stall" . 160 || fail "stalled handshake ($name): no result after 16 s"
  read -r rc ms <"$dir/$name.stall"
  [ "$rc" != 124 ] || fail "stalled handshake ($name): still open after 15 s"
  [ "$ms" -ge 9000 ] && [ "$ms" -lt 13000 ] ||
    fail "stalled handshake ($name): closed after $ms ms, not at the 10 s handshake timeout"
  echo "ok: stalled handshake ($name): closed by the server after $ms ms"
done
# The server kept serving while they stalled, and still does.
[ "$(curl -s -m 5 "${tls[@]}" --http2 -o /dev/null -w '%{http_code} %{http_version}' "$https_url")" = "200 2" ] ||
  fail "HTTPS stopped answering after the stalled handshakes"
echo "(stalled handshakes waited $(elapsed_ms "$stall_start") ms beside the other checks)"

# ---- both stop on SIGTERM ----------------------------------------------------------------------
for p in "${server_pids[@]}"; do
  kill -TERM "$p"
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
  ! kill -0 "$p" 2>/dev/null || fail "a chat did not stop within 5 s of SIGTERM"
  wait "$p" || fail "a chat exited with status $? on SIGTERM"
done
echo "h2 smoke: ok"
