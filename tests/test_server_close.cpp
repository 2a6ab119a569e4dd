// Close notifications: `on_close` and `async_wait_closed` on a subscription and on an
// event_stream tell the application once, promptly and with the reason, that a stream is over:
// the client left, it was evicted, the broker closed, the server stopped or drained.

#include "server_fixture.hpp"
#include "test_client.hpp"

#include <sse/broker.hpp>
#include <sse/error.hpp>
#include <sse/http.hpp>
#include <sse/responder.hpp>
#include <sse/server.hpp>
#include <sse/stream.hpp>

#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace sse_test;

namespace {

/// Records every close notification: why, on which thread, when.
struct close_log {
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::error_code> codes;
  std::vector<std::thread::id> threads;
  steady::time_point last_at{};

  std::function<void(std::error_code)> sink() {
    return [this](std::error_code ec) { record(ec); };
  }
  void record(std::error_code ec) {
    std::lock_guard<std::mutex> lk(m);
    codes.push_back(ec);
    threads.push_back(std::this_thread::get_id());
    last_at = steady::now();
    cv.notify_all();
  }
  /// Waits until `n` notifications have come; true if they did within `timeout`.
  bool wait(std::size_t n, ms timeout = 3000ms) {
    std::unique_lock<std::mutex> lk(m);
    return cv.wait_for(lk, timeout, [&] { return codes.size() >= n; });
  }
  std::size_t count() {
    std::lock_guard<std::mutex> lk(m);
    return codes.size();
  }
  std::error_code code(std::size_t i = 0) {
    std::lock_guard<std::mutex> lk(m);
    return i < codes.size() ? codes[i] : std::error_code();
  }
  std::thread::id thread(std::size_t i = 0) {
    std::lock_guard<std::mutex> lk(m);
    return threads.at(i);
  }
};

/// A heartbeat far longer than any wait below: whatever notices a client leaving, it is not
/// a heartbeat write failing.
sse::server_options long_heartbeat() {
  auto o = test_options();
  o.heartbeat = 60000ms;
  o.write_timeout = 60000ms;
  return o;
}

/// A server whose streams report their end to `closes`.
struct close_server {
  close_log closes; ///< outlives the server whose threads push into it
  error_log errors;
  stream_slot generated;
  sse::broker broker;
  sse::server srv;

  explicit close_server(sse::server_options o = long_heartbeat())
      : srv([&] {
          o.error_log = errors.sink();
          return o;
        }()) {
    srv.route("GET", "/ping", [](sse::request&) { return sse::response::text(200, "pong\n"); });
    srv.route("GET", "/room", [this](sse::request&) {
      auto sub = broker.subscribe("room");
      sub.on_close(closes.sink());
      return sse::response::stream(std::move(sub));
    });
    // A queue of 4 events, evicted on overflow.
    srv.route("GET", "/room-small", [this](sse::request&) {
      sse::subscribe_options so;
      so.limits = sse::queue_limits{4, 1024 * 1024, sse::overflow_policy::evict};
      auto sub = broker.subscribe("room", so);
      sub.on_close(closes.sink());
      return sse::response::stream(std::move(sub));
    });
    // A callback that throws, then one that records: the second still runs.
    srv.route("GET", "/room-throws", [this](sse::request&) {
      auto sub = broker.subscribe("room");
      sub.on_close([](std::error_code) { throw std::runtime_error("boom in on_close"); });
      sub.on_close(closes.sink());
      return sse::response::stream(std::move(sub));
    });
    // What a chat does on leaving: publish to the room and count who is left. Under the
    // broker's lock either would deadlock.
    srv.route("GET", "/room-publishes", [this](sse::request&) {
      auto sub = broker.subscribe("room");
      sub.on_close([this](std::error_code ec) {
        broker.publish("room", sse::event("someone left").name("presence"));
        if (broker.subscriber_count("room") < 100)
          closes.record(ec);
      });
      return sse::response::stream(std::move(sub));
    });
    srv.route("GET", "/gen", [this](sse::request&) {
      sse::event_stream s;
      generated.put(s);
      return sse::response::stream(s);
    });
    srv.start();
  }
  std::uint16_t port() const { return srv.port(); }
};

/// Opens `target` and waits until the server has subscribed it (one event went through).
void open_and_confirm(stream_client& s, sse::broker& b, std::size_t events_before = 0) {
  REQUIRE(s.ok());
  b.publish("room", sse::event("hello"));
  REQUIRE(s.wait_events(events_before + 1));
}

sse::errc errc_of(std::error_code ec) {
  REQUIRE(ec.category() == sse::error_category());
  return static_cast<sse::errc>(ec.value());
}

} // namespace

