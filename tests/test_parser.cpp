// sse::parser against the HTML standard ("Interpreting an event stream"): the standard's own
// examples, each line-ending and field rule, the limits, reset(), and a round trip through
// sse/format.hpp. Every input goes through parsed(), which also feeds it at every split point
// and byte by byte and requires the same outcome each time.

#include "event_reader.hpp"

#include <sse/format.hpp>
#include <sse/json.hpp>
#include <sse/parser.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using namespace std::string_literals;
using ms = std::chrono::milliseconds;
using sse::parsed_event;

namespace Catch {
template <>
struct StringMaker<parsed_event> {
  static std::string convert(parsed_event const& e) {
    return "{type " + StringMaker<std::string>::convert(e.type) + ", data " +
           StringMaker<std::string>::convert(e.data) + ", id " +
           StringMaker<std::string>::convert(e.id) + "}";
  }
};
} // namespace Catch

namespace {

/// Everything a stream did to a parser.
struct outcome {
  std::vector<parsed_event> events;
  std::vector<std::string> comments;
  std::optional<ms> retry;
  std::string last_event_id;
  std::string partial_line; // only compared without an error
  bool between_events = true;
  std::string error; // what() of the parse_error, if one was thrown

  bool operator==(outcome const& o) const {
    return events == o.events && comments == o.comments && retry == o.retry &&
           last_event_id == o.last_event_id && error == o.error &&
           (!error.empty() ||
            (partial_line == o.partial_line && between_events == o.between_events));
  }
};

/// Feeds `bytes` cut at `cuts` (ascending offsets) into a new parser.
outcome run(std::string_view bytes, std::vector<std::size_t> const& cuts,
            sse::parser_limits const& limits = {}) {
  sse::parser p(limits);
  outcome o;
  auto feed = [&](std::string_view piece) {
    p.feed(
        piece, [&](parsed_event&& ev) { o.events.push_back(std::move(ev)); },
        [&](std::string_view c) { o.comments.emplace_back(c); });
  };
  try {
    std::size_t at = 0;
    for (std::size_t cut : cuts) {
      feed(bytes.substr(at, cut - at));
      at = cut;
    }
    feed(bytes.substr(at));
  } catch (sse::parse_error const& e) {
    o.error = e.what();
  }
  o.retry = p.retry();
  o.last_event_id = p.last_event_id();
  o.partial_line = std::string(p.partial_line());
  o.between_events = p.between_events();
  return o;
}

/// The outcome of `bytes` in one feed, after checking that every split gives the same: each
/// single split point, byte by byte, and (for short inputs) every pair of split points.
outcome parsed(std::string_view bytes, sse::parser_limits const& limits = {}) {
  auto const whole = run(bytes, {}, limits);
  auto same = [&](std::vector<std::size_t> const& cuts) {
    auto const split = run(bytes, cuts, limits);
    if (!(split == whole)) {
      CAPTURE(bytes, cuts, split.events, whole.events, split.error, whole.error);
      FAIL_CHECK("a split changed the outcome");
    }
  };
  std::vector<std::size_t> every;
  for (std::size_t i = 0; i <= bytes.size(); ++i) {
    same({i});
    if (i > 0 && i < bytes.size()) every.push_back(i);
  }
  same(every);
  if (bytes.size() <= 40)
    for (std::size_t i = 0; i <= bytes.size(); ++i)
      for (std::size_t j = i; j <= bytes.size(); ++j)
        same({i, j});
  return whole;
}

std::vector<parsed_event> events(std::string_view bytes) {
  return parsed(bytes).events;
}

parsed_event message(std::string data, std::string id = {}) {
  return {"message", std::move(data), std::move(id)};
}

} // namespace

// --- The standard's own examples -----------------------------------------------------------

TEST_CASE("parser: the standard's stock-price example is one event with three lines",
          "[parser][spec]") {
  auto const got = parsed("data: YHOO\ndata: +2\ndata: 10\n\n");
  CHECK(got.events == std::vector<parsed_event>{message("YHOO\n+2\n10")});
  // "once followed by a blank line": without it, nothing.
  CHECK(events("data: YHOO\ndata: +2\ndata: 10\n").empty());
}

