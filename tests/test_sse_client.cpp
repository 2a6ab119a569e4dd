// sse::client against our own server (restart and resume, 204, statuses, heartbeats) and
// against hand-written responses from tests/raw_server.hpp (framings, splits, retry, timeouts).

#include "child_process.hpp"
#include "client_util.hpp"
#include "raw_server.hpp"

#include <sse/broker.hpp>
#include <sse/client.hpp>
#include <sse/server.hpp>
#include <sse/stream.hpp>
#include <sse/testing.hpp>

#include <asio/use_future.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using sse_test::client_runner;
using sse_test::quick_client;
using sse_test::recorder;
using sse_test::raw_server;
using ms = std::chrono::milliseconds;

namespace {

constexpr char const* stream_head =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n";

/// A stream route resuming from Last-Event-ID, on a broker with history.
void add_listen_route(sse::server& s, sse::broker& b, std::vector<std::string>* last_ids = nullptr,
                      std::mutex* m = nullptr) {
  s.route("GET", "/listen", [&b, last_ids, m](sse::request& req) {
    sse::subscribe_options o;
    o.last_event_id = req.last_event_id();
    if (last_ids) {
      std::lock_guard<std::mutex> lk(*m);
      last_ids->push_back(o.last_event_id.value_or("(none)"));
    }
    return sse::response::stream(b.subscribe("t", o));
  });
}

sse::server_options quick_server(std::uint16_t port = 0) {
  sse::server_options o;
  o.host = "127.0.0.1";
  o.port = port;
  o.retry = 100ms; // the retry: the server sends on every stream
  o.retry_jitter = 0ms;
  o.stop_timeout = 1000ms;
  return o;
}

} // namespace

TEST_CASE("client resumes across a server restart with no event lost or doubled", "[client]") {
  sse::broker broker;
  broker.set_history(sse::history_limits{1000, 1 << 20, std::chrono::minutes(5)});
  std::mutex m;
  std::vector<std::string> last_ids;
  auto first = std::make_unique<sse::server>(quick_server());
  add_listen_route(*first, broker, &last_ids, &m);
  first->start();
  std::uint16_t const port = first->port();

  sse::testing::stream stream(quick_client("http://127.0.0.1:" + std::to_string(port) + "/listen"));
  for (int i = 0; i < 5; ++i)
    broker.publish("t", sse::event(std::to_string(i)));
  REQUIRE(stream.wait_for(5).size() == 5);

  first->stop(); // the stream ends; reconnects are refused meanwhile
  first.reset();
  for (int i = 5; i < 10; ++i) // published while no server runs: kept in history
    broker.publish("t", sse::event(std::to_string(i)));
  sse::server second(quick_server(port));
  add_listen_route(second, broker, &last_ids, &m);
  second.start();
  REQUIRE(stream.wait_for(10).size() == 10);
  for (int i = 10; i < 15; ++i)
    broker.publish("t", sse::event(std::to_string(i)));
  auto events = stream.wait_for(15);
  REQUIRE(events.size() == 15);
  std::this_thread::sleep_for(200ms); // a doubled event would come now
  events = stream.events();
  REQUIRE(events.size() == 15);
  std::set<std::string> ids;
  for (int i = 0; i < 15; ++i) {
    CHECK(events[i].data == std::to_string(i));
    CHECK(events[i].type == "message");
    CHECK(ids.insert(events[i].id).second);
  }
  CHECK(stream.opens() == 2);
  CHECK(stream.client().last_event_id() == events.back().id);
  std::lock_guard<std::mutex> lk(m);
  REQUIRE(last_ids.size() == 2);
  CHECK(last_ids[0] == "(none)");
  CHECK(last_ids[1] == events[4].id); // the second connection resumed after the fifth
}

TEST_CASE("client stops on 204 and says why", "[client]") {
  std::atomic<int> hits{0};
  sse::testing::server server([&](sse::server& s) {
    s.route("GET", "/done", [&](sse::request&) {
      ++hits;
      return sse::response(204);
    });
  });
  client_runner run;
  recorder rec;
  sse::client c(run.io, quick_client(server.url("/done")));
  rec.start(c);
  REQUIRE(rec.wait_closed());
  CHECK(*rec.closed == sse::errc::no_content);
  CHECK(c.reason() == sse::errc::no_content);
  CHECK(c.status() == 204);
  CHECK(rec.opens == 0);
  CHECK(rec.reconnects.empty());
  CHECK(hits == 1);
}

