#pragma once

// The Encoding standard's "UTF-8 decode", written for the fuzz harnesses from the standard's
// text, not from the library's code (sse/detail/utf8.hpp): what a browser makes of the bytes of
// an event stream before it parses it. sse::parser works on bytes, so a harness uses this to
// tell which text a browser would see as the parser does (valid UTF-8) and which it would show
// with U+FFFD.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sse_fuzz {

/// Output of the Encoding standard's "UTF-8 decode": the text re-encoded as UTF-8, with each
/// error replaced by U+FFFD.
struct decoded {
  std::string text;
  bool had_error = false;
};

inline void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

/// The UTF-8 decoder's handler, byte by byte; strip_bom is "UTF-8 decode" (the stream),
/// without it "UTF-8 decode without BOM" (a lone string).
inline decoded utf8_decode(std::string_view bytes, bool strip_bom) {
  decoded out;
  if (strip_bom && bytes.substr(0, 3) == "\xEF\xBB\xBF") bytes.remove_prefix(3);
  std::uint32_t code_point = 0;
  unsigned bytes_seen = 0, bytes_needed = 0;
  unsigned lower = 0x80, upper = 0xBF;
  auto error = [&] {
    out.had_error = true;
    append_utf8(out.text, 0xFFFD);
  };
  for (std::size_t i = 0; i < bytes.size();) {
    unsigned const b = static_cast<unsigned char>(bytes[i]);
    if (bytes_needed == 0) {
      ++i;
      if (b <= 0x7F) {
        out.text.push_back(static_cast<char>(b));
      } else if (b >= 0xC2 && b <= 0xDF) {
        bytes_needed = 1;
        code_point = b & 0x1F;
      } else if (b >= 0xE0 && b <= 0xEF) {
        if (b == 0xE0) lower = 0xA0;
        if (b == 0xED) upper = 0x9F;
        bytes_needed = 2;
        code_point = b & 0xF;
      } else if (b >= 0xF0 && b <= 0xF4) {
        if (b == 0xF0) lower = 0x90;
        if (b == 0xF4) upper = 0x8F;
        bytes_needed = 3;
        code_point = b & 0x7;
      } else {
        error();
      }
      continue;
    }
    if (b < lower || b > upper) {
      // The byte is not consumed: it is processed again as the start of what follows.
      code_point = 0, bytes_needed = 0, bytes_seen = 0, lower = 0x80, upper = 0xBF;
      error();
      continue;
    }
    ++i;
    lower = 0x80, upper = 0xBF;
    code_point = (code_point << 6) | (b & 0x3F);
    if (++bytes_seen == bytes_needed) {
      append_utf8(out.text, code_point);
      code_point = 0, bytes_needed = 0, bytes_seen = 0;
    }
  }
  if (bytes_needed != 0) error();
  return out;
}

inline bool is_utf8(std::string_view s) {
  return !utf8_decode(s, false).had_error;
}

} // namespace sse_fuzz