TEST_CASE("parser: the standard's four blocks: a comment, an id, an id reset, an undispatched "
          "last block",
          "[parser][spec]") {
  std::string const stream = ": test stream\n"
                             "\n"
                             "data: first event\n"
                             "id: 1\n"
                             "\n"
                             "data:second event\n"
                             "id\n"
                             "\n"
                             "data:  third event\n";
  auto const got = parsed(stream);
  CHECK(got.events ==
        std::vector<parsed_event>{message("first event", "1"), message("second event", "")});
  CHECK(got.comments == std::vector<std::string>{" test stream"});
  CHECK(got.last_event_id.empty()); // "id" alone reset it: no Last-Event-ID on reconnect
  CHECK_FALSE(got.between_events);

  // The end of the stream is not enough: with the blank line the last block fires, its data
  // with one leading space.
  auto const ended = parsed(stream + "\n");
  REQUIRE(ended.events.size() == 3);
  CHECK(ended.events[2] == message(" third event", ""));
  CHECK(ended.between_events);
}

TEST_CASE("parser: the standard's 'data' / 'data data' / 'data:' stream fires two events",
          "[parser][spec]") {
  // The first block has empty data, the middle one a single LF; the last is discarded.
  CHECK(events("data\n\ndata\ndata\n\ndata:") ==
        std::vector<parsed_event>{message(""), message("\n")});
}

TEST_CASE("parser: 'data:test' and 'data: test' are the same event", "[parser][spec]") {
  auto const got = events("data:test\n\ndata: test\n\n");
  REQUIRE(got.size() == 2);
  CHECK(got[0] == message("test"));
  CHECK(got[0] == got[1]);
}

TEST_CASE("parser: the standard's introduction examples: messages and event types",
          "[parser][spec]") {
  CHECK(events("data: This is the first message.\n\n"
               "data: This is the second message, it\n"
               "data: has two lines.\n\n"
               "data: This is the third message.\n\n") ==
        std::vector<parsed_event>{message("This is the first message."),
                                  message("This is the second message, it\nhas two lines."),
                                  message("This is the third message.")});
  CHECK(events("event: add\ndata: 73857293\n\n"
               "event: remove\ndata: 2153\n\n"
               "event: add\ndata: 113411\n\n") == std::vector<parsed_event>{{"add", "73857293", ""},
                                                                            {"remove", "2153", ""},
                                                                            {"add", "113411", ""}});
}

TEST_CASE("parser: two events after a byte order mark", "[parser][spec][bom]") {
  CHECK(events("\xEF\xBB\xBF"
               "data: 1\n\ndata: 2\n\n") == std::vector<parsed_event>{message("1"), message("2")});
}

// --- Lines ---------------------------------------------------------------------------------

TEST_CASE("parser: lines end at CRLF, LF or a lone CR, in any mix", "[parser][lines]") {
  auto const want = std::vector<parsed_event>{message("a\nb"), message("c")};
  SECTION("LF") {
    CHECK(events("data: a\ndata: b\n\ndata: c\n\n") == want);
  }
  SECTION("CRLF") {
    CHECK(events("data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n") == want);
  }
  SECTION("lone CR") {
    CHECK(events("data: a\rdata: b\r\rdata: c\r\r") == want);
  }
  SECTION("mixed") {
    CHECK(events("data: a\rdata: b\r\n\ndata: c\n\r") == want);
  }
}

TEST_CASE("parser: CR LF is one line end, LF CR is two", "[parser][lines]") {
  // "\r\n" then "data: b": one event; a parser that saw two ends would dispatch "a" alone.
  CHECK(events("data: a\r\ndata: b\n\n") == std::vector<parsed_event>{message("a\nb")});
  CHECK(events("data: a\n\rdata: b\n\n") == std::vector<parsed_event>{message("a"), message("b")});
  CHECK(events("data: a\r\r\ndata: b\n\n") ==
        std::vector<parsed_event>{message("a"), message("b")});
}

TEST_CASE("parser: a CRLF split across two feeds is still one line end", "[parser][lines]") {
  sse::parser p;
  CHECK(p.feed("data: a\r").empty());
  CHECK(p.feed("\n").empty()); // the LF of the CRLF, not a blank line
  CHECK(p.feed("data: b\r").empty());
  CHECK(p.feed("").empty()); // an empty feed keeps the CR pending
  CHECK(p.feed("\n\r\n") == std::vector<parsed_event>{message("a\nb")});
}

