// Tests of the Prometheus metrics (sse/metrics.hpp): the text follows the exposition format,
// every counter of server_stats and broker_stats lands in its own sample, and over real
// sockets the values move as clients connect, publish and leave.

#include "server_fixture.hpp"
#include "test_client.hpp"

#include <sse/broker.hpp>
#include <sse/metrics.hpp>
#include <sse/server.hpp>
#include <sse/server_stats.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace {

using namespace sse_test;

/// The samples of an exposition, "name" or "name{labels}" to value, after checking the text
/// against the format: every family has one HELP and one TYPE line before its samples, a
/// counter's name ends in _total, a value is a whole number, and the text ends with a newline.
std::map<std::string, std::uint64_t> parse_exposition(std::string const& text) {
  static std::regex const help(R"(# HELP ([a-z_]+) \S.*)");
  static std::regex const type(R"(# TYPE ([a-z_]+) (counter|gauge))");
  static std::regex const sample(R"(([a-z_]+)(\{code="[1-5]xx"\})? ([0-9]+))");
  REQUIRE(!text.empty());
  REQUIRE(text.back() == '\n');
  std::map<std::string, std::uint64_t> samples;
  std::set<std::string> helped, typed;
  std::string current; // the family whose samples may follow
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    INFO("line: " << line);
    std::smatch m;
    if (std::regex_match(line, m, help)) {
      CHECK(helped.insert(m[1]).second);
      CHECK(typed.count(m[1]) == 0); // HELP first
      current.clear();
    } else if (std::regex_match(line, m, type)) {
      CHECK(helped.count(m[1]) == 1);
      CHECK(typed.insert(m[1]).second);
      bool const total = std::string(m[1]).size() > 6 &&
                         std::string(m[1]).compare(std::string(m[1]).size() - 6, 6, "_total") == 0;
      CHECK(total == (m[2] == "counter"));
      current = m[1];
    } else if (std::regex_match(line, m, sample)) {
      CHECK(m[1] == current);
      CHECK(samples.emplace(std::string(m[1]) + std::string(m[2]), std::stoull(m[3])).second);
    } else {
      FAIL("not a line of the exposition format");
    }
  }
  return samples;
}

std::string code(char cls) {
  return std::string("sse_requests_total{code=\"") + cls + "xx\"}";
}

/// GET /metrics on a keep-alive connection: the parsed samples.
struct scraper {
  explicit scraper(std::uint16_t port) : c(port) {}

  std::map<std::string, std::uint64_t> scrape() {
    before = c.bytes_received();
    ++scrapes;
    REQUIRE(c.send(get("/metrics")));
    auto r = read_response(c);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->header("Content-Type") == std::string("text/plain; version=0.0.4; charset=utf-8"));
    return parse_exposition(r->body);
  }
  /// Scrapes until `pred(samples)` holds (the server's threads count on their own time).
  template <class P>
  std::map<std::string, std::uint64_t> scrape_until(P&& pred) {
    std::map<std::string, std::uint64_t> m;
    bool const ok = eventually([&] { return pred(m = scrape()); });
    CHECK(ok);
    return m;
  }

  client c;
  std::size_t before = 0; ///< bytes received before the latest scrape's response
  std::uint64_t scrapes = 0;
};

} // namespace

