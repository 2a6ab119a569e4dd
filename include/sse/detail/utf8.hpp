#pragma once

#include <cstddef>
#include <string_view>

namespace sse::detail {

/// Index of the first byte that is not part of well-formed UTF-8 (RFC 3629: no overlong forms,
/// no surrogates, nothing above U+10FFFF), or npos when all of `s` is valid.
inline std::size_t find_invalid_utf8(std::string_view s) noexcept {
  auto const* p = reinterpret_cast<unsigned char const*>(s.data());
  std::size_t const n = s.size();
  std::size_t i = 0;
  while (i < n) {
    // ASCII fast path, eight bytes at a time where aligned work is cheap.
    while (i + 8 <= n) {
      unsigned char acc = 0;
      for (std::size_t k = 0; k < 8; ++k)
        acc = static_cast<unsigned char>(acc | p[i + k]);
      if (acc & 0x80)
        break;
      i += 8;
    }
    if (i >= n)
      break;
    unsigned char const c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF; // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0)
        lo = 0xA0; // overlong
      else if (c == 0xED)
        hi = 0x9F; // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0)
        lo = 0x90; // overlong
      else if (c == 0xF4)
        hi = 0x8F; // above U+10FFFF
    } else {
      return i;
    }
    if (i + len > n)
      return i;
    if (p[i + 1] < lo || p[i + 1] > hi)
      return i;
    for (std::size_t k = 2; k < len; ++k)
      if ((p[i + k] & 0xC0) != 0x80)
        return i;
    i += len;
  }
  return std::string_view::npos;
}

inline bool is_valid_utf8(std::string_view s) noexcept {
  return find_invalid_utf8(s) == std::string_view::npos;
}

} // namespace sse::detail
