// Integration tests of sse::server over real sockets on 127.0.0.1: a small blocking client made
// of POSIX sockets and poll() talks raw HTTP/1.1 to the server, and event streams are read back
// with the public sse::parser (tests/event_reader.hpp), itself tested against the HTML standard
// in test_parser.cpp.
//
// Every wait is bounded: reads poll with deadlines, and conditions on the server (subscriber or
// connection counts) are polled until they hold or a few seconds pass.

#include "event_reader.hpp"
#include "server_fixture.hpp"
#include "test_client.hpp"
#include "test_util.hpp"

#include <sse/broker.hpp>
#include <sse/http.hpp>
#include <sse/server.hpp>
#include <sse/server_options.hpp>
#include <sse/stream.hpp>

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using namespace std::string_literals;

using namespace sse_test;

// --- 1. headers -----------------------------------------------------------------------------------

TEST_CASE("server sends event-stream headers and holds the connection open", "[server]") {
  test_server ts;
  stream_client s(ts.port(), "/listen");
  REQUIRE(s.head.status == 200);
  CHECK(s.head.header("Content-Type") == std::string("text/event-stream"));
  auto const cache = s.head.header("Cache-Control").value_or("");
  CHECK(cache.find("no-cache") != std::string::npos);
  CHECK(cache.find("no-transform") != std::string::npos);
  CHECK(s.head.header("X-Accel-Buffering") == std::string("no"));
  CHECK_FALSE(s.head.header("Content-Encoding"));
  CHECK_FALSE(s.head.header("Content-Length")); // a stream has no length
  CHECK(s.head.count("Content-Type") == 1);

  // Open and without events until something is published (a `retry:` or comment may come),
  // then the event arrives on the same connection.
  CHECK(s.open_after(300ms));
  CHECK(s.events().empty());
  CHECK(ts.srv.connections() == 1);
  ts.broker.publish(sse::event("hello").id("1"));
  REQUIRE(s.wait_events(1));
  CHECK(s.events()[0] == expected("hello", "1"));
  CHECK_FALSE(s.c.closed());
}

// --- 2. ordering ----------------------------------------------------------------------------------

TEST_CASE("server delivers every published event in order to several clients", "[server]") {
  test_server ts;
  std::vector<std::unique_ptr<stream_client>> clients;
  for (int i = 0; i < 5; ++i) {
    clients.push_back(std::make_unique<stream_client>(ts.port(), "/listen"));
    REQUIRE(clients.back()->ok());
  }
  REQUIRE(eventually([&] { return ts.subscribers() == 5; }));

  constexpr std::size_t n = 200;
  std::thread publisher([&] { publish_numbered(ts.broker, n); });
  for (auto& c : clients)
    c->wait_events(n, 5000ms);
  publisher.join();

  for (auto& c : clients) {
    CHECK(c->events().size() == n);
    CHECK(first_mismatch(c->events()) == c->events().size());
    CHECK_FALSE(c->c.closed());
  }
}

TEST_CASE("server with two I/O threads keeps each client's events in order", "[server]") {
  auto o = test_options();
  o.threads = 2;
  test_server ts(o);
  // Round-robin: clients 0, 2, 4 on one thread, 1, 3, 5 on the other. Their queues hold the
  // whole burst, so nothing is evicted however far the publisher runs ahead.
  std::vector<std::unique_ptr<stream_client>> clients;
  for (int i = 0; i < 6; ++i) {
    clients.push_back(std::make_unique<stream_client>(ts.port(), "/wide"));
    REQUIRE(clients.back()->ok());
  }
  REQUIRE(eventually([&] { return ts.subscribers() == 6; }));

  constexpr std::size_t n = 2000;
  std::thread publisher([&] { publish_numbered(ts.broker, n); });
  for (auto& c : clients)
    c->wait_events(n, 5000ms);
  publisher.join();
  CHECK(ts.broker.stats().evicted == 0);
  for (auto& c : clients) {
    CHECK(c->events().size() == n);
    CHECK(first_mismatch(c->events()) == c->events().size());
  }
  // Both threads serve ordinary requests too.
  CHECK(serves_normally(ts.port()));
  CHECK(serves_normally(ts.port()));
}

