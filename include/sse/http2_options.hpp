#pragma once

/// Settings of `sse::http2::enable` (`<sse/http2.hpp>`).

#include <cstddef>
#include <cstdint>

namespace sse::http2 {

/// HTTP/2's settings and abuse limits. A client past a limit gets GOAWAY with
/// ENHANCE_YOUR_CALM and its connection closes; everyone else is served as before.
struct options {
  /// Streams a client may have open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS);
  /// one more is refused (RST_STREAM REFUSED_STREAM).
  std::uint32_t max_concurrent_streams = 100;
  /// The window for each request body (SETTINGS_INITIAL_WINDOW_SIZE).
  std::uint32_t initial_window_size = 65535;
  /// Streams a client may reset: `reset_burst` at once, `reset_rate` more per second ("rapid
  /// reset", CVE-2023-44487).
  std::uint32_t reset_burst = 400;
  std::uint32_t reset_rate = 50;
  /// PING, SETTINGS, PRIORITY and empty DATA frames a client may send: `control_burst` at
  /// once, `control_rate` more per second (the floods of CVE-2019-9512, -9515, -9518).
  std::uint32_t control_burst = 200;
  std::uint32_t control_rate = 20;
  /// CONTINUATION frames after one HEADERS (CVE-2024-27316 and its kin).
  std::size_t max_continuations = 8;
  /// Frames (SETTINGS and PING acknowledgements, RST_STREAM) queued for a client that does
  /// not read them.
  std::size_t max_outbound_ack = 1000;
};

} // namespace sse::http2