TEST_CASE("on_close fires once, promptly, with disconnected when the client closes its socket",
          "[server][close]") {
  close_server ts;
  stream_client s(ts.port(), "/room");
  open_and_confirm(s, ts.broker);
  CHECK(ts.closes.count() == 0);

  auto const t0 = steady::now();
  SECTION("a clean close (FIN)") { s.c.close(); }
  SECTION("a reset (RST)") { s.c.reset(); }
  REQUIRE(ts.closes.wait(1, 2000ms));
  auto const took = ts.closes.last_at - t0;
  INFO("noticed after " << std::chrono::duration_cast<ms>(took).count() << " ms");
  CHECK(took < 1000ms); // the heartbeat is a minute away
  CHECK(errc_of(ts.closes.code()) == sse::errc::disconnected);
  CHECK(ts.closes.thread() != std::this_thread::get_id());
  CHECK(eventually([&] { return ts.broker.subscriber_count("room") == 0; }));
  ts.srv.stop();
  CHECK(ts.closes.count() == 1); // once, though the server closed everything since
}

TEST_CASE("on_close runs outside every lock: it may publish and ask the broker",
          "[server][close]") {
  close_server ts;
  stream_client watcher(ts.port(), "/room");
  open_and_confirm(watcher, ts.broker);
  {
    stream_client leaver(ts.port(), "/room-publishes");
    REQUIRE(leaver.ok());
    REQUIRE(eventually([&] { return ts.broker.subscriber_count("room") == 2; }));
  } // leaves
  REQUIRE(ts.closes.wait(1, 2000ms));
  CHECK(errc_of(ts.closes.code()) == sse::errc::disconnected);
  REQUIRE(watcher.wait_events(2)); // what the callback published reached the others
  CHECK(watcher.events()[1].type == "presence");
  CHECK(watcher.events()[1].data == "someone left");
}

TEST_CASE("on_close tells an evicted stream at once, though its client reads nothing",
          "[server][close]") {
  close_server ts;
  // A client that never reads, with a small window: the server's writes stall, and only the
  // eviction can end the stream before write_timeout (a minute).
  stream_client s(ts.port(), "/room-small", 4096);
  REQUIRE(s.ok());
  REQUIRE(eventually([&] { return ts.broker.subscriber_count("room") == 1; }));
  std::string const big(16 * 1024, 'x');
  auto const t0 = steady::now();
  for (int i = 0; i < 1000 && ts.broker.stats().evicted == 0; ++i)
    ts.broker.publish("room", sse::event(big));
  REQUIRE(ts.broker.stats().evicted == 1);
  REQUIRE(ts.closes.wait(1, 2000ms));
  CHECK(ts.closes.last_at - t0 < 2000ms);
  CHECK(errc_of(ts.closes.code()) == sse::errc::evicted);
}

TEST_CASE("on_close reports the server's stop and drain as stream_closed, before they return",
          "[server][close]") {
  close_server ts;
  stream_client a(ts.port(), "/room"), b(ts.port(), "/room");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(eventually([&] { return ts.broker.subscriber_count("room") == 2; }));
  SECTION("stop") { ts.srv.stop(); }
  SECTION("drain") { ts.srv.drain(200ms); }
  // Every callback has run by the time stop() returns: nothing of the server runs after it.
  REQUIRE(ts.closes.count() == 2);
  CHECK(errc_of(ts.closes.code(0)) == sse::errc::stream_closed);
  CHECK(errc_of(ts.closes.code(1)) == sse::errc::stream_closed);
  CHECK(a.wait_closed());
  CHECK(b.wait_closed());
}

