#pragma once

/// An Asio HTTP server that streams `text/event-stream` responses: HTTP/1.1 in the core,
/// HTTPS and HTTP/2 with the optional `sse::tls` and `sse::http2` components.

#include <sse/detail/close_on_exec.hpp>
#include <sse/detail/connection.hpp>
#include <sse/detail/router.hpp>
#include <sse/detail/worker.hpp>
#include <sse/server_options.hpp>
#include <sse/server_stats.hpp>
#include <sse/http.hpp>
#include <sse/responder.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

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
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace sse {

/// Serves routes over HTTP/1.1: ordinary responses with keep-alive and pipelining, and
/// long-lived event streams fed by a broker subscription or an `event_stream`.
///
/// By default the server runs `threads` I/O threads of its own, each with its own io_context.
/// Given the application's io_context instead, it runs there, on the application's threads, as
/// `threads` strands (connections spread over them): the application calls `io.run()`.
///
/// Handlers run on the connection's I/O thread (or strand) and must not block; a stream's
/// producer may live on any thread.
class server {
public:
  /// A synchronous handler: runs on the connection's I/O thread, must not block, answers by
  /// returning.
  using handler = std::function<response(request&)>;
  /// An asynchronous handler: returns at once and answers later, from any thread, through the
  /// responder (after a database or auth call, for example).
  using async_handler = std::function<void(request&, responder)>;

  /// A server with I/O threads of its own (`options.threads`), started by `start()`.
  explicit server(server_options options = {}) : server(nullptr, std::move(options)) {}

  /// A server on the application's `io`: `start()` binds and queues its work there, and the
  /// application's threads run it. `io` must outlive the server.
  explicit server(asio::io_context& io, server_options options = {})
      : server(&io, std::move(options)) {}

private:
  server(asio::io_context* user_io, server_options options)
      : options_(std::move(options)), user_io_(user_io) {
    if (options_.threads == 0)
      throw std::invalid_argument("sse::server: threads must be at least 1");
    if (options_.write_slice == 0)
      throw std::invalid_argument("sse::server: write_slice must be at least 1");
    if (options_.heartbeat.count() <= 0 || options_.write_timeout.count() <= 0 ||
        options_.header_timeout.count() <= 0 || options_.body_timeout.count() <= 0 ||
        options_.idle_timeout.count() <= 0 || options_.handler_timeout.count() <= 0)
      throw std::invalid_argument("sse::server: timeouts must be positive");
    for (auto* d : {&options_.header_timeout, &options_.body_timeout, &options_.idle_timeout,
                    &options_.write_timeout, &options_.heartbeat, &options_.stop_timeout,
                    &options_.handler_timeout,
                    &options_.retry, &options_.retry_jitter})
      *d = detail::clamp_wait(*d);
    if (options_.max_connections == 0)
      options_.max_connections = default_max_connections();
  }

public:
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
  /// `request::param`. `h` is either synchronous, `response(request&)`, or asynchronous,
  /// `void(request&, responder)` (see `responder`). Must be called before `start`.
  template <class Handler>
  server& route(std::string method, std::string path, Handler h) {
    if (started_)
      throw std::logic_error("sse::server::route: add routes before start()");
    if (path.empty() || path[0] != '/')
      throw std::invalid_argument("sse::server::route: path must start with '/'");
    detail::router::handler rh;
    if constexpr (std::is_invocable_r_v<response, Handler&, request&>) {
      rh.sync = std::move(h);
    } else {
      static_assert(std::is_invocable_v<Handler&, request&, responder>,
                    "sse::server::route: a handler is response(sse::request&) or "
                    "void(sse::request&, sse::responder)");
      rh.async = std::move(h);
    }
    if (!rh.sync && !rh.async)
      throw std::invalid_argument("sse::server::route: empty handler");
    router_.add(std::move(method), std::move(path), std::move(rh));
    return *this;
  }

  /// Adds a hook that runs before routing, for every request, in the order added: for
  /// authentication, logging, rate limits. It answers on its own by returning a response (401,
  /// 403, 429, ...) or lets the request through with nullopt, having attached what it learned
  /// (`request::set_attribute`) for the handler. It runs on the I/O thread and must not block;
  /// throw `http_error` to answer with a status. Must be called before `start`.
  server& before(std::function<std::optional<response>(request&)> hook) {
    if (started_)
      throw std::logic_error("sse::server::before: add hooks before start()");
    if (!hook)
      throw std::invalid_argument("sse::server::before: empty hook");
    router_.add_hook(std::move(hook));
    return *this;
  }

  /// Where the optional components plug in (`sse::tls::enable`, `sse::http2::enable`); not
  /// for applications.
  /// @throws std::logic_error after `start`.
  detail::protocol_hooks& protocols() {
    if (started_)
      throw std::logic_error("sse::server: enable protocols before start()");
    return hooks_;
  }

  /// Binds, listens and starts the I/O threads; returns at once.
  /// @throws std::system_error if the address cannot be bound, or what a component's setup
  ///         throws (`sse::tls`: a certificate or key that cannot be used); the server is then as before
  ///         (destructible at once, or `start` may be tried again).
  void start() {
    std::lock_guard<std::mutex> lk(stop_mutex_);
    if (started_)
      throw std::logic_error("sse::server::start: already started");
    for (auto const& prepare : hooks_.prepare) // certificates and keys: fail before binding
      prepare();
    std::vector<std::unique_ptr<asio::io_context>> own_io;
    std::vector<std::unique_ptr<detail::worker>> workers;
    for (std::size_t i = 0; i < options_.threads; ++i) {
      asio::any_io_executor ex;
      if (user_io_) {
        ex = asio::make_strand(*user_io_);
      } else {
        own_io.push_back(std::make_unique<asio::io_context>(1));
        ex = own_io.back()->get_executor();
      }
      workers.push_back(
          std::make_unique<detail::worker>(ex, options_, router_, hooks_, live_connections_));
    }
    auto const& ex0 = workers[0]->ex;
    auto acceptor = std::make_unique<asio::ip::tcp::acceptor>(ex0);
    asio::ip::tcp::endpoint ep(asio::ip::make_address(options_.host), options_.port);
    acceptor->open(ep.protocol());
    detail::set_close_on_exec(*acceptor);
    acceptor->set_option(asio::ip::tcp::acceptor::reuse_address(true));
    acceptor->bind(ep);
    acceptor->listen(options_.backlog);
    // Bound: from here on nothing throws but thread creation.
    port_ = acceptor->local_endpoint().port();
    own_io_ = std::move(own_io);
    workers_ = std::move(workers);
    acceptor_ = std::move(acceptor);
    accept_timer_ = std::make_unique<asio::steady_timer>(ex0);
    asio::post(ex0, [this] { do_accept(); });
    for (auto& w : workers_)
      asio::post(w->ex, [&w = *w] { w.start(); });
    for (std::size_t i = 0; i < own_io_.size(); ++i)
      threads_.emplace_back([&io = *own_io_[i], &w = *workers_[i]] { run(io, w); });
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
  /// has stopped. From a handler (one of the server's threads, or a thread running the
  /// application's io_context) use `request_stop()`. On the application's io_context, the
  /// server's work is gone from it when `stop()` returns; the io_context itself runs on.
  /// @throws std::logic_error when called on a thread it would wait for.
  void stop() { shut_down(std::nullopt); }

  /// Drains for a rolling restart, then stops: new connections and requests are refused (503
  /// with `Retry-After`) as by `stop()`, then each open stream, at its own moment spread evenly
  /// over `window`, gets what was queued for it by then, a `retry:` hint (with jitter) and its
  /// end, so that clients reconnect (to other nodes) a few at a time, not all at once. A
  /// `stop()` meanwhile (a second signal) cuts the drain short and ends the rest at once.
  /// @throws std::logic_error as `stop()`.
  void drain(std::chrono::milliseconds window) { shut_down(detail::clamp_wait(window)); }

private:
  void shut_down(std::optional<std::chrono::milliseconds> drain_window) {
    {
      std::unique_lock<std::mutex> lk(stop_mutex_);
      if (!started_)
        return;
      if (std::find(thread_ids_.begin(), thread_ids_.end(), std::this_thread::get_id()) !=
              thread_ids_.end() ||
          (user_io_ && user_io_->get_executor().running_in_this_thread()))
        throw std::logic_error("sse::server::stop: called on a thread that runs the server, "
                               "which it would wait for; use request_stop()");
      if (stopping_) {
        cut_drain_ = true; // a stop during a drain ends it now
        stop_cv_.wait(lk, [&] { return stopped_; });
        return;
      }
      stopping_ = true;
    }
    std::vector<std::future<void>> phase;
    phase.push_back(post_and_wait(workers_[0]->ex, [this] {
      std::error_code ec;
      acceptor_->close(ec);
      accept_timer_->cancel();
    }));
    for (auto& w : workers_)
      phase.push_back(w->refuse());
    for (auto& f : phase)
      f.wait();
    phase.clear();
    if (drain_window) {
      for (auto& w : workers_)
        phase.push_back(w->drain(*drain_window));
      // Each stream's turn comes from the workers' sweeps; wait for them, or for a stop.
      auto const deadline = std::chrono::steady_clock::now() + *drain_window + options_.stop_timeout;
      for (auto& f : phase)
        while (!cut_drain_ && std::chrono::steady_clock::now() < deadline &&
               f.wait_for(std::chrono::milliseconds(20)) != std::future_status::ready) {
        }
      phase.clear();
    }
    for (auto& w : workers_)
      phase.push_back(w->shut_down());
    for (auto& f : phase)
      f.wait();
    phase.clear();
    for (auto& w : workers_)
      phase.push_back(w->finish());
    for (auto& f : phase)
      f.wait();
    for (auto& io : own_io_)
      io->stop();
    for (auto& t : threads_)
      t.join();
    {
      std::lock_guard<std::mutex> lk(stop_mutex_);
      threads_.clear();
      stopped_ = true;
    }
    stop_cv_.notify_all();
  }

public:
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
  static std::future<void> post_and_wait(asio::any_io_executor const& ex, F f) {
    auto done = std::make_shared<std::promise<void>>();
    auto fut = done->get_future();
    asio::post(ex, [done, f = std::move(f)]() mutable {
      f();
      done->set_value();
    });
    return fut;
  }

  /// Runs one I/O thread. An exception out of a completion handler must not end the process
  /// (or this thread's clients): report it and go on running.
  static void run(asio::io_context& io, detail::worker& w) {
    // Subscriptions made on this thread (in its handlers) are fed by it: a publish anywhere
    // hands it one reference per event, and it pushes into its own subscribers' queues.
    detail::this_thread_shard = w.shard.get();
    struct reset {
      ~reset() { detail::this_thread_shard = nullptr; }
    } const on_exit;
    for (;;) {
      try {
        io.run();
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
    acceptor_->async_accept(target.ex, [this, &target](std::error_code ec, asio::ip::tcp::socket s) {
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
      // Before the connection is seen anywhere else, so TLS and HTTP/2 have it too; a spawn on
      // another thread between accept and here still gets it (accept4 would close that gap).
      detail::set_close_on_exec(s);
      asio::post(target.ex, [&target, s = std::move(s)]() mutable { target.adopt(std::move(s)); });
      do_accept();
    });
  }

  server_options options_;
  asio::io_context* user_io_ = nullptr; ///< the application's, or null: threads of our own
  std::vector<std::unique_ptr<asio::io_context>> own_io_;
  detail::router router_;
  detail::protocol_hooks hooks_;
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
  std::atomic<bool> cut_drain_{false};
  bool started_ = false;
  bool stopping_ = false;
  bool stopped_ = false;
};

} // namespace sse