TEST_CASE("client treats other statuses and content types as final", "[client]") {
  sse::testing::server server([](sse::server& s) {
    s.route("GET", "/text", [](sse::request&) { return sse::response::text(200, "hello\n"); });
    s.route("GET", "/boom", [](sse::request&) { return sse::response::text(500, "no\n"); });
  });
  client_runner run;
  recorder rec;
  std::string path;
  sse::errc want{};
  int status = 0;
  SECTION("404") {
    path = "/missing", want = sse::errc::bad_status, status = 404;
  }
  SECTION("500") {
    path = "/boom", want = sse::errc::bad_status, status = 500;
  }
  SECTION("200 text/plain") {
    path = "/text", want = sse::errc::bad_content_type, status = 200;
  }
  sse::client c(run.io, quick_client(server.url(path)));
  rec.start(c);
  REQUIRE(rec.wait_closed());
  CHECK(*rec.closed == want);
  CHECK(c.status() == status);
  CHECK(rec.reconnects.empty());
}

TEST_CASE("client retries the statuses it is told to, with backoff", "[client]") {
  std::atomic<int> hits{0};
  sse::broker broker;
  sse::testing::server server([&](sse::server& s) {
    s.route("GET", "/flaky", [&](sse::request&) {
      if (++hits < 3)
        return sse::response::text(503, "later\n");
      return sse::response::stream(broker.subscribe("t"));
    });
  });
  auto o = quick_client(server.url("/flaky"));
  o.retry_statuses = {502, 503, 504};
  o.jitter = 0;
  o.retry = 20ms;
  client_runner run;
  recorder rec;
  sse::client c(run.io, o);
  rec.start(c);
  REQUIRE(rec.wait([&] { return rec.opens == 1; }));
  std::lock_guard<std::mutex> lk(rec.m);
  REQUIRE(rec.reconnects.size() == 2);
  CHECK(rec.reconnects[0].first == sse::errc::bad_status);
  CHECK(rec.reconnects[0].second == 20ms);
  CHECK(rec.reconnects[1].second == 40ms); // doubled: the first attempt failed too
}

TEST_CASE("client keeps a heartbeat-only stream past its read timeout", "[client]") {
  sse::server_options so;
  so.heartbeat = 100ms;
  sse::testing::server server(
      [](sse::server& s, sse::broker& b) {
        s.route("GET", "/quiet", [&b](sse::request&) { return sse::response::stream(b.subscribe("q")); });
      },
      so);
  auto o = quick_client(server.url("/quiet"));
  o.read_timeout = 400ms;
  client_runner run;
  recorder rec;
  sse::client c(run.io, o);
  rec.start(c);
  REQUIRE(rec.wait([&] { return rec.opens == 1; }));
  std::this_thread::sleep_for(1200ms); // three read timeouts of nothing but heartbeats
  server.publish("q", sse::event("still here"));
  REQUIRE(rec.wait([&] { return rec.events.size() == 1; }));
  std::lock_guard<std::mutex> lk(rec.m);
  CHECK(rec.events[0].data == "still here");
  CHECK(rec.reconnects.empty());
  CHECK(rec.opens == 1);
}

TEST_CASE("client times out a silent stream and reconnects", "[client]") {
  raw_server srv([](raw_server::connection& c) {
    c.write(std::string(stream_head) + "\r\n"); // then nothing, not even a heartbeat
    c.wait_for_close();
  });
  auto o = quick_client(srv.url("/silent"));
  o.read_timeout = 300ms;
  client_runner run;
  recorder rec;
  sse::client c(run.io, o);
  rec.attach(c);
  auto const t0 = std::chrono::steady_clock::now();
  c.start();
  REQUIRE(rec.wait([&] { return !rec.reconnects.empty(); }));
  auto const took = std::chrono::steady_clock::now() - t0;
  CHECK(took >= 290ms);
  CHECK(took < 2000ms);
  {
    std::lock_guard<std::mutex> lk(rec.m);
    CHECK(rec.reconnects[0].first == sse::errc::read_timeout);
  }
  CHECK(srv.wait_requests(2)); // and it came back
}

