// libFuzzer harness for sse/parser.hpp: arbitrary bytes, fed in one piece, in pieces cut where
// the input says, and byte by byte, give the same events, comments, retry, last event id and
// error; nothing it holds or hands out ever exceeds its limits; a parse_error happens exactly
// when a line is longer than the line limit (found here by a line splitter of its own) or an
// event's data longer than the data limit; after one, the parser refuses to go on until
// reset(), and then parses the same stream again the same way.
//
// Input: byte 0 holds flags (bit 0: a small line limit, bit 1: a small data limit, bits 2-7:
// how many cut points), byte 1 the small line limit - 1, byte 2 the small data limit / 4, then
// two bytes per cut point (little endian, modulo the stream's size + 1), then the stream.

#include <sse/parser.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

[[noreturn]] void fail(char const* what) {
  std::fprintf(stderr, "fuzz_parser: %s\n", what);
  std::abort();
}

void check(bool ok, char const* what) {
  if (!ok) fail(what);
}

struct result {
  std::vector<sse::parsed_event> events;
  std::vector<std::string> comments;
  std::optional<std::chrono::milliseconds> retry;
  std::string last_event_id;
  std::string partial_line;
  bool between_events = false;
  std::optional<sse::parse_error::limit> error;
};

/// Checks what the parser holds and hands out against its limits.
void check_bounds(sse::parser const& p, sse::parser_limits const& l) {
  check(p.partial_line().size() <= l.max_line_bytes, "partial line above max_line_bytes");
  check(p.last_event_id().size() <= l.max_line_bytes, "last event id above max_line_bytes");
  check(p.buffered_bytes() <= 3 * l.max_line_bytes + l.max_data_bytes + 1,
        "buffered_bytes above its documented bound");
}

/// Feeds `stream` cut at `cuts` (sorted offsets) into `p`.
result run(sse::parser& p, std::string_view stream, std::vector<std::size_t> const& cuts) {
  auto const& l = p.limits();
  result r;
  auto on_event = [&](sse::parsed_event&& ev) {
    check(ev.data.size() <= l.max_data_bytes, "event data above max_data_bytes");
    check(ev.type.size() <= l.max_line_bytes || ev.type == "message",
          "event type above max_line_bytes");
    check(ev.id.size() <= l.max_line_bytes, "event id above max_line_bytes");
    check(!ev.type.empty(), "event with an empty type (must be \"message\")");
    check(ev.id.find('\0') == std::string::npos, "event id with NUL");
    check(ev.id == p.last_event_id(), "event id is not the last event id at dispatch");
    r.events.push_back(std::move(ev));
  };
  auto on_comment = [&](std::string_view text) {
    check(text.size() < l.max_line_bytes, "comment above max_line_bytes");
    check(text.find_first_of("\r\n") == std::string_view::npos, "comment with a line break");
    r.comments.emplace_back(text);
  };
  try {
    std::size_t at = 0;
    for (std::size_t cut : cuts) {
      p.feed(stream.substr(at, cut - at), on_event, on_comment);
      check_bounds(p, l);
      at = cut;
    }
    p.feed(stream.substr(at), on_event, on_comment);
    check_bounds(p, l);
  } catch (sse::parse_error const& e) {
    r.error = e.which();
    check(e.value() == (e.which() == sse::parse_error::limit::line_bytes ? l.max_line_bytes
                                                                         : l.max_data_bytes),
          "parse_error names another value than its limit's");
  }
  r.retry = p.retry();
  r.last_event_id = p.last_event_id();
  r.partial_line = std::string(p.partial_line());
  r.between_events = p.between_events();
  return r;
}

void check_same(result const& a, result const& b, char const* how) {
  bool const same =
      a.events == b.events && a.comments == b.comments && a.retry == b.retry &&
      a.last_event_id == b.last_event_id && a.error == b.error &&
      (a.error || (a.partial_line == b.partial_line && a.between_events == b.between_events));
  if (!same) {
    std::fprintf(stderr, "fuzz_parser: %s: %zu vs %zu events, error %d vs %d\n", how,
                 a.events.size(), b.events.size(), a.error ? static_cast<int>(*a.error) : -1,
                 b.error ? static_cast<int>(*b.error) : -1);
    fail("a split changed the outcome");
  }
}

