#pragma once

/// Fan-out of published messages to subscribers, each with its own bounded queue.

#include <sse/detail/deadline.hpp>
#include <sse/detail/event_id.hpp>
#include <sse/detail/history.hpp>
#include <sse/detail/subscriber_state.hpp>
#include <sse/detail/tracked_work.hpp>
#include <sse/detail/topic_entry.hpp>
#include <sse/error.hpp>
#include <sse/frame.hpp>
#include <sse/queue_limits.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/error.hpp>
#include <asio/post.hpp>
#include <asio/system_executor.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
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

namespace sse {

/// A snapshot of a broker's counters; totals count since the broker was made.
struct broker_stats {
  std::size_t subscribers = 0; ///< subscribed now
  std::size_t topics = 0;      ///< topics with at least one subscriber now
  std::uint64_t published = 0; ///< messages passed to publish()/deliver()
  std::uint64_t delivered = 0; ///< messages queued to a subscriber (one per subscriber)
  std::uint64_t dropped = 0;   ///< messages discarded (per subscriber): by drop_oldest /
                               ///< drop_newest, or larger than that subscriber's max_bytes
  std::uint64_t evicted = 0;   ///< subscribers removed because their queue overflowed
  std::uint64_t refused = 0;   ///< messages refused whole: larger than max_message_bytes
  std::size_t history_events = 0; ///< events kept for resume, over all topics
  std::size_t history_bytes = 0;  ///< their bytes, within `set_history_budget`
};

/// What a publish did.
struct publish_result {
  std::size_t receivers = 0; ///< local subscribers it was queued for
  std::string id;            ///< the event's id ("" if it has none)
};

/// What became of a subscriber's last event id.
enum class resume_result {
  none,     ///< no id was given
  replayed, ///< everything after it was replayed (possibly nothing)
  reset,    ///< it could not be placed (unknown, malformed, older than the history), or it
            ///< is from an earlier run: the subscriber must reload its state
};

/// Longest last event id the broker looks at; longer ones are unknown (reset).
inline constexpr std::size_t max_last_event_id = 256;

/// Per-subscription settings.
struct subscribe_options {
  /// Queue bounds; the broker's default when unset.
  std::optional<queue_limits> limits;
  /// Where `async_wait` completions run when the handler has no associated executor.
  asio::any_io_executor executor = asio::system_executor();
  /// The client's `Last-Event-ID`: replay what it missed first (see `broker::subscribe`).
  std::optional<std::string> last_event_id;
  /// Without a last event id, replay everything the topics keep (e.g. a chart's last minute).
  bool replay_history = false;
};

/// Hands each published message to every subscriber of its topic.
///
/// Every subscriber owns a bounded queue (see `queue_limits`); a publish stores one reference to
/// the message in each queue, so a `frame` is encoded once and never copied per subscriber, and
/// a push into a queue with room does not allocate. `publish` and `subscribe` are safe from any
/// thread; messages reach each subscriber in publish order.
///
/// @tparam Message a cheap-to-copy handle (default `frame`); its size in bytes comes from
///         `message_traits<Message>`. Copies must not throw.
template <class Message = frame>
class basic_broker {
  static_assert(std::is_nothrow_copy_constructible_v<Message> &&
                    std::is_nothrow_move_constructible_v<Message>,
                "sse::basic_broker: Message must be nothrow copyable and movable");

  using state_type = detail::subscriber_state<Message>;
  using topic_type = detail::topic_entry<Message>;
  using topic_ptr = std::shared_ptr<topic_type>;
  using clock = std::chrono::steady_clock;

public:
  /// What `set_publisher` routes publishes to: the topic, the message and its id ("" if it
  /// has none), which the backend hands back to `deliver(topic, message, id)`.
  using publisher_hook =
      std::function<void(std::string_view topic, Message const& message, std::string_view id)>;

private:
  /// The broker-wide state. `mutex` is held O(1) per publish, subscribe or unsubscribe (plus
  /// the replay a resume copies); the fan-outs run outside it, under each topic's own lock.
  struct impl {
    mutable std::mutex mutex;
    std::map<std::string, topic_ptr, std::less<>> topics;
    std::size_t subscribers = 0;
    queue_limits defaults;
    std::shared_ptr<publisher_hook const> publisher;
    bool closed = false;
    std::atomic<std::size_t> max_message_bytes{0}; ///< read without the lock
    std::atomic<std::uint64_t> published{0}, delivered{0}, dropped{0}, evicted{0}, refused{0};

    history_limits history_defaults;                             ///< for every topic
    std::map<std::string, history_limits, std::less<>> topic_history; ///< per-topic overrides
    std::size_t max_history_topics = 10000;
    std::size_t history_topics = 0;
    detail::history<Message> kept; ///< every topic's history, its id index and the budget
    std::uint64_t seq = 0;        ///< publishes that kept history; the id's second half
    std::uint64_t epoch = 0;      ///< ms since 1970 when made: the id's first half

    /// Drops expired history when no traffic comes to do it: started by the first entry that
    /// can expire, asleep until the earliest expiry, stopped by close().
    std::thread trimmer;
    std::condition_variable trimmer_cv;
    clock::time_point trimmer_wake = clock::time_point::max(); ///< when it plans to wake
    bool trimmer_stop = false;

    history_limits const& history_for(std::string_view topic) const {
      auto it = topic_history.find(topic);
      return it == topic_history.end() ? history_defaults : it->second;
    }

    /// Erases a topic nobody listens to, unless it keeps history. A fan-out still running
    /// holds its own reference.
    void maybe_erase(topic_type const* t) {
      if (t->members == 0 && !t->history.enabled)
        topics.erase(topics.find(t->name));
    }

