// sse::redis against a real redis-server that each test starts on a free port (redis_server.hpp).
// Every wait is bounded and waits for an event (a completion, a state change, a message), never
// a sleep.

#include "child_process.hpp"
#include "redis_server.hpp"

#include <sse/redis.hpp>

#include <catch2/catch.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/use_future.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;
using sse::redis::connection_state;
using sse::redis::errc;
using sse::redis::reply;

namespace {

constexpr auto wait_limit = 10s;

// An io_context run by one thread for the test's lifetime.
struct io_thread {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread{[this] { io.run(); }};
  ~io_thread() {
    work.reset();
    io.stop();
    thread.join();
  }
};

// Collects what handlers report, from any thread; waits until a condition holds.
template <class T>
class recorder {
public:
  void push(T v) {
    // Notified under the lock: a waiter that wakes may destroy the recorder right after.
    std::lock_guard<std::mutex> lk(m_);
    items_.push_back(std::move(v));
    cv_.notify_all();
  }
  // Waits until pred(items) holds or the limit passes; returns whether it held.
  bool wait(std::function<bool(std::vector<T> const&)> pred,
            std::chrono::steady_clock::duration limit = wait_limit) {
    std::unique_lock<std::mutex> lk(m_);
    return cv_.wait_for(lk, limit, [&] { return pred(items_); });
  }
  std::vector<T> items() {
    std::lock_guard<std::mutex> lk(m_);
    return items_;
  }

private:
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<T> items_;
};

using states = recorder<sse::redis::state_event>;

// The number of events in state `s` seen so far is at least `n`.
std::function<bool(std::vector<sse::redis::state_event> const&)> reached(connection_state s,
                                                                          std::size_t n = 1) {
  return [s, n](auto const& v) {
    std::size_t k = 0;
    for (auto const& e : v)
      k += e.state == s;
    return k >= n;
  };
}

sse::redis::connection_options options_for(std::uint16_t port) {
  sse::redis::connection_options o;
  o.port = port;
  o.connect_timeout = 2s;
  o.reconnect_min = 10ms;
  o.reconnect_max = 100ms;
  return o;
}

// One command's completion as a future of (error, reply), so the reply of an error is kept.
std::future<std::pair<std::error_code, reply>> start(sse::redis::connection& c,
                                                     std::vector<std::string> args) {
  auto p = std::make_shared<std::promise<std::pair<std::error_code, reply>>>();
  auto f = p->get_future();
  c.async_command(std::move(args), [p](std::error_code ec, reply r) {
    p->set_value({ec, std::move(r)});
  });
  return f;
}

// One command, waited for from the test thread.
std::pair<std::error_code, reply> run(sse::redis::connection& c, std::vector<std::string> args) {
  auto f = start(c, std::move(args));
  REQUIRE(f.wait_for(wait_limit) == std::future_status::ready);
  return f.get();
}

// A connection started and connected.
struct connected {
  connected(asio::io_context& io, sse::redis::connection_options o) : conn(io.get_executor(), o) {
    conn.set_state_handler([this](auto const& e) { events.push(e); });
    conn.start();
    REQUIRE(events.wait(reached(connection_state::connected)));
  }
  states events; // declared first: outlives the connection, whose handler pushes into it
  sse::redis::connection conn;
};

} // namespace

TEST_CASE("redis commands round trip: SET/GET/INCR, nil, and an error reply carries its text",
          "[redis]") {
  sse_test::redis_server server;
  io_thread t;
  connected c(t.io, options_for(server.port()));

  auto [ec, r] = run(c.conn, {"SET", "greeting", std::string("hi\0there", 8)});
  CHECK(!ec);
  CHECK(r.is_status());
  CHECK(r.str() == "OK");

  std::tie(ec, r) = run(c.conn, {"GET", "greeting"});
  CHECK(!ec);
  REQUIRE(r.is_string());
  CHECK(r.str() == std::string("hi\0there", 8)); // binary-safe both ways

  std::tie(ec, r) = run(c.conn, {"INCR", "n"});
  CHECK(r.is_integer());
  CHECK(r.integer() == 1);

  std::tie(ec, r) = run(c.conn, {"GET", "missing"});
  CHECK(!ec);
  CHECK(r.is_nil());

  std::tie(ec, r) = run(c.conn, {"INCR", "greeting"});
  CHECK(ec == errc::reply_error);
  CHECK(ec.category().name() == std::string("sse.redis"));
  REQUIRE(r.is_error());
  CHECK(r.str() == "ERR value is not an integer or out of range");

  std::tie(ec, r) = run(c.conn, {"RPUSH", "list", "a", "b"});
  std::tie(ec, r) = run(c.conn, {"LRANGE", "list", "0", "-1"});
  REQUIRE(r.is_array());
  CHECK(r == reply::make_array({reply::make(reply::kind::string, "a"),
                                reply::make(reply::kind::string, "b")}));
  CHECK(c.conn.pending_bytes() == 0);
}

