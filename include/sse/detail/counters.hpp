#pragma once

// One I/O thread's counters for `server::stats()`: written by that thread alone, summed by
// whoever asks. No shared cache line is written by every connection, and no lock is taken.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace sse::detail {

/// A value with a single writer and any number of readers. Relaxed load plus relaxed store,
/// not a read-modify-write: on the writer's thread it costs what a plain increment costs, yet a
/// reader on another thread reads a whole value without a data race.
template <class T>
class owned_counter {
public:
  void add(T n) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void sub(T n) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  T get() const noexcept { return v_.load(std::memory_order_relaxed); }

private:
  std::atomic<T> v_{0};
};

/// What one worker counts. Every member is written on the worker's thread only.
struct alignas(64) worker_counters { // its own cache lines: workers never share one
  owned_counter<std::uint64_t> bytes_written;
  owned_counter<std::uint64_t> accepted; ///< connections taken on
  owned_counter<std::uint64_t> rejected; ///< connections answered 503 at once (full, stopping)
  owned_counter<std::uint64_t> streams_opened;
  owned_counter<std::uint64_t> streams; ///< open now: +1 when one starts, -1 when it ends
  std::array<owned_counter<std::uint64_t>, 5> responses; ///< by status class: [0] 1xx .. [4] 5xx

  /// A final status was decided for a request (an ordinary response or a stream's 200).
  void response(int status) noexcept {
    int const cls = status / 100 - 1;
    responses[static_cast<std::size_t>(cls < 0 ? 0 : cls > 4 ? 4 : cls)].add(1);
  }
};

} // namespace sse::detail