    /// What leaving takes, allocated before the lock: a change per topic, room for them.
    struct leaving {
      std::shared_ptr<state_type> state;
      std::vector<typename topic_type::change_ptr> changes;
      std::vector<topic_ptr> touched;

      explicit leaving(std::shared_ptr<state_type> s) : state(std::move(s)) {
        changes.reserve(state->slots.size());
        touched.reserve(state->slots.size());
        for (std::size_t k = 0; k < state->slots.size(); ++k) {
          changes.push_back(std::make_unique<typename topic_type::change>());
          changes.back()->state = state;
          changes.back()->slot = k;
        }
      }
      /// Outside the lock: the leaves take effect unless a fan-out runs (it applies them).
      void apply() {
        for (auto& t : touched)
          t->try_apply();
      }
    };

    /// Takes `l.state` out of its topics' counts and queues its leave in each but `out` (the
    /// topic an eviction took it out of already).
    void unlink(leaving& l, topic_type const* out) noexcept {
      state_type& s = *l.state;
      if (s.unlinked)
        return;
      s.unlinked = true;
      --subscribers;
      for (std::size_t k = 0; k < s.slots.size(); ++k) {
        topic_type* t = s.slots[k].topic;
        --t->members;
        if (t != out) {
          t->leave(std::move(l.changes[k]));
          l.touched.push_back(t->shared_from_this());
        }
        maybe_erase(t);
      }
    }
  };

public:
  using message_type = Message;

  /// An RAII membership: messages published to its topics queue up here until popped.
  ///
  /// Destroying (or `unsubscribe`) leaves the broker. One subscription object is meant for one
  /// consumer at a time; its queue is safe against concurrent publishers.
  class subscription {
  public:
    subscription() noexcept = default;
    subscription(subscription&&) noexcept = default;
    subscription& operator=(subscription&& other) noexcept {
      if (this != &other) {
        unsubscribe();
        broker_ = std::move(other.broker_);
        state_ = std::move(other.state_);
        topics_ = std::move(other.topics_);
        executor_ = std::move(other.executor_);
        resume_ = other.resume_;
      }
      return *this;
    }
    ~subscription() { unsubscribe(); }

    /// True while subscribed and neither evicted nor closed.
    bool active() const {
      if (!state_)
        return false;
      std::lock_guard<std::mutex> lk(state_->mutex);
      return !state_->ended();
    }
    explicit operator bool() const { return active(); }

    /// True once the queue overflowed under `overflow_policy::evict`.
    bool evicted() const {
      if (!state_)
        return false;
      std::lock_guard<std::mutex> lk(state_->mutex);
      return state_->evicted;
    }

    std::vector<std::string> const& topics() const noexcept { return topics_; }

    /// What became of `subscribe_options::last_event_id`: replayed, or reset (the subscriber
    /// must reload its state; for frames an `event: reset` is the first message).
    resume_result resume() const noexcept { return resume_; }

    /// Messages waiting in the queue.
    std::size_t size() const {
      if (!state_)
        return 0;
      std::lock_guard<std::mutex> lk(state_->mutex);
      return state_->size_locked();
    }

    /// Bytes (per `message_traits`) waiting in the queue.
    std::size_t queued_bytes() const {
      if (!state_)
        return 0;
      std::lock_guard<std::mutex> lk(state_->mutex);
      return state_->queued_bytes;
    }

    /// Messages this subscriber lost to drop_oldest / drop_newest.
    std::uint64_t dropped() const {
      if (!state_)
        return 0;
      std::lock_guard<std::mutex> lk(state_->mutex);
      return state_->dropped;
    }

    queue_limits limits() const { return state_ ? state_->limits : queue_limits{}; }

    /// Takes the oldest message if there is one.
    std::optional<Message> try_pop() {
      if (!state_)
        return std::nullopt;
      std::lock_guard<std::mutex> lk(state_->mutex);
      if (!state_->has_messages_locked())
        return std::nullopt;
      return std::optional<Message>(state_->pop_next_locked());
    }

    /// Appends up to `max` queued messages to `out` in order, under one lock; returns how many.
    /// With a reused `out` this is the allocation-free way to drain a burst for one gather write.
    std::size_t pop_all(std::vector<Message>& out, std::size_t max = static_cast<std::size_t>(-1)) {
      return state_ ? state_->pop_all(out, max) : 0;
    }

    /// Blocks until a message is queued, the subscription ends, or `timeout` passes.
    /// @returns {} when a message is ready (even after eviction, until the queue is drained),
    ///          errc::evicted or errc::closed once drained, or std::errc::timed_out.
    template <class Rep, class Period>
    std::error_code wait_for(std::chrono::duration<Rep, Period> const& timeout) {
      if (!state_)
        return make_error_code(errc::closed);
      std::unique_lock<std::mutex> lk(state_->mutex);
      if (!state_->cv)
        state_->cv = std::make_unique<std::condition_variable>();
      ++state_->blocking_waiters;
      bool const ready = state_->cv->wait_for(
          lk, timeout, [&] { return state_->has_messages_locked() || state_->ended(); });
      --state_->blocking_waiters;
      if (state_->has_messages_locked())
        return {};
      if (!ready)
        return std::make_error_code(std::errc::timed_out);
      return state_->end_reason();
    }

    /// `wait_for` then `try_pop`: the next message, or nullopt on timeout or end.
    template <class Rep, class Period>
    std::optional<Message> pop_for(std::chrono::duration<Rep, Period> const& timeout) {
      if (wait_for(timeout))
        return std::nullopt;
      return try_pop();
    }