/// The longest line of `stream` (CRLF, LF and lone CR end one; an unterminated last line
/// counts), after one leading BOM: an independent splitter, for the line limit. A stream that
/// is only the start of a BOM has no line yet: the parser cannot tell it from a BOM.
std::size_t longest_line(std::string_view stream) {
  std::string_view const bom = "\xEF\xBB\xBF";
  if (stream.size() < bom.size() && bom.substr(0, stream.size()) == stream) return 0;
  if (stream.substr(0, 3) == bom) stream.remove_prefix(3);
  std::size_t longest = 0, current = 0;
  for (std::size_t i = 0; i < stream.size(); ++i) {
    if (stream[i] == '\r' || stream[i] == '\n') {
      if (stream[i] == '\r' && i + 1 < stream.size() && stream[i + 1] == '\n') ++i;
      current = 0;
    } else {
      longest = std::max(longest, ++current);
    }
  }
  return longest;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* bytes, std::size_t size) {
  if (size < 3) return 0;
  std::uint8_t const flags = bytes[0];
  sse::parser_limits limits;
  if (flags & 1) limits.max_line_bytes = 1 + std::size_t{bytes[1]};
  if (flags & 2) limits.max_data_bytes = 1 + 4 * std::size_t{bytes[2]};
  std::size_t const n_cuts = flags >> 2;
  std::size_t const header = 3 + 2 * n_cuts;
  if (size < header) return 0;
  std::string_view const stream(reinterpret_cast<char const*>(bytes) + header, size - header);
  std::vector<std::size_t> cuts;
  for (std::size_t i = 0; i < n_cuts; ++i) {
    std::size_t const raw = bytes[3 + 2 * i] | std::size_t{bytes[4 + 2 * i]} << 8;
    cuts.push_back(raw % (stream.size() + 1));
  }
  std::sort(cuts.begin(), cuts.end());
  std::vector<std::size_t> every;
  for (std::size_t i = 1; i < stream.size(); ++i)
    every.push_back(i);

  sse::parser whole_parser(limits);
  result const whole = run(whole_parser, stream, {});
  {
    sse::parser p(limits);
    check_same(whole, run(p, stream, cuts), "cut where the input says");
  }
  {
    sse::parser p(limits);
    check_same(whole, run(p, stream, every), "byte by byte");
  }

  // The line limit, against the splitter above; a data error may come first.
  bool const line_too_long = longest_line(stream) > limits.max_line_bytes;
  if (whole.error == sse::parse_error::limit::line_bytes)
    check(line_too_long, "line_bytes error without a line above the limit");
  if (line_too_long) check(whole.error.has_value(), "a line above the limit was accepted");

  if (!whole.error) {
    // The vector form is the callback form.
    check(sse::parser(limits).feed(stream) == whole.events, "vector feed differs");
  } else {
    // Unusable until reset(), then the same stream parses the same way again (the ids may
    // differ: the last event id is carried into the new connection).
    bool refused = false;
    try {
      whole_parser.feed("\n");
    } catch (std::logic_error const&) {
      refused = true;
    }
    check(refused, "a failed parser went on without reset()");
  }
  whole_parser.reset();
  check(whole_parser.partial_line().empty() && whole_parser.between_events(),
        "reset() left something pending");
  check(whole_parser.last_event_id() == whole.last_event_id, "reset() lost the last event id");
  result const again = run(whole_parser, stream, {});
  check(again.error == whole.error, "after reset() the same stream fails differently");
  check(again.retry == whole.retry, "after reset() the retry differs");
  check(again.events.size() == whole.events.size(), "after reset() the events differ");
  for (std::size_t i = 0; i < again.events.size(); ++i)
    check(again.events[i].type == whole.events[i].type &&
              again.events[i].data == whole.events[i].data,
          "after reset() an event differs");
  return 0;
}