TEST_CASE("parser: a stream that ends mid-line keeps the partial line, not an event",
          "[parser][lines]") {
  auto const got = parsed("data: a\n\ndata: b");
  CHECK(got.events == std::vector<parsed_event>{message("a")});
  CHECK(got.partial_line == "data: b");
  CHECK_FALSE(got.between_events);
  // A line that did end but was not followed by a blank line is not partial, still pending.
  auto const line_ended = parsed("data: b\r");
  CHECK(line_ended.events.empty());
  CHECK(line_ended.partial_line.empty());
  CHECK_FALSE(line_ended.between_events);
  CHECK(parsed("").between_events);
  CHECK(parsed("data: x\n\n").between_events);
}

// --- Byte order mark -----------------------------------------------------------------------

TEST_CASE("parser: one BOM at the very start is stripped, and only there", "[parser][bom]") {
  std::string const bom = "\xEF\xBB\xBF";
  CHECK(events(bom + "data: a\n\n") == std::vector<parsed_event>{message("a")});
  // A second BOM is part of the first field's name, which is then unknown.
  CHECK(events(bom + bom + "data: a\n\n").empty());
  // Later in the stream a BOM is just bytes.
  CHECK(events("data: a\n\n" + bom + "data: b\n\n") == std::vector<parsed_event>{message("a")});
  CHECK(events("data: " + bom + "\n\n") == std::vector<parsed_event>{message(bom)});
  // A BOM right before a line end: the line is blank.
  CHECK(events(bom + "\ndata: a\n\n") == std::vector<parsed_event>{message("a")});
  CHECK(parsed(bom).between_events);
}

TEST_CASE("parser: a partial BOM is the start of the first line", "[parser][bom]") {
  CHECK(events("\xEF\xBB"
               "data: a\n\n")
            .empty()); // the field is "\xEF\xBB" "data", unknown
  CHECK(parsed("\xEF\xBB"
               "data: a")
            .partial_line == "\xEF\xBB"
                             "data: a");
  CHECK(events("\xEF:\ndata: a\n\n") == std::vector<parsed_event>{message("a")});
  // Held back a byte at a time, then given back when the BOM turns out not to be one.
  sse::parser p;
  CHECK(p.feed("\xEF").empty());
  CHECK(p.feed("\xBB").empty());
  CHECK_FALSE(p.between_events());
  CHECK(p.feed("\n").empty());
  CHECK(p.partial_line().empty());
  CHECK(p.feed("data: x\n\n") == std::vector<parsed_event>{message("x")});
}

// --- Fields --------------------------------------------------------------------------------

TEST_CASE("parser: one space after the colon is dropped, any other kept", "[parser][fields]") {
  CHECK(events("data:x\n\n") == std::vector<parsed_event>{message("x")});
  CHECK(events("data: x\n\n") == std::vector<parsed_event>{message("x")});
  CHECK(events("data:  x \n\n") == std::vector<parsed_event>{message(" x ")});
  CHECK(events("data:\tx\n\n") == std::vector<parsed_event>{message("\tx")});
  CHECK(events("data: \n\n") == std::vector<parsed_event>{message("")});
  CHECK(events("event:  spaced\ndata: x\n\n") == std::vector<parsed_event>{{" spaced", "x", ""}});
}

TEST_CASE("parser: a field's value is everything after the first colon", "[parser][fields]") {
  CHECK(events("data: a:b: c\n\n") == std::vector<parsed_event>{message("a:b: c")});
  CHECK(events("data::\n\n") == std::vector<parsed_event>{message(":")});
  CHECK(events("id: 1:2\ndata: x\n\n") == std::vector<parsed_event>{message("x", "1:2")});
}

TEST_CASE("parser: a line without a colon is a field with an empty value", "[parser][fields]") {
  CHECK(events("data\n\n") == std::vector<parsed_event>{message("")});
  CHECK(events("id: 3\ndata: x\n\nid\ndata: y\n\n") ==
        std::vector<parsed_event>{message("x", "3"), message("y", "")});
  CHECK(events("event: a\nevent\ndata: x\n\n") == std::vector<parsed_event>{message("x")});
  CHECK(parsed("retry: 5\nretry\n").retry == ms(5)); // empty: not a retry
}

