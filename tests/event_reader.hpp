#pragma once

// What a client sees of an event stream, through the public sse::parser: its events and
// comments kept for the tests to assert on, and data as a client's event.data shows it.

#include <sse/parser.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sse_test {

/// An sse::parser that keeps every event and comment it delivered (a client's whole view).
class event_reader {
public:
  explicit event_reader(sse::parser_limits const& limits = {}) : parser_(limits) {}

  /// Feeds bytes in any split; dispatched events collect in events().
  void feed(std::string_view bytes) {
    parser_.feed(
        bytes, [this](sse::parsed_event&& ev) { events_.push_back(std::move(ev)); },
        [this](std::string_view text) { comments_.emplace_back(text); });
  }

  std::vector<sse::parsed_event> const& events() const { return events_; }
  /// Comment lines, the text after ':' (so ": hb" is " hb").
  std::vector<std::string> const& comments() const { return comments_; }
  std::optional<std::chrono::milliseconds> retry() const { return parser_.retry(); }
  std::string const& last_event_id() const { return parser_.last_event_id(); }
  std::string_view partial_line() const { return parser_.partial_line(); }
  bool between_events() const { return parser_.between_events(); }
  sse::parser const& parser() const { return parser_; }

private:
  sse::parser parser_;
  std::vector<sse::parsed_event> events_;
  std::vector<std::string> comments_;
};

/// The events one whole stream dispatches.
inline std::vector<sse::parsed_event> parse_all(std::string_view bytes) {
  return sse::parser().feed(bytes);
}

/// Normalises line breaks the way a client sees data: CRLF and lone CR become LF.
inline std::string as_client_sees(std::string_view data) {
  std::string out;
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (data[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < data.size() && data[i + 1] == '\n') ++i;
    } else {
      out.push_back(data[i]);
    }
  }
  return out;
}

} // namespace sse_test
