#include "event_reader.hpp"

#include <sse/format.hpp>

#include "test_util.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace std::string_literals;
using sse_test::parse_all;
using sse::parsed_event;

namespace {
/// Formats, parses with sse::parser, and expects exactly one event back.
parsed_event round_trip(std::string_view data, std::string_view name = {}, std::string_view id = {}) {
  auto const bytes = sse::format_event(data, name, id);
  auto const events = parse_all(bytes);
  REQUIRE(events.size() == 1);
  return events.front();
}
} // namespace

TEST_CASE("format_event writes one spec-exact frame ending in a blank line", "[format]") {
  CHECK(sse::format_event("hello") == "data: hello\n\n");
  CHECK(sse::format_event("hello", "greeting", "1") == "event: greeting\nid: 1\ndata: hello\n\n");
  CHECK(sse::format_event("x", {}, "7") == "id: 7\ndata: x\n\n");
  CHECK(sse::format_event("x", "tick") == "event: tick\ndata: x\n\n");
}

TEST_CASE("format_event splits data on LF, CR and CRLF into one data line each", "[format]") {
  SECTION("LF") { CHECK(sse::format_event("a\nb") == "data: a\ndata: b\n\n"); }
  SECTION("CRLF") { CHECK(sse::format_event("a\r\nb") == "data: a\ndata: b\n\n"); }
  SECTION("lone CR") { CHECK(sse::format_event("a\rb") == "data: a\ndata: b\n\n"); }
  SECTION("LF CR is two breaks") { CHECK(sse::format_event("a\n\rb") == "data: a\ndata: \ndata: b\n\n"); }
  SECTION("trailing break keeps an empty last line") {
    CHECK(sse::format_event("a\n") == "data: a\ndata: \n\n");
  }
  SECTION("mixed") {
    CHECK(sse::format_event("1\r2\n3\r\n4") == "data: 1\ndata: 2\ndata: 3\ndata: 4\n\n");
  }
}

TEST_CASE("format_event round-trips multi-line data through a conformant parser", "[format]") {
  for (auto data : {"a\nb"s, "a\rb"s, "a\r\nb"s, "\n"s, "\r"s, "\r\n"s, "\n\n\n"s, "a\r\r\nb\n\rc"s,
                    "trailing\n"s, "\nleading"s}) {
    CAPTURE(data);
    auto const ev = round_trip(data);
    CHECK(ev.data == sse_test::as_client_sees(data));
    CHECK(ev.type == "message");
  }
}

TEST_CASE("format_event sends empty data as one event with empty data", "[format]") {
  CHECK(sse::format_event("") == "data: \n\n");
  auto const ev = round_trip("");
  CHECK(ev.data.empty());
}

TEST_CASE("format_event always writes the space so leading spaces survive", "[format]") {
  CHECK(sse::format_event(" x") == "data:  x\n\n");
  CHECK(round_trip(" x").data == " x");
  CHECK(round_trip("  two").data == "  two");
  CHECK(round_trip(" ").data == " ");
  CHECK(round_trip("a\n b").data == "a\n b");
}

TEST_CASE("format_event keeps data that looks like fields or comments as data", "[format]") {
  for (auto data : {":not a comment"s, "id: 9"s, "event: evil"s, "retry: 1"s, "data: nested"s,
                    "x\nid: 9\nevent: evil"s, "a\r\n\r\nid: 3"s, ":"s, "a:b:c"s}) {
    CAPTURE(data);
    auto const ev = round_trip(data);
    CHECK(ev.data == sse_test::as_client_sees(data));
    CHECK(ev.type == "message");
    CHECK(ev.id.empty());
  }
}