TEST_CASE("parser: field names are compared exactly, and unknown fields are ignored",
          "[parser][fields]") {
  CHECK(events("Data: x\n\nDATA: x\n\n data: x\n\ndata : x\n\n").empty());
  CHECK(events("foo: bar\ndata: x\nid2: 9\nevents: e\n\n") ==
        std::vector<parsed_event>{message("x")});
  CHECK(events("foo\n\n").empty());
  CHECK(parsed("Retry: 5\nretry : 5\n").retry == std::nullopt);
}

TEST_CASE("parser: comments are ignored, and reported with the text after the colon",
          "[parser][fields]") {
  auto const got = parsed(":\n: hi\n:: x\n:data: x\n\n: id: 4\n\n");
  CHECK(got.events.empty());
  CHECK(got.last_event_id.empty());
  CHECK(got.comments == std::vector<std::string>{"", " hi", ": x", "data: x", " id: 4"});
  // A comment inside an event changes nothing about it.
  CHECK(events("data: a\n: between\ndata: b\n\n") == std::vector<parsed_event>{message("a\nb")});
}

TEST_CASE("parser: data lines join with LF and the last LF is dropped", "[parser][fields]") {
  CHECK(events("data: a\ndata: b\ndata: c\n\n") == std::vector<parsed_event>{message("a\nb\nc")});
  CHECK(events("data: a\ndata:\n\n") == std::vector<parsed_event>{message("a\n")});
  CHECK(events("data:\ndata: a\n\n") == std::vector<parsed_event>{message("\na")});
  CHECK(events("data: a\0b\n\n"s) == std::vector<parsed_event>{message("a\0b"s)});
  CHECK(events("data: \xFF\xFE bytes\n\n") ==
        std::vector<parsed_event>{message("\xFF\xFE bytes")}); // not decoded: see parser.hpp
}

TEST_CASE("parser: an event without data is not dispatched, and forgets its type",
          "[parser][fields]") {
  CHECK(events("\n\n\n").empty());
  CHECK(events("event: a\n\n").empty());
  CHECK(events("event: a\n\ndata: x\n\n") == std::vector<parsed_event>{message("x")});
  CHECK(events("event: a\ndata: 1\n\ndata: 2\n\n") ==
        std::vector<parsed_event>{{"a", "1", ""}, message("2")});
  CHECK(events("event:\ndata: x\n\n") == std::vector<parsed_event>{message("x")});
  CHECK(events("event: a\nevent: b\ndata: x\n\n") == std::vector<parsed_event>{{"b", "x", ""}});
}

TEST_CASE("parser: the last event id is set at every dispatch and carried across events",
          "[parser][fields][id]") {
  CHECK(events("id: 1\ndata: a\n\ndata: b\n\n") ==
        std::vector<parsed_event>{message("a", "1"), message("b", "1")});
  // Set at dispatch, even without data.
  auto const no_data = parsed("id: 7\n\n");
  CHECK(no_data.events.empty());
  CHECK(no_data.last_event_id == "7");
  CHECK(events("id: 7\n\ndata: x\n\n") == std::vector<parsed_event>{message("x", "7")});
  // The field sets a buffer; the last event id changes only at the blank line.
  auto const pending = parsed("id: 1\n\nid: 2\ndata: x\n");
  CHECK(pending.last_event_id == "1");
  // Where the id line sits in the event does not matter; the last one wins.
  CHECK(events("data: a\nid: 2\nid: 3\n\n") == std::vector<parsed_event>{message("a", "3")});
  // "id:" and "id" reset it.
  CHECK(parsed("id: 1\n\nid:\n\n").last_event_id.empty());
  CHECK(parsed("id: 1\n\nid\n\n").last_event_id.empty());
  CHECK(events("id: 5\ndata: x\n\nid: \ndata: y\n\n") ==
        std::vector<parsed_event>{message("x", "5"), message("y", "")});
}

TEST_CASE("parser: an id containing NUL is ignored", "[parser][fields][id]") {
  CHECK(events("id: 1\n\nid: a\0b\ndata: x\n\n"s) == std::vector<parsed_event>{message("x", "1")});
  CHECK(parsed("id: \0\n\n"s).last_event_id.empty());
  CHECK(events("id: \xFF ok\ndata: x\n\n") == std::vector<parsed_event>{message("x", "\xFF ok")});
}