TEST_CASE("redis pipelined commands complete in order", "[redis]") {
  sse_test::redis_server server;
  io_thread t;
  connected c(t.io, options_for(server.port()));

  constexpr int n = 20000;
  recorder<long long> got;
  for (int i = 0; i < n; ++i)
    c.conn.async_command({"INCR", "counter"}, [&](std::error_code ec, reply r) {
      got.push(ec ? -1 : r.integer());
    });
  REQUIRE(got.wait([](auto const& v) { return v.size() == n; }));
  auto v = got.items();
  for (int i = 0; i < n; ++i)
    REQUIRE(v[static_cast<std::size_t>(i)] == i + 1);
}

TEST_CASE("redis commands work with use_future; an error reply throws", "[redis]") {
  sse_test::redis_server server;
  io_thread t;
  connected c(t.io, options_for(server.port()));

  auto pong = c.conn.async_command({"PING"}, asio::use_future);
  REQUIRE(pong.wait_for(wait_limit) == std::future_status::ready);
  CHECK(pong.get().str() == "PONG");

  // Shared, so the state (and the exception in it) outlives the checks below: std::future::get
  // would let it go first, and its last owner may then be the thread that set it.
  auto bad = c.conn.async_command({"NOSUCHCOMMAND"}, asio::use_future).share();
  REQUIRE(bad.wait_for(wait_limit) == std::future_status::ready);
  try {
    bad.get();
    FAIL("no exception");
  } catch (std::system_error const& e) {
    CHECK(e.code() == errc::reply_error);
  }
  CHECK_THROWS_AS(c.conn.async_command({}, asio::use_future), std::invalid_argument);
}

TEST_CASE("redis subscriber delivers in order and follows SUBSCRIBE/UNSUBSCRIBE", "[redis]") {
  sse_test::redis_server server;
  io_thread t;
  connected c(t.io, options_for(server.port()));

  recorder<std::pair<std::string, std::string>> messages; // outlive the subscriber
  states events;
  sse::redis::subscriber sub(t.io.get_executor(), options_for(server.port()));
  sub.set_state_handler([&](auto const& e) { events.push(e); });
  sub.set_message_handler([&](std::string_view ch, std::string_view m) {
    messages.push({std::string(ch), std::string(m)});
  });
  sub.start();
  REQUIRE(events.wait(reached(connection_state::connected)));

  auto a = sub.async_subscribe("a", asio::use_future);
  auto b = sub.async_subscribe("b", asio::use_future);
  REQUIRE(a.wait_for(wait_limit) == std::future_status::ready);
  REQUIRE(b.wait_for(wait_limit) == std::future_status::ready);
  a.get();
  b.get();
  // Subscribed already: completes at once.
  auto again = sub.async_subscribe("a", asio::use_future);
  REQUIRE(again.wait_for(wait_limit) == std::future_status::ready);

  for (int i = 0; i < 100; ++i) {
    CHECK(run(c.conn, {"PUBLISH", i % 2 ? "a" : "b", std::to_string(i)}).second.integer() == 1);
    CHECK(run(c.conn, {"PUBLISH", "c", "nobody"}).second.integer() == 0);
  }
  REQUIRE(messages.wait([](auto const& v) { return v.size() == 100; }));
  auto got = messages.items();
  for (int i = 0; i < 100; ++i) {
    CHECK(got[static_cast<std::size_t>(i)].first == (i % 2 ? "a" : "b"));
    CHECK(got[static_cast<std::size_t>(i)].second == std::to_string(i));
  }

  // UNSUBSCRIBE a; a later confirmed subscription on the same connection orders after it.
  sub.unsubscribe("a");
  auto fence = sub.async_subscribe("fence", asio::use_future);
  REQUIRE(fence.wait_for(wait_limit) == std::future_status::ready);
  CHECK(run(c.conn, {"PUBLISH", "a", "gone"}).second.integer() == 0);
  CHECK(run(c.conn, {"PUBLISH", "b", "still"}).second.integer() == 1);
  REQUIRE(messages.wait([](auto const& v) { return v.size() == 101; }));
  CHECK(messages.items().back() == std::pair<std::string, std::string>{"b", "still"});

  // Subscribed again after unsubscribing.
  auto back = sub.async_subscribe("a", asio::use_future);
  REQUIRE(back.wait_for(wait_limit) == std::future_status::ready);
  back.get();
  CHECK(run(c.conn, {"PUBLISH", "a", "back"}).second.integer() == 1);
  REQUIRE(messages.wait([](auto const& v) { return v.size() == 102; }));
  CHECK(messages.items().back() == std::pair<std::string, std::string>{"a", "back"});
}

