#pragma once

/// The byte stream under `sse::client`: plain TCP here, TLS from `<sse/tls_client.hpp>`, so
/// that the core never sees OpenSSL.

#include <sse/detail/close_on_exec.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>

#include <cstddef>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

namespace sse::detail {

/// One connection's byte stream. Completions run on the executor it was made with.
class client_transport {
public:
  using endpoints = asio::ip::tcp::resolver::results_type;
  using done_handler = std::function<void(std::error_code)>;
  using io_handler = std::function<void(std::error_code, std::size_t)>;

  virtual ~client_transport() = default;
  /// Connects to one of `eps`, then, over TLS, handshakes for `host`.
  virtual void async_open(endpoints const& eps, std::string const& host, done_handler done) = 0;
  /// Writes all of `b` (which must stay valid until `done`).
  virtual void async_write(asio::const_buffer b, io_handler done) = 0;
  virtual void async_read_some(asio::mutable_buffer b, io_handler done) = 0;
  /// Closes the socket; pending operations complete with an error.
  virtual void close() noexcept = 0;
};

/// Makes the transport of an https connection (installed by `sse::tls::enable(client&)`).
using client_transport_factory =
    std::function<std::shared_ptr<client_transport>(asio::any_io_executor const&)>;

/// Connects `s` to the first of `eps` that accepts, as `asio::async_connect` does, but opens
/// the socket itself for each try so that it is close-on-exec from the start: a program the
/// application spawns must not hold the connection open after the client closed it.
template <class Socket>
void async_connect_each(Socket& s, client_transport::endpoints eps,
                        client_transport::endpoints::const_iterator at,
                        client_transport::done_handler done, std::error_code last = {}) {
  for (; at != eps.end(); ++at) {
    std::error_code ec;
    s.close(ec);
    s.open(at->endpoint().protocol(), ec);
    if (!ec) {
      set_close_on_exec(s);
      break;
    }
    last = ec;
  }
  if (at == eps.end())
    return done(last ? last : make_error_code(asio::error::not_found));
  auto const ep = at->endpoint();
  s.async_connect(ep, [&s, eps = std::move(eps), at, done = std::move(done)](
                          std::error_code ec) mutable {
    if (!ec)
      return done(ec);
    // close() was called: that ends the whole connect, as it does asio::async_connect's.
    if (ec == asio::error::operation_aborted || !s.is_open())
      return done(make_error_code(asio::error::operation_aborted));
    async_connect_each(s, std::move(eps), std::next(at), std::move(done), ec);
  });
}

/// Plain TCP.
class tcp_transport final : public client_transport {
public:
  explicit tcp_transport(asio::any_io_executor const& ex) : socket_(ex) {}

  void async_open(endpoints const& eps, std::string const&, done_handler done) override {
    async_connect_each(socket_, eps, eps.begin(), [this, done](std::error_code ec) {
      if (!ec) {
        std::error_code ignored;
        socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
      }
      done(ec);
    });
  }
  void async_write(asio::const_buffer b, io_handler done) override {
    asio::async_write(socket_, b, std::move(done));
  }
  void async_read_some(asio::mutable_buffer b, io_handler done) override {
    socket_.async_read_some(b, std::move(done));
  }
  void close() noexcept override {
    std::error_code ignored;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

private:
  asio::ip::tcp::socket socket_;
};

} // namespace sse::detail
