#pragma once

// The TLS handshake of one accepted connection, under the worker's deadlines; then the
// connection goes to HTTP/1.1 or, when ALPN chose "h2", to HTTP/2.

#include <sse/detail/connection.hpp>
#include <sse/detail/worker.hpp>

#include <asio/ip/tcp.hpp>
#include <asio/ssl.hpp>

#include <openssl/ssl.h>

#include <chrono>
#include <memory>
#include <string_view>

namespace sse::detail {

using tls_stream = asio::ssl::stream<asio::ip::tcp::socket>;

/// The protocol ALPN chose, empty if the client offered none.
inline std::string_view alpn_selected(tls_stream& s) noexcept {
  unsigned char const* p = nullptr;
  unsigned int n = 0;
  SSL_get0_alpn_selected(s.native_handle(), &p, &n);
  return p ? std::string_view(reinterpret_cast<char const*>(p), n) : std::string_view();
}

/// A connection during its handshake: in the worker's list, so that the sweep cuts off one
/// that stalls and a stop closes it.
class tls_handshake final : public connection_base {
public:
  tls_handshake(worker& w, tls_stream s, std::chrono::milliseconds timeout)
      : w_(w), stream_(std::move(s)), deadline_(clock::now() + timeout) {}

  void start() {
    stream_.async_handshake(asio::ssl::stream_base::server,
                            [self = std::static_pointer_cast<tls_handshake>(shared_from_this())](
                                std::error_code ec) { self->on_handshake(ec); });
  }

  void on_ready() override {}
  void on_sweep(clock::time_point now) override {
    if (now >= deadline_ || (w_.stopping && now >= w_.stop_deadline))
      close();
  }
  void begin_shutdown() override { close(); } // nothing was asked yet
  bool drain_at(clock::time_point) override { return false; }

private:
  void on_handshake(std::error_code ec) {
    if (done_)
      return;
    if (ec || w_.stopping) { // not TLS, a certificate the client refused, or too late
      close();
      return;
    }
    done_ = true;
    // The next connection is linked before this one leaves: the worker is never seen empty.
    if (alpn_selected(stream_) == "h2" && w_.hooks.h2_over_tls) {
      w_.hooks.h2_over_tls(w_, &stream_);
    } else {
      auto c = std::make_shared<basic_connection<tls_stream>>(w_, std::move(stream_));
      w_.link(c.get(), false);
      c->start();
    }
    w_.unlink(this);
  }

  void close() {
    if (done_)
      return;
    done_ = true;
    std::error_code ec;
    stream_.next_layer().close(ec);
    w_.unlink(this);
  }

  worker& w_;
  tls_stream stream_;
  clock::time_point deadline_;
  bool done_ = false;
};

} // namespace sse::detail