TEST_CASE("parser: retry takes ASCII digits only, at once, and never overflows",
          "[parser][fields][retry]") {
  CHECK(parsed("").retry == std::nullopt);
  CHECK(parsed("retry: 1500\n").retry == ms(1500)); // no blank line needed
  CHECK(parsed("retry:0\n").retry == ms(0));
  CHECK(parsed("retry: 007\n").retry == ms(7));
  CHECK(parsed("retry: 10\nretry: 20\n").retry == ms(20));
  for (auto bad : {"retry: \n"s, "retry:  5\n"s, "retry: 5 \n"s, "retry: -1\n"s, "retry: +1\n"s,
                   "retry: 1.5\n"s, "retry: 1e3\n"s, "retry: 0x10\n"s, "retry: 12a\n"s,
                   "retry: \xD9\xA1\n"s /* ARABIC-INDIC DIGIT ONE */, "retry: 1\0\n"s}) {
    CAPTURE(bad);
    CHECK(parsed("retry: 42\n" + bad).retry == ms(42)); // ignored: the old value stays
  }
  // Past milliseconds::max() the value saturates (the standard's integer has no bound).
  constexpr auto max = ms::max();
  CHECK(parsed("retry: 9223372036854775807\n").retry == max);
  CHECK(parsed("retry: 9223372036854775806\n").retry == max - ms(1));
  CHECK(parsed("retry: 9223372036854775808\n").retry == max);
  CHECK(parsed("retry: " + std::string(400, '9') + "\n").retry == max);
  CHECK(parsed("retry: 00000000000000000000000000000000000012\n").retry == ms(12));
}

TEST_CASE("parser: retry is not part of an event, and is kept without a blank line",
          "[parser][fields][retry]") {
  auto const got = parsed("data: a\nretry: 9\n");
  CHECK(got.events.empty());
  CHECK(got.retry == ms(9));
  CHECK(events("retry: 9\ndata: a\n\n") == std::vector<parsed_event>{message("a")});
}

// --- Splits --------------------------------------------------------------------------------

TEST_CASE("parser: a stream using every rule gives the same events at every split point",
          "[parser][split]") {
  std::string const stream = "\xEF\xBB\xBF: hello\r\n"
                             "retry: 3000\r"
                             "id: 1\n"
                             "event: a\r\n"
                             "data: x\r"
                             "data\n"
                             "\r\n"
                             "data:  y\r"
                             "\r"
                             "id: \0\n"
                             "unknown: field\n"
                             "data: z\r\n"
                             "\n"
                             "id\r"
                             "\n"
                             "\n"
                             "data: tail"s;
  auto const got = parsed(stream);
  CHECK(got.events ==
        std::vector<parsed_event>{{"a", "x\n", "1"}, message(" y", "1"), message("z", "1")});
  CHECK(got.comments == std::vector<std::string>{" hello"});
  CHECK(got.retry == ms(3000));
  CHECK(got.last_event_id.empty());
  CHECK(got.partial_line == "data: tail");
}

TEST_CASE("parser: the callback and vector forms of feed give the same events", "[parser][split]") {
  std::string const stream = "data: 1\n\nevent: e\ndata: 2\nid: 9\n\ndata: 3\n";
  sse::parser a, b;
  std::vector<parsed_event> via_callback;
  a.feed(stream, [&](parsed_event&& ev) { via_callback.push_back(std::move(ev)); });
  CHECK(b.feed(stream) == via_callback);
  CHECK(via_callback.size() == 2);
  CHECK(a.last_event_id() == b.last_event_id());
  CHECK(a.partial_line() == b.partial_line());
}

// --- Limits --------------------------------------------------------------------------------

TEST_CASE("parser: a limit of 0 is refused", "[parser][limits]") {
  CHECK_THROWS_WITH(sse::parser(sse::parser_limits{0, 10}),
                    "sse::parser: max_line_bytes must not be 0");
  CHECK_THROWS_WITH(sse::parser(sse::parser_limits{10, 0}),
                    "sse::parser: max_data_bytes must not be 0");
  CHECK_THROWS_AS(sse::parser(sse::parser_limits{0, 10}), std::invalid_argument);
  sse::parser_limits const defaults;
  CHECK(defaults.max_line_bytes == 64 * 1024);
  CHECK(defaults.max_data_bytes == 1024 * 1024);
  CHECK(sse::parser().limits().max_line_bytes == defaults.max_line_bytes);
}