// A subscription made in a handler is fed by that I/O thread (docs/fan-out.md): a publish
// hands the thread the event once. Kept here by the test instead of streamed, so the test can
// see what it gets while the thread is held in a handler, and after the server stopped.
TEST_CASE("server threads feed their subscriptions in publish order across topics, busy or stopped",
          "[server][fan-out]") {
  std::mutex m;
  std::optional<sse::subscription> kept;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> blocking{false};
  test_server ts(test_options(), [&](test_server& t) {
    t.srv.route("GET", "/keep", [&](sse::request&) {
      sse::subscribe_options so;
      so.limits = sse::queue_limits{100000, 64u << 20, sse::overflow_policy::evict};
      std::lock_guard<std::mutex> lk(m);
      kept.emplace(t.broker.subscribe({"a", "b"}, so));
      return sse::response::text(200, "kept\n");
    });
    // On the subscribers' own thread a publish is pushed before the handler answers, so a
    // publisher is paced by its fan-out and cannot outrun the queues.
    t.srv.route("POST", "/publish-here", [&](sse::request&) {
      std::lock_guard<std::mutex> lk(m);
      auto const before = kept->size();
      t.broker.publish("a", sse::event("here"));
      return sse::response::text(200, std::to_string(kept->size() - before));
    });
    t.srv.route("GET", "/block", [&](sse::request&) {
      blocking = true;
      released.wait();
      return sse::response::text(200, "done\n");
    });
  });
  auto& broker = ts.broker;
  auto& srv = ts.srv;
  {
    client c(srv.port());
    REQUIRE(c.send(get("/keep")));
    auto r = read_response(c);
    REQUIRE(r);
    REQUIRE(r->status == 200);
  }
  {
    client c(srv.port());
    REQUIRE(c.send(post("/publish-here", "")));
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->body == "1");
  }
  std::unique_lock<std::mutex> lk(m);
  REQUIRE(kept);
  auto& sub = *kept;
  REQUIRE(sub.try_pop()); // the one from /publish-here
  std::string bytes;
  auto take = [&] {
    while (auto f = sub.try_pop())
      bytes += f->view();
    return parse_all(bytes);
  };
  int next = 0;
  auto publish = [&](int n) {
    for (int i = 0; i < n; ++i, ++next)
      broker.publish(next % 2 ? "a" : "b", sse::event(std::to_string(next)));
  };
  auto in_order = [](std::vector<sse::parsed_event> const& evs) {
    for (std::size_t i = 0; i < evs.size(); ++i)
      if (evs[i].data != std::to_string(i))
        return false;
    return true;
  };

  publish(10); // the thread is idle: it pushes them soon after
  REQUIRE(eventually([&] { return take().size() == 10; }));

  // The thread is held in a handler: past a bounded backlog the publisher pushes itself.
  std::thread blocker([&] {
    client c(srv.port());
    if (c.send(get("/block")))
      (void)read_response(c);
  });
  REQUIRE(eventually([&] { return blocking.load(); }));
  publish(3000);
  auto const while_busy = take().size();
  CHECK(while_busy >= 10 + 3000 - 1024 - 1);
  CHECK(while_busy < 10 + 3000); // the last ones wait for the thread
  release.set_value();
  blocker.join();
  REQUIRE(eventually([&] { return take().size() == 3010; }));
  CHECK(in_order(take()));

  // Stopped: its subscriptions are fed by the publishers from now on, at once.
  srv.stop();
  publish(10);
  auto const evs = take();
  CHECK(evs.size() == 3020);
  CHECK(in_order(evs));
  CHECK(broker.stats().evicted == 0);
  kept.reset(); // before the broker goes
}

TEST_CASE("a publisher whose fan-out fills queues past half waits for the writers, so none "
          "overflows", "[server][fan-out]") {
  constexpr std::size_t streams = 40, events = 200;
  auto o = test_options();
  o.write_slice = 1; // a pass over the woken streams takes a turn of the loop per stream
  test_server ts(o, [](test_server& t) {
    t.srv.route("GET", "/tight", [&t](sse::request&) {
      sse::subscribe_options so;
      so.limits = sse::queue_limits{8, 1u << 20, sse::overflow_policy::evict};
      return sse::response::stream(t.broker.subscribe("p", so));
    });
    t.srv.route("POST", "/pub", [&t](sse::request& r) {
      t.broker.publish("p", sse::event(std::string(r.body())));
      return sse::response::text(200, "ok\n");
    });
  });
  std::vector<std::unique_ptr<stream_client>> subs;
  for (std::size_t i = 0; i < streams; ++i) {
    subs.push_back(std::make_unique<stream_client>(ts.port(), "/tight"));
    REQUIRE(subs.back()->ok());
  }
  REQUIRE(eventually([&] { return ts.subscribers() == streams; }));
  // Every request in one write: unpaced, the server would publish the next one after each
  // stream's turn, and the streams late in the pass would get 8 events behind and be evicted.
  std::string pipelined;
  for (std::size_t i = 0; i < events; ++i)
    pipelined += post("/pub", std::to_string(i));
  client pub(ts.port());
  REQUIRE(pub.send(pipelined));
  auto answers = [](std::string const& b) {
    std::size_t n = 0;
    for (auto p = b.find("HTTP/1.1 200"); p != std::string::npos; p = b.find("HTTP/1.1 200", p + 1))
      ++n;
    return n;
  };
  REQUIRE(pub.read_until([&](std::string& b) { return answers(b) == events; }, 10000ms));
  REQUIRE(ts.broker.stats().evicted == 0); // every publish has been pushed by now
  for (auto& s : subs) {
    REQUIRE(s->wait_events(events, 10000ms));
    for (std::size_t i = 0; i < events; ++i)
      REQUIRE(s->events()[i].data == std::to_string(i));
  }
}

