// Asynchronous handlers: `void(sse::request&, sse::responder)` answered later, from any thread,
// with an ordinary response or a stream; clients that leave first, answers that never come,
// responders dropped or outliving the server, and stop() waiting for what is still owed.

#include "server_fixture.hpp"
#include "test_client.hpp"

#include <sse/broker.hpp>
#include <sse/http.hpp>
#include <sse/responder.hpp>
#include <sse/server.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_future.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace sse_test;

namespace {

/// The application's own io_context on a thread of its own, as an app has for its database
/// or auth calls.
struct app_context {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread{[this] { io.run(); }};
  ~app_context() {
    work.reset();
    io.stop();
    thread.join();
  }
};

/// Hands responders from the server's thread to the test.
struct responder_slot {
  std::mutex m;
  std::condition_variable cv;
  std::vector<sse::responder> held;
  void put(sse::responder r) {
    {
      std::lock_guard<std::mutex> lk(m);
      held.push_back(std::move(r));
    }
    cv.notify_all();
  }
  std::optional<sse::responder> take(ms timeout = 3000ms) {
    std::unique_lock<std::mutex> lk(m);
    if (!cv.wait_for(lk, timeout, [&] { return !held.empty(); }))
      return std::nullopt;
    auto r = held.front();
    held.erase(held.begin());
    return r;
  }
};

} // namespace

TEST_CASE("asynchronous handler answers later from another thread, in pipelined order", "[server][async]") {
  app_context app;
  sse::server srv(test_options());
  srv.route("GET", "/ping", [](sse::request&) { return sse::response::text(200, "pong\n"); });
  srv.route("GET", "/later/{n}", [&](sse::request& req, sse::responder res) {
    // A timer on the application's io_context stands for a database call.
    auto timer = std::make_shared<asio::steady_timer>(app.io, 50ms);
    std::string const n(req.param("n").value_or(""));
    timer->async_wait([timer, res, n](std::error_code) mutable {
      res.send(sse::response::text(200, "later " + n + "\n"));
    });
  });
  srv.start();

  client c(srv.port());
  REQUIRE(c.send(get("/later/1") + get("/ping") + get("/later/2")));
  for (char const* body : {"later 1\n", "pong\n", "later 2\n"}) {
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == body);
    CHECK(r->header("Connection") == std::string("keep-alive"));
  }
}

TEST_CASE("asynchronous handler works with asio::use_future", "[server][async]") {
  app_context app;
  sse::server srv(test_options());
  srv.route("GET", "/answer", [&](sse::request&, sse::responder res) {
    std::future<int> f = asio::post(app.io, asio::use_future([] { return 42; }));
    std::thread([f = std::move(f), res]() mutable {
      res.send(sse::response::text(200, std::to_string(f.get())));
    }).detach();
  });
  srv.start();
  client c(srv.port());
  REQUIRE(c.send(get("/answer")));
  auto r = read_response(c);
  REQUIRE(r);
  CHECK(r->body == "42");
}

TEST_CASE("asynchronous handler can answer with a stream", "[server][async]") {
  app_context app;
  sse::broker broker;
  sse::server srv(test_options());
  srv.route("GET", "/events", [&](sse::request& req, sse::responder res) {
    bool const allowed = req.query("token") == std::string_view("ok");
    asio::post(app.io, [&broker, res, allowed]() mutable { // "after checking the token"
      if (!allowed)
        res.send(sse::response::text(403, "forbidden\n"));
      else
        res.send(sse::response::stream(broker.subscribe("news")));
    });
  });
  srv.start();

  client refused(srv.port());
  REQUIRE(refused.send(get("/events?token=bad")));
  auto r = read_response(refused);
  REQUIRE(r);
  CHECK(r->status == 403);

  stream_client s(srv.port(), "/events?token=ok");
  REQUIRE(s.ok());
  REQUIRE(eventually([&] { return broker.stats().subscribers == 1; }));
  broker.publish("news", sse::event("hello"));
  REQUIRE(s.wait_events(1));
  CHECK(s.events()[0].data == "hello");
}