TEST_CASE("redis killed: pending commands fail with connection_lost at once, the state handler "
          "hears it, and a restart on the same port restores connection and subscriptions",
          "[redis]") {
  sse_test::redis_server server;
  io_thread t;
  connected c(t.io, options_for(server.port()));

  recorder<std::string> messages; // outlive the subscriber
  states sub_events;
  sse::redis::subscriber sub(t.io.get_executor(), options_for(server.port()));
  sub.set_state_handler([&](auto const& e) { sub_events.push(e); });
  sub.set_message_handler(
      [&](std::string_view, std::string_view m) { messages.push(std::string(m)); });
  sub.subscribe("news");
  sub.start();
  // Subscribed before start: restored in the first attempt, before `connected` is told.
  REQUIRE(sub_events.wait(reached(connection_state::connected)));
  CHECK(run(c.conn, {"PUBLISH", "news", "one"}).second.integer() == 1);
  REQUIRE(messages.wait([](auto const& v) { return v.size() == 1; }));

  // Frozen, so the commands stay pending; then killed.
  server.stop();
  std::vector<std::future<std::pair<std::error_code, reply>>> pending;
  for (int i = 0; i < 10; ++i)
    pending.push_back(start(c.conn, {"INCR", "x"}));
  auto killed_at = std::chrono::steady_clock::now();
  server.kill();
  for (auto& f : pending) {
    REQUIRE(f.wait_for(wait_limit) == std::future_status::ready);
    CHECK(f.get().first == errc::connection_lost);
  }
  CHECK(std::chrono::steady_clock::now() - killed_at < 1s);
  REQUIRE(c.events.wait(reached(connection_state::disconnected)));
  REQUIRE(sub_events.wait(reached(connection_state::disconnected)));
  for (auto const& e : c.events.items())
    if (e.state == connection_state::disconnected) {
      CHECK(e.error == errc::connection_lost);
      CHECK(e.retry_in <= 100ms);
      break;
    }
  CHECK(c.conn.pending_bytes() == 0);

  // While it is down: commands fail at once, a subscription is remembered.
  auto [ec, r] = run(c.conn, {"PING"});
  CHECK((ec == errc::not_connected || ec == errc::connect_failed));
  sub.subscribe("later");

  server.restart();
  REQUIRE(c.events.wait(reached(connection_state::connected, 2)));
  REQUIRE(sub_events.wait(reached(connection_state::connected, 2)));
  CHECK(run(c.conn, {"PUBLISH", "news", "two"}).second.integer() == 1);
  CHECK(run(c.conn, {"PUBLISH", "later", "three"}).second.integer() == 1);
  REQUIRE(messages.wait([](auto const& v) { return v.size() == 3; }));
  CHECK(messages.items() == std::vector<std::string>{"one", "two", "three"});
  std::tie(ec, r) = run(c.conn, {"INCR", "x"});
  CHECK(r.integer() == 1); // a fresh redis without persistence
}

TEST_CASE("redis refuses commands past max_pending_bytes while the server is frozen", "[redis]") {
  sse_test::redis_server server;
  io_thread t;
  auto o = options_for(server.port());
  o.max_pending_bytes = 64 * 1024;
  connected c(t.io, o);

  server.stop();
  std::string value(100, 'v');
  constexpr int n = 5000; // ~650 KB of commands: ten times the bound
  std::atomic<int> full{0}, ok{0}, other{0};
  recorder<int> done;
  std::size_t max_seen = 0;
  for (int i = 0; i < n; ++i) {
    c.conn.async_command({"SET", "k" + std::to_string(i), value}, [&](std::error_code ec, reply) {
      (ec == errc::backlog_full ? full : ec ? other : ok)++;
      done.push(0);
    });
    max_seen = std::max(max_seen, c.conn.pending_bytes());
  }
  CHECK(max_seen <= o.max_pending_bytes);
  // The refusals complete while redis is still frozen: they do not wait for it. At most
  // 64 KiB / ~130 bytes of commands fit, so nearly all are refused.
  REQUIRE(done.wait([&](auto const&) { return full.load() >= n - 600; }));
  CHECK(ok.load() == 0);
  CHECK(other.load() == 0);
  CHECK(c.conn.pending_bytes() > 0);
  CHECK(c.conn.pending_bytes() <= o.max_pending_bytes);

  server.resume();
  REQUIRE(done.wait([](auto const& v) { return v.size() == n; }));
  CHECK(other.load() == 0);
  CHECK(ok.load() + full.load() == n);
  CHECK(ok.load() > 100);
  CHECK(c.conn.pending_bytes() == 0);
  auto [ec, r] = run(c.conn, {"DBSIZE"});
  CHECK(r.integer() == ok.load());
}