// One publish of a 1,000-byte event to 40 idle streams, written one stream per turn, between
// two pipelined reads of the bytes written: how many streams' writes the answer waited for.
TEST_CASE("a publisher is answered once its share of the woken streams have written, past "
          "pace_backlog", "[server][fan-out]") {
  constexpr std::size_t streams = 40, size = 1000;
  auto written_for = [&](std::size_t backlog, std::size_t share, bool async) {
    auto o = test_options();
    o.write_slice = 1;
    o.pace_backlog = backlog;
    o.pace_share = share;
    test_server ts(o, [](test_server& t) {
      t.srv.route("POST", "/pub", [&t](sse::request&) {
        t.broker.publish(sse::event(std::string(size, 'x')));
        return sse::response::text(200, "ok\n");
      });
      t.srv.route("POST", "/pub-async", [&t](sse::request&, sse::responder r) {
        t.broker.publish(sse::event(std::string(size, 'x')));
        r.send(sse::response::text(200, "ok\n"));
      });
      t.srv.route("GET", "/written", [&t](sse::request&) {
        return sse::response::text(200, std::to_string(t.srv.stats().bytes_written));
      });
    });
    std::vector<std::unique_ptr<stream_client>> subs;
    for (std::size_t i = 0; i < streams; ++i) {
      subs.push_back(std::make_unique<stream_client>(ts.port(), "/listen"));
      REQUIRE(subs.back()->ok());
    }
    REQUIRE(eventually([&] { return ts.subscribers() == streams; }));
    client pub(ts.port());
    REQUIRE(pub.send(get("/written") + post(async ? "/pub-async" : "/pub", "") + get("/written")));
    auto const before = read_response(pub);
    auto const published = read_response(pub);
    auto const after = read_response(pub);
    REQUIRE(before);
    REQUIRE(published);
    REQUIRE(published->status == 200);
    REQUIRE(after);
    for (auto& s : subs) // and every stream gets the event in the end
      REQUIRE(s->wait_events(1));
    // The bytes written before the answer: each stream written took a little over `size`.
    return std::stoull(after->body) - std::stoull(before->body);
  };
  for (bool async : {false, true}) {
    CAPTURE(async);
    CHECK(written_for(0, 1, async) >= streams * size); // after all of them
    auto const quarter = written_for(0, 4, async);     // after a quarter of them
    CHECK(quarter >= streams / 4 * size);
    CHECK(quarter < streams / 2 * size);
    CHECK(written_for(streams, 4, async) < streams / 4 * size); // within the backlog: at once
    CHECK(written_for(0, 0, async) < streams / 4 * size);       // pacing off: at once
  }
}

// --- 3. heartbeat ---------------------------------------------------------------------------------

TEST_CASE("server sends a heartbeat comment on an idle stream", "[server]") {
  auto o = test_options();
  o.heartbeat = 200ms;
  test_server ts(o);
  stream_client s(ts.port(), "/listen");
  REQUIRE(s.ok());
  REQUIRE(s.wait_comments(1, 1000ms));
  CHECK(s.events().empty()); // a comment, never an event
  CHECK(s.parser.partial_line().empty());
  // It keeps coming while the stream stays idle.
  CHECK(s.wait_comments(s.parser.comments().size() + 1, 1000ms));
  CHECK_FALSE(s.c.closed());
}

// --- 4. release on disconnect ---------------------------------------------------------------------

TEST_CASE("server releases a disconnected client's subscription promptly", "[server]") {
  test_server ts;
  auto s = std::make_unique<stream_client>(ts.port(), "/listen");
  REQUIRE(s->ok());
  REQUIRE(eventually([&] { return ts.subscribers() == 1; }));
  CHECK(ts.srv.connections() == 1);

  SECTION("after a clean close") { s->c.close(); }
  SECTION("after the client half-closes") { s->c.shutdown_write(); }
  SECTION("after the client resets") { s->c.reset(); }
  CHECK(eventually([&] { return ts.subscribers() == 0; }, 2000ms));
  CHECK(eventually([&] { return ts.srv.connections() == 0; }, 2000ms));
  CHECK(ts.broker.publish(sse::event("nobody")).receivers == 0);
  CHECK(serves_normally(ts.port()));
}

// --- 5. slow client -------------------------------------------------------------------------------

TEST_CASE("server evicts a client that stops reading while others get every event", "[server]") {
  test_server ts;

  // The slow client asks for the stream and never reads, with a tiny receive window.
  client slow(ts.port(), 4096);
  REQUIRE(slow.send(get("/small")));
  REQUIRE(eventually([&] { return ts.subscribers() == 1; }));

  stream_client fast(ts.port(), "/small");
  REQUIRE(fast.ok());
  REQUIRE(eventually([&] { return ts.subscribers() == 2; }));

  std::string const pad(1000, 'p');
  auto data_of = [&](std::size_t i) { return std::to_string(i) + ":" + pad; };

  constexpr std::size_t min_events = 5000, max_events = 40000, window = 32;
  std::atomic<std::size_t> got{0};
  std::atomic<bool> publishing_done{false};
  std::atomic<std::size_t> total{max_events};
  std::atomic<bool> gave_up{false};
  // The fast client reads on its own thread; the publisher never gets more than `window` events
  // ahead of it, so its 64-message queue cannot overflow however the threads are scheduled.
  std::thread reader([&] {
    auto const deadline = steady::now() + 20s;
    while (steady::now() < deadline) {
      if (fast.pump(50ms) == io_result::eof || fast.c.closed())
        break;
      got = fast.events().size();
      if (publishing_done && (got >= total || gave_up))
        break;
    }
    got = fast.events().size();
  });

  std::size_t published = 0;
  bool stalled = false;
  while (published < max_events) {
    if (published >= min_events && ts.broker.stats().evicted >= 1)
      break;
    if (!eventually([&] { return published < got + window; }, 5000ms)) {
      stalled = true;
      break;
    }
    ts.broker.publish(sse::event(data_of(published)).id(std::to_string(published)));
    ++published;
  }
  total = published;
  gave_up = stalled;
  publishing_done = true;
  reader.join();

  REQUIRE_FALSE(stalled);
  CHECK(published >= min_events);
  auto const st = ts.broker.stats();
  CHECK(st.evicted >= 1);
  CHECK(st.subscribers == 1); // only the fast client is left

  // The reading client got every event, in order, nothing missing.
  REQUIRE(fast.events().size() == published);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < published; ++i)
    if (!(fast.events()[i] == expected(data_of(i), std::to_string(i))))
      ++bad;
  CHECK(bad == 0);
  CHECK_FALSE(fast.c.closed());

  // The server closes the evicted client's connection: once it reads, it sees the head, an
  // in-order prefix of the events, then the end.
  REQUIRE(slow.read_until_closed(5000ms));
  auto head = take_response(slow.buffer(), true);
  REQUIRE(head);
  CHECK(head->status == 200);
  auto const prefix = sse_test::parse_all(slow.buffer());
  CHECK(prefix.size() < published);
  std::size_t prefix_bad = 0;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (!(prefix[i] == expected(data_of(i), std::to_string(i))))
      ++prefix_bad;
  CHECK(prefix_bad == 0);
  // Memory stayed within the bounds: all the slow client ever gets is what sat in kernel
  // buffers (the server's send buffer, which the kernel doubles, and the client's tiny window)
  // plus at most its queue (64 messages) and one batch in flight (64 frames), not the stream.
  std::size_t const frame_bytes = sse::format(sse::event(data_of(published)).id("00000")).size();
  std::size_t const bound = 2 * ts.srv.options().send_buffer + 64 * 1024 + 2 * 64 * frame_bytes;
  CHECK(slow.bytes_received() <= bound);
  CHECK(slow.bytes_received() < published * frame_bytes / 4);
  slow.close(); // as a browser would after the end
  CHECK(eventually([&] { return ts.srv.connections() == 1; }, 2000ms));
}

