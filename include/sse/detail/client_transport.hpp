#pragma once

/// The byte stream under `sse::client`: plain TCP here, TLS from `<sse/tls_client.hpp>`, so
/// that the core never sees OpenSSL.

#include <asio/any_io_executor.hpp>
#include <asio/buffer.hpp>
#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <system_error>

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

/// Plain TCP.
class tcp_transport final : public client_transport {
public:
  explicit tcp_transport(asio::any_io_executor const& ex) : socket_(ex) {}

  void async_open(endpoints const& eps, std::string const&, done_handler done) override {
    asio::async_connect(socket_, eps, [this, done](std::error_code ec, auto const&) {
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
