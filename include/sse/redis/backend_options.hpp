#pragma once

/// Settings and counters of `sse::redis::backend`.

#include <sse/queue_limits.hpp>
#include <sse/redis/options.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace sse::redis {

/// How a backend uses Redis.
struct backend_options {
  /// Where Redis is; the backend keeps two connections to it (commands, and pub/sub).
  connection_options redis;
  /// Prepended to every key and channel, so several applications can share one Redis.
  std::string prefix = "sse:";
  /// Each topic's history in Redis (a stream per topic): what a resume can replay, on any
  /// node. `max_events` 0 keeps nothing (every resume with an id is then a `reset`).
  history_limits history{1000, 4 * 1024 * 1024, std::chrono::hours(1)};
  /// Subscriptions waiting for Redis (their topics' feeds, their replay) at most; past it
  /// `async_subscribe` fails at once with `errc::backlog_full`.
  std::size_t max_pending_subscribes = 4096;
  /// Of those, how many read their replay from Redis at once; the others wait their turn, so
  /// a thousand clients resuming together cannot hold a thousand replays in memory.
  std::size_t max_concurrent_replays = 64;
  /// Entries asked for per read of a topic's stream.
  std::size_t read_batch = 1000;
  /// A topic nobody on this node listens to any more stays subscribed this long (so a page
  /// that reloads does not resubscribe), then its channel is left.
  std::chrono::milliseconds linger{5000};
};

/// A snapshot of a backend's counters; totals count since it was made.
struct backend_stats {
  std::uint64_t published = 0;      ///< publishes Redis accepted
  std::uint64_t publish_failed = 0; ///< publishes that failed (Redis down, backlog full, ...)
  std::uint64_t received = 0;       ///< events received from Redis (pub/sub and catch-up reads)
  std::uint64_t catch_ups = 0;      ///< reads of a topic's stream to fill a gap or a reconnect
  std::uint64_t resets = 0;         ///< topics whose local subscribers got `reset` (data lost)
  std::uint64_t subscribes = 0;     ///< subscriptions made through `async_subscribe`
  std::uint64_t subscribe_failed = 0; ///< `async_subscribe` that completed with an error
  std::size_t topics = 0;           ///< topics this node listens to now (one channel each)
  std::size_t pending_subscribes = 0; ///< `async_subscribe` not completed yet
};

} // namespace sse::redis
