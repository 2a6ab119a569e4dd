#include "test_util.hpp"

#include <sse/broker.hpp>

#include <asio/bind_executor.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <set>
#include <thread>

using namespace std::chrono_literals;

namespace {
sse::frame msg(std::string const& s) { return sse::frame(sse::format_event(s)); }

std::vector<std::string> drain(sse::subscription& sub) {
  std::vector<std::string> out;
  while (auto m = sub.try_pop())
    out.emplace_back(m->view());
  return out;
}

std::vector<std::string> frames(std::initializer_list<char const*> data) {
  std::vector<std::string> out;
  for (auto d : data)
    out.push_back(sse::format_event(d));
  return out;
}

sse::subscribe_options with_limits(std::size_t n, sse::overflow_policy p,
                                   std::size_t bytes = 1 << 20) {
  sse::subscribe_options o;
  o.limits = sse::queue_limits{n, bytes, p};
  return o;
}
} // namespace

TEST_CASE("broker delivers to each subscriber in publish order", "[broker]") {
  sse::broker b;
  auto s = b.subscribe();
  for (auto d : {"1", "2", "3"})
    CHECK(b.publish(msg(d)).receivers == 1);
  CHECK(s.queued_bytes() == 3 * sse::format_event("1").size());
  CHECK(drain(s) == frames({"1", "2", "3"}));
  CHECK(s.queued_bytes() == 0);
  CHECK_FALSE(s.try_pop());
}

TEST_CASE("broker fans out to many subscribers", "[broker]") {
  sse::broker b;
  std::vector<sse::subscription> subs;
  for (int i = 0; i < 1000; ++i)
    subs.push_back(b.subscribe());
  CHECK(b.stats().subscribers == 1000);
  for (int i = 0; i < 10; ++i)
    CHECK(b.publish(msg(std::to_string(i))).receivers == 1000);
  for (auto& s : subs) {
    auto got = drain(s);
    REQUIRE(got.size() == 10);
    CHECK(got.front() == sse::format_event("0"));
    CHECK(got.back() == sse::format_event("9"));
  }
  CHECK(b.stats().delivered == 10000);
}

TEST_CASE("subscribers share one payload, never a copy", "[broker]") {
  sse::broker b;
  std::vector<sse::subscription> subs;
  for (int i = 0; i < 50; ++i)
    subs.push_back(b.subscribe());
  sse::frame const f(sse::event("shared payload"));
  b.publish(f);
  CHECK(f.use_count() == 51);
  for (auto& s : subs) {
    auto m = s.try_pop();
    REQUIRE(m);
    CHECK(m->data() == f.data()); // the same bytes, by address
  }
  CHECK(f.use_count() == 1);
}

TEST_CASE("broker evicts a subscriber whose queue is full and tells it", "[broker][overflow]") {
  sse::broker b;
  auto slow = b.subscribe("", with_limits(3, sse::overflow_policy::evict));
  auto fast = b.subscribe();
  for (int i = 0; i < 5; ++i)
    b.publish(msg(std::to_string(i)));
  CHECK(slow.evicted());
  CHECK_FALSE(slow.active());
  auto const st = b.stats();
  CHECK(st.evicted == 1);
  CHECK(st.subscribers == 1);
  CHECK(b.subscriber_count("") == 1);
  // What was queued before the overflow can still be read, then the end is reported.
  CHECK(drain(slow) == frames({"0", "1", "2"}));
  CHECK(slow.wait_for(0ms) == sse::errc::evicted);
  CHECK(drain(fast).size() == 5);
  b.publish(msg("later"));
  CHECK_FALSE(slow.try_pop());
}

TEST_CASE("drop_oldest keeps the newest messages", "[broker][overflow]") {
  sse::broker b;
  auto s = b.subscribe("", with_limits(3, sse::overflow_policy::drop_oldest));
  for (int i = 0; i < 6; ++i)
    b.publish(msg(std::to_string(i)));
  CHECK(s.active());
  CHECK(s.dropped() == 3);
  CHECK(b.stats().dropped == 3);
  CHECK(drain(s) == frames({"3", "4", "5"}));
  CHECK(s.queued_bytes() == 0);
}

TEST_CASE("drop_newest keeps the oldest messages", "[broker][overflow]") {
  sse::broker b;
  auto s = b.subscribe("", with_limits(3, sse::overflow_policy::drop_newest));
  for (int i = 0; i < 6; ++i)
    b.publish(msg(std::to_string(i)));
  CHECK(s.active());
  CHECK(s.dropped() == 3);
  CHECK(drain(s) == frames({"0", "1", "2"}));
}

