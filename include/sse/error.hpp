#pragma once

/// Error codes reported through `std::error_code` in async completions.

#include <string>
#include <system_error>

namespace sse {

enum class errc {
  /// The subscriber's queue overflowed under `overflow_policy::evict`; it gets no more messages.
  evicted = 1,
  /// The subscription was closed: the broker shut down or the subscriber left.
  closed,
  /// The stream was ended by the server or the handler.
  stream_closed,
  /// A write made no progress within the configured write timeout.
  write_timeout,
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

} // namespace sse

template <>
struct std::is_error_code_enum<sse::errc> : std::true_type {};