    /// Waits asynchronously until a message is queued or the subscription ends.
    ///
    /// Completion signature `void(std::error_code)`: {} when a message is ready, errc::evicted
    /// or errc::closed once the queue is drained after the end, asio::error::operation_aborted
    /// after `cancel()` or `unsubscribe()`. The handler runs on its associated executor
    /// (default: `subscribe_options::executor`), never inside `publish`. One wait at a time.
    template <class CompletionToken>
    auto async_wait(CompletionToken&& token) {
      return asio::async_initiate<CompletionToken, void(std::error_code)>(
          [self = this](auto handler) { self->initiate_wait(std::move(handler)); }, token);
    }

    /// Completes a pending `async_wait` with asio::error::operation_aborted.
    void cancel() {
      if (!state_)
        return;
      detail::waiter* w = nullptr;
      {
        std::lock_guard<std::mutex> lk(state_->mutex);
        w = std::exchange(state_->armed, nullptr);
      }
      if (w)
        w->notify(asio::error::operation_aborted);
    }

    /// Leaves the broker now; queued messages are discarded and a pending wait is aborted.
    void unsubscribe() noexcept {
      if (!state_)
        return;
      if (auto b = broker_.lock()) {
        try {
          typename impl::leaving l(state_);
          {
            std::lock_guard<std::mutex> lk(b->mutex);
            b->unlink(l, nullptr);
          }
          l.apply();
        } catch (...) { // out of memory: still counted, ended below, so it gets nothing
        }
      }
      if (detail::waiter* w = state_->close_and_discard())
        w->notify(asio::error::operation_aborted);
      state_.reset();
      broker_.reset();
    }

    /// The shared queue, for the server's writer.
    std::shared_ptr<state_type> const& state() const noexcept { return state_; }

    /// Why the subscription ended ({} while it is active).
    std::error_code end_reason() const {
      if (!state_)
        return make_error_code(errc::closed);
      std::lock_guard<std::mutex> lk(state_->mutex);
      return state_->end_reason();
    }

    /// Calls `f` once when the subscription is over, with why, so that an application can
    /// tell that its client left (a chat's "left the room").
    ///
    /// Why: errc::evicted, errc::closed (the broker closed, `unsubscribe()`, destruction, or
    /// the response never became a stream); for a stream the server writes, whichever comes
    /// first of those and errc::disconnected (the client left: noticed at once, not at the
    /// next write), errc::stream_closed (`stop()`, `drain()`), errc::write_timeout. It fires
    /// as soon as no later publish can reach the subscriber; what was queued before may still
    /// be on its way to the client.
    ///
    /// `f` runs once, in a posted handler, never under the broker's or a connection's lock:
    /// on the stream's I/O thread once a server writes this subscription (an exception is
    /// logged to `server_options::error_log`), else on `subscribe_options::executor` (an
    /// exception goes to stderr). Registered after the end (or on an empty subscription), it
    /// is called at once, posted. Register before handing the subscription to
    /// `response::stream`; several callbacks may be registered, each is called once.
    /// @throws std::invalid_argument for an empty `f`.
    void on_close(std::function<void(std::error_code)> f) {
      if (!f)
        throw std::invalid_argument("sse::subscription::on_close: empty callback");
      add_close_listener(std::make_unique<detail::function_close_listener>(std::move(f)));
    }

    /// Waits asynchronously until the subscription is over (see `on_close` for when and why).
    ///
    /// Completion signature `void(std::error_code)`, with the reason `on_close` gets; any Asio
    /// completion token (`asio::use_future`, `asio::use_awaitable`, a callback). The handler
    /// runs on its associated executor (default: `subscribe_options::executor`); it keeps work
    /// on that executor until then. May be called more than once, and alongside `async_wait`.
    template <class CompletionToken>
    auto async_wait_closed(CompletionToken&& token) {
      return asio::async_initiate<CompletionToken, void(std::error_code)>(
          [self = this](auto handler) {
            using listener = detail::async_close_listener<std::decay_t<decltype(handler)>>;
            auto ex = self->close_executor();
            self->add_close_listener(std::make_unique<listener>(std::move(handler), ex));
          },
          token);
    }

  private:
    friend class basic_broker;

    asio::any_io_executor close_executor() const {
      return executor_ ? executor_ : asio::any_io_executor(asio::system_executor());
    }

    void add_close_listener(std::unique_ptr<detail::close_listener> l) {
      if (state_) {
        state_->add_close_listener(std::move(l), close_executor());
        return;
      }
      detail::close_listeners now;
      now.push_back(std::move(l));
      detail::post_close_listeners(close_executor(), std::move(now), make_error_code(errc::closed));
    }

    subscription(std::weak_ptr<impl> b, std::shared_ptr<state_type> s,
                 std::vector<std::string> topics, asio::any_io_executor ex, resume_result r)
        : broker_(std::move(b)), state_(std::move(s)), topics_(std::move(topics)),
          executor_(std::move(ex)), resume_(r) {}

    template <class Handler>
    class async_waiter final : public detail::waiter {
    public:
      using executor_type = asio::associated_executor_t<Handler, asio::any_io_executor>;
      async_waiter(Handler h, asio::any_io_executor const& io_ex)
          : handler_(std::move(h)), work_(asio::get_associated_executor(handler_, io_ex)) {}
      void notify(std::error_code ec) noexcept override {
        auto ex = work_.get_executor();
        asio::post(ex, [h = std::move(handler_), ec]() mutable { std::move(h)(ec); });
        delete this;
      }

