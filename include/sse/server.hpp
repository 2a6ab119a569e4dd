#pragma once

/// An Asio HTTP/1.1 server that streams `text/event-stream` responses.

#include <sse/detail/connection.hpp>
#include <sse/detail/router.hpp>
#include <sse/detail/worker.hpp>
#include <sse/server_options.hpp>
#include <sse/server_stats.hpp>
#include <sse/http.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#if __has_include(<sys/resource.h>)
#include <sys/resource.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
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
    for (auto* d : {&options_.header_timeout, &options_.body_timeout, &options_.idle_timeout,
                    &options_.write_timeout, &options_.heartbeat, &options_.stop_timeout,
                    &options_.retry, &options_.retry_jitter})
      *d = detail::clamp_wait(*d);
    if (options_.max_connections == 0)
      options_.max_connections = default_max_connections();
  }
  server(server const&) = delete;
  server& operator=(server const&) = delete;
  ~server() {
    stop();
    if (stopper_.joinable())
      stopper_.join();
  }

  /// What `max_connections` 0 stands for: the descriptor limit (RLIMIT_NOFILE, soft) less a
  /// reserve of a sixteenth, at least 64, for the application's files, the acceptor and the
  /// broker's own; 1024 where the limit cannot be read.
  static std::size_t default_max_connections() noexcept {
    std::size_t limit = 1024;
#if __has_include(<sys/resource.h>)
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
      limit = static_cast<std::size_t>(rl.rlim_cur);
    else if (rl.rlim_cur == RLIM_INFINITY)
      limit = 1u << 20;
#endif
    std::size_t const reserve = std::max<std::size_t>(64, limit / 16);
    return limit > 2 * reserve ? limit - reserve : std::max<std::size_t>(1, limit / 2);
  }

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
  /// @throws std::system_error if the address cannot be bound; the server is then as before
  ///         (destructible at once, or `start` may be tried again).
  void start() {
    std::lock_guard<std::mutex> lk(stop_mutex_);
    if (started_)
      throw std::logic_error("sse::server::start: already started");
    std::vector<std::unique_ptr<detail::worker>> workers;
    for (std::size_t i = 0; i < options_.threads; ++i)
      workers.push_back(std::make_unique<detail::worker>(options_, router_, live_connections_));
    auto& io0 = workers[0]->io;
    auto acceptor = std::make_unique<asio::ip::tcp::acceptor>(io0);
    asio::ip::tcp::endpoint ep(asio::ip::make_address(options_.host), options_.port);
    acceptor->open(ep.protocol());
    acceptor->set_option(asio::ip::tcp::acceptor::reuse_address(true));
    acceptor->bind(ep);
    acceptor->listen(options_.backlog);
    // Bound: from here on nothing throws but thread creation.
    port_ = acceptor->local_endpoint().port();
    workers_ = std::move(workers);
    acceptor_ = std::move(acceptor);
    accept_timer_ = std::make_unique<asio::steady_timer>(io0);
    do_accept();
    for (auto& w : workers_)
      w->start();
    for (auto& w : workers_)
      threads_.emplace_back([&w = *w] { run(w); });
    for (auto const& t : threads_)
      thread_ids_.push_back(t.get_id());
    started_ = true;
  }

  /// Blocks until the server has stopped (at once if it was never started).
  void wait() {
    std::unique_lock<std::mutex> lk(stop_mutex_);
    stop_cv_.wait(lk, [&] { return !started_ || stopped_; });
  }

  /// Stops in two phases: first every I/O thread refuses new requests (503) and the acceptor
  /// closes, so that once all have done so no handler runs any more; then every stream flushes
  /// what is queued and ends (bounded by `stop_timeout`), other connections close, and the
  /// threads are joined. Nothing a handler published before it answered is lost.
  ///
  /// Idempotent and safe from several threads at once: every caller returns once the server
  /// has stopped. From a handler (one of the server's own threads) use `request_stop()`.
  /// @throws std::logic_error when called on one of the server's threads.
  void stop() {
    {
      std::unique_lock<std::mutex> lk(stop_mutex_);
      if (!started_)
        return;
      if (std::find(thread_ids_.begin(), thread_ids_.end(), std::this_thread::get_id()) !=
          thread_ids_.end())
        throw std::logic_error("sse::server::stop: called on one of the server's threads, "
                               "which it would wait for; use request_stop()");
      if (stopping_) {
        stop_cv_.wait(lk, [&] { return stopped_; });
        return;
      }
      stopping_ = true;
    }
    std::vector<std::future<void>> phase;
    phase.push_back(post_and_wait(workers_[0]->io, [this] {
      std::error_code ec;
      acceptor_->close(ec);
      accept_timer_->cancel();
    }));
    for (auto& w : workers_)
      phase.push_back(w->refuse());
    for (auto& f : phase)
      f.wait();
    phase.clear();
    for (auto& w : workers_)
      phase.push_back(w->shut_down());
    for (auto& f : phase)
      f.wait();
    for (auto& w : workers_)
      w->io.stop();
    for (auto& t : threads_)
      t.join();
    {
      std::lock_guard<std::mutex> lk(stop_mutex_);
      threads_.clear();
      stopped_ = true;
    }
    stop_cv_.notify_all();
  }

  /// Asks for `stop()` without waiting for it: safe from a handler or any other thread.
  /// `wait()` returns once the stop is done.
  void request_stop() {
    std::lock_guard<std::mutex> lk(stop_mutex_);
    if (!started_ || stopping_ || stopper_.joinable())
      return;
    stopper_ = std::thread([this] { stop(); });
  }

  /// The bound port (after `start`).
  std::uint16_t port() const noexcept { return port_; }
  /// Connections open now, on every thread.
  std::size_t connections() const noexcept { return live_connections_.load(); }
  server_options const& options() const noexcept { return options_; }

  /// The counters, summed over the I/O threads (all zero but `connections` before `start`).
  /// Safe from any thread, a handler included; costs a lock and a read per thread, nothing on
  /// the connections' path.
  server_stats stats() const {
    server_stats st;
    st.connections = live_connections_.load(std::memory_order_relaxed);
    std::lock_guard<std::mutex> lk(stop_mutex_); // workers_ is set by start()
    for (auto const& w : workers_) {
      auto const& c = w->counters;
      st.bytes_written += c.bytes_written.get();
      st.connections_accepted += c.accepted.get();
      st.connections_rejected += c.rejected.get();
      st.streams_opened += c.streams_opened.get();
      st.streams += static_cast<std::size_t>(c.streams.get());
      for (std::size_t i = 0; i < st.requests.size(); ++i)
        st.requests[i] += c.responses[i].get();
    }
    return st;
  }

private:
  template <class F>
  static std::future<void> post_and_wait(asio::io_context& io, F f) {
    auto done = std::make_shared<std::promise<void>>();
    auto fut = done->get_future();
    asio::post(io, [done, f = std::move(f)]() mutable {
      f();
      done->set_value();
    });
    return fut;
  }

  /// Runs one I/O thread. An exception out of a completion handler must not end the process
  /// (or this thread's clients): report it and go on running.
  static void run(detail::worker& w) {
    for (;;) {
      try {
        w.io.run();
        return;
      } catch (std::exception const& e) {
        w.report(std::string("an exception escaped a completion handler: ") + e.what());
      } catch (...) {
        w.report("an exception not derived from std::exception escaped a completion handler");
      }
    }
  }

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
  mutable std::mutex stop_mutex_; ///< guards workers_, the flags below and the thread lists
  std::condition_variable stop_cv_;
  std::vector<std::thread::id> thread_ids_;
  std::thread stopper_; ///< runs stop() for request_stop()
  bool started_ = false;
  bool stopping_ = false;
  bool stopped_ = false;
};

} // namespace sse