TEST_CASE("format_event round-trips event names and ids", "[format]") {
  auto const ev = round_trip("payload", "update", "42");
  CHECK(ev.type == "update");
  CHECK(ev.id == "42");
  CHECK(ev.data == "payload");
  auto const spaced = round_trip("p", " spaced", " id ");
  CHECK(spaced.type == " spaced");
  CHECK(spaced.id == " id ");
  auto const utf8 = round_trip("\xC3\xA9t\xC3\xA9", "\xE2\x9C\x93", "\xF0\x9F\x98\x80");
  CHECK(utf8.data == "\xC3\xA9t\xC3\xA9");
  CHECK(utf8.type == "\xE2\x9C\x93");
  CHECK(utf8.id == "\xF0\x9F\x98\x80");
}

TEST_CASE("format_event refuses an event name with CR or LF, naming the field", "[format]") {
  for (auto name : {"a\nb"s, "a\rb"s, "a\r\nb"s, "\n"s, "x\ndata: injected"s}) {
    CAPTURE(name);
    CHECK_INVALID_ARGUMENT(sse::format_event("d", name),
                         Catch::Matchers::Contains("event name") &&
                             Catch::Matchers::Contains("CR or LF"));
  }
}

TEST_CASE("format_event refuses an id with CR, LF or NUL, naming the field", "[format]") {
  for (auto id : {"1\n2"s, "1\r"s, "\r\n"s, "7\nevent: x"s}) {
    CAPTURE(id);
    CHECK_INVALID_ARGUMENT(sse::format_event("d", {}, id),
                         Catch::Matchers::Contains("event id") &&
                             Catch::Matchers::Contains("CR or LF"));
  }
  CHECK_INVALID_ARGUMENT(sse::format_event("d", {}, "a\0b"s),
                       Catch::Matchers::Contains("event id") && Catch::Matchers::Contains("NUL"));
}

TEST_CASE("format_event refuses text that is not valid UTF-8", "[format]") {
  CHECK_INVALID_ARGUMENT(sse::format_event("ok \xFF"),
                       Catch::Matchers::Contains("data is not valid UTF-8 (byte 3)"));
  CHECK_THROWS_AS(sse::format_event("x", "\xC0\x80"), std::invalid_argument);   // overlong NUL
  CHECK_THROWS_AS(sse::format_event("x", {}, "\xED\xA0\x80"), std::invalid_argument); // surrogate
  CHECK_THROWS_AS(sse::format_event("\xF4\x90\x80\x80"), std::invalid_argument); // > U+10FFFF
  CHECK_THROWS_AS(sse::format_event("\xE2\x82"), std::invalid_argument);         // truncated
  CHECK_NOTHROW(sse::format_event("\xF4\x8F\xBF\xBF \xEF\xBF\xBD"));
}

TEST_CASE("NUL in data is kept, since only ids forbid it", "[format]") {
  auto const data = "a\0b"s;
  CHECK(round_trip(data).data == data);
}

TEST_CASE("comment frames are ignored by clients and split across lines", "[format]") {
  CHECK(sse::format_comment("keep-alive") == ": keep-alive\n\n");
  CHECK(sse::format_comment("a\nb\rc") == ": a\n: b\n: c\n\n");
  sse_test::event_reader p;
  p.feed(sse::format_comment("a\nid: 1\ndata: x"));
  CHECK(p.events().empty());
  CHECK(p.last_event_id().empty());
  CHECK(p.comments() == std::vector<std::string>{" a", " id: 1", " data: x"});
}

TEST_CASE("a retry-only frame sets the delay without dispatching", "[format]") {
  CHECK(sse::format_retry(std::chrono::milliseconds(2500)) == "retry: 2500\n\n");
  sse_test::event_reader p;
  p.feed(sse::format_retry(std::chrono::seconds(3)));
  CHECK(p.events().empty());
  CHECK(p.retry() == std::chrono::milliseconds(3000));
  CHECK_THROWS_AS(sse::format_retry(std::chrono::milliseconds(-1)), std::invalid_argument);
}