    private:
      Handler handler_;
      detail::tracked_work<executor_type> work_;
    };

    template <class Handler>
    void initiate_wait(Handler&& handler) {
      auto* w = new async_waiter<std::decay_t<Handler>>(std::forward<Handler>(handler), executor_);
      std::error_code ready_now;
      if (!state_) {
        ready_now = make_error_code(errc::closed);
      } else {
        std::lock_guard<std::mutex> lk(state_->mutex);
        if (state_->armed) {
          delete w;
          throw std::logic_error("sse::subscription::async_wait: a wait is already pending");
        }
        if (!state_->has_messages_locked() && !state_->ended()) {
          state_->armed = w;
          return;
        }
        ready_now = state_->has_messages_locked() ? std::error_code{} : state_->end_reason();
      }
      w->notify(ready_now); // posts, so the handler never runs inside async_wait
    }

    std::weak_ptr<impl> broker_;
    std::shared_ptr<state_type> state_;
    std::vector<std::string> topics_;
    asio::any_io_executor executor_;
    resume_result resume_ = resume_result::none;
  };

  /// A broker whose subscribers get `defaults` unless they ask for other limits.
  explicit basic_broker(queue_limits const& defaults = {}) : impl_(std::make_shared<impl>()) {
    check_limits(defaults);
    impl_->defaults = defaults;
    impl_->max_message_bytes = defaults.max_bytes;
    impl_->epoch = detail::current_epoch();
  }
  basic_broker(basic_broker const&) = delete;
  basic_broker& operator=(basic_broker const&) = delete;

  /// Ends every subscription with errc::closed (their queued messages stay readable).
  ~basic_broker() { close(); }

  /// Keeps history for every topic within `limits` (max_events 0 turns it off). Topics with
  /// history get broker-assigned ids (`<epoch>-<sequence>`) on `publish(topic, event)` unless
  /// the event has its own. Entries older than `max_age` go on a timer too, without traffic;
  /// a `max_age` too large for the clock (e.g. `milliseconds::max()`) means "never".
  /// @throws std::invalid_argument for a negative max_age.
  void set_history(history_limits const& limits) {
    check_history(limits);
    std::lock_guard<std::mutex> lk(impl_->mutex);
    impl_->history_defaults = limits;
    auto const now = clock::now();
    for (auto& [name, t] : impl_->topics)
      if (t->history.enabled && impl_->topic_history.find(name) == impl_->topic_history.end())
        impl_->kept.set_limits(t->history, limits, now);
    impl_->trimmer_cv.notify_one(); // an earlier expiry, perhaps
  }
  /// History limits for one topic, overriding `set_history`.
  void set_history(std::string_view topic, history_limits const& limits) {
    check_history(limits);
    std::lock_guard<std::mutex> lk(impl_->mutex);
    impl_->topic_history.insert_or_assign(std::string(topic), limits);
    auto it = impl_->topics.find(topic);
    if (it != impl_->topics.end() && it->second->history.enabled)
      impl_->kept.set_limits(it->second->history, limits, clock::now());
    impl_->trimmer_cv.notify_one();
  }
  /// At most `bytes` of history over all topics (64 MiB by default): past it the oldest
  /// entries broker-wide go first, and a resume across them gets `reset`.
  void set_history_budget(std::size_t bytes) {
    std::lock_guard<std::mutex> lk(impl_->mutex);
    impl_->kept.set_budget(bytes);
  }
  /// The broker-wide history budget in bytes.
  std::size_t history_budget() const {
    std::lock_guard<std::mutex> lk(impl_->mutex);
    return impl_->kept.budget();
  }

  /// Refuses messages larger than `bytes` (default: the broker's default queue max_bytes):
  /// `publish` and `deliver` throw `message_too_large` and touch no queue and no history.
  /// A smaller message that is still larger than one subscriber's own max_bytes is skipped
  /// for that subscriber alone (counted as dropped), whatever its overflow policy.
  /// @throws std::invalid_argument for 0.
  void set_max_message_bytes(std::size_t bytes) {
    if (bytes == 0)
      throw std::invalid_argument("sse::broker::set_max_message_bytes: the bound must be at least 1");
    impl_->max_message_bytes.store(bytes, std::memory_order_relaxed);
  }
  /// The largest message `publish` and `deliver` accept, in bytes.
  std::size_t max_message_bytes() const noexcept {
    return impl_->max_message_bytes.load(std::memory_order_relaxed);
  }
  /// At most this many topics keep history (a bound on memory when topic names come from
  /// clients); publishes to further topics are delivered but not kept.
  void set_max_history_topics(std::size_t n) {
    std::lock_guard<std::mutex> lk(impl_->mutex);
    impl_->max_history_topics = n;
  }

  /// Subscribes to one topic ("" is the default topic that `publish(message)` uses).
  subscription subscribe(std::string_view topic = {}, subscribe_options const& options = {}) {
    return subscribe(std::vector<std::string>{std::string(topic)}, options);
  }

  /// Subscribes to several topics given in place: `broker.subscribe({"a", "b"})`.
  subscription subscribe(std::initializer_list<std::string_view> topics,
                         subscribe_options const& options = {}) {
    return subscribe(std::vector<std::string>(topics.begin(), topics.end()), options);
  }

