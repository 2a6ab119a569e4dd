// sse::client against a server nobody here wrote: better-sse on Node's http module
// (tests/node/better_sse_server.mjs), started by the test. Node and the script's path come
// from the environment (tests/CMakeLists.txt), the npm packages from the node_modules fixture.

#include "child_process.hpp"
#include "client_util.hpp"

#include <sse/client.hpp>

#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <catch2/catch.hpp>

#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

using namespace std::chrono_literals;

namespace {

std::string env(char const* name, char const* fallback) {
  char const* v = std::getenv(name);
  return v && *v ? v : fallback;
}

/// GET `path` with Connection: close; the whole response.
std::string http_get(std::uint16_t port, std::string const& path) {
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), port});
  std::string const req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  asio::write(s, asio::buffer(req));
  std::string out;
  std::error_code ec;
  asio::read(s, asio::dynamic_buffer(out), ec);
  return out;
}

} // namespace

TEST_CASE("client against better-sse: a cut connection resumed, keep-alives, then 204", "[client][node]") {
  char tmpl[] = "/tmp/sse-client-node-XXXXXX";
  REQUIRE(::mkdtemp(tmpl));
  std::string const log = std::string(tmpl) + "/node.log";
  sse_test::child_process node({env("SSE_NODE", "node"),
                                env("SSE_NODE_SERVER", "tests/node/better_sse_server.mjs")},
                               log);
  auto const port_text = node.wait_for_line("listening ", 10s);
  INFO("node's output: " << node.output());
  REQUIRE(port_text);
  auto const port = static_cast<std::uint16_t>(std::stoi(*port_text));

  sse::client_options o;
  o.url = "http://127.0.0.1:" + std::to_string(port) + "/events";
  o.read_timeout = 500ms; // better-sse's keep-alive comes every 100 ms, events 1.2 s apart
  sse_test::client_runner run;
  sse_test::recorder rec;
  sse::client c(run.io, o);
  rec.start(c);
  REQUIRE(rec.wait([&] { return rec.closed.has_value(); }, 10s));
  std::string const seen = http_get(port, "/seen");
  node.stop();
  ::unlink(log.c_str());
  ::rmdir(tmpl);

  std::lock_guard<std::mutex> lk(rec.m);
  CHECK(*rec.closed == sse::errc::no_content);
  std::vector<sse::parsed_event> const want{
      {"message", "one", "1"},
      {"message", "two", "2"},
      {"multi", "three", "3"}, // "data:three\nlines": the line "lines" is a field, ignored
      {"message", "four", "4"},
      {"message", "five", "5"},
  };
  CHECK(rec.events == want); // each once: the second connection resumed after 3
  CHECK(rec.opens == 2);
  REQUIRE(rec.reconnects.size() == 2);
  for (auto const& r : rec.reconnects) {
    CHECK(r.first != sse::errc::read_timeout); // keep-alive comments kept it alive
    CHECK(r.second <= 100ms);                  // better-sse's retry: 100
  }
  CHECK(c.retry() == 100ms);
  CHECK(seen.find("[null,\"3\",\"5\"]") != std::string::npos);
}
