// sse::server's lifecycle and what it does with handlers that misbehave: a start that fails,
// stop from several threads or from a handler, the two-phase stop that loses nothing a
// handler acknowledged, exceptions and misused streams that must not end the process.

#include "child_process.hpp"
#include "server_fixture.hpp"
#include "test_client.hpp"

#include <sse/broker.hpp>
#include <sse/http.hpp>
#include <sse/server.hpp>
#include <sse/stream.hpp>

#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace sse_test;

namespace {

/// Runs `f` on a thread of its own; true if it returned within `timeout`. A call that hangs
/// is left behind (the test fails instead of hanging).
template <class F>
bool returns_within(F f, ms timeout) {
  auto done = std::make_shared<std::promise<void>>();
  auto fut = done->get_future();
  std::thread([f = std::move(f), done]() mutable {
    f();
    done->set_value();
  }).detach();
  return fut.wait_for(timeout) == std::future_status::ready;
}

} // namespace

TEST_CASE("server whose start fails is destructible at once and can start again", "[server][lifecycle]") {
  test_server taken; // holds a port
  sse::server_options o = test_options();
  o.port = taken.port();
  auto* srv = new sse::server(o);
  srv->route("GET", "/ping", [](sse::request&) { return sse::response::text(200, "pong\n"); });
  CHECK_THROWS_AS(srv->start(), std::system_error);

  // wait() must not block on a server that never started, nor its destructor.
  CHECK(returns_within([srv] { srv->wait(); }, 2000ms));
  SECTION("destroyed") {
    CHECK(returns_within([srv] { delete srv; }, 2000ms));
  }
  SECTION("started again on a free port") {
    // The failed start left nothing behind: a retry on another port serves.
    auto* retry = new sse::server([&] {
      auto o2 = test_options();
      o2.port = 0;
      return o2;
    }());
    retry->route("GET", "/ping", [](sse::request&) { return sse::response::text(200, "pong\n"); });
    retry->start();
    CHECK(serves_normally(retry->port()));
    CHECK(returns_within([retry] { delete retry; }, 5000ms));
    CHECK(returns_within([srv] { delete srv; }, 2000ms));
  }
}

TEST_CASE("server stop called from two threads returns in both only once stopped", "[server][lifecycle]") {
  auto o = test_options();
  o.stop_timeout = 700ms; // the stuck client below holds the stop this long
  test_server ts(o);
  client stuck(ts.port(), 4096);
  REQUIRE(stuck.send(get("/listen")));
  REQUIRE(eventually([&] { return ts.subscribers() == 1; }));
  std::string const pad(8 * 1024, 'x');
  for (int i = 0; i < 100; ++i) // more than its socket buffers hold
    ts.broker.publish(sse::event(pad));

  std::atomic<std::size_t> open_at_return[2] = {{99}, {99}};
  std::vector<std::thread> stoppers;
  for (int i = 0; i < 2; ++i)
    stoppers.emplace_back([&, i] {
      ts.srv.stop();
      open_at_return[i] = ts.srv.connections();
    });
  for (auto& t : stoppers)
    t.join();
  CHECK(open_at_return[0] == 0);
  CHECK(open_at_return[1] == 0);
  CHECK_FALSE(can_connect(ts.port()));
}

TEST_CASE("server stops from inside a handler with request_stop, and refuses stop() there", "[server][lifecycle]") {
  auto o = test_options();
  error_log log;
  o.error_log = log.sink();
  sse::server srv(o);
  srv.route("GET", "/stop-inline", [&](sse::request&) {
    try {
      srv.stop(); // would wait for this very thread
    } catch (std::logic_error const& e) {
      return sse::response::text(200, e.what());
    }
    return sse::response::text(200, "stop() returned on a server thread");
  });
  srv.route("POST", "/quit", [&](sse::request&) {
    srv.request_stop();
    srv.request_stop(); // twice is fine
    return sse::response(202);
  });
  srv.start();

  client c(srv.port());
  REQUIRE(c.send(get("/stop-inline")));
  auto r = read_response(c);
  REQUIRE(r);
  CHECK(r->body.find("request_stop") != std::string::npos);

  REQUIRE(c.send(post("/quit", "")));
  r = read_response(c);
  REQUIRE(r);
  CHECK(r->status == 202);
  CHECK(returns_within([&] { srv.wait(); }, 5000ms));
  CHECK_FALSE(can_connect(srv.port()));
}

