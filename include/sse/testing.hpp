#pragma once

/// Helpers for the tests of applications built on sse, with any test framework: a server on
/// a free port in the test's own process, streams that collect parsed events, and waits with
/// timeouts instead of sleeps.

#include <sse/broker.hpp>
#include <sse/client.hpp>
#include <sse/format.hpp>
#include <sse/parser.hpp>
#include <sse/server.hpp>
#include <sse/server_options.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace sse::testing {

using headers = std::vector<std::pair<std::string, std::string>>;

/// The events `bytes` dispatch, as a browser would see them (for a test of formatting).
inline std::vector<parsed_event> parse(std::string_view bytes) { return parser().feed(bytes); }

/// An event stream being read on a thread of its own, by an `sse::client`, collecting the
/// events for the test to wait for. Reconnects as the client does.
class stream {
public:
  /// Opens the stream `options` describe and returns once it is open (200,
  /// `text/event-stream`), so that whatever is published next reaches it.
  /// @throws std::runtime_error if it did not open within `open_timeout`, or the client
  ///         stopped (204, another status, ...), naming why.
  explicit stream(client_options options,
                  std::chrono::milliseconds open_timeout = std::chrono::seconds(5))
      : s_(std::make_unique<state>()) {
    std::string const where = options.url.empty() ? options.target : options.url;
    s_->client.emplace(s_->io, std::move(options));
    state* st = s_.get();
    s_->client->on_event([st](parsed_event ev) {
      {
        std::lock_guard<std::mutex> lk(st->mutex);
        st->events.push_back(std::move(ev));
      }
      st->cv.notify_all();
    });
    s_->client->on_open([st] {
      {
        std::lock_guard<std::mutex> lk(st->mutex);
        ++st->opens;
      }
      st->cv.notify_all();
    });
    s_->client->on_close([st](std::error_code ec) {
      {
        std::lock_guard<std::mutex> lk(st->mutex);
        st->closed = ec;
      }
      st->cv.notify_all();
    });
    s_->client->start();
    s_->thread = std::thread([st] { st->io.run(); });
    std::unique_lock<std::mutex> lk(s_->mutex);
    if (!s_->cv.wait_for(lk, open_timeout, [st] { return st->opens > 0 || st->closed; })) {
      lk.unlock();
      throw std::runtime_error("sse::testing::stream: " + where + " did not open within " +
                               std::to_string(open_timeout.count()) + " ms");
    }
    if (s_->opens == 0) {
      std::string const why = s_->closed.message();
      lk.unlock();
      throw std::runtime_error("sse::testing::stream: " + where + ": " + why + " (status " +
                               std::to_string(s_->client->status()) + ")");
    }
  }

  stream(stream&&) noexcept = default;
  stream& operator=(stream&&) noexcept = default;
  ~stream() { close(); }

  /// Waits until `n` events have arrived (in all, since the stream opened) or `timeout`
  /// passed; returns all events so far, so a test checks the size before indexing.
  std::vector<parsed_event> wait_for(std::size_t n,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    return wait_until([n](std::vector<parsed_event> const& evs) { return evs.size() >= n; },
                      timeout);
  }

  /// Waits until `pred(events so far)` holds or `timeout` passed; returns the events.
  template <class Predicate>
  std::vector<parsed_event> wait_until(Predicate pred,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock<std::mutex> lk(s_->mutex);
    s_->cv.wait_for(lk, timeout, [&] { return pred(std::as_const(s_->events)) || s_->closed; });
    return s_->events;
  }

  /// Waits until the client stops by itself (204, ...) and returns why; empty on timeout.
  std::error_code wait_closed(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock<std::mutex> lk(s_->mutex);
    s_->cv.wait_for(lk, timeout, [&] { return static_cast<bool>(s_->closed); });
    return s_->closed;
  }

  /// The events so far.
  std::vector<parsed_event> events() const {
    std::lock_guard<std::mutex> lk(s_->mutex);
    return s_->events;
  }
  /// How many times the stream opened: 1, plus one per reconnect.
  std::size_t opens() const {
    std::lock_guard<std::mutex> lk(s_->mutex);
    return s_->opens;
  }
  /// The client, for `last_event_id()`, `status()`, `reason()`.
  sse::client const& client() const { return *s_->client; }

  /// Stops the client and its thread (the destructor does it too).
  void close() {
    if (!s_ || !s_->thread.joinable())
      return;
    s_->client->stop();
    s_->work.reset();
    s_->io.stop();
    s_->thread.join();
  }

private:
  struct state {
    asio::io_context io{1};
    asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
    std::optional<sse::client> client;
    std::thread thread;
    mutable std::mutex mutex;
    std::condition_variable cv;
    std::vector<parsed_event> events;
    std::size_t opens = 0;
    std::error_code closed;
  };
  std::unique_ptr<state> s_;
};

/// Opens `url` (see `stream`), with extra request headers.
inline stream open_stream(std::string url, headers extra = {}) {
  client_options o;
  o.url = std::move(url);
  o.headers = std::move(extra);
  return stream(std::move(o));
}

/// Opens http://127.0.0.1:`port``path`.
inline stream open_stream(std::uint16_t port, std::string_view path, headers extra = {}) {
  return open_stream("http://127.0.0.1:" + std::to_string(port) + std::string(path),
                     std::move(extra));
}

/// An `sse::server` on 127.0.0.1 and a port the kernel picks, on a thread of its own, with a
/// broker for its routes; started by the constructor, stopped by the destructor.
class server {
public:
  /// `setup(sse::server&)` or `setup(sse::server&, sse::broker&)` adds the routes (the
  /// application's own route function, typically); then the server starts.
  /// `options.host` and `options.port` are set to 127.0.0.1 and 0.
  template <class Setup>
  explicit server(Setup&& setup, server_options options = {})
      : server_(with_test_address(std::move(options))) {
    if constexpr (std::is_invocable_v<Setup&, sse::server&, sse::broker&>)
      setup(server_, broker_);
    else
      setup(server_);
    server_.start();
  }

  server(server const&) = delete;
  server& operator=(server const&) = delete;
  ~server() { server_.stop(); }

  std::uint16_t port() const noexcept { return server_.port(); }
  /// "http://127.0.0.1:PORT" + path.
  std::string url(std::string_view path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port()) + std::string(path);
  }
  sse::broker& broker() noexcept { return broker_; }
  sse::server& get() noexcept { return server_; }

  /// Publishes to the broker given to `setup`.
  publish_result publish(std::string_view topic, event const& ev) {
    return broker_.publish(topic, ev);
  }

  /// Opens a stream to `path` on this server (see `stream`).
  stream open(std::string_view path, headers extra = {}) const {
    return open_stream(url(path), std::move(extra));
  }

private:
  static server_options with_test_address(server_options o) {
    o.host = "127.0.0.1";
    o.port = 0;
    return o;
  }

  sse::broker broker_; // outlives the server's streams
  sse::server server_;
};

} // namespace sse::testing
