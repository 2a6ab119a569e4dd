// The access log: one entry per answered request (a stream when it ends) with method, target,
// status, the bytes written for it, duration, remote address and whether it streamed.

#include "server_fixture.hpp"
#include "test_client.hpp"

#include <sse/server.hpp>

#include <catch2/catch.hpp>

#include <mutex>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using namespace sse_test;

namespace {

struct logged {
  std::string method, target;
  int status;
  std::uint64_t bytes;
  std::chrono::microseconds duration;
  std::uint16_t port;
  bool stream;
};

struct access_log {
  std::mutex m;
  std::vector<logged> entries;
  std::function<void(sse::access_entry const&)> sink() {
    return [this](sse::access_entry const& e) {
      std::lock_guard<std::mutex> lk(m);
      entries.push_back({std::string(e.method), std::string(e.target), e.status, e.bytes,
                         e.duration, e.remote.port(), e.stream});
    };
  }
  std::size_t size() {
    std::lock_guard<std::mutex> lk(m);
    return entries.size();
  }
  logged at(std::size_t i) {
    std::lock_guard<std::mutex> lk(m);
    return entries.at(i);
  }
};

} // namespace

TEST_CASE("access log has one entry per answered request, a stream's when it ends", "[server][log]") {
  access_log log;
  auto o = test_options();
  o.access_log = log.sink();
  test_server ts(o);

  client c(ts.port());
  REQUIRE(c.send(get("/ping?x=1") + get("/nowhere") + "HEAD /ping HTTP/1.1\r\nHost: t\r\n\r\n"));
  std::size_t received = 0;
  REQUIRE(c.read_until([&](std::string& b) {
    return b.find("pong\n") != std::string::npos &&
           b.find("HTTP/1.1 200", b.find("404")) != std::string::npos && b.size() > 0 &&
           b.substr(b.size() - 4) == "\r\n\r\n";
  }));
  received = c.buffer().size();
  REQUIRE(eventually([&] { return log.size() == 3; }));
  auto const ping = log.at(0), missing = log.at(1), head = log.at(2);
  CHECK(ping.method == "GET");
  CHECK(ping.target == "/ping?x=1");
  CHECK(ping.status == 200);
  CHECK_FALSE(ping.stream);
  CHECK(missing.status == 404);
  CHECK(head.method == "HEAD");
  CHECK(ping.bytes + missing.bytes + head.bytes == received); // exactly what went out
  CHECK(ping.bytes > 0);
  CHECK(ping.port != 0);

  // A stream is logged once it ends, with everything it sent.
  {
    stream_client s(ts.port(), "/listen?topic=t");
    REQUIRE(s.ok());
    REQUIRE(eventually([&] { return ts.subscribers() == 1; }));
    ts.broker.publish("t", sse::event("one"));
    REQUIRE(s.wait_events(1));
    CHECK(log.size() == 3); // still open: not logged yet
  }
  REQUIRE(eventually([&] { return log.size() == 4; }));
  auto const stream = log.at(3);
  CHECK(stream.target == "/listen?topic=t");
  CHECK(stream.status == 200);
  CHECK(stream.stream);
  CHECK(stream.bytes > 0);

  // A request refused by the parser is logged too, with what of its line arrived.
  client bad(ts.port());
  REQUIRE(bad.send("GET /x HTTP/1.1\r\nHost: t\r\nBad Header: y\r\n\r\n"));
  REQUIRE(read_response(bad));
  REQUIRE(eventually([&] { return log.size() == 5; }));
  CHECK(log.at(4).status == 400);
  CHECK(log.at(4).method == "GET");
}