TEST_CASE("server stop loses nothing a handler acknowledged and answers later requests 503", "[server][lifecycle]") {
  // Two I/O threads; connections are spread round-robin in accept order, so the clients below
  // land: streams 0..3 on threads 0,1,0,1, `idle` on thread 0, `pub` on thread 1.
  auto o = test_options();
  o.threads = 2;
  o.stop_timeout = 3000ms;
  sse::broker broker;
  sse::server srv(o);
  std::promise<void> entered, release;
  auto released = release.get_future().share();
  srv.route("GET", "/listen", [&](sse::request&) { return sse::response::stream(broker.subscribe("")); });
  srv.route("GET", "/ping", [](sse::request&) { return sse::response::text(200, "pong\n"); });
  srv.route("POST", "/slow-publish", [&](sse::request&) {
    entered.set_value();
    released.wait(); // a handler still running when stop() begins
    broker.publish(sse::event("late").id("1"));
    return sse::response::text(200, "published\n");
  });
  srv.start();
  auto const port = srv.port();

  std::vector<std::unique_ptr<stream_client>> streams;
  for (int i = 0; i < 4; ++i) {
    streams.push_back(std::make_unique<stream_client>(port, "/listen"));
    REQUIRE(streams.back()->ok());
  }
  REQUIRE(eventually([&] { return broker.stats().subscribers == 4; }));
  client idle(port);
  REQUIRE(idle.send(get("/ping")));
  REQUIRE(read_response(idle));
  client pub(port);
  REQUIRE(pub.send(post("/slow-publish", "")));
  REQUIRE(entered.get_future().wait_for(3s) == std::future_status::ready);

  std::thread stopper([&] { srv.stop(); });
  // Stop has begun once the acceptor is closed; then a request on thread 0 must get 503 and
  // thread 0's streams must stay open while thread 1 is still in its handler.
  CHECK(eventually([&] { return !can_connect(port); }));
  std::optional<http_response> refused;
  CHECK(eventually([&] {
    if (!idle.send(get("/ping")))
      return true;
    refused = read_response(idle);
    return !refused || refused->status == 503;
  }));
  REQUIRE(refused);
  CHECK(refused->status == 503);
  CHECK(refused->header("Connection") == std::string("close"));

  release.set_value();
  auto const answer = read_response(pub);
  stopper.join();

  REQUIRE(answer);
  CHECK(answer->status == 200);
  for (std::size_t i = 0; i < streams.size(); ++i) {
    INFO("stream " << i);
    CHECK(streams[i]->wait_closed(3000ms));
    REQUIRE(streams[i]->events().size() == 1);
    CHECK(streams[i]->events()[0].data == "late");
    CHECK(streams[i]->chunks.finished()); // ended with the last chunk, not cut off
  }
}

TEST_CASE("server answers 500 to a handler that throws anything, and goes on serving", "[server][lifecycle]") {
  auto o = test_options();
  error_log log;
  o.error_log = log.sink();
  sse::server srv(o);
  srv.route("GET", "/ping", [](sse::request&) { return sse::response::text(200, "pong\n"); });
  srv.route("GET", "/int", [](sse::request&) -> sse::response { throw 42; });
  srv.route("GET", "/std", [](sse::request&) -> sse::response { throw std::runtime_error("db down"); });
  srv.start();

  for (char const* path : {"/int", "/std"}) {
    INFO(path);
    client c(srv.port());
    REQUIRE(c.send(get(path)));
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->status == 500);
    CHECK(r->body == "internal server error\n"); // nothing of the cause goes to the client
  }
  CHECK(log.has("the handler of GET /int threw: an exception not derived from std::exception"));
  CHECK(log.has("the handler of GET /std threw: db down"));
  CHECK(serves_normally(srv.port()));
}