  /// Subscribes to several topics with one queue; a message published to any of them is queued
  /// once. Duplicate names count once.
  ///
  /// With `options.last_event_id`, the subscription first replays, in order, every kept event
  /// of its topics published after that id, then gets live ones: the replay and the
  /// registration happen under one lock, so nothing is missed or doubled. Any id is looked up
  /// first among the ids history keeps (O(1), whatever its shape), then read as a broker id.
  /// An id the broker cannot place (unknown, malformed, or older than what history still
  /// holds) gives a `reset` instead (see `subscription::resume()`; for frames, an `event:
  /// reset` comes first). An id of an earlier run of the broker (an older epoch) gives a
  /// `reset` followed by everything this run keeps for the topics: the client missed it all.
  /// @throws std::invalid_argument for an empty topic list or bad limits;
  ///         std::logic_error after close().
  subscription subscribe(std::vector<std::string> topics, subscribe_options const& options = {}) {
    return subscribe_impl(std::move(topics), options, nullptr, resume_result::none);
  }

  /// Subscribes with a replay read elsewhere: `replay` is queued first, in the order given,
  /// then live messages; `resumed` is what `subscription::resume()` reports. The entry point
  /// for a backend that keeps history outside the broker (e.g. in Redis): call it where no
  /// `deliver` to these topics can run concurrently, so nothing is missed or doubled between
  /// the replay and the live messages. `options.last_event_id` and `replay_history` are not
  /// looked at.
  /// @throws std::invalid_argument for an empty topic list or bad limits;
  ///         std::logic_error after close().
  subscription subscribe_with_replay(std::vector<std::string> topics, std::vector<Message> replay,
                                     resume_result resumed, subscribe_options const& options = {}) {
    return subscribe_impl(std::move(topics), options, &replay, resumed);
  }

  /// Publishes `message` to `topic`, through the publisher hook if one is set (see
  /// `set_publisher`), else straight to local subscribers (and the topic's history).
  /// @throws message_too_large past `max_message_bytes()`; nothing is queued or kept then.
  publish_result publish(std::string_view topic, Message const& message) {
    check_size("sse::broker::publish", message_traits<Message>::size(message));
    std::unique_lock<std::mutex> lk(impl_->mutex);
    if (impl_->publisher) {
      hook_ptr hook = impl_->publisher;
      lk.unlock(); // never call out under the lock
      (*hook)(topic, message, std::string_view());
      return {};
    }
    return deliver_locked(lk, topic_for_publish_locked(topic), message, std::string());
  }

  /// Publishes to the default topic "".
  publish_result publish(Message const& message) { return publish(std::string_view{}, message); }

  /// Formats `ev` once and publishes the shared frame. On a topic with history the event gets
  /// the broker's next id, unless it has one (also through the publisher hook, which gets the
  /// id); `publish_result::id` tells which.
  /// @throws message_too_large past `max_message_bytes()`; nothing is queued or kept then.
  template <class M = Message, std::enable_if_t<std::is_same_v<M, frame>, int> = 0>
  publish_result publish(std::string_view topic, event const& ev) {
    char const* const where = "sse::broker::publish";
    check_size(where, formatted_size(ev)); // exact, or a lower bound if the broker adds an id
    std::optional<frame> own; // an event with its own id is sent as it is: format it unlocked
    if (ev.id())
      own.emplace(ev);
    std::unique_lock<std::mutex> lk(impl_->mutex);
    if (impl_->publisher) {
      hook_ptr hook = impl_->publisher;
      // Stamp the id here, so every process the backend delivers to keeps it under one id.
      bool const stamp = !ev.id() && impl_->history_for(topic).max_events > 0;
      std::string const id = stamp ? make_id(++impl_->seq) : ev.id().value_or(std::string());
      lk.unlock();
      frame const f = stamp ? stamped_frame(ev, id) : own ? *own : frame(ev);
      check_size(where, f.size());
      (*hook)(topic, f, id);
      return {0, id};
    }
    return deliver_event_locked(where, lk, topic, ev, own ? &*own : nullptr);
  }
  template <class M = Message, std::enable_if_t<std::is_same_v<M, frame>, int> = 0>
  publish_result publish(event const& ev) {
    return publish(std::string_view{}, ev);
  }

  /// Queues `message` for every local subscriber of `topic` (and keeps it in the topic's
  /// history), ignoring the publisher hook: the entry point for a cross-process backend that
  /// received a message from elsewhere. Kept without an id, so no resume can start after it;
  /// pass the id with the three-argument form.
  /// @throws message_too_large past `max_message_bytes()`.
  publish_result deliver(std::string_view topic, Message const& message) {
    return deliver(topic, message, std::string_view());
  }

  /// `deliver` of a message whose event id is `id` (the one the hook was given): history
  /// keeps it under that id, so a client that last saw it resumes right after it.
  /// @throws message_too_large past `max_message_bytes()`.
  publish_result deliver(std::string_view topic, Message const& message, std::string_view id) {
    check_size("sse::broker::deliver", message_traits<Message>::size(message));
    std::unique_lock<std::mutex> lk(impl_->mutex);
    return deliver_locked(lk, topic_for_publish_locked(topic), message, std::string(id));
  }

  /// `deliver` of an event, formatted with its own id (or, on a topic with history, the
  /// broker's next id if it has none), ignoring the publisher hook.
  /// @throws message_too_large past `max_message_bytes()`.
  template <class M = Message, std::enable_if_t<std::is_same_v<M, frame>, int> = 0>
  publish_result deliver(std::string_view topic, event const& ev) {
    char const* const where = "sse::broker::deliver";
    check_size(where, formatted_size(ev));
    std::optional<frame> own;
    if (ev.id())
      own.emplace(ev);
    std::unique_lock<std::mutex> lk(impl_->mutex);
    return deliver_event_locked(where, lk, topic, ev, own ? &*own : nullptr);
  }