TEST_CASE("queues are bounded by bytes as well as by count", "[broker][overflow]") {
  sse::broker b;
  auto const one = msg("0123456789").size(); // 18 bytes
  SECTION("drop_oldest frees bytes from the front") {
    auto s = b.subscribe("", with_limits(100, sse::overflow_policy::drop_oldest, 2 * one));
    for (int i = 0; i < 4; ++i)
      b.publish(msg("012345678" + std::to_string(i)));
    CHECK(s.queued_bytes() == 2 * one);
    CHECK(drain(s) == frames({"0123456782", "0123456783"}));
  }
  SECTION("evict") {
    auto s = b.subscribe("", with_limits(100, sse::overflow_policy::evict, 2 * one));
    for (int i = 0; i < 3; ++i)
      b.publish(msg("0123456789"));
    CHECK(s.evicted());
    CHECK(s.size() == 2);
  }
  SECTION("a message larger than the whole budget never enters the queue") {
    auto d = b.subscribe("", with_limits(100, sse::overflow_policy::drop_oldest, 10));
    auto n = b.subscribe("", with_limits(100, sse::overflow_policy::drop_newest, 10));
    auto e = b.subscribe("", with_limits(100, sse::overflow_policy::evict, 10));
    b.publish(msg("far too large for ten bytes"));
    CHECK(d.size() == 0);
    CHECK(d.dropped() == 1);
    CHECK(n.dropped() == 1);
    CHECK(e.dropped() == 1);
    CHECK_FALSE(e.evicted()); // it says nothing about how fast `e` reads
  }
}

TEST_CASE("a message larger than one subscriber's max_bytes skips that subscriber alone, "
          "whatever its policy",
          "[broker][overflow][oversized]") {
  sse::broker b;
  auto const small = msg("s"), big = msg(std::string(100, 'x'));
  std::vector<sse::subscription> tight;
  for (auto p : {sse::overflow_policy::evict, sse::overflow_policy::drop_oldest,
                 sse::overflow_policy::drop_newest})
    tight.push_back(b.subscribe("t", with_limits(10, p, 50)));
  auto roomy = b.subscribe("t", with_limits(10, sse::overflow_policy::evict, 1000));
  b.publish("t", small);
  b.publish("t", small);
  CHECK(b.publish("t", big).receivers == 1); // only `roomy` can take it
  b.publish("t", small);
  for (auto& s : tight) {
    CHECK(s.active());
    CHECK_FALSE(s.evicted());
    CHECK(s.dropped() == 1);
    CHECK(drain(s) == std::vector<std::string>(3, std::string(small.view()))); // queue kept
  }
  CHECK(drain(roomy).size() == 4);
  auto const st = b.stats();
  CHECK(st.evicted == 0);
  CHECK(st.dropped == 3);
  CHECK(st.subscribers == 4);
}

TEST_CASE("a message larger than max_message_bytes is refused whole, counted and reported",
          "[broker][oversized]") {
  sse::broker b(sse::queue_limits{256, 4096, sse::overflow_policy::evict});
  CHECK(b.max_message_bytes() == 4096); // the default queue bound
  b.set_max_message_bytes(1000);
  CHECK(b.max_message_bytes() == 1000);
  b.set_history(sse::history_limits{100, 1 << 20, std::chrono::hours(1)});
  auto s = b.subscribe("t");
  auto const first = b.publish("t", sse::event("before")).id;
  sse::frame const big{std::string(1001, 'x')};
  auto const published = b.stats().published;

  SECTION("publish of a frame") {
    try {
      b.publish("t", big);
      FAIL("no exception");
    } catch (sse::message_too_large const& e) {
      CHECK(std::string(e.what()) == "sse::broker::publish: a message of 1001 bytes is larger "
                                     "than max_message_bytes (1000)");
      CHECK(e.size() == 1001);
      CHECK(e.limit() == 1000);
    }
  }
  SECTION("publish of an event, formatted") {
    CHECK_THROWS_AS(b.publish("t", sse::event(std::string(1000, 'x'))), sse::message_too_large);
    CHECK_THROWS_AS(b.publish("t", sse::event(std::string(1000, 'x')).id("mine")),
                    std::length_error);
  }
  SECTION("deliver") {
    CHECK_THROWS_WITH(b.deliver("t", big), Catch::Matchers::StartsWith("sse::broker::deliver: "));
    CHECK_THROWS_AS(b.deliver("t", big, "id-1"), sse::message_too_large);
    CHECK_THROWS_AS(b.deliver("t", sse::event(std::string(1000, 'x'))), sse::message_too_large);
  }
  SECTION("through the publisher hook, which never sees it") {
    int calls = 0;
    b.set_publisher([&](std::string_view, sse::frame const&) { ++calls; });
    CHECK_THROWS_AS(b.publish("t", big), sse::message_too_large);
    CHECK_THROWS_AS(b.publish("t", sse::event(std::string(1000, 'x'))), sse::message_too_large);
    CHECK(calls == 0);
    b.set_publisher(nullptr);
  }
  auto const st = b.stats();
  CHECK(st.refused >= 1);
  CHECK(st.published == published);
  CHECK(st.history_events == 1); // history untouched
  CHECK(s.active());
  CHECK(s.size() == 1); // just "before"
  sse::subscribe_options o;
  o.last_event_id = first;
  auto again = b.subscribe("t", o);
  CHECK(again.resume() == sse::resume_result::replayed); // nothing was lost after `first`
  CHECK_INVALID_ARGUMENT(b.set_max_message_bytes(0), Catch::Matchers::Contains("at least 1"));
}