// --- 6. write timeout -----------------------------------------------------------------------------

TEST_CASE("server closes a stream whose writes stall past write_timeout", "[server]") {
  auto o = test_options();
  o.write_timeout = 300ms;
  test_server ts(o);

  client c(ts.port(), 4096);
  REQUIRE(c.send(get("/gen-big")));
  auto s = ts.generated.take();
  REQUIRE(s);

  // 64 KiB events, one every 2 ms: the 64 MiB queue would take 2 s to fill, long after the
  // stalled write should have been given up.
  sse::frame const big(sse::event(std::string(64 * 1024 - 16, 'z')));
  std::size_t sent = 0;
  bool refused = false;
  auto const t0 = steady::now();
  while (steady::now() - t0 < 5s) {
    if (!s->send(big)) {
      refused = true;
      break;
    }
    ++sent;
    std::this_thread::sleep_for(2ms);
  }
  auto const took = steady::now() - t0;
  REQUIRE(refused);
  CHECK(sent < 1000); // refused because the connection was closed, not because the queue filled
  CHECK(took < 3s);
  CHECK(s->closed());
  CHECK(eventually([&] { return ts.srv.connections() == 0; }, 2000ms));
  CHECK_FALSE(s->send(sse::event("after")));
  // The client, once it reads, finds the connection ended.
  CHECK(c.read_until_closed(5000ms));
  CHECK(serves_normally(ts.port()));
}

TEST_CASE("server keeps a slow but steadily reading client past write_timeout", "[server]") {
  // write_timeout is for a write that makes no progress; a big burst that a client drains at a
  // steady pace takes longer than that in total and must still be delivered.
  auto o = test_options();
  o.write_timeout = 300ms;
  test_server ts(o);

  // Formatted up front, so queueing them is instant and the client reads from the start.
  constexpr std::size_t n = 256; // 16 MiB: far more than the socket buffers hold
  std::string const pad(64 * 1024 - 64, 'w');
  std::vector<sse::frame> frames;
  for (std::size_t i = 0; i < n; ++i)
    frames.emplace_back(sse::event(std::to_string(i) + ":" + pad).id(std::to_string(i)));

  client c(ts.port(), 64 * 1024);
  REQUIRE(c.send(get("/gen-big")));
  auto s = ts.generated.take();
  REQUIRE(s);
  std::atomic<std::size_t> queued{0};
  std::thread producer([st = *s, &frames, &queued]() mutable {
    for (auto const& f : frames)
      if (st.send(f))
        ++queued;
    st.close();
  });

  // Read about 64 KiB every 5 ms (some 12 MB/s): never a pause near write_timeout.
  auto const deadline = steady::now() + 10s;
  ms longest_pause{0};
  auto last = steady::now();
  while (!c.closed() && steady::now() < deadline) {
    c.read_some(50ms);
    auto const now = steady::now();
    longest_pause = std::max(longest_pause, std::chrono::duration_cast<ms>(now - last));
    last = now;
    std::this_thread::sleep_for(5ms);
  }
  producer.join();
  INFO("longest gap between the client's reads: " << longest_pause.count() << " ms");
  CHECK(longest_pause < o.write_timeout);
  CHECK(queued == n);
  auto head = take_response(c.buffer(), true);
  REQUIRE(head);
  CHECK(head->status == 200);
  auto const events = sse_test::parse_all(c.buffer());
  CHECK(events.size() == n);
  CHECK(c.got_eof());
}

// --- 7. generator streams -------------------------------------------------------------------------

