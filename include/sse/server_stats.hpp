#pragma once

/// A snapshot of `sse::server`'s counters (see `server::stats()`).

#include <array>
#include <cstddef>
#include <cstdint>

namespace sse {

/// A snapshot of a server's counters; totals count since `start()`.
///
/// Each I/O thread keeps its own counters and the snapshot sums them, so a snapshot taken while
/// clients come and go is a sum of per-thread moments, not one instant.
struct server_stats {
  std::size_t connections = 0;            ///< open now
  std::size_t streams = 0;                ///< event streams open now
  std::uint64_t connections_accepted = 0; ///< connections taken on
  std::uint64_t connections_rejected = 0; ///< answered 503 at once: at max_connections, or stopping
  std::uint64_t streams_opened = 0;       ///< event streams started (their 200 decided)
  std::uint64_t bytes_written = 0;        ///< bytes the sockets accepted: heads, bodies, events
  /// Requests answered, by status class: [0] 1xx, [1] 2xx, ... [4] 5xx (a stream counts as its
  /// 200; an interim 100 Continue not at all).
  std::array<std::uint64_t, 5> requests{};

  /// Every request answered, whatever its status.
  std::uint64_t requests_total() const noexcept {
    std::uint64_t n = 0;
    for (auto r : requests)
      n += r;
    return n;
  }
};

} // namespace sse
