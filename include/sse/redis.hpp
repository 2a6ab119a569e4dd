#pragma once

/// The optional Redis component: a connection for commands and a subscriber for pub/sub, both
/// on Asio through hiredis, reconnecting by themselves. Link `sse::redis`; `<sse/sse.hpp>` does
/// not include this header.

#include <sse/detail/redis_session.hpp>
#include <sse/detail/tracked_work.hpp>
#include <sse/redis/error.hpp>
#include <sse/redis/options.hpp>
#include <sse/redis/reply.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/post.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace sse::redis {

namespace detail {
// A handler that completes on its associated executor, keeping it busy until then.
template <class Handler, class IoExecutor, class Base, class... Args>
class posting_handler final : public Base {
public:
  using executor_type = asio::associated_executor_t<Handler, IoExecutor>;
  posting_handler(Handler h, IoExecutor const& io_ex, std::function<void()> before = {})
      : handler_(std::move(h)), work_(asio::get_associated_executor(handler_, io_ex)),
        before_(std::move(before)) {}
  void complete(Args... args) override {
    if (before_)
      before_();
    auto ex = work_.get_executor();
    asio::post(ex, [h = std::move(handler_), args...]() mutable {
      std::move(h)(std::move(args)...);
    });
    work_.reset();
  }

private:
  Handler handler_;
  sse::detail::tracked_work<executor_type> work_;
  std::function<void()> before_;
};
} // namespace detail

/// A connection to Redis for commands (GET, XADD, EVALSHA, ...): replies complete in order.
///
/// It connects on `start()` and reconnects by itself after a loss, with jittered backoff; the
/// state handler hears each change, so an owner can catch up once `connected` again. Commands
/// sent while `connecting` wait for the attempt; while `disconnected` they fail at once with
/// `errc::not_connected`; when the connection drops, those pending fail with
/// `errc::connection_lost` (never hang). All members may be called from any thread. Internally
/// everything runs on one strand of `executor`; the state handler runs there too and must not
/// block. Destroying it closes it, and its state handler is not called from then on.
template <class Executor = asio::any_io_executor>
class basic_connection {
public:
  using executor_type = Executor;

  /// Makes a connection to `options.host:options.port`; nothing happens before `start()`.
  explicit basic_connection(executor_type const& ex, connection_options options = {})
      : ex_(ex), impl_(std::make_shared<sse::detail::redis::command_session>(
                     asio::any_io_executor(ex), std::move(options))) {}

  basic_connection(basic_connection&&) noexcept = default;
  basic_connection& operator=(basic_connection&&) = delete;
  /// Closes; the state handler is not called any more once this returns (pending commands
  /// still complete, with `asio::error::operation_aborted`).
  ~basic_connection() {
    if (impl_) {
      impl_->detach();
      impl_->close();
    }
  }

  executor_type get_executor() const noexcept { return ex_; }
  connection_options const& options() const noexcept { return impl_->options(); }
  /// The state now (it may change right after).
  connection_state state() const noexcept { return impl_->state(); }
  /// Bytes of commands sent or queued and not yet answered (bounded by `max_pending_bytes`).
  std::size_t pending_bytes() const noexcept { return impl_->budget()->load(); }

  /// Called with each change of state, on the connection's strand. Set it before `start()`;
  /// `nullptr` removes it.
  void set_state_handler(std::function<void(state_event const&)> h) {
    impl_->set_state_handler(std::move(h));
  }

  /// Starts connecting (once); later losses reconnect by themselves unless `reconnect` is off.
  void start() { impl_->start(); }

  /// Closes for good: pending commands fail with `asio::error::operation_aborted`.
  void close() { impl_->close(); }

  /// Sends one command, its name and arguments as binary-safe strings.
  ///
  /// Completion `void(std::error_code, reply)`: {} and the reply; `errc::reply_error` and the
  /// error reply (its text in `reply::str()`); or a transport error (`connection_lost`,
  /// `not_connected`, `backlog_full`, `connect_timeout`, ...) and a nil reply. The handler runs
  /// on its associated executor (default: this connection's), never inside this call. With
  /// `asio::use_future` an error becomes a `std::system_error` without the reply's text: take
  /// a handler to see it. Throws `std::invalid_argument` for an empty command.
  template <class CompletionToken>
  auto async_command(std::vector<std::string> args, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code, reply)>(
        [self = this](auto handler, std::vector<std::string> a) {
          self->initiate(std::move(handler), std::move(a));
        },
        token, std::move(args));
  }

