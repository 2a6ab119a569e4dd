// sse::redis::backend: several brokers ("nodes") on one real redis-server (redis_server.hpp),
// each with its own backend, as several processes would be. Every wait is bounded and waits for
// an event (a completion, a message), never a fixed sleep.

#include "redis_server.hpp"

#include <sse/redis/backend.hpp>

#include <catch2/catch.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;
using sse::redis::errc;

namespace {

constexpr auto wait_limit = 10s;

sse::redis::backend_options options_for(std::uint16_t port) {
  sse::redis::backend_options o;
  o.redis.port = port;
  o.redis.connect_timeout = 2s;
  o.redis.reconnect_min = 10ms;
  o.redis.reconnect_max = 100ms;
  o.linger = 200ms;
  return o;
}

// One process' worth: a broker, its backend, the threads that run them.
struct node {
  explicit node(sse::redis::backend_options o, int threads = 2) : backend(io.get_executor(), broker, o) {
    backend.start();
    for (int i = 0; i < threads; ++i)
      pool.emplace_back([this] { io.run(); });
  }
  ~node() {
    // Let the close run its course before stopping: a Redis session left open by a stopped
    // io_context would keep itself, and the handlers it holds, alive (LeakSanitizer saw it).
    backend.close();
    work.reset();
    auto const until = std::chrono::steady_clock::now() + 5s;
    while (!io.stopped() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(5ms); // run() returns once nothing is left: nothing to wait on
    io.stop();
    for (auto& t : pool)
      t.join();
  }

  std::pair<std::error_code, std::string> publish(std::string const& topic, std::string data,
                                                  std::string name = {}) {
    sse::event ev;
    ev.data(std::move(data));
    if (!name.empty())
      ev.name(name);
    auto p = std::make_shared<std::promise<std::pair<std::error_code, std::string>>>();
    auto f = p->get_future();
    backend.async_publish(topic, ev,
                          [p](std::error_code ec, std::string id) { p->set_value({ec, id}); });
    REQUIRE(f.wait_for(wait_limit) == std::future_status::ready);
    return f.get();
  }
  std::string must_publish(std::string const& topic, std::string data) {
    auto [ec, id] = publish(topic, std::move(data));
    REQUIRE_FALSE(ec);
    return id;
  }

  std::pair<std::error_code, sse::subscription>
  subscribe(std::vector<std::string> topics, std::optional<std::string> last_id = std::nullopt,
            bool replay_history = false) {
    sse::subscribe_options o;
    o.last_event_id = std::move(last_id);
    o.replay_history = replay_history;
    auto p = std::make_shared<std::promise<std::pair<std::error_code, sse::subscription>>>();
    auto f = p->get_future();
    backend.async_subscribe(std::move(topics), o, [p](std::error_code ec, sse::subscription s) {
      p->set_value({ec, std::move(s)});
    });
    REQUIRE(f.wait_for(wait_limit) == std::future_status::ready);
    return f.get();
  }
  sse::subscription must_subscribe(std::vector<std::string> topics,
                                   std::optional<std::string> last_id = std::nullopt) {
    auto [ec, s] = subscribe(std::move(topics), std::move(last_id));
    INFO(ec.message());
    REQUIRE_FALSE(ec);
    return std::move(s);
  }

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  sse::broker broker{sse::queue_limits{100000, 64 * 1024 * 1024}};
  sse::redis::backend backend;
  std::vector<std::thread> pool;
};

// What a client sees of one frame.
struct seen {
  std::string name, id, data;
  bool operator==(seen const& o) const { return name == o.name && id == o.id && data == o.data; }
};

seen parse(sse::frame const& f) {
  seen s;
  std::string_view v = f.view();
  while (!v.empty()) {
    auto const nl = v.find('\n');
    auto line = v.substr(0, nl);
    v = nl == std::string_view::npos ? std::string_view() : v.substr(nl + 1);
    if (line.rfind("id: ", 0) == 0)
      s.id = std::string(line.substr(4));
    else if (line.rfind("event: ", 0) == 0)
      s.name = std::string(line.substr(7));
    else if (line.rfind("data: ", 0) == 0)
      s.data += std::string(line.substr(6));
  }
  return s;
}

// The next `n` frames of `sub`, or fewer if they do not come in time.
std::vector<seen> take(sse::subscription& sub, std::size_t n) {
  std::vector<seen> out;
  auto const until = std::chrono::steady_clock::now() + wait_limit;
  while (out.size() < n && std::chrono::steady_clock::now() < until)
    if (auto m = sub.pop_for(until - std::chrono::steady_clock::now()))
      out.push_back(parse(*m));
  return out;
}

std::vector<std::string> data_of(std::vector<seen> const& v) {
  std::vector<std::string> d;
  for (auto const& s : v)
    d.push_back(s.data);
  return d;
}

// Publishes "0", "1", ... through `n` from a thread of its own, one at a time, each to
// topic(i), until stopped (or destroyed, however the test ends). Failures are counted here:
// Catch's assertions are not thread-safe.
class steady_publisher {
public:
  steady_publisher(node& n, std::function<std::string(int)> topic, int first = 0)
      : sent_(first), thread_([this, &n, topic = std::move(topic)] {
          while (!stop_ && !failed_) {
            int const i = sent_.load();
            sse::event ev;
            ev.data(std::to_string(i));
            auto f = n.backend.async_publish(topic(i), ev, asio::use_future);
            try {
              if (f.wait_for(wait_limit) != std::future_status::ready)
                failed_ = true;
              else
                f.get(), ++sent_;
            } catch (std::system_error const&) {
              failed_ = true;
            }
          }
        }) {}
  ~steady_publisher() { stop(); }
  /// Waits until `by` more are published; false if that took too long or one failed.
  bool advance(int by) {
    int const at = sent_.load();
    auto const until = std::chrono::steady_clock::now() + wait_limit;
    while (sent_.load() < at + by && !failed_ && std::chrono::steady_clock::now() < until)
      std::this_thread::yield(); // another thread's progress: nothing to wait on
    return sent_.load() >= at + by;
  }
  /// Stops and joins; returns how many were published in all (counting from 0).
  int stop() {
    stop_ = true;
    if (thread_.joinable())
      thread_.join();
    return sent_.load();
  }
  bool failed() const { return failed_; }

private:
  std::atomic<bool> stop_{false}, failed_{false};
  std::atomic<int> sent_;
  std::thread thread_;
};

// Nothing more arrives within a short while (used only after everything expected came).
bool quiet(sse::subscription& sub) { return !sub.pop_for(100ms); }

} // namespace

TEST_CASE("redis backend: an event published on one node reaches the topic's subscribers on "
          "every node, under the id Redis gave it",
          "[redis][backend]") {
  sse_test::redis_server server;
  node a(options_for(server.port())), b(options_for(server.port()));
  auto sa = a.must_subscribe({"room"});
  auto sb = b.must_subscribe({"room"});
  auto other = b.must_subscribe({"elsewhere"});

  std::string const id = a.must_publish("room", "hello\nworld");
  auto got_a = take(sa, 1), got_b = take(sb, 1);
  REQUIRE(got_a.size() == 1);
  REQUIRE(got_b.size() == 1);
  CHECK(got_a[0] == got_b[0]);
  CHECK(got_a[0].id == id);
  CHECK(got_a[0].data == "helloworld"); // two data lines
  CHECK(quiet(other));
  // broker.publish goes through Redis too.
  b.broker.publish("room", sse::event().data("via the broker"));
  CHECK(data_of(take(sa, 1)) == std::vector<std::string>{"via the broker"});
  CHECK(data_of(take(sb, 1)) == std::vector<std::string>{"via the broker"});
  CHECK(a.backend.stats().published == 1);
  // b's publish went without a completion: Redis' reply may come after the event itself.
  auto const until = std::chrono::steady_clock::now() + wait_limit;
  while (b.backend.stats().published == 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(1ms); // a counter: nothing to wait on
  CHECK(b.backend.stats().published == 1);
  CHECK(b.backend.stats().topics == 2);
}

TEST_CASE("redis backend: publishers on two nodes at once, every subscriber on both sees one "
          "identical order per topic, none lost",
          "[redis][backend]") {
  sse_test::redis_server server;
  node a(options_for(server.port())), b(options_for(server.port()));
  std::vector<std::string> const topics{"t1", "t2"};
  std::vector<sse::subscription> subs;
  for (int i = 0; i < 3; ++i) {
    subs.push_back(a.must_subscribe({"t1"}));
    subs.push_back(b.must_subscribe({"t1"}));
    subs.push_back(a.must_subscribe({"t2"}));
    subs.push_back(b.must_subscribe({"t2"}));
  }
  auto both_a = a.must_subscribe(topics), both_b = b.must_subscribe(topics);
  constexpr int per = 300;
  std::atomic<int> unanswered{0}; // counted in the threads: Catch's assertions are not thread-safe
  auto flood = [&](node& n, std::string tag) {
    std::vector<std::future<std::string>> done;
    for (int i = 0; i < per; ++i)
      for (auto const& t : topics) {
        sse::event ev;
        ev.data(tag + "-" + t + "-" + std::to_string(i));
        done.push_back(n.backend.async_publish(t, ev, asio::use_future));
      }
    for (auto& f : done)
      unanswered += f.wait_for(wait_limit) != std::future_status::ready;
  };
  std::thread pa([&] { flood(a, "a"); }), pb([&] { flood(b, "b"); });
  pa.join();
  pb.join();
  REQUIRE(unanswered == 0);

  std::map<std::string, std::vector<seen>> order; // the first subscriber's, per topic
  for (std::size_t i = 0; i < subs.size(); ++i) {
    auto const& topic = subs[i].topics().front();
    auto got = take(subs[i], 2 * per);
    REQUIRE(got.size() == 2 * per);
    auto [it, fresh] = order.emplace(topic, got);
    if (!fresh)
      CHECK(got == it->second);
  }
  // A stream of both topics on each node: the same interleaving, ids strictly increasing.
  auto ga = take(both_a, 4 * per), gb = take(both_b, 4 * per);
  REQUIRE(ga.size() == 4 * per);
  CHECK(ga == gb);
  std::uint64_t last = 0;
  for (auto const& s : ga) {
    auto seq = std::stoull(s.id.substr(s.id.find('-') + 1));
    CHECK(seq > last);
    last = seq;
  }
  std::set<std::string> distinct;
  for (auto const& s : ga)
    distinct.insert(s.data);
  CHECK(distinct.size() == 4 * per);
}

TEST_CASE("redis backend: a client resumes on another node with the id it got, single and "
          "multi-topic, and a fresh node serves what came before it",
          "[redis][backend]") {
  sse_test::redis_server server;
  node a(options_for(server.port()));
  auto live = a.must_subscribe({"x", "y"});
  for (int i = 0; i < 10; ++i)
    a.must_publish(i % 3 == 0 ? "y" : "x", std::to_string(i));
  auto first = take(live, 10);
  REQUIRE(first.size() == 10);

  node b(options_for(server.port())); // started after the publishes
  SECTION("multi-topic") {
    auto [ec, s] = b.subscribe({"x", "y"}, first[3].id);
    REQUIRE_FALSE(ec);
    CHECK(s.resume() == sse::resume_result::replayed);
    auto got = take(s, 6);
    CHECK(data_of(got) == std::vector<std::string>{"4", "5", "6", "7", "8", "9"});
    a.must_publish("y", "10");
    CHECK(data_of(take(s, 1)) == std::vector<std::string>{"10"});
    CHECK(quiet(s));
  }
  SECTION("single topic, with its own id or one of another topic") {
    auto [ec, s] = b.subscribe({"x"}, first[2].id); // "2" went to x
    REQUIRE_FALSE(ec);
    CHECK(data_of(take(s, 4)) == std::vector<std::string>{"4", "5", "7", "8"});
    auto [ec2, s2] = b.subscribe({"x"}, first[3].id); // "3" went to y
    REQUIRE_FALSE(ec2);
    CHECK(data_of(take(s2, 4)) == std::vector<std::string>{"4", "5", "7", "8"});
    CHECK(quiet(s));
  }
  SECTION("the last id: nothing to replay, then live") {
    auto [ec, s] = b.subscribe({"x", "y"}, first.back().id);
    REQUIRE_FALSE(ec);
    CHECK(s.resume() == sse::resume_result::replayed);
    CHECK(quiet(s));
    a.must_publish("x", "11");
    CHECK(data_of(take(s, 1)) == std::vector<std::string>{"11"});
  }
  SECTION("replay_history without an id replays all that is kept") {
    auto [ec, s] = b.subscribe({"y"}, std::nullopt, true);
    REQUIRE_FALSE(ec);
    CHECK(s.resume() == sse::resume_result::none);
    CHECK(data_of(take(s, 4)) == std::vector<std::string>{"0", "3", "6", "9"});
  }
}

TEST_CASE("redis backend: ids that cannot be placed get reset: made up, from the future, older "
          "than the history",
          "[redis][backend]") {
  sse_test::redis_server server;
  auto o = options_for(server.port());
  o.history.max_events = 5;
  node a(o), b(o);
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i)
    ids.push_back(a.must_publish("t", std::to_string(i)));

  auto expect_reset = [&](std::string const& last_id, char const* reason,
                          std::vector<std::string> const& then = {}) {
    auto [ec, s] = b.subscribe({"t"}, last_id);
    REQUIRE_FALSE(ec);
    CHECK(s.resume() == sse::resume_result::reset);
    auto got = take(s, 1);
    REQUIRE(got.size() == 1);
    CHECK(got[0].name == "reset");
    CHECK(got[0].data == std::string("{\"reason\":\"") + reason + "\"}");
    CHECK(got[0].id == ids.back()); // later reconnects resume from now
    CHECK(data_of(take(s, then.size())) == then);
    CHECK(quiet(s));
    // then live, as usual
    return std::move(s);
  };
  expect_reset("not-an-id", "unknown-id");
  expect_reset("17", "unknown-id");
  auto const cut = ids.back().find('-');
  expect_reset(ids.back().substr(0, cut) + "-999999", "unknown-id"); // from the future
  // Before this data set began: it missed everything, so it gets all that is kept.
  expect_reset("1-1", "restarted", {"7", "8", "9", "10", "11"});
  auto s = expect_reset(ids[2], "too-old"); // 3..6 are trimmed
  a.must_publish("t", "live");
  CHECK(data_of(take(s, 1)) == std::vector<std::string>{"live"});

  // Within the history: exactly what came after.
  auto [ec, ok] = b.subscribe({"t"}, ids[8]);
  REQUIRE_FALSE(ec);
  CHECK(ok.resume() == sse::resume_result::replayed);
  CHECK(data_of(take(ok, 4)) == std::vector<std::string>{"9", "10", "11", "live"});
}

TEST_CASE("redis backend: a subscription made while events flow misses and doubles nothing",
          "[redis][backend]") {
  sse_test::redis_server server;
  node a(options_for(server.port())), b(options_for(server.port()));
  std::string first_id = a.must_publish("t", "0");
  steady_publisher publisher(a, [](int) { return std::string("t"); }, 1);
  std::vector<sse::subscription> subs;
  for (int i = 0; i < 20; ++i)
    subs.push_back(b.must_subscribe({"t"}, first_id));
  int const total = publisher.stop();
  REQUIRE_FALSE(publisher.failed());
  for (auto& s : subs) {
    auto got = take(s, static_cast<std::size_t>(total - 1));
    REQUIRE(got.size() == static_cast<std::size_t>(total - 1));
    for (int i = 1; i < total; ++i)
      REQUIRE(got[static_cast<std::size_t>(i - 1)].data == std::to_string(i));
    CHECK(quiet(s));
  }
}

TEST_CASE("redis backend: Redis down: publishing fails clearly, streams stay open, and after "
          "a restart with AOF nothing acknowledged is lost",
          "[redis][backend]") {
  sse_test::redis_server server({"--appendonly", "yes", "--appendfsync", "always"});
  node a(options_for(server.port())), b(options_for(server.port()));
  auto live_b = b.must_subscribe({"t"});
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(a.must_publish("t", std::to_string(i)));
  REQUIRE(take(live_b, 5).size() == 5);

  server.kill();
  // Until a node notices, a publish may still be sent into the closed socket: it fails too.
  auto [ec, id] = a.publish("t", "lost");
  CHECK(ec);
  auto [ec2, id2] = a.publish("t", "lost");
  CHECK((ec2 == errc::not_connected || ec2 == errc::connection_lost ||
         ec2 == errc::connect_failed));
  CHECK(live_b.active());
  auto [sec, none] = b.subscribe({"other"});
  CHECK(sec);

  server.restart();
  // b's stream catches up with what is published once it is back, then goes on live.
  std::string after;
  for (int tries = 0; tries < 200; ++tries) {
    auto [e, i] = a.publish("t", "back");
    if (!e) {
      after = i;
      break;
    }
    std::this_thread::sleep_for(20ms); // reconnecting: a publish has no event to wait for
  }
  REQUIRE_FALSE(after.empty());
  auto got = take(live_b, 1);
  REQUIRE(got.size() == 1);
  CHECK(got[0].data == "back");
  CHECK(got[0].id == after);
  // A client of node a resumes on b from the second event: all acknowledged ones are there.
  auto [rec, s] = b.subscribe({"t"}, ids[1]);
  REQUIRE_FALSE(rec);
  CHECK(s.resume() == sse::resume_result::replayed);
  CHECK(data_of(take(s, 4)) == std::vector<std::string>{"2", "3", "4", "back"});
}

TEST_CASE("redis backend: Redis restarted without persistence: live subscribers and resuming "
          "clients get reset, never a silent gap",
          "[redis][backend]") {
  sse_test::redis_server server;
  node a(options_for(server.port())), b(options_for(server.port()));
  auto live_b = b.must_subscribe({"t"});
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(a.must_publish("t", std::to_string(i)));
  REQUIRE(take(live_b, 5).size() == 5);

  server.kill();
  server.restart(); // empty
  std::string after;
  for (int tries = 0; tries < 200 && after.empty(); ++tries) {
    auto [e, i] = a.publish("t", "new");
    if (!e)
      after = i;
    else
      std::this_thread::sleep_for(20ms);
  }
  REQUIRE_FALSE(after.empty());
  auto got = take(live_b, 2);
  REQUIRE(got.size() == 2);
  CHECK(got[0].name == "reset");
  CHECK(got[1].data == "new");
  CHECK(b.backend.stats().resets >= 1);

  auto [ec, s] = b.subscribe({"t"}, ids[2]);
  REQUIRE_FALSE(ec);
  CHECK(s.resume() == sse::resume_result::reset);
  auto r = take(s, 2);
  REQUIRE(r.size() == 2);
  CHECK(r[0].name == "reset");
  CHECK(r[1].data == "new"); // what this data set has: the client missed it all
}

TEST_CASE("redis backend: a node listens only to the topics its clients want, over two "
          "connections whatever their number",
          "[redis][backend]") {
  sse_test::redis_server server;
  node a(options_for(server.port()));
  {
    std::vector<sse::subscription> subs;
    for (int i = 0; i < 50; ++i)
      subs.push_back(a.must_subscribe({"t" + std::to_string(i % 5)}));
    CHECK(a.backend.stats().topics == 5);
    sse::redis::connection probe(a.io.get_executor(), options_for(server.port()).redis);
    probe.start();
    auto f = probe.async_command({"CLIENT", "LIST"}, asio::use_future);
    REQUIRE(f.wait_for(wait_limit) == std::future_status::ready);
    auto list = f.get().str();
    std::size_t clients = 0;
    for (std::size_t at = list.find("id="); at != std::string::npos; at = list.find("id=", at + 1))
      ++clients;
    CHECK(clients == 3); // the node's two and the probe
  }
  // Everyone left: after the linger the channels are left too.
  auto const until = std::chrono::steady_clock::now() + wait_limit;
  while (a.backend.stats().topics > 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(20ms); // the sweep runs on a timer; nothing to wait on
  CHECK(a.backend.stats().topics == 0);
}

TEST_CASE("redis backend: bounds: oversized events throw message_too_large, subscribes past "
          "the bound fail with backlog_full",
          "[redis][backend]") {
  sse_test::redis_server server;
  auto o = options_for(server.port());
  node a(o);
  a.broker.set_max_message_bytes(1000);
  CHECK_THROWS_AS(a.backend.async_publish("t", sse::event().data(std::string(1000, 'x')),
                                          [](std::error_code, std::string) {}),
                  sse::message_too_large);
  CHECK_THROWS_AS(a.backend.async_subscribe(std::vector<std::string>{}, {},
                                            [](std::error_code, sse::subscription) {}),
                  std::invalid_argument);
}

TEST_CASE("redis backend: a node whose pub/sub connection was cut catches up from the stream, "
          "in batches, missing and doubling nothing",
          "[redis][backend]") {
  sse_test::redis_server server;
  auto o = options_for(server.port());
  o.read_batch = 3; // several reads per catch-up
  node a(o), b(o);
  auto live_b = b.must_subscribe({"t"});
  auto both_b = b.must_subscribe({"t", "u"});
  a.must_publish("t", "0");
  REQUIRE(take(live_b, 1).size() == 1);
  REQUIRE(take(both_b, 1).size() == 1);

  sse::redis::connection admin(a.io.get_executor(), o.redis);
  admin.start();
  auto killed = admin.async_command({"CLIENT", "KILL", "TYPE", "pubsub"}, asio::use_future);
  REQUIRE(killed.wait_for(wait_limit) == std::future_status::ready);
  CHECK(killed.get().integer() >= 2); // both nodes' subscribers
  std::vector<std::string> expected_t, expected_both; // t's events; every event in order
  for (int i = 1; i <= 20; ++i) {
    std::string const topic = i % 4 == 0 ? "u" : "t";
    a.must_publish(topic, std::to_string(i));
    if (topic == "t")
      expected_t.push_back(std::to_string(i));
    expected_both.push_back(std::to_string(i));
  }
  CHECK(data_of(take(live_b, expected_t.size())) == expected_t);
  CHECK(data_of(take(both_b, 20)) == expected_both);
  CHECK(quiet(live_b));
  CHECK(quiet(both_b));
  CHECK(b.backend.stats().catch_ups >= 1);
}

TEST_CASE("redis backend: pub/sub cut while events keep flowing: the catch-up ends and every "
          "event arrives once, in order",
          "[redis][backend]") {
  sse_test::redis_server server;
  auto o = options_for(server.port());
  o.read_batch = 16;
  node a(o), b(o);
  auto live_b = b.must_subscribe({"t", "u"});
  sse::redis::connection admin(a.io.get_executor(), o.redis);
  admin.start();
  // a's own pub/sub is cut too, its commands are not: a failed publish would be a bug
  steady_publisher publisher(a, [](int i) { return std::string(i % 3 ? "t" : "u"); });
  for (int k = 0; k < 3; ++k) {
    REQUIRE(publisher.advance(50));
    auto const before = b.backend.stats().catch_ups;
    auto killed = admin.async_command({"CLIENT", "KILL", "TYPE", "pubsub"}, asio::use_future);
    REQUIRE(killed.wait_for(wait_limit) == std::future_status::ready);
    // b is back (its catch-up has begun) before the next cut, which would else miss it.
    auto const deadline = std::chrono::steady_clock::now() + wait_limit;
    while (b.backend.stats().catch_ups == before && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(2ms);
    REQUIRE(b.backend.stats().catch_ups > before);
  }
  REQUIRE(publisher.advance(100));
  int const sent = publisher.stop();
  REQUIRE_FALSE(publisher.failed());
  auto got = take(live_b, static_cast<std::size_t>(sent));
  REQUIRE(got.size() == static_cast<std::size_t>(sent));
  for (int i = 0; i < sent; ++i)
    REQUIRE(got[static_cast<std::size_t>(i)].data == std::to_string(i));
  CHECK(quiet(live_b));
  CHECK(b.backend.stats().catch_ups >= 3);
}