TEST_CASE("metrics text puts every counter in its own sample with HELP and TYPE", "[metrics]") {
  sse::server_stats s;
  s.connections = 11;
  s.streams = 12;
  s.connections_accepted = 13;
  s.connections_rejected = 14;
  s.streams_opened = 15;
  s.bytes_written = 16;
  s.requests = {17, 18, 19, 20, 21};
  sse::broker_stats b;
  b.subscribers = 31;
  b.topics = 32;
  b.published = 33;
  b.delivered = 34;
  b.dropped = 35;
  b.evicted = 36;
  b.refused = 37;
  b.history_events = 38;
  b.history_bytes = 39;

  std::string text;
  sse::append_metrics(text, s);
  sse::append_metrics(text, b);
  auto const m = parse_exposition(text);
  std::map<std::string, std::uint64_t> const want = {
      {"sse_connections", 11},
      {"sse_streams", 12},
      {"sse_connections_accepted_total", 13},
      {"sse_connections_rejected_total", 14},
      {"sse_streams_opened_total", 15},
      {"sse_bytes_written_total", 16},
      {code('1'), 17},
      {code('2'), 18},
      {code('3'), 19},
      {code('4'), 20},
      {code('5'), 21},
      {"sse_subscribers", 31},
      {"sse_topics", 32},
      {"sse_events_published_total", 33},
      {"sse_events_delivered_total", 34},
      {"sse_events_dropped_total", 35},
      {"sse_subscribers_evicted_total", 36},
      {"sse_events_refused_total", 37},
      {"sse_history_events", 38},
      {"sse_history_bytes", 39},
  };
  CHECK(m == want);
  CHECK(s.requests_total() == 17 + 18 + 19 + 20 + 21);

  auto const r = sse::metrics_response(text);
  CHECK(r.status() == 200);
  CHECK(r.body() == text);
}

TEST_CASE("metrics move as clients connect, publish and leave", "[metrics][server]") {
  sse::broker broker;
  broker.set_max_message_bytes(1024);
  auto o = test_options();
  o.threads = 2; // the snapshot sums the threads' counters
  o.retry = std::chrono::milliseconds(0);
  sse::server srv(o);
  srv.route("GET", "/listen",
            [&](sse::request&) { return sse::response::stream(broker.subscribe("room")); });
  srv.route("GET", "/metrics", sse::metrics_handler(srv, broker));
  srv.start();

  scraper s(srv.port());
  // Everything the server wrote went to one of these clients: the scraper's earlier responses
  // and the stream's bytes (a scrape counts the bytes before its own response).
  std::size_t streamed = 0;
  auto written_so_far = [&] { return s.before + streamed; };

  auto m = s.scrape_until([](auto const& x) { return x.at("sse_connections") == 1; });
  CHECK(m.at("sse_streams") == 0);
  CHECK(m.at("sse_subscribers") == 0);
  CHECK(m.at("sse_topics") == 0);
  CHECK(m.at("sse_events_published_total") == 0);
  CHECK(m.at(code('2')) == 0);

  SECTION("a stream opens, gets events and leaves") {
    auto listener = std::make_unique<stream_client>(srv.port(), "/listen");
    REQUIRE(listener->ok());
    m = s.scrape_until([](auto const& x) { return x.at("sse_subscribers") == 1; });
    CHECK(m.at("sse_connections") == 2);
    CHECK(m.at("sse_connections_accepted_total") == 2);
    CHECK(m.at("sse_streams") == 1);
    CHECK(m.at("sse_streams_opened_total") == 1);
    CHECK(m.at("sse_topics") == 1);
    CHECK(m.at(code('2')) == s.scrapes - 1 + 1); // the scrapes before this one, and the stream

    for (int i = 0; i < 3; ++i)
      broker.publish("room", sse::event("hello " + std::to_string(i)));
    REQUIRE(listener->wait_events(3));
    streamed = listener->c.bytes_received();
    // The writer counts a write once the socket took it, so the client may read the bytes a
    // moment before they are counted: wait for the count, which is exact once it settles.
    m = s.scrape_until(
        [&](auto const& x) { return x.at("sse_bytes_written_total") == written_so_far(); });
    CHECK(m.at("sse_events_published_total") == 3);
    CHECK(m.at("sse_events_delivered_total") == 3);

    listener.reset(); // the client leaves
    // A snapshot is not one instant: the stream ends a moment before its connection closes.
    m = s.scrape_until(
        [](auto const& x) { return x.at("sse_streams") == 0 && x.at("sse_connections") == 1; });
    CHECK(m.at("sse_subscribers") == 0);
    CHECK(m.at("sse_topics") == 0);
    CHECK(m.at("sse_connections") == 1);
    CHECK(m.at("sse_streams_opened_total") == 1);
    CHECK(m.at("sse_bytes_written_total") == written_so_far());
    CHECK(srv.stats().streams == 0);
  }

  SECTION("answers count by status class") {
    REQUIRE(s.c.send(get("/nowhere")));
    auto r = read_response(s.c);
    REQUIRE(r);
    CHECK(r->status == 404);
    REQUIRE(s.c.send(post("/metrics", "")));
    r = read_response(s.c);
    REQUIRE(r);
    CHECK(r->status == 405);
    m = s.scrape_until(
        [&](auto const& x) { return x.at("sse_bytes_written_total") == written_so_far(); });
    CHECK(m.at(code('4')) == 2);
    CHECK(m.at(code('2')) == s.scrapes - 1);
    CHECK(m.at(code('5')) == 0);
    auto const st = srv.stats();
    CHECK(st.requests[3] == 2);
    CHECK(st.requests_total() == s.scrapes + 2); // the last scrape is answered by now
  }

  SECTION("the broker's losses show: dropped, evicted, refused, history") {
    sse::subscribe_options drop;
    drop.limits = sse::queue_limits{1, 1024 * 1024, sse::overflow_policy::drop_oldest};
    auto dropping = broker.subscribe("slow", drop);
    sse::subscribe_options evict;
    evict.limits = sse::queue_limits{1, 1024 * 1024, sse::overflow_policy::evict};
    auto evicted = broker.subscribe("slow", evict);
    m = s.scrape();
    CHECK(m.at("sse_subscribers") == 2);
    CHECK(m.at("sse_topics") == 1);
    CHECK(m.at("sse_streams") == 0); // subscribers, but no streams

    broker.publish("slow", sse::event("one"));
    broker.publish("slow", sse::event("two"));
    CHECK_THROWS_AS(broker.publish("slow", sse::event(std::string(2000, 'x'))),
                    sse::message_too_large);
    m = s.scrape();
    CHECK(m.at("sse_events_published_total") == 2);
    CHECK(m.at("sse_events_dropped_total") == 1);
    CHECK(m.at("sse_subscribers_evicted_total") == 1);
    CHECK(m.at("sse_events_refused_total") == 1);
    CHECK(m.at("sse_subscribers") == 1);
    CHECK(m.at("sse_history_bytes") == 0);

    broker.set_history(sse::history_limits{10, 64 * 1024, std::chrono::minutes(1)});
    broker.publish("slow", sse::event("kept"));
    m = s.scrape();
    CHECK(m.at("sse_history_events") == 1);
    CHECK(m.at("sse_history_bytes") > 0);
  }
}

