#include "event_reader.hpp"
#include "test_client.hpp"

#include <sse/sse.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <limits>
#include <set>
#include <thread>

using namespace std::chrono_literals;
using sse_test::parse_all;

namespace {

sse::history_limits keep(std::size_t n) { return sse::history_limits{n, 1 << 20, std::chrono::hours(1)}; }

/// Everything queued for `s`, parsed as a client would see it.
std::vector<sse::parsed_event> read_all(sse::subscription& s) {
  std::string bytes;
  while (auto f = s.try_pop())
    bytes += f->view();
  return parse_all(bytes);
}

std::vector<std::string> datas(std::vector<sse::parsed_event> const& evs) {
  std::vector<std::string> out;
  for (auto const& e : evs)
    out.push_back(e.data);
  return out;
}

sse::subscribe_options resume_from(std::string id) {
  sse::subscribe_options o;
  o.last_event_id = std::move(id);
  return o;
}

} // namespace

TEST_CASE("the broker gives events ids that increase strictly", "[history]") {
  sse::broker b;
  b.set_history(keep(100));
  auto s = b.subscribe("t");
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i)
    ids.push_back(b.publish("t", sse::event(std::to_string(i))).id);
  auto const events = read_all(s);
  REQUIRE(events.size() == 20);
  std::uint64_t epoch = 0, prev = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    CHECK(events[i].id == ids[i]); // the id is in the frame the client gets
    auto const dash = ids[i].find('-');
    REQUIRE(dash != std::string::npos);
    auto const e = std::stoull(ids[i].substr(0, dash)), seq = std::stoull(ids[i].substr(dash + 1));
    if (i == 0)
      epoch = e;
    CHECK(e == epoch);
    CHECK(seq > prev);
    prev = seq;
  }
  CHECK(b.last_id() == ids.back());
  // A later broker (a restart) starts a later epoch: its ids sort after these.
  std::this_thread::sleep_for(2ms);
  sse::broker later;
  later.set_history(keep(10));
  auto const next = later.publish("t", sse::event("x")).id;
  CHECK(std::stoull(next.substr(0, next.find('-'))) > epoch);
}

TEST_CASE("a publisher's own id is kept and resumable", "[history]") {
  sse::broker b;
  b.set_history(keep(100));
  CHECK(b.publish("t", sse::event("a").id("order-1")).id == "order-1");
  b.publish("t", sse::event("b").id("order-2"));
  b.publish("t", sse::event("c"));
  auto s = b.subscribe("t", resume_from("order-1"));
  CHECK(s.resume() == sse::resume_result::replayed);
  CHECK(datas(read_all(s)) == std::vector<std::string>{"b", "c"});
}

TEST_CASE("a reconnect with the last id gets exactly the missed events, then live ones",
          "[history][resume]") {
  sse::broker b;
  b.set_history(keep(1000));
  auto first = b.subscribe("t");
  for (int i = 0; i < 5; ++i)
    b.publish("t", sse::event("e" + std::to_string(i)));
  auto const seen = read_all(first);
  REQUIRE(seen.size() == 5);
  first.unsubscribe(); // the client goes away
  for (int i = 5; i < 12; ++i)
    b.publish("t", sse::event("e" + std::to_string(i)));
  auto again = b.subscribe("t", resume_from(seen.back().id));
  CHECK(again.resume() == sse::resume_result::replayed);
  b.publish("t", sse::event("live"));
  auto const got = datas(read_all(again));
  CHECK(got == std::vector<std::string>{"e5", "e6", "e7", "e8", "e9", "e10", "e11", "live"});
}

TEST_CASE("resume works for several topics on one connection, in publish order",
          "[history][resume]") {
  sse::broker b;
  b.set_history(keep(1000));
  auto first = b.subscribe({"a", "b"});
  b.publish("a", sse::event("a0"));
  b.publish("b", sse::event("b0"));
  auto const last = read_all(first).back().id;
  first.unsubscribe();
  b.publish("a", sse::event("a1"));
  b.publish("c", sse::event("c1")); // another topic: not replayed
  b.publish("b", sse::event("b1"));
  b.publish("a", sse::event("a2"));
  auto again = b.subscribe({"b", "a"}, resume_from(last));
  CHECK(datas(read_all(again)) == std::vector<std::string>{"a1", "b1", "a2"});
}