TEST_CASE("parser: a line longer than max_line_bytes is a parse_error naming the limit",
          "[parser][limits]") {
  sse::parser_limits const limits{8, 1024};
  // The line end does not count: 8 bytes of line are fine with any end.
  CHECK(parsed("data: ab\r\n\r\n", limits).events == std::vector<parsed_event>{message("ab")});
  CHECK(parsed("data: ab\r\r", limits).error.empty());
  CHECK(parsed(":2345678\n", limits).error.empty());
  auto const over = parsed("data: a\n\ndata: abc\n\n", limits);
  CHECK(over.error == "sse::parser: a line is longer than max_line_bytes (8)");
  CHECK(over.events == std::vector<parsed_event>{message("a")}); // those before it came out
  CHECK(parsed(":23456789", limits).error == over.error);        // a comment is a line too
  CHECK(parsed("\xEF\xBB\xBF"
               "data: ab\n\n",
               limits)
            .error.empty()); // the BOM is not part of the line
  CHECK_FALSE(parsed("\xEF\xBB"
                     "data: ab\n\n",
                     limits)
                  .error.empty()); // a partial BOM is

  try {
    sse::parser p(limits);
    p.feed("123456789");
    FAIL("no parse_error");
  } catch (sse::parse_error const& e) {
    CHECK(e.which() == sse::parse_error::limit::line_bytes);
    CHECK(e.value() == 8);
    CHECK(std::string(e.what()) == "sse::parser: a line is longer than max_line_bytes (8)");
  }
}

TEST_CASE("parser: an over-long line is refused as it arrives, before its end",
          "[parser][limits]") {
  sse::parser p(sse::parser_limits{1024, 1024});
  std::string const piece(100, 'x');
  std::size_t fed = 0;
  try {
    for (;;) {
      p.feed(piece);
      fed += piece.size();
      REQUIRE(p.buffered_bytes() <= 1024);
      REQUIRE(fed <= 1024);
    }
  } catch (sse::parse_error const& e) {
    CHECK(e.which() == sse::parse_error::limit::line_bytes);
  }
  CHECK(fed == 1000); // the eleventh piece took the line to 1100 bytes
}

TEST_CASE("parser: an event's data longer than max_data_bytes is a parse_error",
          "[parser][limits]") {
  sse::parser_limits const limits{64, 4};
  // The limit is on the data as dispatched: LFs between lines count, the last one does not.
  CHECK(parsed("data: abcd\n\n", limits).events == std::vector<parsed_event>{message("abcd")});
  CHECK(parsed("data: ab\ndata: c\n\n", limits).events ==
        std::vector<parsed_event>{message("ab\nc")});
  CHECK(parsed("data\ndata\ndata\ndata\ndata\n\n", limits).events ==
        std::vector<parsed_event>{message("\n\n\n\n")});
  std::string const message_text = "sse::parser: an event's data is longer than max_data_bytes (4)";
  CHECK(parsed("data: abcde\n", limits).error == message_text);
  CHECK(parsed("data: ab\ndata: cd\n", limits).error == message_text);
  CHECK(parsed("data\ndata\ndata\ndata\ndata\ndata\n", limits).error == message_text);
  // Per event, not per stream.
  auto const many = parsed("data: abcd\n\ndata: efgh\n\ndata: ijkl\n\n", limits);
  CHECK(many.error.empty());
  CHECK(many.events.size() == 3);
  try {
    sse::parser(limits).feed("data: 12345\n");
    FAIL("no parse_error");
  } catch (sse::parse_error const& e) {
    CHECK(e.which() == sse::parse_error::limit::data_bytes);
    CHECK(e.value() == 4);
  }
  CHECK_THROWS_AS(sse::parser(limits).feed("data: 12345\n"), std::runtime_error);
}

