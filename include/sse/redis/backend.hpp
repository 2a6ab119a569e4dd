#pragma once

/// `sse::redis::backend`: many processes share topics through Redis, with global ids, history
/// in Redis and resume on any node. Link `sse::redis`.

#include <sse/broker.hpp>
#include <sse/detail/redis_backend.hpp>
#include <sse/error.hpp>
#include <sse/format.hpp>
#include <sse/redis/backend_options.hpp>
#include <sse/detail/tracked_work.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/post.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace sse::redis {

/// Attaches a broker to Redis: what any node publishes reaches the subscribers of its topic on
/// every node, in one order per topic that all nodes agree on, under ids that Redis assigns.
///
/// Per node it keeps two connections to Redis (commands, pub/sub) whatever the number of
/// subscribers, listens only to the topics its subscribers want, and hands each event to the
/// broker once, which fans it out as usual. History lives in Redis (a stream per topic, bounded
/// by `backend_options::history`), so a client can resume on any node with the id another node
/// gave it. `broker.publish` goes through Redis too once `start()` ran (without a result:
/// use `async_publish` to learn the id or the error). Subscribe through `async_subscribe` to
/// get the resume right; `broker.subscribe` then only sees live events.
///
/// The broker must outlive the backend; leave its own history off. All members may be called
/// from any thread.
class backend {
public:
  /// A backend for `broker` on `ex`; nothing happens before `start()`.
  /// @throws std::invalid_argument for bad options.
  backend(asio::any_io_executor const& ex, sse::broker& broker, backend_options options = {})
      : ex_(ex), impl_(std::make_shared<sse::detail::redis::backend_engine>(ex, broker,
                                                                            std::move(options))) {}
  backend(backend const&) = delete;
  backend& operator=(backend const&) = delete;
  /// Closes (see `close()`).
  ~backend() { impl_->close(); }

  /// Connects (and reconnects by itself) and routes the broker's publishes to Redis.
  void start() { impl_->start(); }

  /// Stops for good: pending subscribes fail with `asio::error::operation_aborted`, the broker
  /// delivers locally again; subscriptions already made stay (they get no more events).
  void close() { impl_->close(); }

  /// `connected` when both connections are.
  connection_state state() const noexcept { return impl_->state(); }

  backend_stats stats() const { return impl_->stats(); }

  /// Publishes `ev` to `topic` through Redis: assigning the id, appending to the topic's
  /// history and notifying every node happen in one atomic script.
  ///
  /// Completion `void(std::error_code, std::string id)`: {} and the id once Redis accepted it;
  /// or an error (`not_connected` while Redis is down, `backlog_full` while it is slow, ...)
  /// and the event was not published. The event's own id, if any, is replaced by Redis'.
  /// @throws message_too_large if the event, once formatted with an id, is larger than the
  ///         broker's `max_message_bytes()` (nothing is sent then).
  template <class CompletionToken>
  auto async_publish(std::string_view topic, sse::event const& ev, CompletionToken&& token) {
    std::string body;
    body.reserve(sse::formatted_size(ev));
    sse::detail::format_to(body, ev, std::nullopt);
    std::size_t const size = body.size() + sse::detail::redis::backend_engine::id_line_max;
    std::size_t const limit = impl_->broker().max_message_bytes();
    if (size > limit)
      throw message_too_large("sse::redis::backend::async_publish", size, limit);
    return asio::async_initiate<CompletionToken, void(std::error_code, std::string)>(
        [self = this](auto handler, std::string t, std::string b) {
          auto h = std::make_shared<completion<decltype(handler), std::string>>(std::move(handler),
                                                                                 self->ex_);
          self->impl_->publish(t, std::move(b), [h](std::error_code ec, std::string id) {
            h->post(ec, std::move(id));
          });
        },
        token, std::string(topic), std::move(body));
  }

  /// Subscribes to `topics` on this node, replaying first what the client missed since
  /// `options.last_event_id` (whichever node gave it), then live events: nothing missed or
  /// doubled in between, for several topics too. An id that cannot be placed (unknown, made
  /// up, older than the history, or from before Redis lost its data) gets `event: reset`
  /// first, as with the broker alone; `options.replay_history` replays all that is kept.
  ///
  /// Completion `void(std::error_code, sse::subscription)`: {} and the subscription, or an
  /// error (`not_connected` while Redis is down, `backlog_full` past
  /// `max_pending_subscribes`, `data_lost`, ...). Pass the subscription to
  /// `sse::response::stream` (from an asynchronous handler's responder).
  /// @throws std::invalid_argument for no topics or bad limits.
  template <class CompletionToken>
  auto async_subscribe(std::vector<std::string> topics, sse::subscribe_options options,
                       CompletionToken&& token) {
    if (topics.empty())
      throw std::invalid_argument("sse::redis::backend::async_subscribe: no topics given");
    if (options.limits)
      sse::detail::check_queue_limits("sse::redis::backend::async_subscribe", *options.limits);
    std::sort(topics.begin(), topics.end());
    topics.erase(std::unique(topics.begin(), topics.end()), topics.end());
    return asio::async_initiate<CompletionToken, void(std::error_code, sse::subscription)>(
        [self = this](auto handler, std::vector<std::string> t, sse::subscribe_options o) {
          auto op = std::make_shared<subscribe_waiter<decltype(handler)>>(std::move(handler),
                                                                          self->ex_);
          op->topics = std::move(t);
          if (o.last_event_id) {
            op->id_given = true;
            if (sse::detail::plausible_last_event_id(*o.last_event_id, sse::max_last_event_id))
              op->after = sse::detail::redis::parse_stream_id(*o.last_event_id);
          }
          op->options = std::move(o);
          self->impl_->submit(std::move(op));
        },
        token, std::move(topics), std::move(options));
  }

  /// One topic.
  template <class CompletionToken>
  auto async_subscribe(std::string topic, sse::subscribe_options options,
                       CompletionToken&& token) {
    return async_subscribe(std::vector<std::string>{std::move(topic)}, std::move(options),
                           std::forward<CompletionToken>(token));
  }

private:
  /// Posts the handler to its associated executor, keeping that busy meanwhile.
  template <class Handler, class Value>
  class completion {
  public:
    completion(Handler h, asio::any_io_executor const& fallback)
        : handler_(std::move(h)), work_(asio::get_associated_executor(handler_, fallback)) {}
    void post(std::error_code ec, Value v) {
      auto ex = work_.get_executor();
      asio::post(ex, [h = std::move(handler_), ec, v = std::move(v)]() mutable {
        std::move(h)(ec, std::move(v));
      });
      work_.reset();
    }

  private:
    Handler handler_;
    sse::detail::tracked_work<asio::associated_executor_t<Handler, asio::any_io_executor>> work_;
  };

  template <class Handler>
  class subscribe_waiter final : public sse::detail::redis::subscribe_op {
  public:
    subscribe_waiter(Handler h, asio::any_io_executor const& ex) : done_(std::move(h), ex) {}
    void complete(std::error_code ec, sse::subscription sub) override {
      done_.post(ec, std::move(sub));
    }

  private:
    completion<Handler, sse::subscription> done_;
  };

  asio::any_io_executor ex_;
  std::shared_ptr<sse::detail::redis::backend_engine> impl_;
};

} // namespace sse::redis