TEST_CASE("server streams a handler-owned event_stream and ends it cleanly", "[server]") {
  test_server ts;

  SECTION("all 101 progress events, then EOF") {
    stream_client s(ts.port(), "/gen");
    REQUIRE(s.ok());
    auto stream = ts.generated.take();
    REQUIRE(stream);
    std::atomic<bool> all_sent{true};
    std::thread producer([st = *stream, &all_sent]() mutable {
      for (int i = 0; i <= 100; ++i)
        if (!st.send(sse::event(std::to_string(i) + "%").name("progress").id(std::to_string(i))))
          all_sent = false;
      st.close();
    });
    bool const ended = s.wait_closed(5000ms);
    producer.join();
    CHECK(all_sent);
    REQUIRE(ended);
    CHECK(s.c.got_eof()); // a clean end, not a reset
    REQUIRE(s.events().size() == 101);
    for (int i = 0; i <= 100; ++i)
      CHECK(s.events()[static_cast<std::size_t>(i)] ==
            sse::parsed_event{"progress", std::to_string(i) + "%", std::to_string(i)});
    CHECK(s.parser.partial_line().empty());
    s.c.close();
    CHECK(eventually([&] { return ts.srv.connections() == 0; }, 2000ms));
  }

  SECTION("send returns false soon after the client disconnects") {
    stream_client s(ts.port(), "/gen");
    REQUIRE(s.ok());
    auto stream = ts.generated.take();
    REQUIRE(stream);
    std::atomic<bool> refused{false};
    std::atomic<std::int64_t> refused_at{0};
    std::thread producer([st = *stream, &refused, &refused_at]() mutable {
      auto const deadline = steady::now() + 10s;
      for (int i = 0; steady::now() < deadline; ++i) {
        if (!st.send(sse::event("tick " + std::to_string(i)))) {
          refused_at = steady::now().time_since_epoch().count();
          refused = true;
          return;
        }
        std::this_thread::sleep_for(5ms);
      }
    });
    bool const got_some = s.wait_events(10);
    auto const closed_at = steady::now();
    s.c.close();
    producer.join();
    CHECK(got_some);
    REQUIRE(refused);
    auto const delay = steady::time_point(steady::duration(refused_at.load())) - closed_at;
    CHECK(delay < 2s);
    CHECK(stream->closed());
    CHECK(eventually([&] { return ts.srv.connections() == 0; }, 2000ms));
  }
}

// --- 8. ordinary responses ------------------------------------------------------------------------

TEST_CASE("server answers ordinary requests with keep-alive, pipelining, bodies and 100-continue",
          "[server]") {
  test_server ts;
  client c(ts.port());

  SECTION("two requests on one keep-alive connection") {
    REQUIRE(c.send(get("/ping")));
    auto r1 = read_response(c);
    REQUIRE(r1);
    CHECK(r1->status == 200);
    CHECK(r1->body == "pong\n");
    CHECK(r1->header("Connection") == std::string("keep-alive"));
    REQUIRE(c.send(get("/n/2")));
    auto r2 = read_response(c);
    REQUIRE(r2);
    CHECK(r2->status == 200);
    CHECK(r2->body == "2");
    CHECK(c.stays_quiet(100ms));
    CHECK(ts.srv.connections() == 1);
  }

  SECTION("HTTP/1.0 closes by default") {
    REQUIRE(c.send("GET /ping HTTP/1.0\r\n\r\n"));
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "pong\n");
    CHECK(r->header("Connection") == std::string("close"));
    CHECK(c.read_until_closed(3000ms));
    CHECK(c.got_eof());
    CHECK(c.buffer().empty());
  }

  SECTION("HTTP/1.0 with Connection: keep-alive stays open") {
    REQUIRE(c.send("GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->header("Connection") == std::string("keep-alive"));
    CHECK(c.stays_quiet(100ms));
  }

  SECTION("three pipelined requests in one write are answered in order") {
    REQUIRE(c.send(get("/n/1") + post("/echo", "second") + get("/n/3")));
    auto r1 = read_response(c);
    auto r2 = read_response(c);
    auto r3 = read_response(c);
    REQUIRE(r1);
    REQUIRE(r2);
    REQUIRE(r3);
    CHECK(r1->body == "1");
    CHECK(r2->body == "second");
    CHECK(r3->body == "3");
    CHECK(c.buffer().empty());
    CHECK_FALSE(c.closed());
  }

  SECTION("POST with a Content-Length body") {
    std::string const body = "hello, world\r\n\0binary"s;
    REQUIRE(c.send(post("/echo", body)));
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == body);
  }

  SECTION("a POST body split over several writes") {
    std::string const req = post("/echo", std::string(3000, 'q'));
    REQUIRE(c.send(req.substr(0, 10)));
    REQUIRE(c.send(req.substr(10, 1000)));
    REQUIRE(c.send(req.substr(1010)));
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->body == std::string(3000, 'q'));
  }

  SECTION("a chunked request body reaches the handler de-chunked") {
    REQUIRE(c.send("POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n"));
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "hello, world");
    CHECK_FALSE(r->header("Transfer-Encoding"));
  }

  SECTION("Expect: 100-continue gets 100 Continue, then the final response") {
    REQUIRE(c.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 11\r\n"
                   "Expect: 100-continue\r\n\r\n"));
    auto interim = read_response(c, 2000ms);
    REQUIRE(interim);
    CHECK(interim->status == 100);
    REQUIRE(c.send("hello there"));
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "hello there");
  }
}

// --- 9. hostile input -----------------------------------------------------------------------------

namespace {
struct bad_request {
  char const* name;
  std::string bytes;
  int status;
  bool closes; ///< the framing can no longer be trusted: the connection must end
};

std::string cl_request(std::string_view value) {
  return "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::string(value) + "\r\n\r\n";
}
std::string chunked_request(std::string_view chunks) {
  return "POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n" +
         std::string(chunks);
}
} // namespace

