#pragma once

// An I/O thread's share of the fan-outs: the subscribers made on it are fed by it.

#include <sse/detail/ring.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/post.hpp>

#include <cstddef>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace sse::detail {

/// The fan-outs waiting for one I/O thread. A publish on any thread hands each thread one
/// reference to the event: the event waits in its topic's group, and the group waits here,
/// once per event, in publish order. The thread then pushes the event into its own
/// subscribers' queues, so the publisher does O(threads) and every core does a share.
///
/// One queue for every topic keeps a subscriber of several topics seeing them in the order
/// they were published. Whoever holds `run_` runs the queue, in order: the thread, or a
/// publisher when too much waits or the thread has stopped (which bounds what waits).
class fan_out_shard : public std::enable_shared_from_this<fan_out_shard> {
public:
  /// A topic's subscribers on this thread, with its events not yet pushed.
  class job {
  public:
    /// Under `run_`: pushes the oldest waiting event. True if it evicted subscribers, which
    /// `flush` then takes out of the broker (outside `run_`: that takes the broker's lock).
    virtual bool run_one() noexcept = 0;
    virtual void flush() noexcept = 0;

  protected:
    ~job() = default;
  };

  /// What a publish must do after `enqueue`, outside the broker's lock.
  enum class next { nothing, post, run, failed };
  /// Events waiting before a publisher runs the queue itself.
  static constexpr std::size_t max_queued = 1024;

  explicit fan_out_shard(asio::any_io_executor ex) : ex_(std::move(ex)) {}
  fan_out_shard(fan_out_shard const&) = delete;
  fan_out_shard& operator=(fan_out_shard const&) = delete;

  /// Under the broker's lock, so the queue is in publish order: `j` has one more event.
  next enqueue(std::shared_ptr<job> j) noexcept {
    std::lock_guard<std::mutex> lk(queue_mutex_);
    try {
      queue_.push_back(std::move(j));
    } catch (...) { // out of memory
      return next::failed;
    }
    if (closed_ || queue_.size() > max_queued)
      return next::run;
    if (posted_)
      return next::nothing;
    posted_ = true;
    return next::post;
  }

  /// After `enqueue` said `post`: the thread runs the queue soon (or, failing, the caller).
  void post() noexcept {
    try {
      asio::post(ex_, [self = shared_from_this()] { self->run_posted(); });
    } catch (...) { // out of memory
      run();
    }
  }

  /// Runs everything queued, in order (after a run in progress on another thread).
  void run() noexcept {
    std::vector<std::shared_ptr<job>> evicting; // rare: allocated only when someone is evicted
    {
      std::lock_guard<std::mutex> lk(run_mutex_);
      for (;;) {
        {
          std::lock_guard<std::mutex> qlk(queue_mutex_);
          if (queue_.empty())
            break;
          running_.swap(queue_);
        }
        for (; !running_.empty(); running_.pop_front())
          if (running_.front()->run_one()) {
            try {
              evicting.push_back(running_.front());
            } catch (...) { // the broker's counts stay one too high until they unsubscribe
            }
          }
      }
    }
    for (auto& j : evicting)
      j->flush();
  }

  /// On this thread as it stops: runs what is queued, and from now on publishers run it.
  void close() noexcept {
    {
      std::lock_guard<std::mutex> lk(queue_mutex_);
      closed_ = true;
    }
    run();
  }

  /// Held by whoever runs the queue; a group's joins and leaves are applied under it.
  std::mutex& run_mutex() noexcept { return run_mutex_; }

private:
  void run_posted() noexcept {
    {
      std::lock_guard<std::mutex> lk(queue_mutex_);
      posted_ = false; // before running: an event queued from now on posts again
    }
    run();
  }

  asio::any_io_executor ex_;
  std::mutex run_mutex_;
  ring<std::shared_ptr<job>> running_; ///< under run_mutex_: the batch being run
  std::mutex queue_mutex_;
  ring<std::shared_ptr<job>> queue_; ///< under queue_mutex_: one entry per event, in order
  bool posted_ = false;              ///< under queue_mutex_: a run_posted is on its way
  bool closed_ = false;              ///< under queue_mutex_
};

/// The shard of the I/O thread running now, if it is one of a server's own threads: a
/// subscription made here (in a handler) is fed by this thread.
inline thread_local fan_out_shard* this_thread_shard = nullptr;

} // namespace sse::detail