private:
  template <class Handler>
  void initiate(Handler&& handler, std::vector<std::string> args) {
    using op = detail::posting_handler<std::decay_t<Handler>, executor_type,
                                       sse::detail::redis::pending, std::error_code, reply>;
    sse::detail::redis::formatted_command cmd(args);
    std::size_t n = cmd.size();
    if (!impl_->reserve(n)) {
      op(std::forward<Handler>(handler), ex_).complete(errc::backlog_full, {});
      return;
    }
    auto budget = impl_->budget();
    std::unique_ptr<sse::detail::redis::pending> p = std::make_unique<op>(
        std::forward<Handler>(handler), ex_, [budget, n] { budget->fetch_sub(n); });
    impl_->submit(std::move(cmd), std::move(p));
  }

  executor_type ex_;
  std::shared_ptr<sse::detail::redis::command_session> impl_;
};

/// The common case: any executor.
using connection = basic_connection<>;

/// A pub/sub connection: SUBSCRIBE and UNSUBSCRIBE at any time, messages to one handler in the
/// order Redis sent them.
///
/// The channels wanted are kept across losses: after a reconnect they are subscribed again and
/// only then is `connected` told, so an owner that then reads what it missed (e.g. XRANGE) sees
/// no gap. One subscriber per process serves any number of channels. All members may be called
/// from any thread; the handlers run on the subscriber's strand and must not block. Destroying
/// it closes it, and its handlers are not called from then on.
template <class Executor = asio::any_io_executor>
class basic_subscriber {
public:
  using executor_type = Executor;

  explicit basic_subscriber(executor_type const& ex, connection_options options = {})
      : ex_(ex), impl_(std::make_shared<sse::detail::redis::subscriber_session>(
                     asio::any_io_executor(ex), std::move(options))) {}

  basic_subscriber(basic_subscriber&&) noexcept = default;
  basic_subscriber& operator=(basic_subscriber&&) = delete;
  /// Closes; neither handler is called any more once this returns.
  ~basic_subscriber() {
    if (impl_) {
      impl_->detach();
      impl_->close();
    }
  }

  executor_type get_executor() const noexcept { return ex_; }
  connection_options const& options() const noexcept { return impl_->options(); }
  connection_state state() const noexcept { return impl_->state(); }

  /// Called with each change of state, on the strand. Set it before `start()`.
  void set_state_handler(std::function<void(state_event const&)> h) {
    impl_->set_state_handler(std::move(h));
  }

  /// Called with `(channel, message)` for each message of a wanted channel, on the strand; the
  /// views live until it returns. Set it before subscribing.
  void set_message_handler(std::function<void(std::string_view, std::string_view)> h) {
    impl_->set_message_handler(std::move(h));
  }

  void start() { impl_->start(); }

  /// Closes for good: pending subscribe waits fail with `asio::error::operation_aborted`.
  void close() { impl_->close(); }

  /// Wants `channel` from now on, without waiting for Redis to confirm.
  void subscribe(std::string channel) { impl_->subscribe(std::move(channel), nullptr); }

  /// Wants `channel`; completes `void(std::error_code)` once Redis confirmed the subscription
  /// (at once if it already had). While disconnected it fails with `errc::not_connected`, and a
  /// loss before the confirmation fails it with that loss's error: either way the channel stays
  /// wanted and is subscribed on reconnect, before `connected` is told.
  template <class CompletionToken>
  auto async_subscribe(std::string channel, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(std::error_code)>(
        [self = this](auto handler, std::string c) {
          using op = detail::posting_handler<decltype(handler), executor_type,
                                             sse::detail::redis::waiter, std::error_code>;
          self->impl_->subscribe(std::move(c), std::make_unique<op>(std::move(handler), self->ex_));
        },
        token, std::move(channel));
  }

  /// No longer wants `channel`: its messages stop reaching the handler at once.
  void unsubscribe(std::string channel) { impl_->unsubscribe(std::move(channel)); }

private:
  executor_type ex_;
  std::shared_ptr<sse::detail::redis::subscriber_session> impl_;
};

/// The common case: any executor.
using subscriber = basic_subscriber<>;

} // namespace sse::redis
