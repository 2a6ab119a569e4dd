#pragma once

/// Settings and connection states of `sse::redis::connection` and `sse::redis::subscriber`.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>

namespace sse::redis {

/// Where Redis is and how to keep a connection to it.
struct connection_options {
  std::string host = "127.0.0.1"; ///< name or address, resolved asynchronously on each attempt
  std::uint16_t port = 6379;
  std::string username; ///< ACL user (Redis 6+): `AUTH username password`; empty: `AUTH password`
  std::string password; ///< empty: no AUTH
  /// Bound on one attempt: resolving, TCP connect, AUTH (or PING) answered and, for a
  /// subscriber, its channels subscribed again.
  std::chrono::milliseconds connect_timeout{2000};
  /// Commands sent or queued but not answered yet may hold at most this many bytes (as
  /// formatted in RESP); a command past it fails at once with `errc::backlog_full`.
  std::size_t max_pending_bytes = 16 * 1024 * 1024;
  /// Reconnect after a loss or a failed attempt, waiting a random delay in [b/2, b] where b
  /// doubles from `reconnect_min` up to `reconnect_max` and starts over once connected.
  bool reconnect = true;
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{5000};
};

/// Where a connection is in its life.
enum class connection_state {
  disconnected, ///< not started, or waiting to reconnect after a loss or a failed attempt
  connecting,   ///< an attempt is under way; commands sent now wait for it
  connected,    ///< usable; for a subscriber, every wanted channel is subscribed
  closed,       ///< `close()` was called or the object destroyed; final
};

/// A change of state, as told to the state handler.
struct state_event {
  connection_state state = connection_state::disconnected;
  std::error_code error;      ///< why it left `connected`/`connecting`; {} otherwise
  std::string message;        ///< hiredis' or Redis' text for `error` (e.g. "Connection refused")
  std::chrono::milliseconds retry_in{0}; ///< for `disconnected`: when the next attempt starts
};

} // namespace sse::redis