TEST_CASE("publish goes to one topic and reaches only its subscribers", "[broker][topics]") {
  sse::broker b;
  auto a = b.subscribe("a");
  auto bb = b.subscribe("b");
  auto both = b.subscribe({"a", "b"});
  auto dup = b.subscribe({"a", "a"});
  CHECK(b.publish("a", msg("to a")).receivers == 3);
  CHECK(b.publish("b", msg("to b")).receivers == 2);
  CHECK(b.publish("c", msg("nobody")).receivers == 0);
  CHECK(drain(a) == frames({"to a"}));
  CHECK(drain(bb) == frames({"to b"}));
  CHECK(drain(both) == frames({"to a", "to b"}));
  CHECK(drain(dup) == frames({"to a"}));
  CHECK(both.topics() == std::vector<std::string>{"a", "b"});
  CHECK(b.stats().topics == 2);
}

TEST_CASE("destroying a subscription unsubscribes it", "[broker][raii]") {
  sse::broker b;
  {
    auto s1 = b.subscribe({"x", "y"});
    auto s2 = b.subscribe("x");
    CHECK(b.stats().subscribers == 2);
    CHECK(b.subscriber_count("x") == 2);
  }
  CHECK(b.stats().subscribers == 0);
  CHECK(b.stats().topics == 0);
  CHECK(b.publish("x", msg("gone")).receivers == 0);
}

TEST_CASE("unsubscribing one subscriber keeps the others in order", "[broker][raii]") {
  sse::broker b;
  std::vector<sse::subscription> subs;
  for (int i = 0; i < 10; ++i)
    subs.push_back(b.subscribe({"t", "u"}));
  subs[3].unsubscribe();
  subs.erase(subs.begin() + 7);
  subs.front() = b.subscribe("t"); // move-assign releases the old one
  CHECK(b.stats().subscribers == 8);
  CHECK(b.publish("t", msg("1")).receivers == 8);
  CHECK(b.publish("u", msg("2")).receivers == 7);
  CHECK(drain(subs.front()) == frames({"1"}));
  CHECK_FALSE(subs[3].try_pop()); // the unsubscribed one got nothing
  CHECK(drain(subs[1]) == frames({"1", "2"}));
}

TEST_CASE("a moved subscription keeps its queue", "[broker][raii]") {
  sse::broker b;
  auto s = b.subscribe();
  b.publish(msg("a"));
  sse::subscription moved(std::move(s));
  CHECK_FALSE(s.active()); // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  b.publish(msg("b"));
  CHECK(drain(moved) == frames({"a", "b"}));
  CHECK(b.stats().subscribers == 1);
}

TEST_CASE("a blocking wait times out, then wakes on a publish from another thread",
          "[broker][wait]") {
  sse::broker b;
  auto s = b.subscribe();
  CHECK(s.wait_for(10ms) == std::errc::timed_out);
  std::thread t([&] { b.publish(msg("hello")); });
  auto m = s.pop_for(10s);
  t.join();
  REQUIRE(m);
  CHECK(m->view() == sse::format_event("hello"));
}

TEST_CASE("async_wait completes on its executor when a message arrives", "[broker][async]") {
  asio::io_context io;
  sse::broker b;
  sse::subscribe_options o;
  o.executor = io.get_executor();
  auto s = b.subscribe("", o);
  std::vector<std::error_code> results;
  std::thread::id handler_thread;
  s.async_wait([&](std::error_code ec) {
    results.push_back(ec);
    handler_thread = std::this_thread::get_id();
  });
  std::thread publisher([&] { b.publish(msg("x")); });
  publisher.join();
  CHECK(results.empty()); // never run inside publish
  io.run();
  REQUIRE(results.size() == 1);
  CHECK_FALSE(results[0]);
  CHECK(handler_thread == std::this_thread::get_id());
  CHECK(s.try_pop());
}