TEST_CASE("sse::event formats every field in order and round-trips", "[format][event]") {
  auto const ev = sse::event("line1\nline2")
                      .name("update")
                      .id("17")
                      .retry(std::chrono::milliseconds(1500))
                      .comment("hello");
  auto const bytes = sse::format(ev);
  CHECK(bytes == ": hello\nretry: 1500\nevent: update\nid: 17\ndata: line1\ndata: line2\n\n");
  CHECK(bytes.size() == sse::formatted_size(ev));
  sse_test::event_reader p;
  p.feed(bytes);
  REQUIRE(p.events().size() == 1);
  CHECK(p.events()[0] == parsed_event{"update", "line1\nline2", "17"});
  CHECK(p.retry() == std::chrono::milliseconds(1500));
}

TEST_CASE("sse::event appends into a caller's buffer", "[format][event]") {
  std::string out = "prefix|";
  sse::format_to(out, sse::event("a"));
  sse::format_to(out, sse::event("b").id("2"));
  CHECK(out == "prefix|data: a\n\nid: 2\ndata: b\n\n");
  auto const events = parse_all(out.substr(7));
  REQUIRE(events.size() == 2);
  CHECK(events[1].id == "2");
}

TEST_CASE("sse::event with an empty id resets the client's last event id", "[format][event]") {
  sse_test::event_reader p;
  p.feed(sse::format(sse::event("a").id("5")));
  CHECK(p.last_event_id() == "5");
  p.feed(sse::format(sse::event("b").id("")));
  REQUIRE(p.events().size() == 2);
  CHECK(p.events()[1].id.empty());
}

TEST_CASE("sse::event without data formats only its other fields", "[format][event]") {
  CHECK(sse::format(sse::event()).empty());
  CHECK(sse::format(sse::event().comment("hb")) == ": hb\n\n");
  CHECK(sse::format(sse::event().retry(std::chrono::milliseconds(10))) == "retry: 10\n\n");
  CHECK(parse_all(sse::format(sse::event().id("3").comment("x"))).empty());
}

TEST_CASE("sse::event refuses bad fields when they are set", "[format][event]") {
  sse::event ev("ok");
  CHECK_INVALID_ARGUMENT(ev.name("a\rb"),
                       Catch::Matchers::Contains("sse::event: event name"));
  CHECK_INVALID_ARGUMENT(ev.id("1\n"),
                       Catch::Matchers::Contains("sse::event: event id"));
  CHECK_INVALID_ARGUMENT(ev.id("1\0"s), Catch::Matchers::Contains("NUL"));
  CHECK_INVALID_ARGUMENT(ev.retry(std::chrono::milliseconds(-5)),
                       Catch::Matchers::Contains("retry"));
  CHECK_THROWS_AS(ev.data("\x80"), std::invalid_argument);
  // The event is unchanged by the refused setters.
  CHECK(sse::format(ev) == "data: ok\n\n");
}

TEST_CASE("formatted_size is exact for every field combination", "[format][event]") {
  std::vector<sse::event> events;
  events.emplace_back("");
  events.emplace_back("a\r\nb\rc\n");
  events.push_back(sse::event().comment(""));
  events.push_back(sse::event("x").id(""));
  events.push_back(sse::event("x").id("123").name("n").retry(std::chrono::milliseconds(0)));
  events.push_back(sse::event().comment("1\n2\r\n3").retry(std::chrono::milliseconds(99999)));
  for (auto const& ev : events)
    CHECK(sse::format(ev).size() == sse::formatted_size(ev));
}

TEST_CASE("many events in one stream parse back in order, whatever the split", "[format]") {
  std::string stream;
  std::vector<parsed_event> expect;
  for (int i = 0; i < 50; ++i) {
    auto data = "m" + std::to_string(i) + (i % 3 == 0 ? "\r\nsecond" : "");
    stream += sse::format_event(data, i % 2 ? "odd" : "", std::to_string(i));
    expect.push_back({i % 2 ? "odd" : "message", sse_test::as_client_sees(data), std::to_string(i)});
  }
  for (std::size_t chunk : {1u, 2u, 7u, 64u, 100000u}) {
    sse_test::event_reader p;
    for (std::size_t i = 0; i < stream.size(); i += chunk)
      p.feed(std::string_view(stream).substr(i, chunk));
    CHECK(p.events() == expect);
  }
}