  /// Routes `publish` through `hook` (e.g. to Redis) instead of delivering locally; whatever
  /// receives the message back calls `deliver(topic, message, id)`. The hook runs on the
  /// publishing thread, outside the broker's lock. An empty function restores local delivery.
  void set_publisher(publisher_hook hook) {
    auto p = hook ? std::make_shared<publisher_hook const>(std::move(hook)) : nullptr;
    std::lock_guard<std::mutex> lk(impl_->mutex);
    impl_->publisher = std::move(p);
  }
  /// A hook without the id (resume by id then needs the backend to read it from the message).
  void set_publisher(std::function<void(std::string_view, Message const&)> hook) {
    if (!hook)
      return set_publisher(nullptr);
    set_publisher(publisher_hook(
        [h = std::move(hook)](std::string_view topic, Message const& m, std::string_view) {
          h(topic, m);
        }));
  }
  /// Restores local delivery.
  void set_publisher(std::nullptr_t) { set_publisher(publisher_hook()); }

  /// Ends every subscription with errc::closed, refuses new ones, drops the history and stops
  /// its trimmer. Idempotent.
  void close() {
    if (!impl_)
      return;
    std::thread trimmer;
    {
      std::lock_guard<std::mutex> lk(impl_->mutex);
      impl_->closed = true;
      for (auto& [name, topic] : impl_->topics) {
        topic->clear([&](state_type& s) {
          if (s.unlinked)
            return; // already ended through another topic
          s.unlinked = true;
          --impl_->subscribers;
          if (detail::waiter* w = s.end(errc::closed))
            w->notify(make_error_code(errc::closed));
        });
      }
      impl_->kept.clear();
      impl_->topics.clear();
      impl_->history_topics = 0;
      impl_->trimmer_stop = true;
      impl_->trimmer_cv.notify_all();
      trimmer = std::move(impl_->trimmer);
    }
    if (trimmer.joinable())
      trimmer.join();
  }

  /// The counters, read without stopping publishers.
  broker_stats stats() const {
    broker_stats st;
    {
      std::lock_guard<std::mutex> lk(impl_->mutex);
      st.subscribers = impl_->subscribers;
      for (auto const& [name, t] : impl_->topics)
        st.topics += t->members > 0;
      st.history_events = impl_->kept.entries();
      st.history_bytes = impl_->kept.bytes();
    }
    st.published = impl_->published.load(std::memory_order_relaxed);
    st.delivered = impl_->delivered.load(std::memory_order_relaxed);
    st.dropped = impl_->dropped.load(std::memory_order_relaxed);
    st.evicted = impl_->evicted.load(std::memory_order_relaxed);
    st.refused = impl_->refused.load(std::memory_order_relaxed);
    return st;
  }

  /// Subscribers of `topic` now.
  std::size_t subscriber_count(std::string_view topic) const {
    std::lock_guard<std::mutex> lk(impl_->mutex);
    auto it = impl_->topics.find(topic);
    return it == impl_->topics.end() ? 0 : it->second->members;
  }

  /// The id the broker gave its latest event ("" before the first).
  std::string last_id() const {
    std::lock_guard<std::mutex> lk(impl_->mutex);
    return impl_->seq == 0 ? std::string() : make_id(impl_->seq);
  }

private:
  subscription subscribe_impl(std::vector<std::string> topics, subscribe_options const& options,
                              std::vector<Message>* replay, resume_result resumed) {
    if (topics.empty())
      throw std::invalid_argument("sse::broker::subscribe: no topics given");
    std::sort(topics.begin(), topics.end());
    topics.erase(std::unique(topics.begin(), topics.end()), topics.end());
    queue_limits limits;
    {
      std::lock_guard<std::mutex> lk(impl_->mutex);
      limits = options.limits.value_or(impl_->defaults);
    }
    check_limits(limits);
    auto state = std::make_shared<state_type>(limits);
    state->slots.reserve(topics.size());
    std::vector<topic_ptr> joined;
    joined.reserve(topics.size());
    std::vector<typename topic_type::change_ptr> changes;
    changes.reserve(topics.size());
    for (std::size_t k = 0; k < topics.size(); ++k) {
      changes.push_back(std::make_unique<typename topic_type::change>());
      changes.back()->state = state;
      changes.back()->slot = k;
    }
    {
      std::lock_guard<std::mutex> lk(impl_->mutex);
      if (impl_->closed)
        throw std::logic_error("sse::broker::subscribe: the broker is closed");
      if (replay)
        state->backlog = std::move(*replay);
      else if (options.last_event_id)
        resumed = replay_locked(topics, *options.last_event_id, *state);
      else if (options.replay_history)
        replay_all_locked(topics, *state);
      for (auto const& name : topics) {
        auto it = impl_->topics.find(name);
        if (it == impl_->topics.end())
          it = impl_->topics.emplace(name, std::make_shared<topic_type>(name)).first;
        state->slots.push_back({it->second.get(), topic_type::npos});
        joined.push_back(it->second);
      }
      // No throw from here on: the subscriber is counted and joins every topic, or none.
      for (std::size_t k = 0; k < joined.size(); ++k) {
        ++joined[k]->members;
        // Live from the next ticket on: the earlier ones are in the replay, or came before.
        changes[k]->join_after = joined[k]->tickets;
        joined[k]->join(std::move(changes[k]));
      }
      ++impl_->subscribers;
    }
    for (auto& t : joined)
      t->try_apply();
    return subscription(impl_, std::move(state), std::move(topics), options.executor, resumed);
  }

  static void check_limits(queue_limits const& l) { detail::check_queue_limits("sse::broker", l); }

