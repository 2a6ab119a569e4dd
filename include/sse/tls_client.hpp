#pragma once

/// HTTPS for `sse::client`: TLS 1.2 and later over OpenSSL through Asio's SSL streams, the
/// peer verified against the system's trust store (or a CA file) with SNI and a host name
/// check. Part of the optional `sse::tls` CMake target.

#include <sse/client.hpp>
#include <sse/detail/client_transport.hpp>

#include <asio/ssl.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>

namespace sse::tls {

/// How a client speaks TLS.
struct client_options {
  /// Check the server's certificate chain and that it is for the URL's host. Turn off only
  /// for a test against a server whose certificate nothing can check.
  bool verify_peer = true;
  /// PEM file of the CA certificates to trust instead of the system's (a private CA, or a
  /// test's self-signed certificate). Empty: the system's trust store.
  std::string ca_file;
  /// Or a context set up by the application (client certificates, ciphers, its own trust);
  /// `verify_peer` then only adds the host name check, and `ca_file` is not read.
  std::shared_ptr<asio::ssl::context> context;
};

namespace detail {

class client_stream final : public sse::detail::client_transport {
public:
  client_stream(asio::any_io_executor const& ex, std::shared_ptr<asio::ssl::context> ctx,
                bool check_host)
      : ctx_(std::move(ctx)), stream_(ex, *ctx_), check_host_(check_host) {}

  void async_open(endpoints const& eps, std::string const& host, done_handler done) override {
    sse::detail::async_connect_each(stream_.lowest_layer(), eps, eps.begin(),
                                    [this, host, done](std::error_code ec) {
                                      if (ec)
                                        return done(ec);
                                      std::error_code ignored;
                                      stream_.lowest_layer().set_option(
                                          asio::ip::tcp::no_delay(true), ignored);
                                      handshake(host, done);
                                    });
  }
  void async_write(asio::const_buffer b, io_handler done) override {
    asio::async_write(stream_, b, std::move(done));
  }
  void async_read_some(asio::mutable_buffer b, io_handler done) override {
    stream_.async_read_some(b, [done](std::error_code ec, std::size_t n) {
      // A server that closes without close_notify ends the body as TCP's end would.
      if (ec == asio::ssl::error::stream_truncated)
        ec = asio::error::eof;
      done(ec, n);
    });
  }
  void close() noexcept override {
    std::error_code ignored;
    stream_.lowest_layer().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    stream_.lowest_layer().close(ignored);
  }

private:
  void handshake(std::string const& host, done_handler const& done) {
    std::error_code ec;
    asio::ip::make_address(host, ec);
    bool const is_ip = !ec;
    // SNI takes host names only (RFC 6066), never an address.
    if (!is_ip && SSL_set_tlsext_host_name(stream_.native_handle(), host.c_str()) != 1) {
      ERR_clear_error();
      return done(make_error_code(std::errc::invalid_argument));
    }
    if (check_host_)
      stream_.set_verify_callback(asio::ssl::host_name_verification(host));
    stream_.async_handshake(asio::ssl::stream_base::client, done);
  }

  std::shared_ptr<asio::ssl::context> ctx_;
  asio::ssl::stream<asio::ip::tcp::socket> stream_;
  bool check_host_;
};

} // namespace detail

/// Lets `c` open https URLs (and follow redirects to them). Call before `c.start()`.
/// @throws std::runtime_error naming `ca_file` when it cannot be read; std::logic_error after
///         `start()`.
inline void enable(sse::client& c, client_options o = {}) {
  auto& session = sse::detail::client_access::session(c, "tls::enable");
  std::shared_ptr<asio::ssl::context> ctx = o.context;
  if (!ctx) {
    ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    try {
      if (o.ca_file.empty())
        ctx->set_default_verify_paths();
      else
        ctx->load_verify_file(o.ca_file);
    } catch (std::system_error const& e) {
      throw std::runtime_error("sse::tls: cannot use the CA file '" + o.ca_file +
                               "': " + e.code().message());
    }
    ctx->set_verify_mode(o.verify_peer ? asio::ssl::verify_peer : asio::ssl::verify_none);
    SSL_CTX* native = ctx->native_handle();
    if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1)
      throw std::runtime_error("sse::tls: cannot require TLS 1.2 or later");
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    SSL_CTX_set_options(native, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    // HTTP/1.1 only: a server that speaks h2 too must not choose it for this client.
    static constexpr unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(native, alpn, sizeof alpn - 1);
  }
  bool const check_host = o.verify_peer;
  session.secure_transport = [ctx, check_host](asio::any_io_executor const& ex) {
    return std::make_shared<detail::client_stream>(ex, ctx, check_host);
  };
}

} // namespace sse::tls
