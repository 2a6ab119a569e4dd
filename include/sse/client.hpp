#pragma once

/// An event-stream client on Asio: EventSource's behaviour (Last-Event-ID, `retry:`, 204 and
/// errors as the HTML standard says) for C++ programs and tests, on the application's
/// io_context. HTTPS with `<sse/tls_client.hpp>` (the optional `sse::tls` component).

#include <sse/client_options.hpp>
#include <sse/detail/client_session.hpp>
#include <sse/error.hpp>
#include <sse/parser.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>

namespace sse {

class client;

namespace detail {
/// How the TLS component reaches a client's session (`sse::tls::enable`).
struct client_access {
  static client_session& session(client& c, char const* who);
};
} // namespace detail

/// Reads one event stream and keeps it open: reconnects after the server's `retry:` (with
/// backoff, jitter and a cap) and resumes from the last event id, until the server says stop
/// (204, another status, another content type), a limit is hit, or `stop()`.
///
/// Runs on the executor it is given (a strand of it), on the application's threads. Events go
/// to `on_event` or, without one, to `async_next`. The setters must be called before
/// `start()`. Callbacks run on that strand, one at a time, and must not block for long:
/// `stop()` from another thread waits for a running one.
class client {
public:
  /// A client on `ex`. @throws std::invalid_argument for options it cannot use.
  client(asio::any_io_executor const& ex, client_options options)
      : session_(std::make_shared<detail::client_session>(ex, std::move(options))) {}
  client(asio::io_context& io, client_options options)
      : client(io.get_executor(), std::move(options)) {}

  client(client const&) = delete;
  client& operator=(client const&) = delete;
  /// The moved-from client is empty: only destruction and assignment are left to it.
  client(client&&) noexcept = default;
  client& operator=(client&& o) noexcept {
    if (this != &o) {
      if (session_)
        session_->stop();
      session_ = std::move(o.session_);
    }
    return *this;
  }
  /// Stops (see `stop()`); may be called from the client's own callbacks.
  ~client() {
    if (session_)
      session_->stop();
  }

  /// Each event, in order. `f(sse::parsed_event)`.
  client& on_event(std::function<void(parsed_event)> f) {
    setter("on_event").on_event = std::move(f);
    return *this;
  }
  /// Each time a stream opens (200, `text/event-stream`), the first and every reconnect.
  client& on_open(std::function<void()> f) {
    setter("on_open").on_open = std::move(f);
    return *this;
  }
  /// Each time an attempt fails or a stream ends and the client will try again: why, and the
  /// wait before it does.
  client& on_reconnect(std::function<void(std::error_code, std::chrono::milliseconds)> f) {
    setter("on_reconnect").on_reconnect = std::move(f);
    return *this;
  }
  /// Once, when the client stops by itself, with the final reason (`errc::no_content`,
  /// `errc::bad_status`, ...). Not called after `stop()`.
  client& on_close(std::function<void(std::error_code)> f) {
    setter("on_close").on_close = std::move(f);
    return *this;
  }

  /// Connects; returns at once. @throws std::logic_error if started already, or for an
  /// https URL without `sse::tls::enable(client)`.
  void start() { session_->start(); }

  /// Stops for good, from any thread: the connection or the wait is dropped, no callback
  /// runs after it returns (one running on another thread is waited for), a pending
  /// `async_next` completes with `asio::error::operation_aborted`, which is also `reason()`.
  void stop() noexcept { session_->stop(); }

  /// The next event, as an Asio operation: `void(std::error_code, sse::parsed_event)`, with
  /// callbacks, `asio::use_future` or `asio::use_awaitable`. Completes with the final reason
  /// once the client has stopped and every queued event was taken. One at a time; not with
  /// `on_event`. Reading pauses while `max_queued_events` wait to be taken.
  template <class CompletionToken>
  auto async_next(CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code, parsed_event)>(
        [s = session_](auto handler) { s->initiate_next(std::move(handler)); }, token);
  }

  /// The id the next reconnect resumes from (from any thread).
  std::string last_event_id() const { return session_->last_event_id(); }
  /// The status of the latest response (0 before the first).
  int status() const { return session_->status(); }
  /// Why the client stopped; empty while it runs.
  std::error_code reason() const { return session_->reason(); }
  /// The reconnection time now: `options().retry` until the server sends `retry:`.
  std::chrono::milliseconds retry() const { return session_->retry(); }
  client_options const& options() const noexcept { return session_->options(); }
  /// The strand everything of this client runs on.
  asio::any_io_executor get_executor() const noexcept { return session_->executor(); }

private:
  friend struct detail::client_access;

  detail::client_session& setter(char const* what) {
    if (session_->started())
      throw std::logic_error(std::string("sse::client::") + what + ": call it before start()");
    return *session_;
  }

  std::shared_ptr<detail::client_session> session_;
};

inline detail::client_session& detail::client_access::session(client& c, char const* who) {
  return c.setter(who);
}

} // namespace sse
