#pragma once

// An I/O thread's share of the fan-outs: the subscribers made on it are fed by it.

#include <sse/detail/ring.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/post.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
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
/// publisher when too much waits or the thread has stopped (which bounds what waits). A
/// publish made on the thread itself (a POST handler) runs it at once: its answer then waits
/// for its pushes, so a publisher cannot outrun its subscribers' queues.
class fan_out_shard : public std::enable_shared_from_this<fan_out_shard> {
public:
  /// A topic's subscribers on this thread, with its events not yet pushed.
  class job {
  public:
    struct outcome {
      std::size_t pushes = 0; ///< subscribers it went through
      bool evicted = false;   ///< `flush` must then take them out of the broker
      bool deep = false;      ///< it left a queue more than half full
    };
    /// Under `run_`: pushes the oldest waiting event. Evicted subscribers are taken out of
    /// the broker by `flush`, outside `run_` (that takes the broker's lock).
    virtual outcome run_one() noexcept = 0;
    virtual void flush() noexcept = 0;

  protected:
    ~job() = default;
  };

  /// What a publish must do after `enqueue`, outside the broker's lock.
  enum class next { nothing, post, run, failed };
  /// Events, and pushes into queues, waiting before a publisher runs the queue itself.
  static constexpr std::size_t max_queued = 1024;
  static constexpr std::size_t max_queued_pushes = 32768;
  /// Pushes into queues per turn of the thread's loop, like the writers' `write_slice`: the
  /// thread's reads and writes run between turns (a few hundred microseconds each).
  static constexpr std::size_t pushes_per_turn = 8192;

  explicit fan_out_shard(asio::any_io_executor ex) : ex_(std::move(ex)) {}
  fan_out_shard(fan_out_shard const&) = delete;
  fan_out_shard& operator=(fan_out_shard const&) = delete;

  /// Under the broker's lock, so the queue is in publish order: `j` has one more event, for
  /// `pushes` subscribers.
  next enqueue(std::shared_ptr<job> j, std::size_t pushes) noexcept {
    std::lock_guard<std::mutex> lk(queue_mutex_);
    try {
      queue_.push_back(std::move(j));
    } catch (...) { // out of memory
      return next::failed;
    }
    queued_pushes_ += pushes;
    if (closed_ || this_thread_is_mine() || queue_.size() > max_queued ||
        queued_pushes_ > max_queued_pushes)
      return next::run;
    if (posted_)
      return next::nothing;
    posted_ = true;
    return next::post;
  }

  /// After `enqueue` said `post`: the thread runs the queue soon (or, failing, the caller).
  /// Under the queue lock, so that it never posts once `close` has begun: the thread's
  /// io_context may be gone by then.
  void post() noexcept {
    std::unique_lock<std::mutex> lk(queue_mutex_);
    if (!closed_) {
      try {
        asio::post(ex_, [self = shared_from_this()] { self->run_posted(); });
        return;
      } catch (...) { // out of memory: run it here
      }
    }
    lk.unlock();
    run();
  }

  /// Runs what is queued, in order (after a run in progress on another thread): all of it,
  /// or until `budget` pushes are done. True if some is left.
  bool run(std::size_t budget = static_cast<std::size_t>(-1)) noexcept {
    std::vector<std::shared_ptr<job>> evicting; // rare: allocated only when someone is evicted
    bool more = false;
    {
      std::lock_guard<std::mutex> lk(run_mutex_);
      std::size_t pushes = 0;
      for (;;) {
        if (running_.empty()) { // what is left of a batch goes before anything queued since
          std::lock_guard<std::mutex> qlk(queue_mutex_);
          if (queue_.empty())
            break;
          running_.swap(queue_);
          queued_pushes_ = 0;
        }
        if (pushes >= budget) {
          more = true;
          break;
        }
        job::outcome const o = running_.front()->run_one();
        pushes += o.pushes;
        pushed_.fetch_add(o.pushes, std::memory_order_relaxed);
        if (o.deep)
          deep_runs_.fetch_add(1, std::memory_order_relaxed);
        if (o.evicted) {
          try {
            evicting.push_back(running_.front());
          } catch (...) { // the broker's counts stay too high until they unsubscribe
          }
        }
        running_.pop_front();
      }
    }
    for (auto& j : evicting)
      j->flush();
    return more;
  }

  /// On this thread as it stops: runs what is queued, and from now on publishers run it.
  void close() noexcept {
    {
      std::lock_guard<std::mutex> lk(queue_mutex_);
      closed_ = true;
    }
    run();
  }

  /// How many events so far left one of this thread's queues more than half full. The
  /// server paces a publishing connection when its request's fan-out raised this count.
  std::uint64_t deep_runs() const noexcept { return deep_runs_.load(std::memory_order_relaxed); }
  /// Pushes into this thread's queues so far: a request whose handler raised it published here.
  std::uint64_t pushed() const noexcept { return pushed_.load(std::memory_order_relaxed); }

  /// Held by whoever runs the queue; a group's joins and leaves are applied under it.
  std::mutex& run_mutex() noexcept { return run_mutex_; }

private:
  bool this_thread_is_mine() const noexcept;

  void run_posted() noexcept {
    {
      std::lock_guard<std::mutex> lk(queue_mutex_);
      posted_ = false; // before running: an event queued from now on posts again
    }
    if (!run(pushes_per_turn))
      return;
    { // the rest after what else is ready on this thread
      std::lock_guard<std::mutex> lk(queue_mutex_);
      posted_ = true;
    }
    post();
  }

  asio::any_io_executor ex_;
  std::mutex run_mutex_;
  ring<std::shared_ptr<job>> running_; ///< under run_mutex_: the batch being run
  std::mutex queue_mutex_;
  ring<std::shared_ptr<job>> queue_; ///< under queue_mutex_: one entry per event, in order
  std::size_t queued_pushes_ = 0;    ///< under queue_mutex_: the subscribers those events go to
  bool posted_ = false;              ///< under queue_mutex_: a run_posted is on its way
  bool closed_ = false;              ///< under queue_mutex_
  std::atomic<std::uint64_t> deep_runs_{0};
  std::atomic<std::uint64_t> pushed_{0};
};

/// The shard of the I/O thread running now, if it is one of a server's own threads: a
/// subscription made here (in a handler) is fed by this thread.
inline thread_local fan_out_shard* this_thread_shard = nullptr;

inline bool fan_out_shard::this_thread_is_mine() const noexcept { return this_thread_shard == this; }

} // namespace sse::detail