TEST_CASE("asynchronous handler whose client left: the answer is dropped safely", "[server][async]") {
  responder_slot slot;
  sse::server srv(test_options());
  srv.route("GET", "/ping", [](sse::request&) { return sse::response::text(200, "pong\n"); });
  srv.route("GET", "/slow", [&](sse::request&, sse::responder res) { slot.put(res); });
  srv.start();
  {
    client c(srv.port());
    REQUIRE(c.send(get("/slow")));
    auto res = slot.take();
    REQUIRE(res);
    CHECK(res->waiting());
    c.close();
    CHECK(eventually([&] { return !res->waiting(); }));
    CHECK(eventually([&] { return srv.connections() == 0; }));
    res->send(sse::response::text(200, "nobody reads this\n")); // dropped, no crash
  }
  CHECK(serves_normally(srv.port()));
}

TEST_CASE("asynchronous handler that never answers: 503 at handler_timeout", "[server][async]") {
  auto o = test_options();
  o.handler_timeout = 300ms;
  error_log log;
  o.error_log = log.sink();
  responder_slot slot;
  sse::server srv(o);
  srv.route("GET", "/never", [&](sse::request&, sse::responder res) { slot.put(res); });
  srv.start();
  client c(srv.port());
  REQUIRE(c.send(get("/never")));
  auto res = slot.take();
  REQUIRE(res);
  auto r = read_response(c, 3000ms);
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(log.has("the handler of GET /never did not answer in time"));
  CHECK_FALSE(res->waiting());
  res->send(sse::response::text(200, "too late\n")); // dropped
  CHECK(c.read_until_closed());
  CHECK(c.buffer().empty());
}

TEST_CASE("asynchronous handler that drops its responder gets 500; send twice throws", "[server][async]") {
  auto o = test_options();
  error_log log;
  o.error_log = log.sink();
  sse::server srv(o);
  srv.route("GET", "/drop", [](sse::request&, sse::responder) {});
  srv.route("GET", "/twice", [](sse::request&, sse::responder res) {
    res.send(sse::response::text(200, "first\n"));
    try {
      res.send(sse::response::text(200, "second\n"));
    } catch (std::logic_error const& e) {
      CHECK(std::string(e.what()) == "sse::responder::send: the request was already answered");
      return;
    }
    FAIL("a second send did not throw");
  });
  srv.route("GET", "/throws", [](sse::request&, sse::responder) { throw std::runtime_error("boom"); });
  srv.start();
  client c(srv.port());
  REQUIRE(c.send(get("/twice")));
  auto r = read_response(c);
  REQUIRE(r);
  CHECK(r->body == "first\n");
  REQUIRE(c.send(get("/drop")));
  r = read_response(c);
  REQUIRE(r);
  CHECK(r->status == 500);
  CHECK(log.has("the handler of GET /drop dropped its responder without answering"));
  client d(srv.port());
  REQUIRE(d.send(get("/throws")));
  r = read_response(d);
  REQUIRE(r);
  CHECK(r->status == 500);
  CHECK(log.has("the handler of GET /throws threw: boom"));
}

TEST_CASE("stop waits for asynchronous answers owed, then streams get what they published", "[server][async]") {
  auto o = test_options();
  o.stop_timeout = 2000ms;
  sse::broker broker;
  responder_slot slot;
  auto srv = std::make_unique<sse::server>(o);
  srv->route("GET", "/listen", [&](sse::request&) { return sse::response::stream(broker.subscribe("")); });
  srv->route("POST", "/publish", [&](sse::request&, sse::responder res) { slot.put(res); });
  srv->start();
  stream_client s(srv->port(), "/listen");
  REQUIRE(s.ok());
  REQUIRE(eventually([&] { return broker.stats().subscribers == 1; }));
  client pub(srv->port());
  REQUIRE(pub.send(post("/publish", "x")));
  auto res = slot.take();
  REQUIRE(res);

  std::thread stopper([&] { srv->stop(); });
  // The stream stays open while an answer is owed; then the handler publishes and answers.
  CHECK(s.open_after(200ms));
  broker.publish(sse::event("acknowledged"));
  res->send(sse::response(204));
  auto r = read_response(pub);
  stopper.join();
  REQUIRE(r);
  CHECK(r->status == 204);
  CHECK(s.wait_closed());
  REQUIRE(s.events().size() == 1);
  CHECK(s.events()[0].data == "acknowledged");

  // A responder that outlives its server answers nothing, safely.
  srv.reset();
  CHECK_FALSE(res->waiting());
}