TEST_CASE("server refuses every class of malformed request and keeps serving", "[server]") {
  auto o = test_options();
  o.max_body = 1024;
  test_server ts(o);

  std::string many_headers = "GET /ping HTTP/1.1\r\nHost: test\r\n";
  for (int i = 0; i < 101; ++i)
    many_headers += "X-H" + std::to_string(i) + ": v\r\n";
  many_headers += "\r\n";

  std::vector<bad_request> const cases = {
      {"request-target over the limit", get("/" + std::string(9000, 'a')), 414, true},
      {"header line over the limit", get("/ping", "X-Big: " + std::string(9000, 'b') + "\r\n"), 431,
       true},
      {"too many header fields", many_headers, 431, true},
      {"bare CR in a header line", get("/ping", "X-A: a\rb\r\n"), 400, true},
      {"NUL in a header value", get("/ping", "X-A: a"s + '\0' + "b\r\n"), 400, true},
      {"NUL in a header name", get("/ping", "X-"s + '\0' + "A: b\r\n"), 400, true},
      {"a header line without a colon", get("/ping", "NoColonHere\r\n"), 400, true},
      {"whitespace between name and colon", "GET /ping HTTP/1.1\r\nHost : test\r\n\r\n", 400, true},
      {"obs-fold", get("/ping", "X-A: a\r\n folded\r\n"), 400, true},
      {"HTTP/1.1 without Host", "GET /ping HTTP/1.1\r\n\r\n", 400, true},
      {"HTTP/2.0", "GET /ping HTTP/2.0\r\nHost: test\r\n\r\n", 505, true},
      {"unknown path", get("/nowhere"), 404, false},
      {"Content-Length -1", cl_request("-1"), 400, true},
      {"Content-Length +1", cl_request("+1") + "x", 400, true},
      {"Content-Length 0x10", cl_request("0x10"), 400, true},
      {"Content-Length 1Z", cl_request("1Z"), 400, true},
      {"Content-Length empty", cl_request(""), 400, true},
      {"Content-Length two numbers", cl_request("1 2"), 400, true},
      {"Content-Length 2^64", cl_request("18446744073709551616"), 400, true},
      {"Content-Length 2^63", cl_request("9223372036854775808"), 400, true},
      {"conflicting Content-Length",
       "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
       400, true},
      {"Content-Length with Transfer-Encoding",
       "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
       "0\r\n\r\n",
       400, true},
      {"Transfer-Encoding: gzip",
       "POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n", 501, true},
      {"Transfer-Encoding: chunked, gzip",
       "POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 501, true},
      {"chunked in HTTP/1.0", "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       400, true},
      {"chunk size not hex", chunked_request("zz\r\nhello\r\n0\r\n\r\n"), 400, true},
      {"negative chunk size", chunked_request("-5\r\nhello\r\n0\r\n\r\n"), 400, true},
      {"chunk size over 16 hex digits", chunked_request("00000000000000001\r\nx\r\n0\r\n\r\n"), 400,
       true},
      {"chunk size followed by junk", chunked_request("5x\r\nhello\r\n0\r\n\r\n"), 400, true},
      {"chunked body over max_body", chunked_request("800\r\n"), 413, true},
      {"malformed percent-encoding in the query", get("/ping?x=%G1"), 400, true},
  };

  for (auto const& bad : cases) {
    DYNAMIC_SECTION(bad.name << " -> " << bad.status) {
      client c(ts.port());
      c.send(bad.bytes); // the server may close before taking it all
      auto r = read_response(c);
      REQUIRE(r);
      CHECK(r->status == bad.status);
      if (bad.closes) {
        CHECK(r->header("Connection") == std::string("close"));
        CHECK(c.read_until_closed(3000ms));
      } else {
        CHECK_FALSE(c.closed());
      }
      CHECK(serves_normally(ts.port()));
    }
  }

  SECTION("wrong method on a known path -> 405 with Allow") {
    client c(ts.port());
    REQUIRE(c.send("DELETE /ping HTTP/1.1\r\nHost: test\r\n\r\n"));
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->status == 405);
    CHECK(r->header("Allow") == std::string("GET, HEAD"));
    // An ordinary refusal: the connection is still good for the next request.
    REQUIRE(c.send(get("/ping")));
    auto r2 = read_response(c);
    REQUIRE(r2);
    CHECK(r2->status == 200);
  }

  SECTION("a body over max_body is refused from Content-Length before it is sent -> 413") {
    client c(ts.port());
    REQUIRE(c.send(cl_request("2048"))); // the head only
    auto r = read_response(c, 2000ms);
    REQUIRE(r);
    CHECK(r->status == 413);
    CHECK(c.read_until_closed(3000ms));
    CHECK(serves_normally(ts.port()));
  }

  SECTION("10 MB without a line end is cut off at the limit") {
    client c(ts.port());
    constexpr std::size_t total = 10 * 1024 * 1024;
    std::string const chunk(64 * 1024, 'a');
    bool refused = false;
    c.send("GET /");
    auto const deadline = steady::now() + 8s;
    while (c.bytes_sent() < total && steady::now() < deadline) {
      c.read_some(0ms); // collect an early answer as it comes
      if (c.closed())
        break;
      if (!c.send(chunk, 1000ms)) {
        refused = c.send_failed();
        if (refused)
          break;
      }
    }
    INFO("bytes taken by the server side: " << c.bytes_sent());
    CHECK(c.bytes_sent() < total);
    CHECK((refused || c.closed()));
    c.read_until_closed(2000ms);
    // If the answer made it through before the close, it names the over-long request-target.
    if (auto r = take_response(c.buffer(), false))
      CHECK((r->status == 414 || r->status == 431));
    CHECK(serves_normally(ts.port()));
  }

  SECTION("percent-encoded CR/LF in the target never becomes a line break") {
    auto no_injection = [](http_response const& r) {
      // The head is status line + fields; every line break in it is a real CRLF.
      std::string_view h(r.head);
      h.remove_suffix(4);
      for (std::size_t i = 0; i < h.size(); ++i) {
        if (h[i] == '\n' && (i == 0 || h[i - 1] != '\r'))
          return false;
        if (h[i] == '\r' && (i + 1 == h.size() || h[i + 1] != '\n'))
          return false;
      }
      return r.count("Injected") == 0 && r.head.find("Injected") == std::string::npos;
    };

    {
      INFO("a query value put into a response header");
      client c(ts.port());
      REQUIRE(c.send(get("/hdr?x=a%0D%0AInjected:%20yes")));
      auto r = read_response(c);
      REQUIRE(r);
      CHECK(no_injection(*r));
      CHECK(r->status >= 400); // the header cannot be set; never a split header
    }
    {
      INFO("the path of a 404");
      client c(ts.port());
      REQUIRE(c.send(get("/nope%0D%0AInjected:%20yes?q=%0d%0aInjected:%20yes")));
      auto r = read_response(c);
      REQUIRE(r);
      CHECK(r->status == 404);
      CHECK(no_injection(*r));
    }
    {
      INFO("a query value sent as event data");
      stream_client s(ts.port(), "/echo-event?x=a%0D%0Aevent:%20evil%0D%0A%0D%0Adata:%20b");
      REQUIRE(s.ok());
      CHECK(no_injection(s.head));
      REQUIRE(s.wait_closed());
      REQUIRE(s.events().size() == 1);
      CHECK(s.events()[0] ==
            sse::parsed_event{"message", "a\nevent: evil\n\ndata: b", ""});
    }
    CHECK(serves_normally(ts.port()));
  }
}

// Kept apart from the other bad inputs so that a crash here cannot hide their results.
TEST_CASE("server answers a slow header sender with 408 at header_timeout", "[server]") {
  auto o = test_options();
  o.header_timeout = 300ms;
  test_server ts(o);
  client c(ts.port());
  std::string const req = get("/ping");
  auto const t0 = steady::now();
  std::size_t i = 0;
  // One byte every 100 ms: the head would take 3 s to arrive.
  for (; i < req.size() && !c.closed(); ++i) {
    if (!c.send(req.substr(i, 1)))
      break;
    c.read_some(100ms);
    if (c.buffer().find("\r\n\r\n") != std::string::npos)
      break;
  }
  auto const answered = steady::now() - t0;
  // A slow sender keeps trickling after the answer; the server must shrug that off.
  for (int k = 0; k < 3 && !c.closed(); ++k) {
    c.send("X");
    c.read_some(100ms);
  }
  CHECK(i + 1 < req.size()); // cut off long before the request was complete
  CHECK(answered < 1500ms);
  if (auto r = take_response(c.buffer(), false))
    CHECK(r->status == 408);
  else
    CHECK(c.closed());
  CHECK(c.read_until_closed(3000ms));
  CHECK(serves_normally(ts.port()));
}

// --- 10. stray input on a stream ------------------------------------------------------------------

TEST_CASE("server ignores bytes sent after a stream's GET and cuts off a flood", "[server]") {
  test_server ts;
  stream_client s(ts.port(), "/listen");
  REQUIRE(s.ok());
  REQUIRE(eventually([&] { return ts.subscribers() == 1; }));

  // Junk, even something that looks like another request, is not answered.
  REQUIRE(s.c.send("garbage\r\n\r\n" + get("/ping") + std::string(4000, 'j')));
  ts.broker.publish(sse::event("after junk").id("1"));
  ts.broker.publish(sse::event("still going").id("2"));
  REQUIRE(s.wait_events(2));
  CHECK(s.events()[0] == expected("after junk", "1"));
  CHECK(s.events()[1] == expected("still going", "2"));
  CHECK_FALSE(s.c.closed());

  // More than 64 KiB of it ends the connection.
  s.c.send(std::string(256 * 1024, 'f'), 2000ms);
  CHECK(s.wait_closed(3000ms));
  CHECK(eventually([&] { return ts.subscribers() == 0; }, 2000ms));
  CHECK(eventually([&] { return ts.srv.connections() == 0; }, 2000ms));
  CHECK(serves_normally(ts.port()));
}

// --- 11. stop -------------------------------------------------------------------------------------

TEST_CASE("server stop flushes open streams, ends them and stops accepting", "[server]") {
  auto o = test_options();
  o.stop_timeout = 1500ms;
  test_server ts(o);
  auto const port = ts.port();

  SECTION("reading clients get every queued event, then EOF") {
    constexpr std::size_t clients = 4, n = 50;
    std::vector<std::unique_ptr<stream_client>> streams;
    for (std::size_t i = 0; i < clients; ++i) {
      streams.push_back(std::make_unique<stream_client>(port, "/listen"));
      REQUIRE(streams.back()->ok());
    }
    REQUIRE(eventually([&] { return ts.subscribers() == clients; }));
    publish_numbered(ts.broker, n); // queued before stop

    std::vector<char> clean(clients, 0);
    std::vector<std::thread> readers;
    for (std::size_t i = 0; i < clients; ++i)
      readers.emplace_back([&, i] {
        // Read to the end, then go away as a browser would.
        clean[i] = streams[i]->wait_closed(5000ms) && streams[i]->c.got_eof();
        streams[i]->c.close();
      });
    auto const t0 = steady::now();
    ts.srv.stop();
    auto const took = steady::now() - t0;
    for (auto& t : readers)
      t.join();

    CHECK(took < o.stop_timeout + 500ms);
    for (std::size_t i = 0; i < clients; ++i) {
      INFO("client " << i);
      CHECK(clean[i]);
      CHECK(streams[i]->events().size() == n);
      CHECK(first_mismatch(streams[i]->events()) == streams[i]->events().size());
      CHECK(streams[i]->parser.partial_line().empty());
    }
  }

  SECTION("a client that never reads does not hold stop past stop_timeout") {
    client stuck(port, 4096);
    REQUIRE(stuck.send(get("/listen")));
    stream_client reader(port, "/listen");
    REQUIRE(reader.ok());
    REQUIRE(eventually([&] { return ts.subscribers() == 2; }));
    // 800 KiB: more than the stuck client's socket buffers hold, less than its queue limit.
    std::string const pad(8 * 1024, 'x');
    for (int i = 0; i < 100; ++i)
      ts.broker.publish(sse::event(pad));
    // Also an idle keep-alive connection and one half-way through a request.
    client idle(port);
    client partial(port);
    REQUIRE(partial.send("GET /ping HTTP/1.1\r\n"));
    REQUIRE(eventually([&] { return ts.srv.connections() == 4; }));

    std::thread drain([&] { reader.wait_closed(5000ms); });
    auto const t0 = steady::now();
    ts.srv.stop();
    auto const took = steady::now() - t0;
    drain.join();
    CHECK(took < o.stop_timeout + 1000ms);
    CHECK(reader.c.closed());
    CHECK(idle.read_until_closed(1000ms));
    CHECK(partial.read_until_closed(1000ms));
  }

  CHECK(ts.srv.connections() == 0);
  CHECK_FALSE(can_connect(port));
  ts.srv.stop(); // idempotent
}

// --- 12. RST --------------------------------------------------------------------------------------

TEST_CASE("server frees a stream whose client resets the connection mid-stream", "[server]") {
  test_server ts;
  std::atomic<bool> publishing{true};
  std::thread publisher([&] {
    for (int i = 0; publishing; ++i) {
      ts.broker.publish(sse::event("tick " + std::to_string(i)));
      std::this_thread::sleep_for(1ms);
    }
  });

  for (int round = 0; round < 3; ++round) {
    std::vector<std::unique_ptr<stream_client>> streams;
    for (int i = 0; i < 4; ++i) {
      streams.push_back(std::make_unique<stream_client>(ts.port(), "/listen"));
      REQUIRE(streams.back()->ok());
    }
    for (auto& s : streams)
      CHECK(s->wait_events(5));
    for (auto& s : streams)
      s->c.reset();
    CHECK(eventually([&] { return ts.subscribers() == 0; }, 2000ms));
    CHECK(eventually([&] { return ts.srv.connections() == 0; }, 2000ms));
  }

  // Still streaming to a new client.
  stream_client after(ts.port(), "/listen");
  REQUIRE(after.ok());
  CHECK(after.wait_events(3));
  publishing = false;
  publisher.join();
  CHECK(serves_normally(ts.port()));
}

// --- 13. max_connections --------------------------------------------------------------------------

TEST_CASE("server answers 503 past max_connections", "[server]") {
  auto o = test_options();
  o.max_connections = 2;
  test_server ts(o);

  auto a = std::make_unique<client>(ts.port());
  client b(ts.port());
  REQUIRE(eventually([&] { return ts.srv.connections() == 2; }));

  client third(ts.port());
  auto r = read_response(third);
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(third.read_until_closed(2000ms));
  CHECK(ts.srv.connections() == 2);

  // The two that got in are served normally.
  REQUIRE(b.send(get("/ping")));
  auto rb = read_response(b);
  REQUIRE(rb);
  CHECK(rb->status == 200);

  // Once one leaves there is room again.
  a.reset();
  REQUIRE(eventually([&] { return ts.srv.connections() == 1; }, 2000ms));
  CHECK(serves_normally(ts.port()));
}

TEST_CASE("server backs off when accept runs out of descriptors, then recovers", "[server][limits]") {
  sse::server_options o;
  o.threads = 1;
  sse::server srv(o);
  srv.route("GET", "/ping", [](sse::request&) { return sse::response::text(200, "pong"); });
  srv.start();

  // Shrink this process's descriptor limit so that clients and accepted sockets share a few.
  rlimit old{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &old) == 0);
  std::size_t open_now = 0;
  for (int fd = 0; fd < 4096; ++fd)
    open_now += ::fcntl(fd, F_GETFD) != -1;
  rlimit tight = old;
  tight.rlim_cur = static_cast<rlim_t>(open_now + 16);
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &tight) == 0);
  struct restore_limit {
    rlimit r;
    ~restore_limit() { ::setrlimit(RLIMIT_NOFILE, &r); }
  } restore{old};

  std::vector<std::unique_ptr<client>> clients;
  bool exhausted = false;
  for (int i = 0; i < 64 && !exhausted; ++i) {
    try {
      clients.push_back(std::make_unique<client>(srv.port()));
    } catch (std::system_error const&) {
      exhausted = true; // our own socket() hit the limit: the server's accept has too
    }
  }
  REQUIRE(exhausted);
  REQUIRE(clients.size() >= 4);

  // While accept keeps failing with EMFILE the server must wait, not spin.
  rusage before{}, after{};
  ::getrusage(RUSAGE_SELF, &before);
  std::this_thread::sleep_for(500ms);
  ::getrusage(RUSAGE_SELF, &after);
  auto cpu_us = [](rusage const& r) {
    return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1000000L + r.ru_utime.tv_usec +
           r.ru_stime.tv_usec;
  };
  CHECK(cpu_us(after) - cpu_us(before) < 200000); // a busy accept loop would burn ~500 ms

  clients.clear();
  ::setrlimit(RLIMIT_NOFILE, &old);
  // Recovered: a new client is served (after the back-off, the queued connections are accepted).
  client c(srv.port());
  REQUIRE(c.send("GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"));
  CHECK(c.read_until([](std::string const& b) { return b.find("pong") != std::string::npos; }, 5000ms));
  srv.stop();
}