TEST_CASE("parser: after a parse_error the parser refuses to go on until reset()",
          "[parser][limits][reset]") {
  sse::parser p(sse::parser_limits{16, 1024});
  std::vector<parsed_event> got;
  auto collect = [&](parsed_event&& ev) { got.push_back(std::move(ev)); };
  CHECK_THROWS_AS(p.feed("retry: 7\nid: 3\ndata: ok\n\ndata: " + std::string(20, 'x'), collect),
                  sse::parse_error);
  CHECK(got == std::vector<parsed_event>{message("ok", "3")}); // delivered before the error
  CHECK_THROWS_AS(p.feed("\n\n"), std::logic_error);
  CHECK_THROWS_WITH(p.feed("\n\n"), Catch::Matchers::Contains("call reset()"));
  p.reset();
  CHECK(p.last_event_id() == "3");
  CHECK(p.retry() == ms(7));
  CHECK(p.partial_line().empty());
  CHECK(p.feed("\xEF\xBB\xBF"
               "data: again\n\n") == std::vector<parsed_event>{message("again", "3")});
}

// --- reset() and the callback --------------------------------------------------------------

TEST_CASE("parser: reset() drops the partial line and event, keeps the id and retry",
          "[parser][reset]") {
  sse::parser p;
  CHECK(p.feed("retry: 500\nid: 1\ndata: a\n\nid: 2\nevent: lost\ndata: partial\ndata: b") ==
        std::vector<parsed_event>{message("a", "1")});
  CHECK(p.buffered_bytes() > 0);
  p.reset();
  CHECK(p.partial_line().empty());
  CHECK(p.last_event_id() == "1");
  CHECK(p.retry() == ms(500));
  CHECK(p.between_events());
  // Nothing of the dropped event comes back: not its data, type or id.
  CHECK(p.feed("\n\ndata: c\n\n") == std::vector<parsed_event>{message("c", "1")});
  // A new connection may start with a BOM again.
  p.reset();
  CHECK(p.feed("\xEF\xBB\xBF"
               "data: d\n\n") == std::vector<parsed_event>{message("d", "1")});
}

TEST_CASE("parser: an exception from the callback propagates and needs reset()",
          "[parser][reset]") {
  sse::parser p;
  CHECK_THROWS_WITH(
      p.feed("data: a\n\ndata: b\n\n", [](parsed_event&&) { throw std::runtime_error("handler"); }),
      "handler");
  CHECK_THROWS_AS(p.feed("data: c\n\n"), std::logic_error);
  p.reset();
  CHECK(p.feed("data: c\n\n") == std::vector<parsed_event>{message("c")});
}

TEST_CASE("parser: feeding the parser from its own callback is refused", "[parser][reset]") {
  sse::parser p;
  CHECK_THROWS_AS(p.feed("data: a\n\n", [&p](parsed_event&&) { p.feed("data: b\n\n"); }),
                  std::logic_error);
}

TEST_CASE("parser: parsed_event compares all three fields", "[parser]") {
  parsed_event const e;
  CHECK(e.type == "message");
  CHECK(e.data.empty());
  CHECK(e.id.empty());
  CHECK(e == message(""));
  CHECK(e != parsed_event{"other", "", ""});
  CHECK(e != message("x"));
  CHECK(e != message("", "1"));
  CHECK_FALSE(e != message(""));
}

// --- Round trip with sse/format.hpp --------------------------------------------------------

TEST_CASE("parser: format_event's data comes back as the client sees it, for every line break",
          "[parser][format]") {
  for (auto data : {"plain"s, ""s, "a\nb"s, "a\rb"s, "a\r\nb"s, "\n"s, "\r"s, "\r\n"s, "\n\r"s,
                    "\r\r\n\n"s, "trailing\n"s, "\nleading"s, " space"s, "a\0b"s,
                    ":not a comment\ndata: nested\nid: 9\r\nevent: evil\r\rretry: 1"s,
                    "\xEF\xBB\xBF"
                    "bom first"s}) {
    CAPTURE(data);
    auto const got = parsed(sse::format_event(data));
    CHECK(got.events == std::vector<parsed_event>{message(sse_test::as_client_sees(data))});
    CHECK(got.retry == std::nullopt);
    CHECK(got.between_events);
  }
}

TEST_CASE("parser: format_event's names and ids come back; an empty id keeps the last one",
          "[parser][format]") {
  CHECK(events(sse::format_event("d", "update", "42")) ==
        std::vector<parsed_event>{{"update", "d", "42"}});
  CHECK(events(sse::format_event("d", " spaced", " id ")) ==
        std::vector<parsed_event>{{" spaced", "d", " id "}});
  CHECK(events(sse::format_event("\xC3\xA9", "\xE2\x9C\x93", "\xF0\x9F\x98\x80")) ==
        std::vector<parsed_event>{{"\xE2\x9C\x93", "\xC3\xA9", "\xF0\x9F\x98\x80"}});
  CHECK(events(sse::format_event("a", {}, "1") + sse::format_event("b")) ==
        std::vector<parsed_event>{message("a", "1"), message("b", "1")});
}