TEST_CASE("async_wait and async_wait_closed take handlers bound to a strand of any_io_executor",
          "[broker][async]") {
  // asio::executor_work_guard cannot hold such a strand in Asio 1.22 (no on_work_started):
  // this failed to compile before the waiters tracked work through the executor property.
  asio::io_context io;
  auto strand = asio::make_strand(asio::any_io_executor(io.get_executor()));
  sse::broker b;
  sse::subscribe_options o; // the notices run on `io` too: none outlives it on another thread
  o.executor = io.get_executor();
  auto s = b.subscribe("", o);
  bool woke = false, closed = false, on_strand = false;
  s.async_wait(asio::bind_executor(strand, [&](std::error_code ec) {
    woke = !ec;
    on_strand = strand.running_in_this_thread();
  }));
  s.async_wait_closed(asio::bind_executor(strand, [&](std::error_code) { closed = true; }));
  b.publish(msg("x"));
  io.run_one();
  io.restart();
  CHECK(woke);
  CHECK(on_strand);
  b.close();
  io.run();
  CHECK(closed);
}

TEST_CASE("async_wait reports ready, cancel, eviction and close", "[broker][async]") {
  asio::io_context io;
  sse::broker b;
  sse::subscribe_options o = with_limits(1, sse::overflow_policy::evict);
  o.executor = io.get_executor();
  auto s = b.subscribe("", o);
  std::error_code result = make_error_code(std::errc::io_error);
  auto record = [&](std::error_code ec) { result = ec; };

  SECTION("already queued completes at once, but not inline") {
    b.publish(msg("x"));
    s.async_wait(record);
    CHECK(result == std::errc::io_error);
    io.run();
    CHECK_FALSE(result);
  }
  SECTION("cancel aborts") {
    s.async_wait(record);
    s.cancel();
    io.run();
    CHECK(result == asio::error::operation_aborted);
  }
  SECTION("unsubscribe aborts") {
    s.async_wait(record);
    s.unsubscribe();
    io.run();
    CHECK(result == asio::error::operation_aborted);
  }
  SECTION("evicted after draining") {
    b.publish(msg("1"));
    b.publish(msg("2")); // overflows: evicted with "1" still queued
    s.async_wait(record);
    io.run();
    CHECK_FALSE(result);
    CHECK(s.try_pop());
    s.async_wait(record);
    io.restart();
    io.run();
    CHECK(result == sse::errc::evicted);
  }
  SECTION("broker close ends the wait") {
    s.async_wait(record);
    b.close();
    io.run();
    CHECK(result == sse::errc::closed);
    CHECK_THROWS_AS(b.subscribe(), std::logic_error);
  }
  SECTION("a second concurrent wait is a logic error") {
    s.async_wait(record);
    CHECK_THROWS_AS(s.async_wait(record), std::logic_error);
    s.cancel();
    io.run();
  }
}

TEST_CASE("async_wait keeps io_context::run alive until it completes", "[broker][async]") {
  asio::io_context io;
  sse::broker b;
  sse::subscribe_options o;
  o.executor = io.get_executor();
  auto s = b.subscribe("", o);
  bool done = false;
  s.async_wait([&](std::error_code) { done = true; });
  std::thread t([&] {
    std::this_thread::sleep_for(20ms); // lets run() start and block on the outstanding wait
    b.publish(msg("x"));
  });
  io.run();
  t.join();
  CHECK(done);
}

TEST_CASE("destroying the broker closes its subscriptions", "[broker]") {
  auto b = std::make_unique<sse::broker>();
  auto s = b->subscribe();
  b->publish(msg("kept"));
  b.reset();
  CHECK_FALSE(s.active());
  CHECK(drain(s) == frames({"kept"}));
  CHECK(s.wait_for(0ms) == sse::errc::closed);
  s.unsubscribe(); // safe after the broker is gone
}

TEST_CASE("broker counters add up", "[broker]") {
  sse::broker b;
  auto a = b.subscribe("", with_limits(2, sse::overflow_policy::drop_newest));
  auto c = b.subscribe("", with_limits(2, sse::overflow_policy::evict));
  for (int i = 0; i < 4; ++i)
    b.publish(msg("m"));
  auto const st = b.stats();
  CHECK(st.published == 4);
  CHECK(st.delivered == 4); // two each
  CHECK(st.dropped == 2);
  CHECK(st.evicted == 1);
  CHECK(st.subscribers == 1);
}

