// The test of docs/getting-started.md ("Unit-test your own messages"), compiled as the guide
// shows it; tests/CMakeLists.txt checks that the guide's block is this file's.
// BEGIN guide
#include <catch2/catch.hpp>
#include <sse/testing.hpp>

TEST_CASE("news subscribers get each headline with its id") {
  sse::testing::server server([](sse::server& s, sse::broker& b) {
    s.route("GET", "/news", [&b](sse::request&) { return sse::response::stream(b.subscribe("news")); });
  });
  auto stream = server.open("/news");                // returns once the stream is open
  server.publish("news", sse::event("rain").id("1"));
  server.publish("news", sse::event("sun").id("2"));
  auto events = stream.wait_for(2);                  // at most 5 s; no sleeps
  REQUIRE(events.size() == 2);
  CHECK(events[0].data == "rain");
  CHECK(events[0].id == "1");
  CHECK(events[1].data == "sun");
  CHECK(events[1].id == "2");
}
// END guide

// The guide's second example, just below the first.
TEST_CASE("progress events carry the percentage") {
  CHECK(sse::format_event(R"({"pct":50})", "progress", "task-1:50") ==
        "event: progress\nid: task-1:50\ndata: {\"pct\":50}\n\n");
  auto ev = sse::testing::parse(sse::format_event("50", "progress", "task-1:50")).at(0);
  CHECK(ev.type == "progress");
}