TEST_CASE("metrics count a connection refused at max_connections", "[metrics][server]") {
  auto o = test_options();
  o.max_connections = 1;
  sse::server srv(o);
  srv.route("GET", "/metrics", sse::metrics_handler(srv));
  srv.start();
  scraper s(srv.port());
  s.scrape(); // the one connection is taken
  client extra(srv.port());
  auto r = read_response(extra);
  REQUIRE(r);
  CHECK(r->status == 503);
  auto const m = s.scrape_until([&](auto const& x) {
    return x.at("sse_connections_rejected_total") == 1 &&
           x.at("sse_bytes_written_total") == s.before + extra.bytes_received();
  });
  CHECK(m.at("sse_connections_accepted_total") == 1);
  CHECK(m.count("sse_subscribers") == 0); // no broker, no broker metrics
}

TEST_CASE("server stats are zero before start and readable after stop", "[metrics][server]") {
  sse::server srv(test_options());
  srv.route("GET", "/ping", [](sse::request&) { return sse::response::text(200, "pong\n"); });
  auto st = srv.stats();
  CHECK(st.connections == 0);
  CHECK(st.requests_total() == 0);
  CHECK(st.bytes_written == 0);
  srv.start();
  {
    client c(srv.port());
    REQUIRE(c.send(get("/ping")));
    REQUIRE(read_response(c));
  }
  srv.stop();
  st = srv.stats();
  CHECK(st.requests[1] == 1);
  CHECK(st.connections_accepted == 1);
  CHECK(st.bytes_written > 0);
}
