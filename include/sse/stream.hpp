#pragma once

/// A handler-owned event stream: the generator pattern (task progress, token-by-token text).

#include <sse/detail/subscriber_state.hpp>
#include <sse/error.hpp>
#include <sse/format.hpp>
#include <sse/frame.hpp>
#include <sse/queue_limits.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/system_executor.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

namespace sse {

/// The writing end of one client's event stream. Copies share the same stream.
///
/// Make one in a handler, return `response::stream(s)`, and keep a copy to `send` events from
/// any thread; `close` ends the response once everything sent has been written. `send` returns
/// false once the client is gone (or the stream overflowed under `overflow_policy::evict`), so a
/// producer knows to stop.
class event_stream {
public:
  /// A stream whose queue is bounded by `limits` (evict ends the stream when the client lags).
  explicit event_stream(queue_limits const& limits = {})
      : state_(std::make_shared<state_type>(check(limits))) {}

  /// Queues one formatted frame; false if the stream has ended or the frame was dropped.
  bool send(frame const& f) {
    std::lock_guard<std::mutex> lk(state_->mutex);
    detail::waiter* wake = nullptr;
    std::size_t discarded = 0;
    auto const r = state_->push_locked(f, f.size(), wake, discarded);
    // Notify under the lock: the connection disarms under this lock before it goes away.
    if (wake)
      wake->notify(r == state_type::push_result::evicted ? make_error_code(errc::evicted)
                                                         : std::error_code{});
    return r == state_type::push_result::queued;
  }
  /// Formats `ev` and queues it.
  bool send(event const& ev) { return send(frame(ev)); }
  /// Formats and queues one data-only event.
  bool send(std::string_view data) { return send(frame(format_event(data))); }

  /// Ends the stream after what is queued has been written. Idempotent.
  void close() {
    std::lock_guard<std::mutex> lk(state_->mutex);
    if (detail::waiter* w = state_->end_locked(errc::closed))
      w->notify(make_error_code(errc::closed));
  }

  /// True once closed, evicted, or the client went away.
  bool closed() const {
    std::lock_guard<std::mutex> lk(state_->mutex);
    return state_->ended();
  }

  /// Calls `f` once when the stream is over, so a producer stops at once instead of at its
  /// next `send`: errc::disconnected (the client left, noticed at once), errc::closed
  /// (`close()` was called; what it queued may still be on its way), errc::evicted (the
  /// client fell behind), errc::stream_closed (the server's `stop()` or `drain()`),
  /// errc::write_timeout.
  ///
  /// `f` runs once, in a posted handler, never under a lock: on the stream's I/O thread once
  /// the server writes it (an exception is logged to `server_options::error_log`), else on
  /// the system executor (an exception goes to stderr). Registered after the end, it is called
  /// at once, posted. Any thread; several callbacks may be registered.
  /// @throws std::invalid_argument for an empty `f`.
  void on_close(std::function<void(std::error_code)> f) {
    if (!f)
      throw std::invalid_argument("sse::event_stream::on_close: empty callback");
    state_->add_close_listener(std::make_unique<detail::function_close_listener>(std::move(f)),
                               asio::system_executor());
  }

  /// Waits asynchronously until the stream is over (see `on_close` for why).
  ///
  /// Completion signature `void(std::error_code)`; any Asio completion token. The handler
  /// runs on its associated executor (default: the system executor), which it keeps working.
  template <class CompletionToken>
  auto async_wait_closed(CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code)>(
        [st = state_](auto handler) {
          using listener = detail::async_close_listener<std::decay_t<decltype(handler)>>;
          asio::any_io_executor const ex = asio::system_executor();
          st->add_close_listener(std::make_unique<listener>(std::move(handler), ex), ex);
        },
        token);
  }

  /// Frames waiting to be written.
  std::size_t queued() const {
    std::lock_guard<std::mutex> lk(state_->mutex);
    return state_->queue.size();
  }

  /// The shared queue, for the server's writer.
  std::shared_ptr<detail::subscriber_state<frame>> const& state() const noexcept { return state_; }

private:
  using state_type = detail::subscriber_state<frame>;

  static queue_limits const& check(queue_limits const& l) {
    detail::check_queue_limits("sse::event_stream", l);
    return l;
  }

  std::shared_ptr<state_type> state_;
};

} // namespace sse
