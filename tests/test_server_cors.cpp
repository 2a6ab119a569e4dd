// Before-route hooks and CORS on the wire: a hook that answers on its own or attaches what it
// learned, preflight OPTIONS answered for every route, the CORS fields of ordinary responses
// and streams, and nothing for an origin that is not allowed.

#include "server_fixture.hpp"
#include "test_client.hpp"

#include <sse/broker.hpp>
#include <sse/http.hpp>
#include <sse/server.hpp>

#include <catch2/catch.hpp>

#include <optional>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;
using namespace sse_test;

namespace {

std::optional<http_response> roundtrip(client& c, std::string const& request, bool head_only = false) {
  if (!c.send(request))
    return std::nullopt;
  return read_response(c, 3000ms, head_only);
}

std::string preflight(std::string const& path, std::string const& origin, std::string const& method) {
  return "OPTIONS " + path + " HTTP/1.1\r\nHost: t\r\nOrigin: " + origin +
         "\r\nAccess-Control-Request-Method: " + method +
         "\r\nAccess-Control-Request-Headers: last-event-id\r\n\r\n";
}

} // namespace

TEST_CASE("before-route hooks answer on their own or pass what they learned on", "[server][hooks]") {
  sse::server srv(test_options());
  srv.before([](sse::request& req) -> std::optional<sse::response> {
    auto auth = req.header("Authorization");
    if (!auth)
      return std::nullopt; // anonymous
    if (*auth != "Bearer good")
      return sse::response::text(401, "bad token\n").header("WWW-Authenticate", "Bearer");
    req.set_attribute("user", std::string("ann"));
    return std::nullopt;
  });
  srv.before([](sse::request& req) -> std::optional<sse::response> {
    if (req.query("flood"))
      throw sse::http_error(429, "slow down");
    return std::nullopt;
  });
  srv.route("GET", "/whoami", [](sse::request& req) {
    auto const* user = req.attribute<std::string>("user");
    CHECK(req.attribute<int>("user") == nullptr); // another type: nothing
    return sse::response::text(200, user ? *user : "anonymous");
  });
  srv.start();
  client c(srv.port());
  auto r = roundtrip(c, get("/whoami", "Authorization: Bearer good\r\n"));
  REQUIRE(r);
  CHECK(r->body == "ann");
  r = roundtrip(c, get("/whoami"));
  REQUIRE(r);
  CHECK(r->body == "anonymous");
  r = roundtrip(c, get("/whoami", "Authorization: Bearer bad\r\n"));
  REQUIRE(r);
  CHECK(r->status == 401);
  CHECK(r->header("WWW-Authenticate") == std::string("Bearer"));
  r = roundtrip(c, get("/whoami?flood=1"));
  REQUIRE(r);
  CHECK(r->status == 429);
  // Hooks run before routing: an unknown path is still checked.
  r = roundtrip(c, get("/nowhere", "Authorization: Bearer bad\r\n"));
  REQUIRE(r);
  CHECK(r->status == 401);
}

TEST_CASE("server answers OPTIONS and CORS preflights for every route", "[server][cors]") {
  auto o = test_options();
  o.cors.allow_origins = {"http://app.test"};
  o.cors.allow_credentials = true;
  o.cors.expose_headers = {"X-Id"};
  o.cors.max_age = std::chrono::seconds(120);
  test_server ts(o);
  client c(ts.port());

  SECTION("an allowed origin's preflight") {
    auto r = roundtrip(c, preflight("/echo", "http://app.test", "POST"));
    REQUIRE(r);
    CHECK(r->status == 204);
    CHECK(r->header("Access-Control-Allow-Origin") == std::string("http://app.test"));
    CHECK(r->header("Access-Control-Allow-Credentials") == std::string("true"));
    CHECK(r->header("Access-Control-Allow-Methods") == std::string("POST, OPTIONS"));
    auto const headers = r->header("Access-Control-Allow-Headers").value_or("");
    CHECK(headers.find("Last-Event-ID") != std::string::npos);
    CHECK(headers.find("Content-Type") != std::string::npos);
    CHECK(r->header("Access-Control-Max-Age") == std::string("120"));
    CHECK(r->header("Vary") == std::string("Origin"));
  }
  SECTION("a disallowed origin's preflight gets no CORS fields") {
    auto r = roundtrip(c, preflight("/echo", "http://evil.test", "POST"));
    REQUIRE(r);
    CHECK(r->status == 204);
    CHECK_FALSE(r->header("Access-Control-Allow-Origin"));
    CHECK_FALSE(r->header("Access-Control-Allow-Methods"));
    CHECK(r->header("Vary") == std::string("Origin"));
  }
  SECTION("plain OPTIONS: 204 with Allow; an unknown path 404") {
    auto r = roundtrip(c, "OPTIONS /ping HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(r);
    CHECK(r->status == 204);
    CHECK(r->header("Allow") == std::string("GET, HEAD, OPTIONS"));
    r = roundtrip(c, "OPTIONS /nowhere HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(r);
    CHECK(r->status == 404);
  }
  SECTION("ordinary responses and streams carry the fields for an allowed origin only") {
    auto r = roundtrip(c, get("/ping", "Origin: http://app.test\r\n"));
    REQUIRE(r);
    CHECK(r->header("Access-Control-Allow-Origin") == std::string("http://app.test"));
    CHECK(r->header("Access-Control-Expose-Headers") == std::string("X-Id"));
    r = roundtrip(c, get("/ping", "Origin: http://evil.test\r\n"));
    REQUIRE(r);
    CHECK_FALSE(r->header("Access-Control-Allow-Origin"));
    CHECK_FALSE(r->header("Access-Control-Allow-Credentials"));
    stream_client s(ts.port(), "/listen", 0, "Origin: http://app.test\r\n");
    REQUIRE(s.ok());
    CHECK(s.head.header("Access-Control-Allow-Origin") == std::string("http://app.test"));
    CHECK(s.head.header("Access-Control-Allow-Credentials") == std::string("true"));
  }
}

TEST_CASE("server without CORS configured sends no CORS fields; any origin is '*'", "[server][cors]") {
  {
    test_server ts;
    client c(ts.port());
    auto r = roundtrip(c, get("/ping", "Origin: http://app.test\r\n"));
    REQUIRE(r);
    CHECK_FALSE(r->header("Access-Control-Allow-Origin"));
    CHECK_FALSE(r->header("Vary"));
  }
  auto o = test_options();
  o.cors.allow_origins = {"*"};
  test_server ts(o);
  client c(ts.port());
  auto r = roundtrip(c, get("/ping", "Origin: http://anyone.test\r\n"));
  REQUIRE(r);
  CHECK(r->header("Access-Control-Allow-Origin") == std::string("*"));
  CHECK_FALSE(r->header("Access-Control-Allow-Credentials"));
}