TEST_CASE("resume while publishing goes on never loses or doubles an event",
          "[history][resume][threads]") {
  sse::broker b(sse::queue_limits{1 << 16, 1 << 26, sse::overflow_policy::evict});
  b.set_history(keep(100000));
  constexpr int total = 20000;
  std::atomic<bool> done{false};
  auto sub = b.subscribe({"a", "b"}); // before the first publish: it must see every event
  std::thread publisher([&] {
    for (int i = 0; i < total; ++i)
      b.publish(i % 3 ? "a" : "b", sse::event(std::to_string(i)));
    done = true;
  });
  std::vector<int> got;
  std::string last_id;
  int reconnects = 0;
  while (!done || sub.size() > 0) {
    std::string bytes;
    for (int k = 0; k < 50; ++k)
      if (auto f = sub.try_pop())
        bytes += f->view();
    for (auto const& e : parse_all(bytes)) {
      got.push_back(std::stoi(e.data));
      last_id = e.id;
    }
    if (!last_id.empty() && reconnects < 200) { // drop and come back, mid-stream
      sub.unsubscribe();
      sub = b.subscribe({"a", "b"}, resume_from(last_id));
      REQUIRE(sub.resume() == sse::resume_result::replayed);
      ++reconnects;
    }
  }
  publisher.join();
  std::string bytes;
  while (auto f = sub.try_pop())
    bytes += f->view();
  for (auto const& e : parse_all(bytes))
    got.push_back(std::stoi(e.data));
  CHECK(reconnects > 10);
  REQUIRE(got.size() == static_cast<std::size_t>(total));
  for (int i = 0; i < total; ++i)
    REQUIRE(got[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("an id older than the history gets the reset event first", "[history][reset]") {
  sse::broker b;
  b.set_history(keep(3));
  auto first = b.subscribe("t");
  b.publish("t", sse::event("old"));
  auto const old_id = read_all(first).back().id;
  first.unsubscribe();
  for (int i = 0; i < 5; ++i)
    b.publish("t", sse::event("n" + std::to_string(i))); // "old" and n0, n1 fall out
  auto again = b.subscribe("t", resume_from(old_id));
  CHECK(again.resume() == sse::resume_result::reset);
  b.publish("t", sse::event("live"));
  auto const got = read_all(again);
  REQUIRE(got.size() == 2);
  CHECK(got[0].type == "reset");
  CHECK(got[0].data == R"({"reason":"too-old"})");
  CHECK(got[0].id != old_id); // carries the newest id, so the next resume is exact
  CHECK(got[1].data == "live");
}

TEST_CASE("an unknown, foreign or hostile last id is a reset, never echoed", "[history][reset]") {
  sse::broker b;
  b.set_history(keep(10));
  b.publish("t", sse::event("x"));
  auto const current = b.last_id();
  auto const epoch = current.substr(0, current.find('-'));
  auto const future = std::to_string(std::stoull(epoch) + 1000) + "-1"; // not a run we know
  for (std::string bad : {std::string("nope"), future, epoch + "-999", epoch + "-x",
                          std::string(300, '7'), std::string("a\r\nevent: evil"),
                          std::string("a\0b", 3), std::string("\xFF\xFE")}) {
    CAPTURE(bad);
    auto s = b.subscribe("t", resume_from(bad));
    CHECK(s.resume() == sse::resume_result::reset);
    std::string bytes;
    while (auto f = s.try_pop())
      bytes += f->view();
    auto const evs = parse_all(bytes);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].type == "reset");
    CHECK(evs[0].data == R"({"reason":"unknown-id"})");
    CHECK(bytes.find("evil") == std::string::npos);
  }
}

TEST_CASE("history is bounded by count, bytes and age", "[history]") {
  sse::broker b;
  SECTION("count") {
    b.set_history(keep(5));
    for (int i = 0; i < 50; ++i)
      b.publish("t", sse::event("x"));
    CHECK(b.stats().history_events == 5);
  }
  SECTION("bytes") {
    b.set_history(sse::history_limits{1000, 300, std::chrono::hours(1)});
    for (int i = 0; i < 50; ++i)
      b.publish("t", sse::event(std::string(50, 'x')));
    CHECK(b.stats().history_bytes <= 300);
    CHECK(b.stats().history_events >= 2);
  }
  SECTION("age: an id whose successors aged out is too old") {
    b.set_history(sse::history_limits{1000, 1 << 20, 20ms});
    auto const id = b.publish("t", sse::event("1")).id;
    b.publish("t", sse::event("2"));
    std::this_thread::sleep_for(40ms);
    auto s = b.subscribe("t", resume_from(id));
    CHECK(s.resume() == sse::resume_result::reset);
    CHECK(b.stats().history_events == 0);
  }
  SECTION("per topic, and off by default") {
    b.set_history("kept", keep(10));
    CHECK(b.publish("kept", sse::event("a")).id != "");
    CHECK(b.publish("plain", sse::event("a")).id == "");
    CHECK(b.stats().history_events == 1);
  }
  SECTION("a cap on topics that keep history") {
    b.set_history(keep(10));
    b.set_max_history_topics(3);
    for (int i = 0; i < 10; ++i)
      b.publish("topic" + std::to_string(i), sse::event("x"));
    CHECK(b.stats().history_events == 3);
  }
}

TEST_CASE("replay_history sends what a topic keeps to a new subscriber", "[history]") {
  sse::broker b;
  b.set_history(keep(3));
  for (int i = 0; i < 5; ++i)
    b.publish("metrics", sse::event(std::to_string(i)));
  sse::subscribe_options o;
  o.replay_history = true;
  auto s = b.subscribe("metrics", o);
  b.publish("metrics", sse::event("live"));
  CHECK(datas(read_all(s)) == std::vector<std::string>{"2", "3", "4", "live"});
  CHECK(s.resume() == sse::resume_result::none);
}

TEST_CASE("replayed history does not count against the queue bounds", "[history]") {
  sse::broker b(sse::queue_limits{2, 1 << 20, sse::overflow_policy::evict});
  b.set_history(keep(100));
  auto const first = b.publish("t", sse::event("0")).id;
  for (int i = 1; i < 50; ++i)
    b.publish("t", sse::event(std::to_string(i)));
  auto s = b.subscribe("t", resume_from(first));
  b.publish("t", sse::event("live"));
  CHECK_FALSE(s.evicted());
  auto const got = datas(read_all(s));
  REQUIRE(got.size() == 50);
  CHECK(got.back() == "live");
}

// Over real sockets: the server's stream resumes from the Last-Event-ID header or the
// lastEventId query parameter, for one topic and for several.
TEST_CASE("a client reconnecting over HTTP gets exactly what it missed, then live events",
          "[history][resume][server]") {
  sse::broker broker;
  broker.set_history(keep(10000));
  sse::server_options o;
  o.retry = std::chrono::milliseconds(0);
  sse::server srv(o);
  srv.route("GET", "/listen", [&](sse::request& req) {
    sse::subscribe_options so;
    so.last_event_id = req.last_event_id();
    std::vector<std::string> topics;
    for (auto t : req.query_all("topic"))
      topics.emplace_back(t);
    return sse::response::stream(broker.subscribe(topics, so));
  });
  srv.start();
  std::atomic<bool> stop{false};
  std::atomic<int> next{0};
  std::thread publisher([&] { // publishing goes on throughout
    while (!stop) {
      int const i = next++;
      broker.publish(i % 2 ? "a" : "b", sse::event(std::to_string(i)));
      std::this_thread::sleep_for(1ms);
    }
  });

  auto check_resume = [&](std::string const& topics, bool via_query, bool both) {
    std::vector<int> got;
    std::string last;
    for (int round = 0; round < 3; ++round) {
      std::string target = "/listen?" + topics;
      std::string headers;
      if (!last.empty()) {
        if (via_query)
          target += "&lastEventId=" + last;
        else
          headers = "Last-Event-ID: " + last + "\r\n";
      }
      sse_test::stream_client c(srv.port(), target, 0, headers);
      REQUIRE(c.ok());
      c.wait_events(got.empty() ? 20 : 40, 5000ms);
      auto const& evs = c.events();
      REQUIRE(evs.size() >= 20);
      for (auto const& e : evs) {
        REQUIRE(e.type == "message");
        got.push_back(std::stoi(e.data));
        last = e.id;
      }
    } // each client disconnects here while publishing goes on
    REQUIRE(got.size() > 60);
    for (std::size_t i = 1; i < got.size(); ++i) {
      int const expect_step = both ? 1 : 2;
      REQUIRE(got[i] - got[i - 1] == expect_step); // no gap, no duplicate, in order
    }
  };
  SECTION("one topic, Last-Event-ID header") { check_resume("topic=a", false, false); }
  SECTION("two topics, Last-Event-ID header") { check_resume("topic=a&topic=b", false, true); }
  SECTION("two topics, lastEventId query parameter") {
    check_resume("topic=b&topic=a", true, true);
  }
  stop = true;
  publisher.join();
  srv.stop();
}

TEST_CASE("an HTTP reconnect with a too-old id gets the reset event before live ones",
          "[history][reset][server]") {
  sse::broker broker;
  broker.set_history(keep(2));
  sse::server srv;
  srv.route("GET", "/listen", [&](sse::request& req) {
    sse::subscribe_options so;
    so.last_event_id = req.last_event_id();
    return sse::response::stream(broker.subscribe("t", so));
  });
  srv.start();
  auto const old = broker.publish("t", sse::event("old")).id;
  for (int i = 0; i < 5; ++i)
    broker.publish("t", sse::event("x"));
  sse_test::stream_client c(srv.port(), "/listen", 0, "Last-Event-ID: " + old + "\r\n");
  broker.publish("t", sse::event("live"));
  c.wait_events(2);
  auto const& evs = c.events();
  REQUIRE(evs.size() == 2);
  CHECK(evs[0].type == "reset");
  CHECK(evs[1].data == "live");
  CHECK(c.parser.retry().has_value()); // retry: is sent when the stream opens
  CHECK(*c.parser.retry() >= 3000ms);
  CHECK(*c.parser.retry() <= 4000ms);
  srv.stop();
}

TEST_CASE("an id from an earlier run gets the reset, then everything this run keeps",
          "[history][resume][restart]") {
  std::string old_id;
  {
    sse::broker before_restart;
    before_restart.set_history(keep(100));
    before_restart.publish("t", sse::event("old 1"));
    old_id = before_restart.publish("t", sse::event("old 2")).id;
  }
  std::this_thread::sleep_for(2ms); // a later start has a later epoch
  sse::broker b;
  b.set_history(keep(100));
  b.publish("t", sse::event("new 1")); // published while the client waited out `retry`
  b.publish("other", sse::event("not subscribed"));
  auto const newest = b.publish("t", sse::event("new 2")).id;
  auto s = b.subscribe("t", resume_from(old_id));
  CHECK(s.resume() == sse::resume_result::reset);
  b.publish("t", sse::event("live"));
  auto const got = read_all(s);
  REQUIRE(got.size() == 4);
  CHECK(got[0].type == "reset");
  CHECK(got[0].data == R"({"reason":"restarted"})");
  CHECK(got[0].id == newest);
  CHECK(datas({got.begin() + 1, got.end()}) == std::vector<std::string>{"new 1", "new 2", "live"});
}

TEST_CASE("a publisher's id shaped like a broker id resumes like any other",
          "[history][resume]") {
  sse::broker b;
  b.set_history(keep(100));
  CHECK(b.publish("t", sse::event("a").id("2024-17")).id == "2024-17"); // a Redis Stream id
  b.publish("t", sse::event("b").id("2024-18"));
  b.publish("t", sse::event("c").id("order-19"));
  auto s = b.subscribe("t", resume_from("2024-17"));
  CHECK(s.resume() == sse::resume_result::replayed);
  CHECK(datas(read_all(s)) == std::vector<std::string>{"b", "c"});
  auto again = b.subscribe("t", resume_from("2024-18"));
  CHECK(again.resume() == sse::resume_result::replayed);
  CHECK(datas(read_all(again)) == std::vector<std::string>{"c"});
}

TEST_CASE("a repeated id resumes after its newest use, and trimming its older use keeps it",
          "[history][resume][index]") {
  sse::broker b;
  b.set_history(keep(3));
  b.publish("t", sse::event("1").id("dup"));
  b.publish("t", sse::event("2"));
  b.publish("t", sse::event("3").id("dup"));
  b.publish("t", sse::event("4"));
  b.publish("t", sse::event("5")); // the first "dup" is trimmed here
  auto s = b.subscribe("t", resume_from("dup"));
  CHECK(s.resume() == sse::resume_result::replayed);
  CHECK(datas(read_all(s)) == std::vector<std::string>{"4", "5"});
  for (int i = 0; i < 3; ++i)
    b.publish("t", sse::event("x")); // and now the second
  auto gone = b.subscribe("t", resume_from("dup"));
  CHECK(gone.resume() == sse::resume_result::reset);
}

TEST_CASE("deliver keeps ids, so resume works through the publisher hook",
          "[history][resume][backend]") {
  sse::broker b;
  b.set_history(keep(100));
  struct sent_message {
    std::string topic;
    sse::frame f;
    std::string id;
  };
  std::vector<sent_message> backend;
  b.set_publisher([&](std::string_view topic, sse::frame const& f, std::string_view id) {
    backend.push_back({std::string(topic), f, std::string(id)});
  });
  auto const first = b.publish("t", sse::event("a")).id; // the broker stamps the id
  b.publish("t", sse::event("b").id("2024-2"));
  b.publish("t", sse::event("c"));
  REQUIRE(backend.size() == 3);
  CHECK(backend[0].id == first);
  CHECK(first != "");
  CHECK(backend[1].id == "2024-2");
  for (auto const& m : backend) // the backend hands them back
    CHECK(b.deliver(m.topic, m.f, m.id).id == m.id);
  b.deliver("t", sse::event("d").id("order-4"));
  SECTION("by the stamped id") {
    auto s = b.subscribe("t", resume_from(first));
    CHECK(s.resume() == sse::resume_result::replayed);
    CHECK(datas(read_all(s)) == std::vector<std::string>{"b", "c", "d"});
  }
  SECTION("by the publisher's id") {
    auto s = b.subscribe("t", resume_from("2024-2"));
    CHECK(s.resume() == sse::resume_result::replayed);
    CHECK(datas(read_all(s)) == std::vector<std::string>{"c", "d"});
  }
  SECTION("two-argument deliver keeps no id to resume from") {
    b.deliver("t", sse::frame(sse::event("e").id("plain-5")));
    auto s = b.subscribe("t", resume_from("plain-5"));
    CHECK(s.resume() == sse::resume_result::reset);
  }
}

TEST_CASE("a message too large for its topic's history is not kept and does not wipe it",
          "[history][oversized]") {
  sse::broker b;
  b.set_history(sse::history_limits{100, 300, std::chrono::hours(1)});
  auto const a = b.publish("t", sse::event("a")).id;
  b.publish("t", sse::event("b"));
  auto const big = b.publish("t", sse::event(std::string(400, 'x'))).id; // within the broker's bound
  b.publish("t", sse::event("c"));
  CHECK(b.stats().history_events == 3);
  SECTION("a resume from before it resets: it cannot be replayed") {
    auto s = b.subscribe("t", resume_from(a));
    CHECK(s.resume() == sse::resume_result::reset);
    auto const got = read_all(s);
    REQUIRE(got.size() == 1);
    CHECK(got[0].data == R"({"reason":"too-old"})");
  }
  SECTION("a resume from it gets what followed") {
    auto s = b.subscribe("t", resume_from(big));
    CHECK(s.resume() == sse::resume_result::replayed);
    CHECK(datas(read_all(s)) == std::vector<std::string>{"c"});
  }
}

TEST_CASE("history expires on a timer, without traffic", "[history][timer]") {
  sse::broker b;
  b.set_history(sse::history_limits{1000, 64 << 20, 50ms});
  auto const first = b.publish("t", sse::event(std::string(10000, 'x'))).id;
  for (int i = 0; i < 39; ++i)
    b.publish(i % 2 ? "t" : "u", sse::event(std::string(10000, 'x')));
  CHECK(b.stats().history_bytes > 40 * 10000);
  auto const deadline = std::chrono::steady_clock::now() + 5s; // bounded; expect ~60 ms
  while (b.stats().history_events != 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  CHECK(b.stats().history_events == 0);
  CHECK(b.stats().history_bytes == 0);
  auto s = b.subscribe("t", resume_from(first));
  CHECK(s.resume() == sse::resume_result::reset);
  // It keeps working once idle: a later burst expires too.
  b.publish("t", sse::event("again"));
  auto const later = std::chrono::steady_clock::now() + 5s;
  while (b.stats().history_events != 0 && std::chrono::steady_clock::now() < later)
    std::this_thread::sleep_for(5ms);
  CHECK(b.stats().history_events == 0);
  b.close(); // stops the timer; the destructor's close is then a no-op
}

TEST_CASE("a huge max_age means never expires", "[history][clamp]") {
  sse::broker b;
  SECTION("milliseconds::max() for every topic") {
    b.set_history(sse::history_limits{10, 1 << 20, std::chrono::milliseconds::max()});
  }
  SECTION("a duration past the steady clock's range, for one topic") {
    b.set_history("t", sse::history_limits{10, 1 << 20, std::chrono::hours(24 * 365 * 400)});
  }
  auto const first = b.publish("t", sse::event("a")).id;
  b.publish("t", sse::event("b"));
  b.publish("t", sse::event("c"));
  CHECK(b.stats().history_events == 3);
  auto s = b.subscribe("t", resume_from(first));
  CHECK(s.resume() == sse::resume_result::replayed);
  CHECK(datas(read_all(s)) == std::vector<std::string>{"b", "c"});
}

TEST_CASE("a negative max_age is refused", "[history]") {
  sse::broker b;
  CHECK_THROWS_WITH(b.set_history(sse::history_limits{10, 1 << 20, -1ms}),
                    "sse::broker::set_history: history_limits::max_age must not be negative");
  CHECK_THROWS_AS(b.set_history("t", sse::history_limits{10, 1 << 20, -1ms}),
                  std::invalid_argument);
}

TEST_CASE("the broker-wide history budget trims the oldest entries of any topic first",
          "[history][budget]") {
  sse::broker b;
  CHECK(b.history_budget() == 64u << 20); // the default
  b.set_history(sse::history_limits{1000, 1 << 20, std::chrono::hours(1)});
  std::vector<std::string> ids;
  for (int i = 0; i < 40; ++i) // 20 each on two topics, ~110 bytes per event
    ids.push_back(b.publish(i % 2 ? "a" : "b", sse::event(std::string(80, 'x'))).id);
  auto const full = b.stats().history_bytes;
  CHECK(b.stats().history_events == 40);
  b.set_history_budget(full / 2); // applies at once
  CHECK(b.history_budget() == full / 2);
  auto st = b.stats();
  CHECK(st.history_bytes <= full / 2);
  CHECK(st.history_events >= 19);
  CHECK(st.history_events <= 20);
  SECTION("a resume across what went resets") {
    auto s = b.subscribe({"a", "b"}, resume_from(ids[5]));
    CHECK(s.resume() == sse::resume_result::reset);
  }
  SECTION("a resume from what is left replays the rest of both topics") {
    auto s = b.subscribe({"a", "b"}, resume_from(ids[35]));
    CHECK(s.resume() == sse::resume_result::replayed);
    CHECK(read_all(s).size() == 4);
  }
  SECTION("publishing keeps within it") {
    for (int i = 0; i < 100; ++i)
      b.publish(i % 2 ? "a" : "c", sse::event(std::string(80, 'y')));
    CHECK(b.stats().history_bytes <= full / 2);
  }
}
