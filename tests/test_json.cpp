#include "event_reader.hpp"

#include <sse/frame.hpp>
#include <sse/json.hpp>

#include "test_util.hpp"

#include <catch2/catch.hpp>

using nlohmann::json;

TEST_CASE("format_event with JSON writes the compact dump as one data line", "[json]") {
  json const j = {{"user", "ann"}, {"text", "hi\nthere"}, {"n", 3}};
  auto const bytes = sse::format_event(j, "chat", "9");
  CHECK(bytes == "event: chat\nid: 9\ndata: " + j.dump() + "\n\n");
  auto const events = sse_test::parse_all(bytes);
  REQUIRE(events.size() == 1);
  CHECK(json::parse(events[0].data) == j);
  CHECK(events[0].type == "chat");
}

TEST_CASE("format_event with JSON keeps strings that need escaping intact", "[json]") {
  json const j = {{"s", "line\r\nbreak \"quoted\" \u00e9 \u2028 </script>"}};
  auto const events = sse_test::parse_all(sse::format_event(j));
  REQUIRE(events.size() == 1);
  CHECK(json::parse(events[0].data)["s"] == j["s"]);
}

TEST_CASE("format_event with JSON refuses invalid UTF-8 with a clear message", "[json]") {
  json const j = {{"bad", std::string("\xFF\xFE")}};
  CHECK_INVALID_ARGUMENT(sse::format_event(j),
                       Catch::Matchers::Contains("JSON data is not valid UTF-8"));
  CHECK_THROWS_AS(sse::json_event(j), std::invalid_argument);
}

TEST_CASE("json_event builds an event that formats like the JSON overload", "[json]") {
  json const j = json::array({1, "two", nullptr});
  CHECK(sse::format(sse::json_event(j).name("list")) == sse::format_event(j, "list"));
  CHECK(sse::frame(sse::json_event(j)).view() == sse::format_event(j));
}

TEST_CASE("plain string data is not mistaken for JSON", "[json]") {
  // The JSON overload is a constrained template, so string arguments pick the text overload.
  CHECK(sse::format_event("hello") == "data: hello\n\n");
  CHECK(sse::format_event(std::string("x"), std::string("e")) == "event: e\ndata: x\n\n");
  CHECK(sse::format_event(json("hello")) == "data: \"hello\"\n\n");
}

TEST_CASE("json_event takes a braced initializer and ordered_json", "[json]") {
  CHECK(sse::format(sse::json_event({{"tick", 1}})) == "data: {\"tick\":1}\n\n");
  nlohmann::ordered_json o;
  o["z"] = 1;
  o["a"] = 2;
  CHECK(sse::format(sse::json_event(o)) == "data: {\"z\":1,\"a\":2}\n\n");
}