TEST_CASE("client reads chunked, close-delimited and sized bodies, split anywhere", "[client]") {
  // Two events, CRLF line ends, a comment; every byte written on its own in the chunked case,
  // so CRLFs, chunk sizes and fields are split across reads.
  std::string const body = ": hi\r\nretry: 40\r\nid: 1\r\ndata: a\r\ndata: b\r\n\r\nevent: e\r\nid: 2\r\ndata: c\r\n\r\n";
  std::string response;
  SECTION("chunked, byte by byte") {
    response = std::string(stream_head) + "Transfer-Encoding: chunked\r\n\r\n";
    for (std::size_t i = 0; i < body.size(); i += 7) { // chunks that cut lines and CRLFs
      std::string const piece = body.substr(i, 7);
      char size[16];
      std::snprintf(size, sizeof size, "%zx", piece.size());
      response += std::string(size) + ";ext=1\r\n" + piece + "\r\n";
    }
    response += "0\r\nTrailer: x\r\n\r\n";
  }
  SECTION("close-delimited, HTTP/1.0") {
    response = "HTTP/1.0 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n\r\n" + body;
  }
  SECTION("Content-Length") {
    response = std::string(stream_head) + "Content-Length: " + std::to_string(body.size()) +
               "\r\n\r\n" + body;
  }
  SECTION("a 100 Continue first, lone LFs in the head") {
    response = "HTTP/1.1 100 Continue\n\nHTTP/1.1 200 OK\nContent-Type: text/event-stream\n\n" + body;
  }
  raw_server srv([&](raw_server::connection& c) {
    if (c.index == 0)
      c.write_bytewise(response);
    else
      c.write("HTTP/1.1 204 No Content\r\n\r\n");
  });
  client_runner run;
  recorder rec;
  sse::client c(run.io, quick_client(srv.url("/s")));
  rec.start(c);
  REQUIRE(rec.wait_closed());
  std::lock_guard<std::mutex> lk(rec.m);
  CHECK(*rec.closed == sse::errc::no_content);
  REQUIRE(rec.events.size() == 2);
  CHECK(rec.events[0] == sse::parsed_event{"message", "a\nb", "1"});
  CHECK(rec.events[1] == sse::parsed_event{"e", "c", "2"});
  REQUIRE(rec.reconnects.size() == 1);
  CHECK(rec.reconnects[0].first == sse::errc::stream_ended);
  CHECK(rec.reconnects[0].second <= 40ms); // the stream's retry: 40
  CHECK(rec.reconnects[0].second >= 30ms); // less at most a quarter (jitter 0.25)
  auto const heads = srv.requests();
  REQUIRE(heads.size() == 2);
  CHECK(sse_test::header_of(heads[0], "Last-Event-ID").empty());
  CHECK(sse_test::header_of(heads[1], "Last-Event-ID") == "2");
}

TEST_CASE("client sends what EventSource sends, and its own headers", "[client]") {
  raw_server srv([](raw_server::connection& c) { c.write("HTTP/1.1 204 No Content\r\n\r\n"); });
  auto o = quick_client(srv.url("/path?q=1#frag"));
  o.last_event_id = "from-before";
  o.headers = {{"Authorization", "Bearer t"}, {"X-Thing", "1"}};
  client_runner run;
  recorder rec;
  sse::client c(run.io, o);
  rec.start(c);
  REQUIRE(rec.wait_closed());
  auto const head = srv.requests().at(0);
  CHECK(head.rfind("GET /path?q=1 HTTP/1.1\r\n", 0) == 0);
  CHECK(sse_test::header_of(head, "Host") == "127.0.0.1:" + std::to_string(srv.port()));
  CHECK(sse_test::header_of(head, "Accept") == "text/event-stream");
  CHECK(sse_test::header_of(head, "Cache-Control") == "no-cache");
  CHECK(sse_test::header_of(head, "Last-Event-ID") == "from-before");
  CHECK(sse_test::header_of(head, "Authorization") == "Bearer t");
  CHECK(sse_test::header_of(head, "X-Thing") == "1");
}