TEST_CASE("a publisher hook takes publishes and deliver reaches local subscribers",
          "[broker][backend]") {
  sse::broker b;
  auto s = b.subscribe("t");
  std::vector<std::pair<std::string, std::string>> sent;
  b.set_publisher([&](std::string_view topic, sse::frame const& f) {
    sent.emplace_back(std::string(topic), std::string(f.view()));
  });
  CHECK(b.publish("t", msg("via hook")).receivers == 0);
  CHECK(s.size() == 0);
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].first == "t");
  CHECK(b.deliver("t", msg("from backend")).receivers == 1);
  b.set_publisher(nullptr);
  CHECK(b.publish("t", msg("local")).receivers == 1);
  CHECK(drain(s) == frames({"from backend", "local"}));
}

TEST_CASE("bad queue limits are refused", "[broker]") {
  CHECK_INVALID_ARGUMENT(sse::broker(sse::queue_limits{0, 10, sse::overflow_policy::evict}),
                         Catch::Matchers::Contains("max_messages"));
  sse::broker b;
  CHECK_INVALID_ARGUMENT(b.subscribe("", with_limits(1, sse::overflow_policy::evict, 0)),
                         Catch::Matchers::Contains("max_bytes"));
  CHECK_INVALID_ARGUMENT(b.subscribe(std::vector<std::string>{}),
                         Catch::Matchers::Contains("no topics"));
}

TEST_CASE("pop_all drains in order and honours its maximum", "[broker]") {
  sse::broker b;
  auto s = b.subscribe();
  for (int i = 0; i < 5; ++i)
    b.publish(msg(std::to_string(i)));
  std::vector<sse::frame> out;
  CHECK(s.pop_all(out, 2) == 2);
  CHECK(s.pop_all(out) == 3);
  REQUIRE(out.size() == 5);
  for (int i = 0; i < 5; ++i)
    CHECK(out[i].view() == sse::format_event(std::to_string(i)));
}

namespace {
struct text_message {
  std::shared_ptr<std::string const> text;
};
} // namespace
template <>
struct sse::message_traits<text_message> {
  static std::size_t size(text_message const& m) noexcept { return m.text->size(); }
};

TEST_CASE("basic_broker works with a user message type", "[broker]") {
  sse::basic_broker<text_message> b(sse::queue_limits{10, 8, sse::overflow_policy::drop_newest});
  auto s = b.subscribe("t");
  b.publish("t", text_message{std::make_shared<std::string const>("12345")});
  b.publish("t", text_message{std::make_shared<std::string const>("6789")}); // over 8 bytes
  CHECK(s.size() == 1);
  CHECK(s.dropped() == 1);
  CHECK(*s.try_pop()->text == "12345");
}

TEST_CASE("concurrent publish, subscribe and unsubscribe keep per-publisher order",
          "[broker][threads]") {
  sse::broker b(sse::queue_limits{1 << 16, 1 << 26, sse::overflow_policy::evict});
  constexpr int publishers = 3, per_publisher = 2000;
  std::vector<sse::subscription> steady;
  for (int i = 0; i < 4; ++i)
    steady.push_back(b.subscribe({"t", "other"}));
  std::atomic<bool> stop{false};
  std::atomic<int> churned{0};
  std::thread churn([&] {
    while (!stop.load()) {
      auto s = b.subscribe({"t"});
      auto extra = b.subscribe({"other", "t"});
      while (s.try_pop()) {
      }
      churned.fetch_add(1);
    }
  });
  std::vector<std::thread> pubs;
  for (int p = 0; p < publishers; ++p)
    pubs.emplace_back([&, p] {
      for (int i = 0; i < per_publisher; ++i)
        b.publish(i % 2 ? "t" : "other", msg(std::to_string(p) + ":" + std::to_string(i)));
    });
  for (auto& t : pubs)
    t.join();
  stop = true;
  churn.join();
  CHECK(churned.load() > 0);
  for (auto& s : steady) {
    std::map<int, int> last;
    std::size_t count = 0;
    while (auto m = s.try_pop()) {
      auto const v = std::string(m->view());
      auto const body = v.substr(6, v.size() - 8); // "data: p:i\n\n"
      auto const colon = body.find(':');
      int const p = std::stoi(body.substr(0, colon)), i = std::stoi(body.substr(colon + 1));
      auto it = last.find(p);
      if (it != last.end())
        CHECK(i > it->second);
      last[p] = i;
      ++count;
    }
    CHECK(count == publishers * per_publisher);
  }
  CHECK(b.stats().subscribers == steady.size());
}
