#pragma once

// The event-stream parser of the WHATWG HTML standard ("Parsing an event stream" and
// "Interpreting an event stream"), with the Encoding standard's UTF-8 decode in front of it,
// written for the fuzz harnesses from the standards' text, not from the library's code.
// (tests/event_stream_parser.hpp works on raw bytes; this one also decodes, so bytes that are
// not UTF-8 come out as U+FFFD, as a browser shows them.)

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

struct message_event {
  std::string type;
  std::string data;
  std::string last_event_id;
  bool operator==(message_event const& o) const {
    return type == o.type && data == o.data && last_event_id == o.last_event_id;
  }
};

/// Parses one whole stream (the bytes a client received, in one piece).
class event_stream {
public:
  explicit event_stream(std::string_view bytes) {
    std::string const text = utf8_decode(bytes, true).text;
    // Lines end in CRLF, a lone LF or a lone CR; the decoded text is UTF-8, whose
    // multi-byte sequences never contain these ASCII bytes, so bytes can be scanned.
    std::size_t start = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
      char const c = text[i];
      if (c != '\r' && c != '\n') continue;
      line(std::string_view(text).substr(start, i - start));
      bool const crlf = c == '\r' && i + 1 < text.size() && text[i + 1] == '\n';
      // A lone CR at the very end would swallow the LF a following frame starts with.
      ended_in_cr_ = c == '\r' && !crlf && i + 1 == text.size();
      if (crlf) ++i;
      start = i + 1;
    }
    // At the end of the stream a partial line and an undispatched event are discarded.
    pending_line_ = text.substr(start);
  }

  std::vector<message_event> const& events() const { return events_; }
  /// The reconnection time as its decimal digits (leading zeros removed), if one was set.
  std::optional<std::string> const& reconnection_time() const { return reconnection_time_; }
  std::string const& last_event_id() const { return last_event_id_; }
  /// Comment lines, without their ':' (not part of the standard's output; for the tests).
  std::vector<std::string> const& comments() const { return comments_; }
  /// True when the stream ended right after a dispatch: nothing pending that a following
  /// frame would be glued to.
  bool clean_end() const {
    return pending_line_.empty() && data_.empty() && type_.empty() && !ended_in_cr_;
  }
  /// True when the last complete line was the blank line that dispatches.
  bool ends_with_dispatch() const { return last_line_blank_; }

private:
  void line(std::string_view l) {
    last_line_blank_ = l.empty();
    if (l.empty()) return dispatch();
    if (l.front() == ':') {
      comments_.emplace_back(l.substr(1));
      return;
    }
    auto const colon = l.find(':');
    if (colon == std::string_view::npos) return field(l, {});
    std::string_view value = l.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    field(l.substr(0, colon), value);
  }

  void field(std::string_view name, std::string_view value) {
    if (name == "event") {
      type_ = std::string(value);
    } else if (name == "data") {
      data_.append(value);
      data_.push_back('\n');
    } else if (name == "id") {
      if (value.find('\0') == std::string_view::npos) id_buffer_ = std::string(value);
    } else if (name == "retry") {
      // "If the field value consists of only ASCII digits"; browsers ignore an empty one.
      if (!value.empty() && value.find_first_not_of("0123456789") == std::string_view::npos) {
        auto const nz = value.find_first_not_of('0');
        reconnection_time_ = nz == std::string_view::npos ? "0" : std::string(value.substr(nz));
      }
    }
    // Any other field is ignored.
  }

  void dispatch() {
    last_event_id_ = id_buffer_;
    if (data_.empty()) {
      type_.clear();
      return;
    }
    if (data_.back() == '\n') data_.pop_back();
    events_.push_back({type_.empty() ? "message" : type_, data_, last_event_id_});
    data_.clear();
    type_.clear();
  }

  std::string data_, type_, id_buffer_, last_event_id_, pending_line_;
  bool ended_in_cr_ = false;
  bool last_line_blank_ = false;
  std::optional<std::string> reconnection_time_;
  std::vector<std::string> comments_;
  std::vector<message_event> events_;
};

} // namespace sse_fuzz