TEST_CASE("client refuses options it cannot use", "[client]") {
  asio::io_context io;
  auto make = [&](auto change) {
    sse::client_options o;
    o.url = "http://127.0.0.1:1/";
    change(o);
    sse::client c(io, o);
  };
  using o_t = sse::client_options&;
  CHECK_THROWS_AS(make([](o_t o) { o.url = "ftp://x/"; }), std::invalid_argument);
  CHECK_THROWS_AS(make([](o_t o) { o.url = "http://user:pw@x/"; }), std::invalid_argument);
  CHECK_THROWS_AS(make([](o_t o) { o.url = "http://x:99999/"; }), std::invalid_argument);
  CHECK_THROWS_AS(make([](o_t o) { o.last_event_id = "a\nb"; }), std::invalid_argument);
  CHECK_THROWS_AS(make([](o_t o) { o.headers = {{"Host", "x"}}; }), std::invalid_argument);
  CHECK_THROWS_AS(make([](o_t o) { o.headers = {{"X-A", "1\r\nX-B: 2"}}; }), std::invalid_argument);
  CHECK_THROWS_AS(make([](o_t o) { o.jitter = 1.5; }), std::invalid_argument);
  CHECK_THROWS_AS(make([](o_t o) { o.limits.max_line_bytes = 0; }), std::invalid_argument);
  CHECK_NOTHROW(make([](o_t o) { o.url = "http://[::1]:8080/x?y"; }));
  sse::client_options https;
  https.url = "https://127.0.0.1:1/";
  sse::client c(io, https);
  CHECK_THROWS_AS(c.start(), std::logic_error); // https without sse::tls::enable
}

TEST_CASE("client honours retry with jitter and the cap, and backs off on failures", "[client]") {
  client_runner run;
  recorder rec;
  SECTION("the server's retry, less at most the jitter") {
    raw_server srv([](raw_server::connection& c) {
      c.write(std::string(stream_head) + "\r\nretry: 300\n\ndata: x\n\n"); // then the end
    });
    auto o = quick_client(srv.url("/r"));
    o.max_reconnect_delay = 10s;
    o.jitter = 0.5;
    sse::client c(run.io, o);
    rec.start(c);
    REQUIRE(srv.wait_requests(4));
    c.stop();
    auto const opened = srv.request_times();
    auto const closed = srv.close_times();
    std::lock_guard<std::mutex> lk(rec.m);
    REQUIRE(rec.reconnects.size() >= 3);
    std::set<ms::rep> distinct;
    for (std::size_t i = 0; i < 3; ++i) {
      CHECK(rec.reconnects[i].first == sse::errc::stream_ended);
      CHECK(rec.reconnects[i].second >= 150ms);
      CHECK(rec.reconnects[i].second <= 300ms);
      distinct.insert(rec.reconnects[i].second.count());
      auto const gap = std::chrono::duration_cast<ms>(opened[i + 1] - closed[i]);
      CHECK(gap >= 140ms);
      CHECK(gap < 1000ms);
    }
    CHECK(distinct.size() > 1); // jittered (three equal draws of 150 values: 1 in 22,500)
    CHECK(c.retry() == 300ms);
  }
  SECTION("a retry past the cap waits the cap") {
    raw_server srv([](raw_server::connection& c) {
      c.write(std::string(stream_head) + "\r\nretry: 60000\n\ndata: x\n\n");
    });
    auto o = quick_client(srv.url("/r"));
    o.max_reconnect_delay = 150ms;
    o.jitter = 0;
    sse::client c(run.io, o);
    rec.start(c);
    REQUIRE(srv.wait_requests(2));
    std::lock_guard<std::mutex> lk(rec.m);
    REQUIRE(!rec.reconnects.empty());
    CHECK(rec.reconnects[0].second == 150ms);
  }
  SECTION("refused connections double the wait up to the cap") {
    std::uint16_t port;
    {
      asio::io_context io;
      asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
      port = a.local_endpoint().port(); // closed again: nothing listens there
    }
    auto o = quick_client("http://127.0.0.1:" + std::to_string(port) + "/");
    o.retry = ms(GENERATE(10, 0));
    o.max_reconnect_delay = 80ms;
    o.jitter = 0;
    sse::client c(run.io, o);
    rec.start(c);
    REQUIRE(rec.wait([&] { return rec.reconnects.size() >= 6; }));
    c.stop();
    std::lock_guard<std::mutex> lk(rec.m);
    std::vector<ms> want{10ms, 20ms, 40ms, 80ms, 80ms, 80ms};
    if (o.retry == 0ms) // retry: 0 reconnects at once, then backs off from 1 ms
      want = {0ms, 2ms, 4ms, 8ms, 16ms, 32ms};
    for (std::size_t i = 0; i < want.size(); ++i) {
      CHECK(rec.reconnects[i].first == asio::error::connection_refused);
      CHECK(rec.reconnects[i].second == want[i]);
    }
  }
}

