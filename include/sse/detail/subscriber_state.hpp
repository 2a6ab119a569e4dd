#pragma once

#include <sse/detail/close_notice.hpp>
#include <sse/detail/ring.hpp>
#include <sse/error.hpp>
#include <sse/queue_limits.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace sse {
namespace detail {

/// @throws std::invalid_argument naming `where` for a bound of zero.
inline void check_queue_limits(char const* where, queue_limits const& l) {
  if (l.max_messages == 0)
    throw std::invalid_argument(std::string(where) + ": queue_limits::max_messages must be at least 1");
  if (l.max_bytes == 0)
    throw std::invalid_argument(std::string(where) + ": queue_limits::max_bytes must be at least 1");
}

/// Someone waiting for a subscriber's queue to become non-empty (or to end).
///
/// `notify` is called exactly once per arming, from the publishing thread, possibly while the
/// broker's lock is held: it must not call back into the broker or run user code inline
/// (post instead).
class waiter {
public:
  virtual void notify(std::error_code ec) noexcept = 0;

protected:
  ~waiter() = default;
};

template <class Message>
class topic_entry;
template <class Message>
class fan_out_group;

/// One subscriber's bounded queue and wait state, shared by its subscription and the broker.
template <class Message>
class subscriber_state {
public:
  enum class push_result { queued, dropped, evicted };

  struct slot {
    topic_entry<Message>* topic;  ///< valid while linked: the broker erases no topic with members
    fan_out_group<Message>* group; ///< the topic's group that feeds it (lives as long as the topic)
    std::size_t index;            ///< position among the group's members (under its fan-out lock)
  };

  explicit subscriber_state(queue_limits const& l) : limits(l) {}

  /// Queues `m` under the policy; returns what happened, adds messages discarded to `discarded`
  /// and sets who to wake (to be notified outside this lock). Sets `deep` if the queue is now
  /// more than half full: its reader is falling behind, and publishers should wait for it.
  push_result push(Message const& m, std::size_t size, waiter*& wake, std::size_t& discarded,
                   bool& deep) {
    std::lock_guard<std::mutex> lk(mutex);
    push_result const r = push_locked(m, size, wake, discarded);
    if (queue.size() * 2 > limits.max_messages || queued_bytes * 2 > limits.max_bytes)
      deep = true;
    return r;
  }

  /// `push` for a caller that holds `mutex`.
  push_result push_locked(Message const& m, std::size_t size, waiter*& wake,
                          std::size_t& discarded) {
    if (ended())
      return push_result::dropped;
    if (size > limits.max_bytes) {
      // It could never fit: skip it for this subscriber alone. It says nothing about how fast
      // this subscriber reads, so it neither evicts it nor discards what it has queued.
      ++dropped, ++discarded;
      return push_result::dropped;
    }
    if (queue.size() + 1 > limits.max_messages || queued_bytes + size > limits.max_bytes) {
      switch (limits.policy) {
      case overflow_policy::evict:
        evicted = true;
        tell_closed_locked(make_error_code(errc::evicted));
        wake = std::exchange(armed, nullptr);
        if (blocking_waiters)
          cv->notify_all();
        return push_result::evicted;
      case overflow_policy::drop_newest:
        ++dropped, ++discarded;
        return push_result::dropped;
      case overflow_policy::drop_oldest:
        while (!queue.empty() &&
               (queue.size() + 1 > limits.max_messages || queued_bytes + size > limits.max_bytes))
          take_front_locked(), ++dropped, ++discarded;
        break; // size <= max_bytes, so it fits once the queue is empty
      }
    }
    queue.push_back(m);
    queued_bytes += size;
    wake = std::exchange(armed, nullptr);
    if (blocking_waiters)
      cv->notify_one();
    return push_result::queued;
  }

  /// Marks the subscriber ended with `why`; returns the waiter to notify, if any.
  waiter* end(errc why) {
    std::lock_guard<std::mutex> lk(mutex);
    return end_locked(why);
  }

  waiter* end_locked(errc why) {
    if (why == errc::evicted)
      evicted = true;
    else
      closed = true;
    tell_closed_locked(make_error_code(why));
    if (blocking_waiters)
      cv->notify_all();
    return std::exchange(armed, nullptr);
  }

  /// The subscriber is over for its application (no message published from now on reaches
  /// it): its close listeners are told `why`, unless they were told already. Called when it
  /// ends (evicted, closed) and by the server when the stream ends first (the client left, a
  /// stop); the first reason wins.
  void tell_closed(std::error_code why) {
    std::lock_guard<std::mutex> lk(mutex);
    tell_closed_locked(why);
  }

  void tell_closed_locked(std::error_code why) noexcept {
    if (close_reason)
      return;
    close_reason = why;
    if (close_watch && !close_watch->waiting.empty())
      post_close_locked(std::exchange(close_watch->waiting, close_listeners()), why);
  }