  static void check_history(history_limits const& h) {
    if (h.max_age < std::chrono::milliseconds::zero())
      throw std::invalid_argument(
          "sse::broker::set_history: history_limits::max_age must not be negative");
  }

  /// @throws message_too_large (counted as refused) if `size` is past the bound.
  void check_size(char const* where, std::size_t size) {
    std::size_t const limit = impl_->max_message_bytes.load(std::memory_order_relaxed);
    if (size > limit) {
      impl_->refused.fetch_add(1, std::memory_order_relaxed);
      throw message_too_large(where, size, limit);
    }
  }

  using hook_ptr = std::shared_ptr<publisher_hook const>;

  std::string make_id(std::uint64_t seq) const {
    return detail::make_broker_id({impl_->epoch, seq});
  }

  /// The entry for a publish to `topic`: existing, or made now if the topic keeps history.
  /// None once the broker is closed: nobody listens, nothing is kept.
  topic_type* topic_for_publish_locked(std::string_view topic) {
    if (impl_->closed)
      return nullptr;
    auto it = impl_->topics.find(topic);
    if (it != impl_->topics.end() && it->second->history.enabled)
      return it->second.get();
    history_limits const& h = impl_->history_for(topic);
    if (it == impl_->topics.end()) {
      if (h.max_events == 0 || impl_->history_topics >= impl_->max_history_topics)
        return nullptr;
      it = impl_->topics.emplace(std::string(topic), std::make_shared<topic_type>(std::string(topic)))
               .first;
    }
    topic_type& t = *it->second;
    if (h.max_events > 0 && impl_->history_topics < impl_->max_history_topics) {
      impl_->kept.enable(t.history, h);
      ++impl_->history_topics;
    }
    return &t;
  }

  /// `publish(topic, event)` after the hook: formats once, with the broker's id if the topic
  /// keeps history and the event has none.
  template <class M = Message, std::enable_if_t<std::is_same_v<M, frame>, int> = 0>
  /// `plain`: `ev` formatted already (it has its own id), else null.
  publish_result deliver_event_locked(char const* where, std::unique_lock<std::mutex>& lk,
                                      std::string_view topic, event const& ev, frame const* plain) {
    auto* t = topic_for_publish_locked(topic);
    if (!t || !t->history.enabled || ev.id()) {
      // Nothing to add: the event is sent as it is (its size was checked), formatted outside
      // the lock.
      if (plain)
        return deliver_locked(lk, t, *plain, ev.id().value_or(std::string()));
      lk.unlock();
      frame const f(ev);
      lk.lock();
      return deliver_locked(lk, topic_for_publish_locked(topic), f, std::string());
    }
    std::string const id = make_id(impl_->seq + 1);
    frame const f = stamped_frame(ev, id); // under the lock: the id is the next in order
    check_size(where, f.size());
    return deliver_locked(lk, t, f, id);
  }

  /// `ev` formatted with `id` in place of its own, in one allocation for the frame.
  template <class M = Message, std::enable_if_t<std::is_same_v<M, frame>, int> = 0>
  static frame stamped_frame(event const& ev, std::string_view id) {
    thread_local std::string scratch;
    scratch.clear();
    scratch.reserve(formatted_size(ev) + id.size() + 8);
    detail::format_to(scratch, ev, id);
    return frame(std::string_view(scratch));
  }

  /// Applies the history bounds (age above all) to `topics` before a replay reads them.
  void trim_topics_locked(std::vector<std::string> const& topics) {
    auto const now = clock::now();
    for (auto const& name : topics) {
      auto it = impl_->topics.find(name);
      if (it != impl_->topics.end() && it->second->history.enabled)
        impl_->kept.trim(it->second->history, now);
    }
  }

  /// Keeps `message` in `t`'s history, then fans it out to `t`'s subscribers outside the
  /// broker's lock (`lk` is released on return), after the fan-outs of earlier publishes.
  publish_result deliver_locked(std::unique_lock<std::mutex>& lk, topic_type* t,
                                Message const& message, std::string id) {
    impl_->published.fetch_add(1, std::memory_order_relaxed);
    publish_result result;
    result.id = std::move(id);
    if (!t)
      return result;
    std::size_t const size = message_traits<Message>::size(message);
    if (t->history.enabled) {
      bool const was_empty = t->history.entries.empty();
      if (impl_->kept.push(t->history, ++impl_->seq, result.id, message, size, clock::now()) &&
          was_empty)
        arm_trimmer_locked(t->history); // a new front: perhaps the earliest expiry
    }
    if (t->members == 0)
      return result;
    std::uint64_t const ticket = ++t->tickets;
    topic_ptr const keep = t->shared_from_this(); // the topic may be erased meanwhile
    lk.unlock();
    detail::fan_out_result<Message> r;
    keep->fan_out(ticket, message, size, r);
    impl_->delivered.fetch_add(r.queued, std::memory_order_relaxed);
    impl_->dropped.fetch_add(r.dropped, std::memory_order_relaxed);
    if (!r.evicted.empty()) {
      impl_->evicted.fetch_add(r.evicted.size(), std::memory_order_relaxed);
      unlink_evicted(r.evicted, keep.get());
    }
    result.receivers = r.queued;
    return result;
  }

  /// Takes subscribers evicted by a fan-out of `from` out of the counts and their other topics.
  void unlink_evicted(std::vector<std::shared_ptr<state_type>> const& evicted,
                      topic_type const* from) noexcept {
    try {
      std::vector<typename impl::leaving> ls;
      ls.reserve(evicted.size());
      for (auto const& s : evicted)
        ls.emplace_back(s);
      {
        std::lock_guard<std::mutex> lk(impl_->mutex);
        for (auto& l : ls)
          impl_->unlink(l, from);
      }
      for (auto& l : ls)
        l.apply();
    } catch (...) { // out of memory: they stay counted until their owners unsubscribe
    }
  }

