#pragma once

#include <chrono>

namespace sse::detail {

/// `at + d` on the steady clock, saturating: a duration too large to add (e.g.
/// `milliseconds::max()`, which overflows nanoseconds) gives `time_point::max()`, "never".
/// A negative `d` counts as zero.
inline std::chrono::steady_clock::time_point
deadline_after(std::chrono::steady_clock::time_point at, std::chrono::milliseconds d) noexcept {
  using clock = std::chrono::steady_clock;
  if (d <= std::chrono::milliseconds::zero())
    return at;
  if (d >= std::chrono::duration_cast<std::chrono::milliseconds>(clock::duration::max()))
    return clock::time_point::max();
  auto const dd = std::chrono::duration_cast<clock::duration>(d); // cannot overflow now
  if (at > clock::time_point::max() - dd)
    return clock::time_point::max();
  return at + dd;
}

/// The longest wait the server takes literally; its options clamp anything longer to it (a
/// century, "never"), so that neither `now + d` nor `now - then >= d` can overflow.
inline constexpr std::chrono::milliseconds max_wait = std::chrono::hours(24 * 365 * 100);

inline std::chrono::milliseconds clamp_wait(std::chrono::milliseconds d) noexcept {
  return d > max_wait ? max_wait : d;
}

/// `a + b` for non-negative durations, saturating at `milliseconds::max()`.
inline std::chrono::milliseconds saturating_add(std::chrono::milliseconds a,
                                                std::chrono::milliseconds b) noexcept {
  return a > std::chrono::milliseconds::max() - b ? std::chrono::milliseconds::max() : a + b;
}

} // namespace sse::detail
