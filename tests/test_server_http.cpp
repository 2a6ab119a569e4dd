// HTTP details of sse::server on the wire: HEAD, framing headers a handler cannot double,
// bare LF line ends, Date, the deadline of a silent connection, and chunked event streams.

#include "server_fixture.hpp"
#include "test_client.hpp"

#include <sse/http.hpp>
#include <sse/server.hpp>
#include <sse/stream.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <regex>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;
using namespace sse_test;

TEST_CASE("server answers HEAD with the GET route's head and never a body", "[server][http]") {
  test_server ts;

  SECTION("an ordinary GET route: same status and length, no body, keep-alive goes on") {
    client c(ts.port());
    // Pipelined: a body after the HEAD response would be read as the next response.
    REQUIRE(c.send("HEAD /ping HTTP/1.1\r\nHost: t\r\n\r\n" + get("/ping")));
    auto head = read_response(c, 3000ms, true);
    REQUIRE(head);
    CHECK(head->status == 200);
    CHECK(head->header("Content-Length") == std::string("5"));
    auto next = read_response(c);
    REQUIRE(next);
    CHECK(next->status == 200);
    CHECK(next->body == "pong\n");
  }

  SECTION("errors to HEAD have no body either") {
    client c(ts.port());
    REQUIRE(c.send("HEAD /nowhere HTTP/1.1\r\nHost: t\r\n\r\n"
                   "HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\n" +
                   get("/ping")));
    auto r404 = read_response(c, 3000ms, true);
    REQUIRE(r404);
    CHECK(r404->status == 404);
    auto r405 = read_response(c, 3000ms, true);
    REQUIRE(r405);
    CHECK(r405->status == 405);
    CHECK(r405->header("Allow") == std::string("POST"));
    auto next = read_response(c);
    REQUIRE(next);
    CHECK(next->body == "pong\n");
  }

  SECTION("a stream route: the stream's headers, then the subscription is let go") {
    client c(ts.port());
    REQUIRE(c.send("HEAD /listen HTTP/1.1\r\nHost: t\r\n\r\n" + get("/ping")));
    auto head = read_response(c, 3000ms, true);
    REQUIRE(head);
    CHECK(head->status == 200);
    CHECK(head->header("Content-Type") == std::string("text/event-stream"));
    auto next = read_response(c);
    REQUIRE(next);
    CHECK(next->body == "pong\n");
    CHECK(eventually([&] { return ts.subscribers() == 0; }));
  }

  SECTION("a route registered for HEAD that sets a body sends none") {
    sse::server srv(test_options());
    srv.route("HEAD", "/h", [](sse::request&) { return sse::response::text(200, "not sent\n"); });
    srv.route("GET", "/ping", [](sse::request&) { return sse::response::text(200, "pong\n"); });
    srv.start();
    client c(srv.port());
    REQUIRE(c.send("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n" + get("/ping")));
    auto head = read_response(c, 3000ms, true);
    REQUIRE(head);
    CHECK(head->header("Content-Length") == std::string("9"));
    auto next = read_response(c);
    REQUIRE(next);
    CHECK(next->body == "pong\n");
  }
}

TEST_CASE("response refuses the framing headers the server sets itself", "[server][http]") {
  for (char const* name : {"Content-Length", "content-length", "Transfer-Encoding", "CONNECTION"}) {
    INFO(name);
    CHECK_THROWS_AS(sse::response(200).header(name, "6"), std::invalid_argument);
  }
  CHECK_THROWS_WITH(sse::response(200).header("Content-Length", "6"),
                    "sse::response::header: Content-Length is set by the server");
  CHECK_NOTHROW(sse::response(200).header("Content-Type", "text/plain"));

  // On the wire: one Content-Length, the server's, even for a handler that tried to set one.
  sse::server srv(test_options());
  srv.route("GET", "/len", [](sse::request&) {
    sse::response r = sse::response::text(200, "abc");
    try {
      r.header("Content-Length", "0");
    } catch (std::invalid_argument const&) {
    }
    return r;
  });
  srv.start();
  client c(srv.port());
  REQUIRE(c.send(get("/len")));
  auto r = read_response(c);
  REQUIRE(r);
  CHECK(r->count("Content-Length") == 1);
  CHECK(r->header("Content-Length") == std::string("3"));
}

