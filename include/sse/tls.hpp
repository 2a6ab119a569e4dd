#pragma once

/// HTTPS for `sse::server`: TLS 1.2 and later over OpenSSL, with ALPN offering "h2" (when
/// `sse::http2` is enabled too) and "http/1.1". The optional `sse::tls` CMake target.

#include <sse/detail/tls_handshake.hpp>
#include <sse/server.hpp>

#include <asio/ssl.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>

namespace sse::tls {

/// How the server speaks TLS.
struct options {
  /// PEM files: the certificate followed by its intermediates, and its private key. Read by
  /// `server::start()`, which throws if either cannot be used.
  std::string cert_chain_file;
  std::string private_key_file;
  /// Or a context the application set up itself (certificates from memory, ciphers, client
  /// certificates); the files are then not read. Its ALPN selection is set by the server.
  std::shared_ptr<asio::ssl::context> context;
  /// A handshake not done within this is cut off, like a slow request head.
  std::chrono::milliseconds handshake_timeout{10000};
  /// Let OpenSSL free a connection's record buffers while it is idle
  /// (SSL_MODE_RELEASE_BUFFERS): most of an idle connection's memory.
  bool release_buffers = true;
};

namespace detail {

inline std::string openssl_reason(std::system_error const& e) {
  std::string r = e.code().message();
  return r.empty() ? e.what() : r;
}

/// What a server's TLS needs at run time: its context, and whether ALPN may choose "h2".
struct layer {
  options opts;
  std::shared_ptr<asio::ssl::context> ctx;
  bool h2 = false;

  static int select_alpn(SSL*, unsigned char const** out, unsigned char* outlen,
                         unsigned char const* in, unsigned int inlen, void* arg) {
    auto const& self = *static_cast<layer const*>(arg);
    static constexpr unsigned char with_h2[] = "\x02h2\x08http/1.1";
    static constexpr unsigned char only_h1[] = "\x08http/1.1";
    unsigned char const* ours = self.h2 ? with_h2 : only_h1;
    unsigned int const n = self.h2 ? sizeof with_h2 - 1 : sizeof only_h1 - 1;
    unsigned char* chosen = nullptr;
    // Our order wins: h2 whenever the client offers it.
    if (SSL_select_next_proto(&chosen, outlen, ours, n, in, inlen) != OPENSSL_NPN_NEGOTIATED)
      return SSL_TLSEXT_ERR_NOACK; // nothing in common: go on without ALPN, as HTTP/1.1
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
  }

  void prepare(bool with_h2) {
    h2 = with_h2;
    if (opts.context) {
      ctx = opts.context;
    } else {
      if (opts.cert_chain_file.empty() || opts.private_key_file.empty())
        throw std::invalid_argument(
            "sse::tls: give cert_chain_file and private_key_file, or a context");
      auto c = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
      try {
        c->use_certificate_chain_file(opts.cert_chain_file);
      } catch (std::system_error const& e) {
        throw std::runtime_error("sse::tls: cannot use the certificate chain '" +
                                 opts.cert_chain_file + "': " + openssl_reason(e));
      }
      try {
        c->use_private_key_file(opts.private_key_file, asio::ssl::context::pem);
      } catch (std::system_error const& e) {
        throw std::runtime_error("sse::tls: cannot use the private key '" +
                                 opts.private_key_file + "': " + openssl_reason(e));
      }
      if (SSL_CTX_check_private_key(c->native_handle()) != 1) {
        ERR_clear_error();
        throw std::runtime_error("sse::tls: the private key '" + opts.private_key_file +
                                 "' does not match the certificate '" + opts.cert_chain_file +
                                 "'");
      }
      ctx = std::move(c);
    }
    SSL_CTX* native = ctx->native_handle();
    if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1)
      throw std::runtime_error("sse::tls: cannot require TLS 1.2 or later");
    SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (opts.release_buffers)
      SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_select_cb(native, &layer::select_alpn, this);
  }
};

} // namespace detail

/// Makes `srv` speak HTTPS only (every connection starts with a TLS handshake), with HTTP/2
/// chosen by ALPN when `sse::http2::enable(srv)` is called too, in either order. Call before
/// `srv.start()`, which loads the certificate and key.
/// @throws std::logic_error after `start()`, or when called twice.
inline void enable(server& srv, options o) {
  if (o.handshake_timeout.count() <= 0)
    throw std::invalid_argument("sse::tls: handshake_timeout must be positive");
  auto& hooks = srv.protocols();
  if (hooks.accept)
    throw std::logic_error("sse::tls::enable: TLS is already enabled on this server");
  auto l = std::make_shared<detail::layer>();
  l->opts = std::move(o);
  l->opts.handshake_timeout = sse::detail::clamp_wait(l->opts.handshake_timeout);
  hooks.prepare.push_back([l, &hooks] { l->prepare(static_cast<bool>(hooks.h2_over_tls)); });
  hooks.accept = [l](sse::detail::worker& w, asio::ip::tcp::socket&& s) {
    sse::detail::tls_stream stream(std::move(s), *l->ctx);
    auto h = std::make_shared<sse::detail::tls_handshake>(w, std::move(stream),
                                                          l->opts.handshake_timeout);
    w.link(h.get());
    h->start();
  };
}

} // namespace sse::tls