  /// Adds a listener; one added once the subscriber is over is told at once (posted).
  /// `fallback` is where listeners run when no server writes this subscriber.
  void add_close_listener(std::unique_ptr<close_listener> l,
                          asio::any_io_executor const& fallback) {
    std::lock_guard<std::mutex> lk(mutex);
    if (!close_watch)
      close_watch = std::make_unique<close_watchers>();
    close_watch->fallback = fallback;
    if (!close_reason) {
      close_watch->waiting.push_back(std::move(l));
      return;
    }
    close_listeners now;
    now.push_back(std::move(l));
    post_close_locked(std::move(now), close_reason);
  }

  bool ended() const noexcept { return evicted || closed; }

  /// Replayed history or live messages are waiting.
  bool has_messages_locked() const noexcept {
    return backlog_pos < backlog.size() || !queue.empty();
  }
  std::size_t size_locked() const noexcept { return backlog.size() - backlog_pos + queue.size(); }

  /// The next message (replay first); the caller checked has_messages_locked().
  Message pop_next_locked() noexcept {
    if (backlog_pos < backlog.size()) {
      Message m(std::move(backlog[backlog_pos++]));
      if (backlog_pos == backlog.size())
        std::vector<Message>().swap(backlog), backlog_pos = 0;
      return m;
    }
    Message m = take_front_locked();
    if (queue.empty())
      queue.shrink_if_empty(16); // keep a small ring for steady traffic, free a burst's
    return m;
  }

  /// Moves up to `max` queued messages into `out` under one lock; returns how many.
  template <class Vector>
  std::size_t pop_all(Vector& out, std::size_t max) {
    std::lock_guard<std::mutex> lk(mutex);
    std::size_t n = 0;
    for (; n < max && has_messages_locked(); ++n)
      out.push_back(pop_next_locked());
    return n;
  }

  enum class arm_result { armed, ready, ended };

  /// Arms `w` if nothing is queued and the queue has not ended; one lock either way.
  arm_result arm(waiter& w) {
    std::lock_guard<std::mutex> lk(mutex);
    if (has_messages_locked())
      return arm_result::ready;
    if (ended())
      return arm_result::ended;
    if (armed && armed != &w)
      throw std::logic_error("sse: a wait is already pending on this subscriber");
    armed = &w;
    return arm_result::armed;
  }

  /// Ends the queue (closed) and drops what it holds; returns the waiter to notify, if any.
  waiter* close_and_discard() {
    std::lock_guard<std::mutex> lk(mutex);
    waiter* w = end_locked(errc::closed);
    queue.clear();
    queued_bytes = 0;
    std::vector<Message>().swap(backlog);
    backlog_pos = 0;
    return w;
  }

  /// Takes back an armed waiter (if it was not notified yet).
  void disarm(waiter& w) {
    std::lock_guard<std::mutex> lk(mutex);
    if (armed == &w)
      armed = nullptr;
  }

  /// The error a wait reports once the queue is empty.
  std::error_code end_reason() const noexcept {
    if (evicted)
      return make_error_code(errc::evicted);
    if (closed)
      return make_error_code(errc::closed);
    return {};
  }

  /// Posts `ls`: never inline, since the broker's lock may be held (posting calls no one).
  void post_close_locked(close_listeners ls, std::error_code why) noexcept {
    if (close_run)
      close_run->post(std::move(ls), why);
    else
      post_close_listeners(close_watch ? close_watch->fallback
                                       : asio::any_io_executor(asio::system_executor()),
                           std::move(ls), why);
  }

  /// Removes the oldest message, measuring it before it is moved from.
  Message take_front_locked() noexcept {
    queued_bytes -= message_traits<Message>::size(queue.front());
    Message m(std::move(queue.front()));
    queue.pop_front();
    return m;
  }

  std::mutex mutex;
  /// For the blocking API only (`wait_for`), made by its first wait: a stream never needs it.
  std::unique_ptr<std::condition_variable> cv;
  queue_limits limits;
  ring<Message> queue;
  std::size_t queued_bytes = 0;
  /// History replayed on subscribe, read before the queue. Bounded by the history limits, so
  /// it does not count against the queue's.
  std::vector<Message> backlog;
  std::size_t backlog_pos = 0;
  std::uint64_t dropped = 0;
  bool evicted = false;
  bool closed = false;
  bool attached = false; ///< a connection writes this queue (a stream serves one response)
  /// Set at subscribe (see `slots`); beside the other flags, not in a word of its own.
  bool unlinked = false;
  int blocking_waiters = 0;
  waiter* armed = nullptr;

  // Close notification (`on_close`, `async_wait_closed`), guarded by `mutex`.
  struct close_watchers {
    close_listeners waiting; ///< to be told when the subscriber is over
    asio::any_io_executor fallback = asio::system_executor(); ///< where, if no server writes it
  };
  std::error_code close_reason; ///< set once, when the subscriber is over
  /// Made by the first listener: most subscribers have none, and an executor is 56 bytes.
  std::unique_ptr<close_watchers> close_watch;
  std::shared_ptr<close_runner> close_run; ///< the server writing this subscriber, if any

  // Set at subscribe, before any topic knows this subscriber; `unlinked` under the broker's
  // lock (it left its topics' counts), each `slot::index` under that topic's fan-out lock.
  std::vector<slot> slots;
};

} // namespace detail
} // namespace sse
