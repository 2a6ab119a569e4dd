#pragma once

/// An Asio HTTP/1.1 server that streams `text/event-stream` responses.

#include <sse/detail/connection.hpp>
#include <sse/server_options.hpp>
#include <sse/http.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace sse {

/// Serves routes over HTTP/1.1: ordinary responses with keep-alive and pipelining, and
/// long-lived event streams fed by a broker subscription or an `event_stream`.
///
/// Handlers run on the connection's I/O thread and must not block; a stream's producer may
/// live on any thread.
class server {
public:
  using handler = std::function<response(request&)>;

  explicit server(server_options options = {}) : options_(std::move(options)) {
    if (options_.threads == 0)
      throw std::invalid_argument("sse::server: threads must be at least 1");
    if (options_.heartbeat.count() <= 0 || options_.write_timeout.count() <= 0 ||
        options_.header_timeout.count() <= 0 || options_.body_timeout.count() <= 0 ||
        options_.idle_timeout.count() <= 0)
      throw std::invalid_argument("sse::server: timeouts must be positive");
  }
  server(server const&) = delete;
  server& operator=(server const&) = delete;
  ~server() { stop(); }

  /// Adds a route. `path` is exact, or has `{name}` segments (`/tasks/{id}/events`) read with
  /// `request::param`. Must be called before `start`.
  server& route(std::string method, std::string path, handler h) {
    if (started_)
      throw std::logic_error("sse::server::route: add routes before start()");
    if (path.empty() || path[0] != '/')
      throw std::invalid_argument("sse::server::route: path must start with '/'");
    router_.add(std::move(method), std::move(path), std::move(h));
    return *this;
  }

  /// Binds, listens and starts the I/O threads; returns at once.
  /// @throws std::system_error if the address cannot be bound.
  void start() {
    if (started_)
      throw std::logic_error("sse::server::start: already started");
    started_ = true;
    for (std::size_t i = 0; i < options_.threads; ++i)
      workers_.push_back(std::make_unique<detail::worker>(options_, router_, live_connections_));
    auto& io0 = workers_[0]->io;
    acceptor_ = std::make_unique<asio::ip::tcp::acceptor>(io0);
    asio::ip::tcp::endpoint ep(asio::ip::make_address(options_.host), options_.port);
    acceptor_->open(ep.protocol());
    acceptor_->set_option(asio::ip::tcp::acceptor::reuse_address(true));
    acceptor_->bind(ep);
    acceptor_->listen(options_.backlog);
    port_ = acceptor_->local_endpoint().port();
    accept_timer_ = std::make_unique<asio::steady_timer>(io0);
    do_accept();
    for (auto& w : workers_)
      w->start();
    for (auto& w : workers_)
      threads_.emplace_back([&io = w->io] { io.run(); });
  }

  /// Blocks until `stop()` is called (from another thread or a signal handler's executor).
  void wait() {
    std::unique_lock<std::mutex> lk(stop_mutex_);
    stop_cv_.wait(lk, [&] { return stopped_; });
  }

  /// Closes the acceptor, ends every stream after flushing what is queued (bounded by
  /// `stop_timeout`), closes other connections, joins the threads. Idempotent; any thread but
  /// the server's own.
  void stop() {
    {
      std::lock_guard<std::mutex> lk(stop_mutex_);
      if (!started_ || stopping_)
        return;
      stopping_ = true;
    }
    std::promise<void> closed;
    asio::post(workers_[0]->io, [&] {
      std::error_code ec;
      acceptor_->close(ec);
      accept_timer_->cancel();
      closed.set_value();
    });
    closed.get_future().wait();
    std::vector<std::future<void>> drained;
    for (auto& w : workers_)
      drained.push_back(w->shut_down());
    for (auto& f : drained)
      f.wait();
    for (auto& w : workers_)
      w->io.stop();
    for (auto& t : threads_)
      t.join();
    threads_.clear();
    {
      std::lock_guard<std::mutex> lk(stop_mutex_);
      stopped_ = true;
    }
    stop_cv_.notify_all();
  }

  /// The bound port (after `start`).
  std::uint16_t port() const noexcept { return port_; }
  /// Connections open now, on every thread.
  std::size_t connections() const noexcept { return live_connections_.load(); }
  server_options const& options() const noexcept { return options_; }

private:
  void do_accept() {
    auto& target = *workers_[next_worker_++ % workers_.size()];
    acceptor_->async_accept(target.io, [this, &target](std::error_code ec, asio::ip::tcp::socket s) {
      if (ec == asio::error::operation_aborted || !acceptor_->is_open())
        return;
      if (ec) {
        // Out of descriptors or similar: back off instead of spinning on accept.
        accept_timer_->expires_after(std::chrono::milliseconds(100));
        accept_timer_->async_wait([this](std::error_code tec) {
          if (!tec && acceptor_->is_open())
            do_accept();
        });
        return;
      }
      asio::post(target.io, [&target, s = std::move(s)]() mutable { target.adopt(std::move(s)); });
      do_accept();
    });
  }

  server_options options_;
  detail::router router_;
  std::vector<std::unique_ptr<detail::worker>> workers_;
  std::vector<std::thread> threads_;
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor_;
  std::unique_ptr<asio::steady_timer> accept_timer_;
  std::atomic<std::size_t> live_connections_{0};
  std::size_t next_worker_ = 0;
  std::uint16_t port_ = 0;
  bool started_ = false;
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  bool stopped_ = false;
};

} // namespace sse