TEST_CASE("redis connect times out against a port that accepts nothing", "[redis]") {
  io_thread t;
  // Listening, so the kernel completes the TCP handshake, but nobody ever reads or answers.
  asio::ip::tcp::acceptor silent(t.io, {asio::ip::make_address("127.0.0.1"), 0});
  auto o = options_for(silent.local_endpoint().port());
  o.connect_timeout = 200ms;
  o.reconnect = false;
  states events;
  sse::redis::connection conn(t.io.get_executor(), o);
  conn.set_state_handler([&](auto const& e) { events.push(e); });
  auto started = std::chrono::steady_clock::now();
  conn.start();
  REQUIRE(events.wait(reached(connection_state::connecting)));
  // Sent while connecting: waits for the attempt, then fails with it.
  auto f = start(conn, {"PING"});
  REQUIRE(events.wait(reached(connection_state::disconnected)));
  auto elapsed = std::chrono::steady_clock::now() - started;
  CHECK(elapsed >= 200ms);
  CHECK(elapsed < 2s);
  auto e = events.items().back();
  CHECK(e.error == errc::connect_timeout);
  CHECK(e.message.find("200 ms") != std::string::npos);
  REQUIRE(f.wait_for(wait_limit) == std::future_status::ready);
  CHECK(f.get().first == errc::connect_timeout);
  CHECK(conn.state() == connection_state::disconnected);
}

TEST_CASE("redis connection refused: connect_failed, then retries with backoff", "[redis]") {
  io_thread t;
  auto o = options_for(sse_test::free_port()); // nothing listens there now
  states events;
  sse::redis::connection conn(t.io.get_executor(), o);
  conn.set_state_handler([&](auto const& e) { events.push(e); });
  conn.start();
  REQUIRE(events.wait(reached(connection_state::disconnected, 3)));
  for (auto const& e : events.items())
    if (e.state == connection_state::disconnected) {
      CHECK(e.error == errc::connect_failed);
      CHECK(e.message.find("refused") != std::string::npos);
      CHECK(e.retry_in <= o.reconnect_max);
    }
  conn.close();
  REQUIRE(events.wait(reached(connection_state::closed)));
  auto [ec, r] = [&] {
    auto f = start(conn, {"PING"});
    REQUIRE(f.wait_for(wait_limit) == std::future_status::ready);
    return f.get();
  }();
  CHECK(ec == errc::not_connected);
}

TEST_CASE("redis AUTH: a wrong password is auth_failed with Redis' text, the right one works",
          "[redis]") {
  sse_test::redis_server server({"--requirepass", "s3cret"});
  io_thread t;
  SECTION("wrong") {
    auto o = options_for(server.port());
    o.password = "wrong";
    o.reconnect = false;
    states events;
    sse::redis::connection conn(t.io.get_executor(), o);
    conn.set_state_handler([&](auto const& e) { events.push(e); });
    conn.start();
    REQUIRE(events.wait(reached(connection_state::disconnected)));
    auto e = events.items().back();
    CHECK(e.error == errc::auth_failed);
    CHECK(e.message.find("WRONGPASS") != std::string::npos);
  }
  SECTION("right") {
    auto o = options_for(server.port());
    o.password = "s3cret";
    connected c(t.io, o);
    CHECK(run(c.conn, {"PING"}).second.str() == "PONG");
  }
}

TEST_CASE("redis close completes pending commands with operation_aborted", "[redis]") {
  sse_test::redis_server server;
  io_thread t;
  auto c = std::make_unique<connected>(t.io, options_for(server.port()));
  server.stop();
  auto f = start(c->conn, {"PING"});
  c->conn.close();
  REQUIRE(f.wait_for(wait_limit) == std::future_status::ready);
  CHECK(f.get().first == asio::error::operation_aborted);
  REQUIRE(c->events.wait(reached(connection_state::closed)));
  server.resume();
}

TEST_CASE("redis connection's socket is close-on-exec: a program spawned meanwhile does not "
          "hold it",
          "[redis]") {
  sse_test::redis_server server;
  io_thread t;
  connected c(t.io, options_for(server.port()));
  auto const mine = sse_test::tcp_socket_inodes(server.port(), sse_test::port_side::remote);
  REQUIRE(!mine.empty());
  // Held by a child, the connection (and its subscriptions) would outlive its close().
  sse_test::inheriting_child child({"/bin/sleep", "5"});
  REQUIRE(child.pid() > 0);
  auto const inherited = sse_test::socket_inodes_of(child.pid());
  for (auto const& inode : mine)
    CHECK(inherited.count(inode) == 0);
}
