#pragma once

#include <sse/detail/utf8.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sse::detail {

/// The broker's own ids are `<epoch>-<sequence>`: the broker's start in milliseconds since 1970
/// and a counter shared by its topics, so they increase strictly, across restarts too.
struct broker_id {
  std::uint64_t epoch = 0;
  std::uint64_t seq = 0;
};

/// Milliseconds since 1970 now: a new broker's epoch.
inline std::uint64_t current_epoch() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

inline std::string make_broker_id(broker_id id) {
  return std::to_string(id.epoch) + "-" + std::to_string(id.seq);
}

/// Decimal digits only, at most 19 (so no overflow).
inline bool parse_u64(std::string_view s, std::uint64_t& out) noexcept {
  if (s.empty() || s.size() > 19)
    return false;
  out = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return false;
    out = out * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return true;
}

/// The parts of an id shaped like a broker id, or nothing. A publisher's id can have this
/// shape too (a Redis Stream id does): look ids up in history before reading them as this.
inline std::optional<broker_id> parse_broker_id(std::string_view s) noexcept {
  auto const dash = s.find('-');
  broker_id id;
  if (dash == std::string_view::npos || !parse_u64(s.substr(0, dash), id.epoch) ||
      !parse_u64(s.substr(dash + 1), id.seq))
    return std::nullopt;
  return id;
}

/// A client's last event id worth looking at: at most `max_size` bytes of UTF-8 without CR, LF
/// or NUL. Anything else is never trusted, never echoed.
inline bool plausible_last_event_id(std::string_view s, std::size_t max_size) noexcept {
  return s.size() <= max_size && is_valid_utf8(s) &&
         s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

} // namespace sse::detail
