#pragma once

/// How a subscriber's queue is bounded and what happens when it is full.

#include <chrono>
#include <cstddef>

namespace sse {

/// What a full subscriber queue does with one more message.
enum class overflow_policy {
  evict,       ///< remove the subscriber and tell it (errc::evicted); the default
  drop_oldest, ///< discard queued messages from the front until the new one fits
  drop_newest, ///< discard the new message
};

/// Bounds of one subscriber's queue, by count and by bytes, and what happens past them.
struct queue_limits {
  std::size_t max_messages = 256;
  std::size_t max_bytes = 1024 * 1024;
  overflow_policy policy = overflow_policy::evict;
};

/// How much of each topic's past the broker keeps, so a client that reconnects with its last
/// event id gets exactly what it missed. Bounded by count, bytes and age.
struct history_limits {
  std::size_t max_events = 0; ///< 0: no history (the default)
  std::size_t max_bytes = 4 * 1024 * 1024;
  std::chrono::milliseconds max_age = std::chrono::hours(1);
};

/// How the broker measures a message for `queue_limits::max_bytes`; specialise for a message
/// type without a `size()` member.
template <class Message>
struct message_traits {
  static std::size_t size(Message const& m) noexcept { return m.size(); }
};

} // namespace sse
