#pragma once

/// Error codes of the optional Redis component (`sse::redis`), in their own category.

#include <string>
#include <system_error>

namespace sse::redis {

enum class errc {
  /// The connection to Redis was lost (closed by the server, reset, or unreadable) before the
  /// reply arrived.
  connection_lost = 1,
  /// Connecting (TCP, AUTH and the first reply) did not finish within `connect_timeout`.
  connect_timeout,
  /// The TCP connection could not be made (refused, unreachable, unresolvable host).
  connect_failed,
  /// AUTH was refused; the connection is closed and retried later.
  auth_failed,
  /// The command was refused at once: `max_pending_bytes` are already sent or queued without
  /// an answer.
  backlog_full,
  /// The command was refused at once: there is no connection now (waiting to reconnect, not
  /// started, or closed).
  not_connected,
  /// Redis answered with an error reply; the reply passed along holds its text.
  reply_error,
  /// Redis sent bytes that are not RESP (or a script answered in a shape it never does); the
  /// connection was dropped.
  protocol_error,
  /// Redis lost its data (restarted without persistence, or failed over to a replica that was
  /// behind) while the operation was under way; ids from before no longer place.
  data_lost,
};

namespace detail {
class redis_category_impl final : public std::error_category {
public:
  char const* name() const noexcept override { return "sse.redis"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
    case errc::connection_lost:
      return "connection to redis lost";
    case errc::connect_timeout:
      return "connecting to redis timed out";
    case errc::connect_failed:
      return "could not connect to redis";
    case errc::auth_failed:
      return "redis refused AUTH";
    case errc::backlog_full:
      return "too many bytes of redis commands pending";
    case errc::not_connected:
      return "not connected to redis";
    case errc::reply_error:
      return "redis answered with an error";
    case errc::protocol_error:
      return "redis protocol error";
    case errc::data_lost:
      return "redis lost its data";
    }
    return "unknown sse.redis error";
  }
};
} // namespace detail

/// The category of `sse::redis::errc` values.
inline std::error_category const& error_category() noexcept {
  static detail::redis_category_impl const instance;
  return instance;
}

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

} // namespace sse::redis

template <>
struct std::is_error_code_enum<sse::redis::errc> : std::true_type {};
