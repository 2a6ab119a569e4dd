#pragma once

/// Error codes reported through `std::error_code` in async completions, and the exceptions
/// the library throws for inputs it refuses.

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace sse {

enum class errc {
  /// The subscriber's queue overflowed under `overflow_policy::evict`; it gets no more messages.
  evicted = 1,
  /// The subscription was closed: the broker shut down or the subscriber left.
  closed,
  /// The server ended the stream: `stop()`, `drain()`, or a client that kept sending on it.
  stream_closed,
  /// A write made no progress within the configured write timeout.
  write_timeout,
  /// The client went away (the connection closed or failed) while its stream was open.
  disconnected,

  // sse::client: why a client stopped for good (final), or why it reconnects.
  /// Final: the server answered 204 No Content, the standard's "stop reconnecting".
  no_content,
  /// Final: the server answered a status other than 200 (`client::status()` says which).
  bad_status,
  /// Final: a 200 that is not `text/event-stream`, or has a content coding.
  bad_content_type,
  /// Final: a redirect past `max_redirects`, without a usable `Location`, or to a scheme the
  /// client cannot follow (https without `sse::tls`, or from https down to http).
  bad_redirect,
  /// Final: the response head is larger than `client_options::max_header_bytes`.
  header_too_large,
  /// Final: a line or an event's data is larger than `client_options::limits`.
  event_too_large,
  /// Reconnects: the response is not well-formed HTTP/1.x (status line, header, chunk).
  bad_response,
  /// Reconnects: nothing arrived, not even a heartbeat, within `client_options::read_timeout`
  /// (or the connection and response head took longer than `connect_timeout`).
  read_timeout,
  /// Reconnects: the server ended the response (end of body or connection closed).
  stream_ended,
};

namespace detail {
class error_category_impl final : public std::error_category {
public:
  char const* name() const noexcept override { return "sse"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
    case errc::evicted:
      return "subscriber evicted: its queue was full";
    case errc::closed:
      return "subscription closed";
    case errc::stream_closed:
      return "stream closed";
    case errc::write_timeout:
      return "write made no progress before the timeout";
    case errc::disconnected:
      return "the client disconnected";
    case errc::no_content:
      return "the server answered 204 No Content: stop reconnecting";
    case errc::bad_status:
      return "the server answered a status other than 200";
    case errc::bad_content_type:
      return "the response is not text/event-stream";
    case errc::bad_redirect:
      return "a redirect that cannot be followed";
    case errc::header_too_large:
      return "the response head is larger than max_header_bytes";
    case errc::event_too_large:
      return "a line or an event is larger than the parser's limits";
    case errc::bad_response:
      return "the response is not well-formed HTTP";
    case errc::read_timeout:
      return "nothing arrived within the read timeout";
    case errc::stream_ended:
      return "the server ended the stream";
    }
    return "unknown sse error";
  }
};
} // namespace detail

/// The category of `sse::errc` values.
inline std::error_category const& error_category() noexcept {
  static detail::error_category_impl const instance;
  return instance;
}

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/// A message refused because it is larger than the broker's `max_message_bytes`: nothing was
/// queued, dropped, evicted or kept in history. A publisher answers it (e.g. HTTP 413).
class message_too_large : public std::length_error {
public:
  /// `where` names the refusing call, e.g. "sse::broker::publish".
  message_too_large(std::string_view where, std::size_t size, std::size_t limit)
      : std::length_error(std::string(where) + ": a message of " + std::to_string(size) +
                          " bytes is larger than max_message_bytes (" + std::to_string(limit) +
                          ")"),
        size_(size), limit_(limit) {}

  /// Bytes of the refused message.
  std::size_t size() const noexcept { return size_; }
  /// The bound it exceeded.
  std::size_t limit() const noexcept { return limit_; }

private:
  std::size_t size_, limit_;
};

} // namespace sse

template <>
struct std::is_error_code_enum<sse::errc> : std::true_type {};