TEST_CASE("on_close reports a broker that closes as closed", "[server][close]") {
  close_server ts;
  stream_client s(ts.port(), "/room");
  open_and_confirm(s, ts.broker);
  ts.broker.close();
  REQUIRE(ts.closes.wait(1));
  CHECK(errc_of(ts.closes.code()) == sse::errc::closed);
  CHECK(s.wait_closed()); // and the stream ends after what was queued
}

TEST_CASE("a stream answered to HEAD never starts: on_close says closed", "[server][close]") {
  close_server ts;
  client c(ts.port());
  REQUIRE(c.send("HEAD /room HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = read_response(c, 3000ms, true);
  REQUIRE(r);
  CHECK(r->status == 200);
  REQUIRE(ts.closes.wait(1));
  CHECK(errc_of(ts.closes.code()) == sse::errc::closed);
}

TEST_CASE("an exception out of on_close is logged, the other callbacks run and the server goes on",
          "[server][close]") {
  close_server ts;
  {
    stream_client s(ts.port(), "/room-throws");
    open_and_confirm(s, ts.broker);
  }
  REQUIRE(ts.closes.wait(1, 2000ms));
  CHECK(errc_of(ts.closes.code()) == sse::errc::disconnected);
  CHECK(eventually([&] { return ts.errors.has("an on_close callback threw: boom in on_close"); }));
  CHECK(serves_normally(ts.port()));
  stream_client again(ts.port(), "/room");
  open_and_confirm(again, ts.broker);
}

TEST_CASE("an event_stream's producer learns that its client left without sending",
          "[server][close]") {
  close_server ts;
  auto s = std::make_unique<stream_client>(ts.port(), "/gen");
  REQUIRE(s->ok());
  auto stream = ts.generated.take();
  REQUIRE(stream);
  stream->on_close(ts.closes.sink());
  auto closed = stream->async_wait_closed(asio::use_future);
  REQUIRE(stream->send("first"));
  REQUIRE(s->wait_events(1));

  auto const t0 = steady::now();
  s.reset(); // closes the socket; the producer sends nothing from here on
  REQUIRE(ts.closes.wait(1, 2000ms));
  CHECK(ts.closes.last_at - t0 < 1000ms);
  CHECK(errc_of(ts.closes.code()) == sse::errc::disconnected);
  CHECK(stream->closed());
  REQUIRE(closed.wait_for(2s) == std::future_status::ready);
  CHECK_FALSE(stream->send("too late"));
  // The server's thread still drops its reference to the exception after completing the
  // promise; libstdc++ counts those references where TSan cannot see, so read it once that
  // thread is joined.
  ts.srv.stop();
  try {
    closed.get();
    FAIL("use_future must report the reason as an exception");
  } catch (std::system_error const& e) {
    CHECK(errc_of(e.code()) == sse::errc::disconnected);
  }
}

TEST_CASE("an event_stream closed by its producer tells its listeners closed", "[server][close]") {
  close_server ts;
  stream_client s(ts.port(), "/gen");
  REQUIRE(s.ok());
  auto stream = ts.generated.take();
  REQUIRE(stream);
  stream->on_close(ts.closes.sink());
  stream->send("last");
  stream->close();
  REQUIRE(ts.closes.wait(1));
  CHECK(errc_of(ts.closes.code()) == sse::errc::closed);
  CHECK(s.wait_closed());
  REQUIRE(s.events().size() == 1); // what it sent before close() still arrived
  CHECK(s.events()[0].data == "last");
}

TEST_CASE("on_close registered after the end is called at once, posted, with the reason",
          "[server][close]") {
  close_server ts;
  auto s = std::make_unique<stream_client>(ts.port(), "/gen");
  REQUIRE(s->ok());
  auto stream = ts.generated.take();
  REQUIRE(stream);
  s.reset();
  REQUIRE(eventually([&] { return stream->closed(); }));
  bool inline_call = true;
  stream->on_close([&, caller = std::this_thread::get_id()](std::error_code ec) {
    inline_call = std::this_thread::get_id() == caller;
    ts.closes.record(ec);
  });
  REQUIRE(ts.closes.wait(1));
  CHECK_FALSE(inline_call);
  CHECK(errc_of(ts.closes.code()) == sse::errc::disconnected);
}

TEST_CASE("an event_stream answered too late by an asynchronous handler tells its producer",
          "[server][close]") {
  close_log closes;
  std::mutex m;
  std::condition_variable cv;
  std::optional<sse::responder> held;
  auto o = long_heartbeat();
  sse::server srv(o);
  srv.route("GET", "/late", [&](sse::request&, sse::responder r) {
    std::lock_guard<std::mutex> lk(m);
    held.emplace(std::move(r));
    cv.notify_all();
  });
  srv.start();
  {
    client c(srv.port());
    REQUIRE(c.send(get("/late")));
    std::unique_lock<std::mutex> lk(m);
    REQUIRE(cv.wait_for(lk, 3s, [&] { return held.has_value(); }));
  } // the client leaves before the answer
  REQUIRE(eventually([&] { return !held->waiting(); }));
  sse::event_stream stream;
  stream.on_close(closes.sink());
  held->send(sse::response::stream(stream));
  REQUIRE(closes.wait(1));
  CHECK(errc_of(closes.code()) == sse::errc::disconnected);
  CHECK_FALSE(stream.send("nobody reads this"));
  srv.stop();
}

// --- without a server -----------------------------------------------------------------------

TEST_CASE("a subscription's on_close: evicted, closed by the broker, unsubscribed, each told once",
          "[broker][close]") {
  close_log closes;
  sse::broker broker;
  SECTION("evicted") {
    sse::subscribe_options so;
    so.limits = sse::queue_limits{2, 1024, sse::overflow_policy::evict};
    auto sub = broker.subscribe("t", so);
    sub.on_close(closes.sink());
    for (int i = 0; i < 3; ++i)
      broker.publish("t", sse::event("x"));
    REQUIRE(closes.wait(1));
    CHECK(errc_of(closes.code()) == sse::errc::evicted);
    sub.unsubscribe(); // ends it again: no second call
  }
  SECTION("the broker closes") {
    auto sub = broker.subscribe("t");
    sub.on_close(closes.sink());
    broker.close();
    REQUIRE(closes.wait(1));
    CHECK(errc_of(closes.code()) == sse::errc::closed);
  }
  SECTION("unsubscribe, and registering on the empty subscription afterwards") {
    auto sub = broker.subscribe("t");
    sub.on_close(closes.sink());
    sub.unsubscribe();
    REQUIRE(closes.wait(1));
    CHECK(errc_of(closes.code()) == sse::errc::closed);
    sub.on_close(closes.sink());
    REQUIRE(closes.wait(2));
    CHECK(errc_of(closes.code(1)) == sse::errc::closed);
  }
  SECTION("destroyed") {
    { broker.subscribe("t").on_close(closes.sink()); }
    REQUIRE(closes.wait(1));
    CHECK(errc_of(closes.code()) == sse::errc::closed);
  }
  CHECK(closes.thread() != std::this_thread::get_id()); // posted, never inline
  broker.close();
  auto const n = closes.count();
  broker.publish("t", sse::event("after")); // nothing more to tell anyone
  CHECK(closes.count() == n);
}

TEST_CASE("async_wait_closed keeps its executor busy and completes there", "[broker][close]") {
  sse::broker broker;
  asio::io_context io;
  sse::subscribe_options so;
  so.executor = io.get_executor();
  auto sub = broker.subscribe("t", so);
  std::error_code got;
  std::thread::id ran_on;
  sub.async_wait_closed([&](std::error_code ec) {
    got = ec;
    ran_on = std::this_thread::get_id();
  });
  // io.run() returns only once the handler ran: the pending wait is work.
  std::thread runner([&] { io.run(); });
  auto const runner_id = runner.get_id();
  broker.close();
  runner.join();
  CHECK(errc_of(got) == sse::errc::closed);
  CHECK(ran_on == runner_id);
}

TEST_CASE("on_close refuses an empty callback", "[broker][close]") {
  sse::broker broker;
  auto sub = broker.subscribe("t");
  CHECK_THROWS_AS(sub.on_close(nullptr), std::invalid_argument);
  sse::event_stream s;
  CHECK_THROWS_AS(s.on_close({}), std::invalid_argument);
}