TEST_CASE("a responder kept past the server's end is harmless", "[server][async]") {
  responder_slot slot;
  sse::responder kept;
  {
    auto o = test_options();
    o.stop_timeout = 200ms;
    sse::server srv(o);
    srv.route("GET", "/keep", [&](sse::request&, sse::responder res) { slot.put(res); });
    srv.start();
    client c(srv.port());
    REQUIRE(c.send(get("/keep")));
    auto taken = slot.take();
    REQUIRE(taken);
    kept = *taken;
    srv.stop(); // the owed answer gets 503 at the stop deadline
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->status == 503);
  }
  CHECK_FALSE(kept.waiting());
  kept.send(sse::response::text(200, "after the end\n"));
  kept = sse::responder(); // and its last copy goes
}

TEST_CASE("server runs on the application's io_context and its two threads", "[server][async][embed]") {
  asio::io_context io;
  auto work = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
      io.get_executor());
  std::vector<std::thread> app_threads;
  for (int i = 0; i < 2; ++i)
    app_threads.emplace_back([&] { io.run(); });

  sse::broker broker;
  auto o = test_options();
  o.threads = 2; // two strands on the application's io_context
  auto srv = std::make_unique<sse::server>(io, o);
  srv->route("GET", "/ping", [](sse::request&) { return sse::response::text(200, "pong\n"); });
  srv->route("GET", "/listen", [&](sse::request&) { return sse::response::stream(broker.subscribe("")); });
  srv->route("GET", "/stop-inline", [&](sse::request&) {
    try {
      srv->stop();
    } catch (std::logic_error const& e) {
      return sse::response::text(200, e.what());
    }
    return sse::response::text(200, "stop() returned inside the server");
  });
  srv->route("GET", "/later", [&](sse::request&, sse::responder res) {
    asio::post(io, [res]() mutable { res.send(sse::response::text(200, "later\n")); });
  });
  srv->start();
  auto const port = srv->port();

  std::vector<std::unique_ptr<stream_client>> streams;
  for (int i = 0; i < 4; ++i) {
    streams.push_back(std::make_unique<stream_client>(port, "/listen"));
    REQUIRE(streams.back()->ok());
  }
  REQUIRE(eventually([&] { return broker.stats().subscribers == 4; }));
  constexpr std::size_t n = 100;
  publish_numbered(broker, n);
  for (auto& s : streams) {
    REQUIRE(s->wait_events(n));
    CHECK(first_mismatch(s->events()) == n);
  }
  client c(port);
  REQUIRE(c.send(get("/later") + get("/ping") + get("/stop-inline")));
  for (char const* body : {"later\n", "pong\n"}) {
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->body == body);
  }
  auto r = read_response(c);
  REQUIRE(r);
  CHECK(r->body.find("request_stop") != std::string::npos);

  srv->stop();
  for (auto& s : streams) {
    CHECK(s->wait_closed());
    CHECK(s->chunks.finished());
  }
  CHECK(srv->connections() == 0);
  CHECK_FALSE(can_connect(port));
  // The application's io_context runs on, and nothing of the server is left on it: once the
  // application lets go of its own work, run() returns in both threads.
  std::promise<void> ran;
  asio::post(io, [&] { ran.set_value(); });
  CHECK(ran.get_future().wait_for(2s) == std::future_status::ready);
  srv.reset();
  work.reset();
  auto joined = std::async(std::launch::async, [&] {
    for (auto& t : app_threads)
      t.join();
  });
  REQUIRE(joined.wait_for(3s) == std::future_status::ready);
}