TEST_CASE("client resumes from an id without data, and forgets it on an empty id", "[client]") {
  raw_server srv([](raw_server::connection& c) {
    if (c.index == 0)
      c.write(std::string(stream_head) + "\r\nid: 7\n\n"); // no data: no event, but the id
    else if (c.index == 1)
      c.write(std::string(stream_head) + "\r\ndata: x\n\nid:\n\n"); // x carries 7; then cleared
    else
      c.write("HTTP/1.1 204 No Content\r\n\r\n");
  });
  client_runner run;
  recorder rec;
  sse::client c(run.io, quick_client(srv.url("/i")));
  rec.start(c);
  REQUIRE(rec.wait_closed());
  auto const heads = srv.requests();
  REQUIRE(heads.size() == 3);
  CHECK(sse_test::header_of(heads[1], "Last-Event-ID") == "7");
  CHECK(heads[2].find("Last-Event-ID") == std::string::npos);
  std::lock_guard<std::mutex> lk(rec.m);
  REQUIRE(rec.events.size() == 1);
  CHECK(rec.events[0] == sse::parsed_event{"message", "x", "7"});
  CHECK(c.last_event_id().empty());
}

TEST_CASE("client follows redirects, bounded, and reconnects to the URL it was given", "[client]") {
  std::atomic<int> old_hits{0};
  sse::testing::server server([&](sse::server& s) {
    s.route("GET", "/old", [&](sse::request&) {
      ++old_hits;
      return sse::response(307).header("Location", "/new");
    });
    s.route("GET", "/loop", [](sse::request&) { return sse::response(302).header("Location", "/loop"); });
    s.route("GET", "/new", [](sse::request&) {
      sse::event_stream st; // one event, then the end: the client reconnects
      st.send(sse::event("moved"));
      st.close();
      return sse::response::stream(st);
    });
  });
  client_runner run;
  recorder rec;
  SECTION("followed") {
    sse::client c(run.io, quick_client(server.url("/old")));
    rec.start(c);
    REQUIRE(rec.wait([&] { return rec.events.size() == 1; }));
    CHECK(rec.events[0].data == "moved");
    REQUIRE(rec.wait([&] { return old_hits == 2; })); // the reconnect asks /old again
  }
  SECTION("a loop ends with bad_redirect") {
    auto o = quick_client(server.url("/loop"));
    o.max_redirects = 3;
    sse::client c(run.io, o);
    rec.start(c);
    REQUIRE(rec.wait_closed());
    CHECK(*rec.closed == sse::errc::bad_redirect);
    CHECK(c.status() == 302);
  }
}