TEST_CASE("parser: every sse::event field combination round-trips", "[parser][format]") {
  std::string const prior = "id: prior\n\n";
  for (unsigned mask = 0; mask < 32; ++mask) {
    sse::event ev;
    std::optional<std::string> data, id;
    std::string name;
    std::optional<ms> retry;
    std::vector<std::string> comments;
    if (mask & 1) ev.data(*(data = "line 1\r\nline 2\rline 3"));
    if (mask & 2) ev.name(name = "kind");
    if (mask & 4) ev.id(*(id = (mask & 8) ? "" : "17"));
    if (mask & 16) {
      ev.comment("c1\nc2");
      ev.retry(*(retry = ms(2500)));
      comments = {" c1", " c2"};
    }
    CAPTURE(mask, sse::format(ev));
    auto const got = parsed(prior + sse::format(ev));
    std::string const last_id = id ? *id : "prior";
    std::vector<parsed_event> want;
    if (data) want.push_back({name.empty() ? "message" : name, "line 1\nline 2\nline 3", last_id});
    CHECK(got.events == want);
    CHECK(got.last_event_id == last_id);
    CHECK(got.retry == retry);
    CHECK(got.comments == comments);
    CHECK(got.between_events); // every frame ends with its blank line
  }
}

TEST_CASE("parser: format_retry and format_comment act without dispatching", "[parser][format]") {
  auto const retry = parsed(sse::format_retry(std::chrono::seconds(3)));
  CHECK(retry.events.empty());
  CHECK(retry.retry == ms(3000));
  CHECK(parsed(sse::format_retry(ms(0))).retry == ms(0));
  auto const comment = parsed(sse::format_comment("a\nid: 1\r\ndata: x\rb"));
  CHECK(comment.events.empty());
  CHECK(comment.last_event_id.empty());
  CHECK(comment.comments == std::vector<std::string>{" a", " id: 1", " data: x", " b"});
  CHECK(parsed(sse::format_comment()).comments == std::vector<std::string>{" "});
  CHECK(parsed(sse::format_comment()).between_events);
}

TEST_CASE("parser: JSON data from sse/json.hpp parses back to the same value",
          "[parser][format][json]") {
  nlohmann::json const j = {
      {"text", "line\r\nbreak \"quoted\" \u00e9 \u2028"}, {"n", 3}, {"list", {1, nullptr, "x"}}};
  auto const got = events(sse::format_event(j, "chat", "9"));
  REQUIRE(got.size() == 1);
  CHECK(got[0].type == "chat");
  CHECK(got[0].id == "9");
  CHECK(nlohmann::json::parse(got[0].data) == j);
  auto const via_event = events(sse::format(sse::json_event(j)));
  REQUIRE(via_event.size() == 1);
  CHECK(nlohmann::json::parse(via_event[0].data) == j);
}

TEST_CASE("parser: many formatted frames in one stream come back in order in any chunking",
          "[parser][format][split]") {
  std::string stream;
  std::vector<parsed_event> want;
  for (int i = 0; i < 200; ++i) {
    std::string const data = "m" + std::to_string(i) + (i % 3 ? "" : "\r\nsecond\rthird\n");
    auto ev = sse::event(data).id(std::to_string(i));
    if (i % 2) ev.name("odd");
    if (i % 7 == 0) ev.comment("c" + std::to_string(i));
    stream += sse::format(ev);
    want.push_back({i % 2 ? "odd" : "message", sse_test::as_client_sees(data), std::to_string(i)});
  }
  for (std::size_t chunk : {1u, 2u, 3u, 7u, 64u, 1000u, 1u << 20}) {
    CAPTURE(chunk);
    sse_test::event_reader r;
    for (std::size_t i = 0; i < stream.size(); i += chunk)
      r.feed(std::string_view(stream).substr(i, chunk));
    CHECK(r.events() == want);
    CHECK(r.comments().size() == 29);
    CHECK(r.between_events());
  }
}