  /// Makes sure the trimmer wakes by the time `h`'s oldest entry expires: starts it on the
  /// first entry that can expire, else moves its wake-up earlier if need be. Called only when
  /// a topic's oldest entry changed from none, so steady publishing costs nothing here.
  void arm_trimmer_locked(detail::topic_history<Message> const& h) {
    auto const wake = impl_->kept.wake_for(h, h.entries.front());
    if (wake == clock::time_point::max() || impl_->closed)
      return;
    if (!impl_->trimmer.joinable()) {
      try {
        impl_->trimmer = std::thread(&basic_broker::run_trimmer, impl_.get());
      } catch (std::system_error const&) {
        // No thread to spare: history is still trimmed by publishes and resumes.
      }
      return;
    }
    if (wake < impl_->trimmer_wake) {
      impl_->trimmer_wake = wake;
      impl_->trimmer_cv.notify_one();
    }
  }

  /// The trimmer's loop: drop what expired (a bounded batch per lock hold, freed outside the
  /// lock), then sleep until the next expiry, a change of limits or a new oldest entry.
  static void run_trimmer(impl* im) {
    constexpr std::size_t batch = 1024;
    std::vector<Message> freed;
    freed.reserve(batch);
    std::unique_lock<std::mutex> lk(im->mutex);
    while (!im->trimmer_stop) {
      auto const next = im->kept.trim_expired(clock::now(), batch, freed);
      if (!freed.empty()) {
        lk.unlock();
        freed.clear();
        lk.lock();
        continue;
      }
      im->trimmer_wake = next;
      if (next == clock::time_point::max())
        im->trimmer_cv.wait(lk);
      else
        im->trimmer_cv.wait_until(lk, next);
    }
  }

  /// Where a last event id places a resume.
  struct placement {
    enum kind_type { at, earlier_run, unknown } kind = unknown;
    std::uint64_t seq = 0; ///< for `at`: resume after this sequence number
  };

  /// Looks `last_id` up in the index of kept ids first (so a publisher's `2024-17` is found
  /// like `order-17`), then reads it as a broker id. Never scans history.
  placement locate_locked(std::string_view last_id) const {
    if (!detail::plausible_last_event_id(last_id, max_last_event_id))
      return {}; // never trust, never echo
    if (auto seq = impl_->kept.find(last_id))
      return {placement::at, *seq};
    if (auto id = detail::parse_broker_id(last_id)) {
      if (id->epoch == impl_->epoch && id->seq <= impl_->seq)
        return {placement::at, id->seq}; // ours, though no longer kept (or of another topic)
      if (id->epoch < impl_->epoch)
        return {placement::earlier_run, 0};
    }
    return {}; // a future or made-up id, or a publisher's id no longer kept
  }

  resume_result replay_locked(std::vector<std::string> const& topics, std::string_view last_id,
                              state_type& state) {
    trim_topics_locked(topics);
    auto const where = locate_locked(last_id);
    char const* reason = nullptr;
    switch (where.kind) {
    case placement::unknown:
      reason = "unknown-id";
      break;
    case placement::earlier_run:
      reason = "restarted"; // and then all we have: it missed everything since the restart
      break;
    case placement::at:
      for (auto const& name : topics) {
        auto it = impl_->topics.find(name);
        if (it != impl_->topics.end() && it->second->history.trimmed_upto > where.seq)
          reason = "too-old"; // something after it is gone: we cannot give it back
      }
      break;
    }
    if (reason) {
      if constexpr (std::is_same_v<Message, frame>)
        state.backlog.push_back(reset_frame(reason));
      if (where.kind == placement::earlier_run)
        collect_locked(topics, 0, state);
      return resume_result::reset;
    }
    collect_locked(topics, where.seq, state);
    return resume_result::replayed;
  }

  void replay_all_locked(std::vector<std::string> const& topics, state_type& state) {
    trim_topics_locked(topics);
    collect_locked(topics, 0, state);
  }

  /// Every kept message of `topics` after `from`, merged in publish order, into the backlog.
  void collect_locked(std::vector<std::string> const& topics, std::uint64_t from,
                      state_type& state) {
    std::vector<detail::history_entry<Message> const*> found;
    for (auto const& name : topics) {
      auto it = impl_->topics.find(name);
      if (it == impl_->topics.end())
        continue;
      auto const& h = it->second->history.entries;
      auto first = std::upper_bound(h.begin(), h.end(), from,
                                    [](std::uint64_t v, auto const& e) { return v < e.seq; });
      for (; first != h.end(); ++first)
        found.push_back(&*first);
    }
    std::sort(found.begin(), found.end(), [](auto* a, auto* b) { return a->seq < b->seq; });
    state.backlog.reserve(state.backlog.size() + found.size());
    for (auto* e : found)
      state.backlog.push_back(e->message);
  }

  /// `event: reset` with the latest id, so the app reloads its state and later reconnects
  /// resume from now.
  frame reset_frame(char const* reason) const {
    sse::event ev;
    ev.name("reset").data(std::string("{\"reason\":\"") + reason + "\"}");
    if (impl_->seq != 0)
      ev.id(make_id(impl_->seq));
    return frame(ev);
  }

  std::shared_ptr<impl> impl_;
};

/// The broker of formatted frames that servers stream.
using broker = basic_broker<>;
using subscription = broker::subscription;

} // namespace sse
