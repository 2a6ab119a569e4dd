#pragma once

/// HTTP/2 for `sse::server` (RFC 9113) on nghttp2: over TLS when ALPN chooses "h2" (with
/// `sse::tls::enable`), and in cleartext by prior knowledge ("h2c": a connection that opens
/// with the HTTP/2 preface), beside HTTP/1.1 on the same port. The optional `sse::http2` CMake
/// target, which brings `sse::tls` with it: browsers speak HTTP/2 only over TLS.
///
/// The same routes, handlers, requests and responses serve both protocols; `request::protocol()`
/// tells which. Every event stream is an HTTP/2 stream: a browser opens as many `EventSource`s
/// as it likes over one connection, past HTTP/1.1's six connections per host.

#include <sse/detail/http2_session.hpp>
#include <sse/http2_options.hpp>
#include <sse/server.hpp>
#include <sse/tls.hpp>

#include <memory>
#include <stdexcept>
#include <string_view>

namespace sse::http2 {

/// Makes `srv` speak HTTP/2 too: h2c by prior knowledge on a cleartext server; "h2" by ALPN
/// once `sse::tls::enable(srv, ...)` is called too, in either order. HTTP/1.1 is served as
/// before. Header limits are the server's (`max_header_bytes` is SETTINGS_MAX_HEADER_LIST_SIZE,
/// `max_headers`, `max_request_line` for `:path`, `max_body`); timeouts too.
/// @throws std::logic_error after `start()`.
inline void enable(server& srv, options o = {}) {
  if (o.max_concurrent_streams == 0 || o.reset_burst == 0 || o.control_burst == 0)
    throw std::invalid_argument("sse::http2: max_concurrent_streams and the bursts must be at least 1");
  if (o.initial_window_size > 0x7fffffffu)
    throw std::invalid_argument("sse::http2: initial_window_size is at most 2^31-1");
  auto& hooks = srv.protocols();
  hooks.h2c = [l = o](sse::detail::worker& w, asio::ip::tcp::socket&& s, std::string_view initial) {
    auto c = std::make_shared<sse::detail::h2_session<asio::ip::tcp::socket>>(w, std::move(s), l);
    w.link(c.get(), false);
    c->start(initial);
  };
  hooks.h2_over_tls = [l = o](sse::detail::worker& w, void* stream) {
    auto& tls = *static_cast<sse::detail::tls_stream*>(stream);
    auto c = std::make_shared<sse::detail::h2_session<sse::detail::tls_stream>>(w, std::move(tls), l);
    w.link(c.get(), false);
    c->start({});
  };
}

} // namespace sse::http2