TEST_CASE("client ends on a head or an event past its limits", "[client]") {
  std::string response;
  sse::client_options o;
  sse::errc want{};
  SECTION("head") {
    response = std::string(stream_head) + "X-Big: " + std::string(2000, 'x') + "\r\n\r\n";
    o.max_header_bytes = 1024;
    want = sse::errc::header_too_large;
  }
  SECTION("event") {
    response = std::string(stream_head) + "\r\ndata: " + std::string(3000, 'x') + "\n\n";
    o.limits.max_data_bytes = 1024;
    want = sse::errc::event_too_large;
  }
  raw_server srv([&](raw_server::connection& c) {
    c.write(response);
    c.wait_for_close();
  });
  o.url = srv.url("/big");
  client_runner run;
  recorder rec;
  sse::client c(run.io, o);
  rec.start(c);
  REQUIRE(rec.wait_closed());
  CHECK(*rec.closed == want);
  CHECK(rec.events.empty());
}

TEST_CASE("client hands events to async_next, then the final reason", "[client]") {
  raw_server srv([](raw_server::connection& c) {
    if (c.index == 0)
      c.write(std::string(stream_head) + "\r\nid: 1\ndata: one\n\nid: 2\ndata: two\n\n");
    else
      c.write("HTTP/1.1 204 No Content\r\n\r\n");
  });
  client_runner run;
  sse::client c(run.io, quick_client(srv.url("/n")));
  c.start();
  auto first = c.async_next(asio::use_future).get();
  CHECK(first.data == "one");
  CHECK(first.id == "1");
  CHECK(c.async_next(asio::use_future).get().data == "two");
  auto last = c.async_next(asio::use_future);
  CHECK_THROWS_AS(last.get(), std::system_error); // use_future throws the final reason
  CHECK(c.reason() == sse::errc::no_content);
  CHECK(c.last_event_id() == "2");
}

TEST_CASE("client pauses reading while async_next falls behind", "[client]") {
  raw_server srv([](raw_server::connection& c) {
    std::string evs = std::string(stream_head) + "\r\n";
    for (int i = 0; i < 200; ++i)
      evs += "data: " + std::to_string(i) + "\n\n";
    c.write(evs);
    c.wait_for_close();
  });
  auto o = quick_client(srv.url("/n"));
  o.max_queued_events = 8;
  o.read_timeout = 200ms; // a paused client is not a silent server
  client_runner run;
  sse::client c(run.io, o);
  c.start();
  CHECK(c.async_next(asio::use_future).get().data == "0");
  std::this_thread::sleep_for(500ms);
  for (int i = 1; i < 200; ++i)
    REQUIRE(c.async_next(asio::use_future).get().data == std::to_string(i));
  CHECK(srv.requests().size() == 1);
}

TEST_CASE("client stop() ends callbacks and a pending async_next", "[client]") {
  raw_server srv([](raw_server::connection& c) {
    c.write(std::string(stream_head) + "\r\n");
    c.wait_for_close();
  });
  client_runner run;
  sse::client c(run.io, quick_client(srv.url("/s")));
  c.start();
  // The error_code itself, not use_future's exception: an exception read on this thread and
  // freed on the completing one is a false race under TSan (libstdc++'s exception_ptr
  // refcount is not instrumented).
  auto done = std::make_shared<std::promise<std::error_code>>();
  auto next = done->get_future();
  c.async_next([done](std::error_code ec, sse::parsed_event) { done->set_value(ec); });
  REQUIRE(srv.wait_requests(1));
  c.stop();
  REQUIRE(next.wait_for(5s) == std::future_status::ready);
  CHECK(next.get() == asio::error::operation_aborted);
  CHECK(c.reason() == asio::error::operation_aborted);
}

TEST_CASE("client's socket is close-on-exec: a program spawned meanwhile does not hold it",
          "[client]") {
  sse::broker broker;
  sse::testing::server server([&](sse::server& s) { add_listen_route(s, broker); });
  sse::testing::stream stream(quick_client(server.url("/listen"))); // open once it returns
  auto const mine = sse_test::tcp_socket_inodes(server.port(), sse_test::port_side::remote);
  REQUIRE(mine.size() == 1);
  // A program spawned now would otherwise keep the connection open after the client closed.
  sse_test::inheriting_child child({"/bin/sleep", "5"});
  REQUIRE(child.pid() > 0);
  auto const inherited = sse_test::socket_inodes_of(child.pid());
  CHECK(inherited.count(*mine.begin()) == 0);
}