TEST_CASE("server refuses an event_stream returned for a second request, keeps the first", "[server][lifecycle]") {
  auto o = test_options();
  error_log log;
  o.error_log = log.sink();
  sse::server srv(o);
  sse::event_stream shared; // misuse: one stream for every request
  srv.route("GET", "/ping", [](sse::request&) { return sse::response::text(200, "pong\n"); });
  srv.route("GET", "/shared", [&](sse::request&) { return sse::response::stream(shared); });
  srv.start();

  stream_client first(srv.port(), "/shared");
  REQUIRE(first.ok());
  client second(srv.port());
  REQUIRE(second.send(get("/shared")));
  auto r = read_response(second);
  REQUIRE(r);
  CHECK(r->status == 500);
  CHECK(log.has("returned an sse::event_stream that already serves another response"));

  // The first response was not touched: it still streams what is sent.
  CHECK(shared.send(sse::event("still here")));
  REQUIRE(first.wait_events(1));
  CHECK(first.events()[0].data == "still here");
  CHECK(serves_normally(srv.port()));
}

TEST_CASE("server takes a huge duration as never", "[server][lifecycle]") {
  auto o = test_options();
  for (auto* d : {&o.header_timeout, &o.body_timeout, &o.idle_timeout, &o.write_timeout, &o.heartbeat})
    *d = std::chrono::milliseconds::max();
  test_server ts(o);
  stream_client s(ts.port(), "/listen");
  REQUIRE(s.ok());
  client keep(ts.port());
  REQUIRE(keep.send(get("/ping")));
  REQUIRE(read_response(keep));
  client silent(ts.port());
  // The sweep runs every second here; past it, nothing may have been closed or sent.
  CHECK(s.open_after(1300ms));
  CHECK(keep.stays_quiet(10ms));
  CHECK(silent.stays_quiet(10ms));
  ts.broker.publish(sse::event("later"));
  REQUIRE(s.wait_events(1));
}

TEST_CASE("server derives max_connections from the descriptor limit", "[server][lifecycle]") {
  rlimit saved{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
  rlimit lower = saved;
  lower.rlim_cur = std::min<rlim_t>(saved.rlim_cur, 2048);
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &lower) == 0);
  sse::server derived{sse::server_options{}};
  sse::server_options fixed;
  fixed.max_connections = 10;
  sse::server explicit_limit(fixed);
  ::setrlimit(RLIMIT_NOFILE, &saved);

  auto const limit = static_cast<std::size_t>(lower.rlim_cur);
  CHECK(derived.options().max_connections == limit - std::max<std::size_t>(64, limit / 16));
  CHECK(derived.options().max_connections < limit);
  CHECK(explicit_limit.options().max_connections == 10);
}

TEST_CASE("server's sockets are close-on-exec: a program spawned meanwhile keeps no port",
          "[server][lifecycle]") {
  auto ts = std::make_unique<test_server>();
  std::uint16_t const port = ts->port();
  client held(port);
  REQUIRE(held.send(get("/listen")));
  REQUIRE(eventually([&] { return ts->subscribers() == 1; }));
  auto const server_sockets = tcp_socket_inodes(port, port_side::local);
  REQUIRE(server_sockets.size() >= 2); // listening, and the connection accepted for `held`

  inheriting_child child({"/bin/sleep", "5"});
  REQUIRE(child.pid() > 0);
  // posix_spawn returns once the program runs, so what it inherited it holds now.
  auto const inherited = socket_inodes_of(child.pid());
  for (auto const& inode : server_sockets)
    CHECK(inherited.count(inode) == 0);

  ts->srv.stop();
  ts.reset();
  // The port is free: nothing accepts on it, and a new server binds it.
  CHECK_FALSE(can_connect(port));
  auto o = test_options();
  o.port = port;
  sse::server again(o);
  again.route("GET", "/ping", [](sse::request&) { return sse::response::text(200, "pong\n"); });
  REQUIRE_NOTHROW(again.start());
  CHECK(serves_normally(port));
}