TEST_CASE("server refuses a bare LF in a request head unless accept_bare_lf", "[server][http]") {
  std::string const lf_request = "GET /ping HTTP/1.1\nHost: t\n\n";
  SECTION("by default: 400 naming the cause, and the connection closes") {
    test_server ts;
    client c(ts.port());
    REQUIRE(c.send(lf_request));
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(r->body == "bare LF as a line end (CRLF required)\n");
    CHECK(c.read_until_closed());
  }
  SECTION("accept_bare_lf: served") {
    auto o = test_options();
    o.accept_bare_lf = true;
    test_server ts(o);
    client c(ts.port());
    REQUIRE(c.send(lf_request));
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->status == 200);
  }
}

TEST_CASE("server sends a Date header on every response", "[server][http]") {
  test_server ts;
  std::regex const imf_fixdate(
      R"((Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT)");
  client c(ts.port());
  REQUIRE(c.send(get("/ping") + get("/nowhere")));
  for (int status : {200, 404}) {
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->status == status);
    REQUIRE(r->header("Date"));
    CHECK(std::regex_match(*r->header("Date"), imf_fixdate));
    CHECK(r->count("Date") == 1);
  }
  stream_client s(ts.port(), "/listen");
  REQUIRE(s.ok());
  REQUIRE(s.head.header("Date"));
  CHECK(std::regex_match(*s.head.header("Date"), imf_fixdate));
}

TEST_CASE("server closes a connection that sends nothing at header_timeout", "[server][http]") {
  auto o = test_options();
  o.header_timeout = 300ms;
  o.idle_timeout = 20s;
  test_server ts(o);
  client silent(ts.port());
  client served(ts.port());
  REQUIRE(served.send(get("/ping")));
  REQUIRE(read_response(served));
  auto const t0 = steady::now();
  CHECK(silent.read_until_closed(3000ms)); // not after idle_timeout's 20 s
  CHECK(steady::now() - t0 < 3000ms);
  CHECK(silent.buffer().empty()); // closed without an answer: there was no request
  // After a response, the keep-alive idle deadline applies, not the header one.
  CHECK(served.stays_quiet(100ms));
}

TEST_CASE("server sends HTTP/1.1 streams chunked: whole events per chunk, then the last chunk", "[server][http]") {
  test_server ts;

  SECTION("HTTP/1.1") {
    stream_client s(ts.port(), "/gen");
    REQUIRE(s.ok());
    CHECK(s.head.header("Transfer-Encoding") == std::string("chunked"));
    CHECK_FALSE(s.head.header("Content-Length"));
    auto st = ts.generated.take();
    REQUIRE(st);
    for (int i = 0; i < 3; ++i) {
      REQUIRE(st->send(sse::event("small " + std::to_string(i))));
      REQUIRE(s.wait_events(static_cast<std::size_t>(i) + 1));
      CHECK(s.chunks.at_boundary()); // each event arrived in a chunk of its own, complete
    }
    for (auto const& p : s.chunks.payloads()) {
      INFO(p);
      CHECK(p.size() >= 2);
      CHECK(p.substr(p.size() - 2) == "\n\n"); // a chunk never ends inside a frame
    }
    st->close();
    REQUIRE(s.wait_closed());
    CHECK(s.c.got_eof());
    CHECK_FALSE(s.chunks.broken());
    CHECK(s.chunks.finished());
    CHECK(s.events().size() == 3);
  }

  SECTION("HTTP/1.0: close-delimited as before") {
    client c(ts.port());
    REQUIRE(c.send("GET /echo-event?x=old HTTP/1.0\r\n\r\n"));
    REQUIRE(c.read_until_closed());
    auto head = take_response(c.buffer(), true);
    REQUIRE(head);
    CHECK(head->status == 200);
    CHECK_FALSE(head->header("Transfer-Encoding"));
    event_reader p;
    p.feed(c.buffer());
    REQUIRE(p.events().size() == 1);
    CHECK(p.events()[0].data == "old");
  }
}
