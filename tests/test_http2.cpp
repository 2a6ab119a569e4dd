// HTTP/2 (sse::http2) and HTTPS (sse::tls) on real sockets: an nghttp2 client session
// (h2_client.hpp) in cleartext by prior knowledge and over TLS with ALPN "h2"; the abuse limits
// of sse::http2::options; TLS handshakes that stall or are not TLS; certificate errors.

#include "event_reader.hpp"
#include "h2_client.hpp"
#include "server_fixture.hpp"
#include "test_client.hpp"
#include "tls_client.hpp"

#include <sse/broker.hpp>
#include <sse/error.hpp>
#include <sse/http.hpp>
#include <sse/http2.hpp>
#include <sse/server.hpp>
#include <sse/server_options.hpp>
#include <sse/stream.hpp>
#include <sse/tls.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace sse_test;

namespace {

struct close_log {
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::error_code> codes;
  std::function<void(std::error_code)> sink() {
    return [this](std::error_code ec) {
      std::lock_guard<std::mutex> lk(m);
      codes.push_back(ec);
      cv.notify_all();
    };
  }
  bool wait(std::size_t n, ms timeout = 3000ms) {
    std::unique_lock<std::mutex> lk(m);
    return cv.wait_for(lk, timeout, [&] { return codes.size() >= n; });
  }
  std::vector<std::error_code> all() {
    std::lock_guard<std::mutex> lk(m);
    return codes;
  }
};

void enable_tls(sse::server& srv, sse::tls::options o = {}) {
  o.cert_chain_file = self_signed().cert;
  o.private_key_file = self_signed().key;
  sse::tls::enable(srv, std::move(o));
}

/// test_server with HTTP/2 (and TLS when asked), plus GET /proto (the request's protocol) and
/// GET /room (a subscription to "room" whose end `closes` records).
struct h2_fixture {
  close_log closes;
  bool tls;
  test_server ts;

  explicit h2_fixture(bool with_tls, sse::server_options o = test_options(),
                      sse::http2::options h = {}, sse::tls::options t = {})
      : tls(with_tls), ts(std::move(o), [&](test_server& s) {
          s.srv.route("GET", "/proto", [](sse::request& r) {
            return sse::response::text(200, std::string(r.protocol()) + (r.secure() ? " secure" : " plain"));
          });
          s.srv.route("GET", "/room", [this, &s](sse::request&) {
            auto sub = s.broker.subscribe("room");
            sub.on_close(closes.sink());
            return sse::response::stream(std::move(sub));
          });
          sse::http2::enable(s.srv, h);
          if (tls)
            enable_tls(s.srv, t);
        }) {}

  std::uint16_t port() const { return ts.port(); }
  h2_client_options client_options() const {
    h2_client_options o;
    o.tls = tls;
    return o;
  }
  h2_client connect() { return h2_client(port(), client_options()); }
  std::size_t room() const { return ts.broker.subscriber_count("room"); }
};

/// A new HTTP/2 connection gets GET /ping answered.
bool h2_serves(std::uint16_t port, bool tls) {
  try {
    h2_client_options o;
    o.tls = tls;
    h2_client c(port, o);
    auto const id = c.get("/ping");
    return c.wait_answer(id) && c.stream(id).status == 200 && c.stream(id).body == "pong\n";
  } catch (std::exception const&) {
    return false;
  }
}

std::vector<std::int32_t> open_streams(h2_client& c, std::string_view path, std::size_t n) {
  std::vector<std::int32_t> ids;
  for (std::size_t i = 0; i < n; ++i)
    ids.push_back(c.submit("GET", path));
  c.flush();
  return ids;
}

bool all_ok(h2_client& c, std::vector<std::int32_t> const& ids, ms timeout = 5000ms) {
  return c.until(
      [&] {
        for (auto id : ids)
          if (!c.stream(id).ok())
            return false;
        return true;
      },
      timeout);
}

bool all_have(h2_client& c, std::vector<std::int32_t> const& ids, std::size_t n, ms timeout = 10000ms) {
  return c.until(
      [&] {
        for (auto id : ids)
          if (c.stream(id).events().size() < n)
            return false;
        return true;
      },
      timeout);
}

/// HTTP/1.1 over TLS on a raw tls_conn: sends `request`, reads until `done(bytes)` or timeout.
template <class P>
std::string https1(std::uint16_t port, std::string_view alpn, std::string const& request, P&& done,
                   ms timeout = 3000ms) {
  client raw(port);
  int const fd = raw.fd();
  tls_conn t(fd, alpn, 3000ms);
  REQUIRE(t.ok());
  std::string_view rest = request;
  while (!rest.empty()) {
    long const n = t.write(rest.data(), rest.size());
    if (n > 0)
      rest.remove_prefix(static_cast<std::size_t>(n));
    else if (n == tls_conn::would_block) {
      pollfd p{fd, t.wants(), 0};
      ::poll(&p, 1, 100);
    } else {
      FAIL("TLS write failed");
    }
  }
  std::string got;
  auto const deadline = steady::now() + timeout;
  char buf[16 * 1024];
  while (!done(got) && steady::now() < deadline) {
    long const n = t.read(buf, sizeof buf);
    if (n > 0) {
      got.append(buf, static_cast<std::size_t>(n));
    } else if (n == tls_conn::would_block) {
      pollfd p{fd, t.wants(), 0};
      ::poll(&p, 1, 50);
    } else {
      break;
    }
  }
  return got;
}

} // namespace

// --- streams ---------------------------------------------------------------------------------------

TEST_CASE("http2: 50 streams on one connection each get every event in order, requests answered meanwhile",
          "[http2]") {
  bool const tls = GENERATE(false, true);
  CAPTURE(tls);
  h2_fixture f(tls);
  auto c = f.connect();
  auto const ids = open_streams(c, "/wide", 50);
  REQUIRE(all_ok(c, ids));
  REQUIRE(eventually([&] { return f.ts.subscribers() == 50; }));

  constexpr std::size_t n = 300;
  for (std::size_t i = 0; i < n / 2; ++i)
    f.ts.broker.publish(sse::event(numbered(i)).id(std::to_string(i)));
  auto const ping = c.get("/ping");
  auto const echo = c.post("/echo", "hello over h2");
  auto const proto = c.get("/proto");
  for (std::size_t i = n / 2; i < n; ++i)
    f.ts.broker.publish(sse::event(numbered(i)).id(std::to_string(i)));

  REQUIRE(c.wait_answer(ping));
  REQUIRE(c.wait_answer(echo));
  REQUIRE(c.wait_answer(proto));
  CHECK(c.stream(ping).status == 200);
  CHECK(c.stream(ping).body == "pong\n");
  CHECK(c.stream(echo).status == 200);
  CHECK(c.stream(echo).body == "hello over h2");
  CHECK(c.stream(proto).body == (tls ? "HTTP/2 secure" : "HTTP/2 plain"));

  REQUIRE(all_have(c, ids, n));
  for (auto id : ids) {
    CAPTURE(id);
    CHECK(c.stream(id).events().size() == n);
    CHECK(first_mismatch(c.stream(id).events()) == n);
    CHECK_FALSE(c.stream(id).closed);
  }
  CHECK_FALSE(c.goaway());
}

TEST_CASE("http2: a stream that stops reading is cut off while its siblings get everything", "[http2]") {
  bool const tls = GENERATE(false, true);
  CAPTURE(tls);
  auto o = test_options();
  o.write_timeout = 500ms;
  h2_fixture f(tls, o);
  auto c = f.connect();
  auto const siblings = open_streams(c, "/wide", 5);
  auto const stuck = c.get("/small"); // 64 messages, evicted on overflow
  REQUIRE(all_ok(c, siblings));
  REQUIRE(c.wait_head(stuck));
  REQUIRE(c.stream(stuck).ok());
  REQUIRE(eventually([&] { return f.ts.subscribers() == 6; }));
  c.pause(stuck);

  constexpr std::size_t n = 4000; // ~140 KB: well past the stuck stream's 64 KiB window
  publish_numbered(f.ts.broker, n);
  REQUIRE(all_have(c, siblings, n));
  for (auto id : siblings) {
    CHECK(c.stream(id).events().size() == n);
    CHECK(first_mismatch(c.stream(id).events()) == n);
  }
  // The stuck one: evicted by its queue, and its stream reset or ended within write_timeout.
  CHECK(eventually([&] { return f.ts.subscribers() == 5; }));
  CHECK(c.until([&] { return c.stream(stuck).closed; }, 5000ms));
  CHECK(c.stream(stuck).events().size() < n);
  CHECK(first_mismatch(c.stream(stuck).events()) == c.stream(stuck).events().size());
  CHECK(f.ts.srv.stats().streams == 5);

  // The connection and siblings go on.
  CHECK_FALSE(c.goaway());
  f.ts.broker.publish(sse::event("after").id("x"));
  REQUIRE(all_have(c, siblings, n + 1));
  auto const ping = c.get("/ping");
  REQUIRE(c.wait_answer(ping));
  CHECK(c.stream(ping).status == 200);
}

TEST_CASE("http2: a client's RST_STREAM releases that subscription only", "[http2]") {
  bool const tls = GENERATE(false, true);
  CAPTURE(tls);
  h2_fixture f(tls);
  auto c = f.connect();
  auto const ids = open_streams(c, "/room", 3);
  REQUIRE(all_ok(c, ids));
  REQUIRE(eventually([&] { return f.room() == 3; }));
  f.ts.broker.publish("room", sse::event("one"));
  REQUIRE(all_have(c, ids, 1));

  c.reset(ids[1]);
  REQUIRE(eventually([&] { return f.room() == 2; }));
  REQUIRE(f.closes.wait(1));
  auto const codes = f.closes.all();
  REQUIRE(codes.size() == 1);
  CHECK(codes[0] == sse::errc::disconnected);
  CHECK(eventually([&] { return f.ts.srv.stats().streams == 2; }));

  f.ts.broker.publish("room", sse::event("two"));
  std::vector<std::int32_t> const rest{ids[0], ids[2]};
  REQUIRE(all_have(c, rest, 2));
  CHECK(c.stream(ids[0]).events()[1].data == "two");
  CHECK(c.stream(ids[1]).events().size() == 1);
  CHECK_FALSE(c.goaway());
}

TEST_CASE("http2: stop sends GOAWAY NO_ERROR and ends every stream cleanly", "[http2]") {
  bool const tls = GENERATE(false, true);
  bool const drain = GENERATE(false, true);
  CAPTURE(tls, drain);
  h2_fixture f(tls);
  auto c = f.connect();
  auto const ids = open_streams(c, "/listen", 3);
  REQUIRE(all_ok(c, ids));
  REQUIRE(eventually([&] { return f.ts.subscribers() == 3; }));
  publish_numbered(f.ts.broker, 10);
  REQUIRE(all_have(c, ids, 10));

  std::thread stopper([&] {
    if (drain)
      f.ts.srv.drain(300ms);
    else
      f.ts.srv.stop();
  });
  bool const ended = c.until(
      [&] {
        for (auto id : ids)
          if (!c.stream(id).closed)
            return false;
        return c.goaway();
      },
      6000ms);
  stopper.join();
  REQUIRE(ended);
  CHECK(c.goaway_code() == NGHTTP2_NO_ERROR);
  CHECK(c.goaway_last_stream() >= ids.back());
  for (auto id : ids) {
    CAPTURE(id);
    CHECK(c.stream(id).end_stream);
    CHECK_FALSE(c.stream(id).rst_received);
    CHECK(c.stream(id).close_code == NGHTTP2_NO_ERROR);
    CHECK(first_mismatch(c.stream(id).events()) == 10);
    if (drain)
      CHECK(c.stream(id).parser.retry().has_value());
  }
  CHECK(c.wait_disconnected(3000ms));
}

// --- abuse -------------------------------------------------------------------------------------------

TEST_CASE("http2: rapid reset gets GOAWAY ENHANCE_YOUR_CALM while another client is served", "[http2][abuse]") {
  bool const tls = GENERATE(false, true);
  CAPTURE(tls);
  h2_fixture f(tls);
  auto victim = f.connect();
  auto const v = victim.get("/wide");
  REQUIRE(victim.wait_head(v));
  REQUIRE(victim.stream(v).ok());
  REQUIRE(eventually([&] { return f.ts.subscribers() == 1; }));

  auto attacker = f.connect();
  auto const began = std::chrono::steady_clock::now();
  std::size_t published = 0, opened = 0;
  std::int32_t last_id = 0;
  for (int i = 0; i < 5000 && !attacker.goaway() && !attacker.disconnected(); ++i) {
    auto const id = attacker.submit("GET", "/listen");
    if (id < 0)
      break;
    ++opened;
    last_id = id;
    attacker.flush();
    attacker.reset(id);
    attacker.forget(id);
    if (i % 20 == 0) {
      attacker.pump(0ms);
      f.ts.broker.publish(sse::event(numbered(published)).id(std::to_string(published)));
      ++published;
      victim.pump(0ms);
    }
  }
  CAPTURE(opened, attacker.io_error(), attacker.recv_error());
  REQUIRE(attacker.wait_goaway(3000ms));
  CHECK(attacker.goaway_code() == NGHTTP2_ENHANCE_YOUR_CALM);
  CHECK(attacker.wait_disconnected(3000ms));
  // The client may have written all its streams before the GOAWAY reached it (a slow build):
  // what counts is that the server stopped taking them near the limit (400, then 50/s).
  auto const seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  auto const processed = attacker.goaway_last_stream() / 2 + 1;
  CAPTURE(last_id, attacker.goaway_last_stream(), seconds);
  CHECK(attacker.goaway_last_stream() <= last_id);
  CHECK(processed <= 400 + 50 * seconds + 50);

  for (int i = 0; i < 10; ++i, ++published)
    f.ts.broker.publish(sse::event(numbered(published)).id(std::to_string(published)));
  REQUIRE(victim.wait_events(v, published, 5000ms));
  CHECK(first_mismatch(victim.stream(v).events()) == published);
  CHECK_FALSE(victim.goaway());
  CHECK(eventually([&] { return f.ts.subscribers() == 1; }));
  CHECK(h2_serves(f.port(), tls));
}

TEST_CASE("http2: PING, SETTINGS and empty DATA floods get GOAWAY ENHANCE_YOUR_CALM", "[http2][abuse]") {
  bool const tls = GENERATE(false, true);
  auto const kind = GENERATE(as<std::string>{}, "ping", "settings", "empty-data");
  CAPTURE(tls, kind);
  sse::http2::options h;
  h.control_burst = 50;
  h.control_rate = 10;
  h2_fixture f(tls, test_options(), h);
  auto victim = f.connect();
  auto const v = victim.get("/listen");
  REQUIRE(victim.wait_head(v));
  REQUIRE(eventually([&] { return f.ts.subscribers() == 1; }));

  auto attacker = f.connect();
  if (kind == "empty-data") {
    attacker.submit("POST", "/echo", std::string(), {}, 2000);
    attacker.flush();
  } else {
    for (int i = 0; i < 2000 && !attacker.disconnected(); ++i) {
      if (kind == "ping")
        attacker.submit_ping();
      else
        attacker.submit_settings();
      if (i % 50 == 49)
        attacker.flush();
    }
    attacker.flush();
  }
  CAPTURE(attacker.io_error(), attacker.recv_error());
  REQUIRE(attacker.wait_goaway(3000ms));
  CHECK(attacker.goaway_code() == NGHTTP2_ENHANCE_YOUR_CALM);
  CHECK(attacker.wait_disconnected(3000ms));

  publish_numbered(f.ts.broker, 5);
  REQUIRE(victim.wait_events(v, 5));
  CHECK(first_mismatch(victim.stream(v).events()) == 5);
  CHECK_FALSE(victim.goaway());
  CHECK(h2_serves(f.port(), tls));
}

TEST_CASE("http2: a few PINGs and SETTINGS are answered, not punished", "[http2][abuse]") {
  h2_fixture f(false);
  auto c = f.connect();
  for (int i = 0; i < 20; ++i) {
    c.submit_ping();
    c.submit_settings();
  }
  c.flush();
  CHECK(c.until([&] { return c.settings_acks() >= 21; }));
  CHECK_FALSE(c.goaway());
  auto const id = c.get("/ping");
  REQUIRE(c.wait_answer(id));
  CHECK(c.stream(id).status == 200);
}

TEST_CASE("http2: header list over max_header_bytes gets 431 for that stream only", "[http2][limits]") {
  bool const tls = GENERATE(false, true);
  CAPTURE(tls);
  auto o = test_options();
  o.max_header_bytes = 8192;
  h2_fixture f(tls, o);
  auto c = f.connect();
  auto const s = c.get("/listen");
  REQUIRE(c.wait_head(s));
  REQUIRE(c.stream(s).ok());
  std::string const big(4000, 'a');
  auto const id = c.get("/ping", {{"x-big-1", big}, {"x-big-2", big}, {"x-big-3", big}});
  REQUIRE(c.wait_answer(id));
  CHECK((c.stream(id).status == 431 || c.stream(id).rst_received));
  CHECK_FALSE(c.goaway());
  auto const ok = c.get("/ping", {{"x-small", "b"}});
  REQUIRE(c.wait_answer(ok));
  CHECK(c.stream(ok).status == 200);
  publish_numbered(f.ts.broker, 3);
  REQUIRE(c.wait_events(s, 3));
  CHECK_FALSE(c.stream(s).closed);
}

TEST_CASE("http2: streams past max_concurrent_streams are refused, the first ones served", "[http2][limits]") {
  bool const tls = GENERATE(false, true);
  CAPTURE(tls);
  sse::http2::options h;
  h.max_concurrent_streams = 10;
  h2_fixture f(tls, test_options(), h);

  SECTION("a client that sends before it reads the server's SETTINGS gets REFUSED_STREAM") {
    auto o = f.client_options();
    o.peer_max_concurrent_streams = 1000;
    h2_client c(f.port(), o);
    auto const ids = open_streams(c, "/listen", 15);
    REQUIRE(c.until([&] {
      for (auto id : ids)
        if (c.stream(id).status == 0 && !c.stream(id).closed)
          return false;
      return true;
    }));
    std::size_t ok = 0, refused = 0;
    for (auto id : ids) {
      if (c.stream(id).ok() && !c.stream(id).closed)
        ++ok;
      else if (c.stream(id).rst_received && c.stream(id).rst_code == NGHTTP2_REFUSED_STREAM)
        ++refused;
    }
    CHECK(ok == 10);
    CHECK(refused == 5);
    CHECK(eventually([&] { return f.ts.srv.stats().streams == 10; }));
    publish_numbered(f.ts.broker, 2);
    std::vector<std::int32_t> served;
    for (auto id : ids)
      if (c.stream(id).ok())
        served.push_back(id);
    REQUIRE(all_have(c, served, 2));
    CHECK_FALSE(c.goaway());
  }
  SECTION("nghttp2's client keeps to the limit: the rest wait for a free stream") {
    auto c = f.connect();
    REQUIRE(c.until([&] { return c.settings_received(); }));
    auto const ids = open_streams(c, "/listen", 15);
    auto count_ok = [&] {
      std::size_t n = 0;
      for (auto id : ids)
        n += c.stream(id).ok() && !c.stream(id).closed;
      return n;
    };
    REQUIRE(c.until([&] { return count_ok() == 10; }));
    CHECK_FALSE(c.until([&] { return count_ok() > 10; }, 300ms));
    CHECK(f.ts.srv.stats().streams == 10);
    c.reset(ids[0]);
    c.reset(ids[1]);
    CHECK(c.until([&] { return c.stream(ids[10]).ok() && c.stream(ids[11]).ok(); }));
    CHECK(c.until([&] { return count_ok() == 10; }));
  }
}

TEST_CASE("http2: a request body over max_body gets 413", "[http2][limits]") {
  bool const tls = GENERATE(false, true);
  CAPTURE(tls);
  auto o = test_options();
  o.max_body = 1000;
  h2_fixture f(tls, o);
  auto c = f.connect();
  std::string const big(5000, 'x');
  auto const declared = c.post("/echo", big, {{"content-length", "5000"}});
  auto const undeclared = c.post("/echo", big);
  auto const fine = c.post("/echo", std::string(900, 'y'));
  REQUIRE(c.wait_answer(declared));
  REQUIRE(c.wait_answer(undeclared));
  REQUIRE(c.wait_answer(fine));
  CHECK(c.stream(declared).status == 413);
  CHECK(c.stream(undeclared).status == 413);
  CHECK(c.stream(fine).status == 200);
  CHECK(c.stream(fine).body == std::string(900, 'y'));
  CHECK_FALSE(c.goaway());
}

TEST_CASE("http2: a connection window never opened is cut off after write_timeout", "[http2][limits]") {
  bool const tls = GENERATE(false, true);
  CAPTURE(tls);
  auto o = test_options();
  o.write_timeout = 500ms;
  h2_fixture f(tls, o);
  auto other = f.connect();
  auto const v = other.get("/wide");
  auto co = f.client_options();
  co.freeze_connection_window = true;
  h2_client frozen(f.port(), co);
  auto const s1 = frozen.get("/wide");
  auto const s2 = frozen.get("/wide");
  REQUIRE(frozen.wait_head(s1));
  REQUIRE(frozen.wait_head(s2));
  REQUIRE(other.wait_head(v));
  REQUIRE(eventually([&] { return f.ts.subscribers() == 3; }));

  constexpr std::size_t n = 4000;
  publish_numbered(f.ts.broker, n);
  REQUIRE(other.wait_events(v, n, 10000ms));
  CHECK(first_mismatch(other.stream(v).events()) == n);
  // Both of the frozen client's streams are reset (or its connection closed) after write_timeout.
  CHECK(frozen.until([&] {
    return frozen.disconnected() || (frozen.stream(s1).closed && frozen.stream(s2).closed);
  }, 5000ms));
  CHECK(eventually([&] { return f.ts.subscribers() == 1; }));
  CHECK(eventually([&] { return f.ts.srv.stats().streams == 1; }));
  CHECK_FALSE(other.goaway());
  CHECK(h2_serves(f.port(), tls));
}

// --- TLS ---------------------------------------------------------------------------------------------

TEST_CASE("tls: a handshake that stalls is closed after handshake_timeout", "[tls]") {
  sse::tls::options t;
  t.handshake_timeout = 300ms;
  h2_fixture f(true, test_options(), {}, t);
  SECTION("nothing sent") {
    client raw(f.port());
    auto const t0 = steady::now();
    REQUIRE(raw.read_until_closed(3000ms));
    CHECK(steady::now() - t0 >= 250ms);
  }
  SECTION("a partial ClientHello") {
    client raw(f.port());
    REQUIRE(raw.send(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11)));
    REQUIRE(raw.read_until_closed(3000ms));
  }
  CHECK(eventually([&] { return f.ts.srv.stats().connections == 0; }));
  CHECK(h2_serves(f.port(), true));
}

TEST_CASE("tls: a plain HTTP/1.1 request to the TLS port is closed, the server goes on", "[tls]") {
  h2_fixture f(true);
  client raw(f.port());
  REQUIRE(raw.send(get("/ping")));
  REQUIRE(raw.read_until_closed(3000ms));
  CHECK(raw.buffer().find("pong") == std::string::npos);
  CHECK(h2_serves(f.port(), true));
}

TEST_CASE("tls: HTTPS HTTP/1.1 (ALPN http/1.1 or none) serves requests and streams", "[tls]") {
  h2_fixture f(true);
  std::string const alpn = GENERATE(std::string("\x08http/1.1", 9), std::string());
  CAPTURE(alpn.size());
  auto const r = https1(f.port(), alpn, get("/proto"), [](std::string const& b) {
    return b.find("HTTP/1.1 secure") != std::string::npos;
  });
  CHECK(r.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(r.find("HTTP/1.1 secure") != std::string::npos);

  auto const s = https1(f.port(), alpn, get("/echo-event?x=hello"), [](std::string const& b) {
    return b.find("\r\n0\r\n\r\n") != std::string::npos;
  });
  CHECK(s.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(s.find("text/event-stream") != std::string::npos);
  CHECK(s.find("data: hello\n\n") != std::string::npos);
  CHECK(s.find("\r\n0\r\n\r\n") != std::string::npos);
}

namespace {
std::string write_file(std::string const& name, std::string const& text) {
  std::string const path = self_signed().dir + "/" + name;
  std::ofstream(path) << text;
  return path;
}

std::string start_error(sse::tls::options t) {
  sse::server srv(test_options());
  srv.route("GET", "/ping", [](sse::request&) { return sse::response::text(200, "pong\n"); });
  sse::tls::enable(srv, std::move(t));
  try {
    srv.start();
  } catch (std::runtime_error const& e) {
    return e.what();
  }
  srv.stop();
  return "(no exception)";
}
} // namespace

TEST_CASE("tls: a bad certificate or key makes start() throw naming the file", "[tls]") {
  auto const& good = self_signed();
  sse::tls::options t;
  t.cert_chain_file = good.cert;
  t.private_key_file = good.key;

  SECTION("certificate not PEM") {
    t.cert_chain_file = write_file("bad-cert.pem", "not a certificate\n");
    auto const e = start_error(t);
    CHECK_THAT(e, Catch::Contains(t.cert_chain_file));
  }
  SECTION("certificate missing") {
    t.cert_chain_file = good.dir + "/missing-cert.pem";
    CHECK_THAT(start_error(t), Catch::Contains(t.cert_chain_file));
  }
  SECTION("key not PEM") {
    t.private_key_file = write_file("bad-key.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    CHECK_THAT(start_error(t), Catch::Contains(t.private_key_file));
  }
  SECTION("key of another certificate") {
    std::string const other = good.dir + "/other-key.pem";
    std::string const cmd = "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out '" + other +
                            "' >/dev/null 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
    t.private_key_file = other;
    auto const e = start_error(t);
    CHECK_THAT(e, Catch::Contains(other));
    std::remove(other.c_str());
  }
  std::remove((good.dir + "/bad-cert.pem").c_str());
  std::remove((good.dir + "/bad-key.pem").c_str());
}

// --- stats -------------------------------------------------------------------------------------------

TEST_CASE("http2: server stats count HTTP/2 streams and their release", "[http2]") {
  bool const tls = GENERATE(false, true);
  CAPTURE(tls);
  h2_fixture f(tls);
  auto const before = f.ts.srv.stats();
  {
    auto c = f.connect();
    auto const ids = open_streams(c, "/listen", 5);
    REQUIRE(all_ok(c, ids));
    CHECK(eventually([&] { return f.ts.srv.stats().streams == 5; }));
    auto const st = f.ts.srv.stats();
    CHECK(st.streams_opened - before.streams_opened == 5);
    // Eventually: a stray connect (another process's client to a port it used before) may come.
    CHECK(eventually([&] { return f.ts.srv.stats().connections == 1; }));
    c.reset(ids[0]);
    c.reset(ids[1]);
    CHECK(eventually([&] { return f.ts.srv.stats().streams == 3; }));
    auto const p = c.get("/ping");
    REQUIRE(c.wait_answer(p));
  }
  CHECK(eventually([&] { return f.ts.srv.stats().streams == 0 && f.ts.srv.stats().connections == 0; }));
  CHECK(eventually([&] { return f.ts.subscribers() == 0; }));
  auto const after = f.ts.srv.stats();
  CHECK(after.requests[1] - before.requests[1] >= 6);
}

// --- h2c beside HTTP/1.1, idle connections -----------------------------------------------------------

TEST_CASE("http2: h2c by prior knowledge and HTTP/1.1 share the cleartext port", "[http2]") {
  h2_fixture f(false);
  stream_client h1(f.port(), "/listen");
  REQUIRE(h1.ok());
  auto c = f.connect();
  auto const s = c.get("/listen");
  REQUIRE(c.wait_head(s));
  REQUIRE(c.stream(s).ok());
  REQUIRE(eventually([&] { return f.ts.subscribers() == 2; }));
  publish_numbered(f.ts.broker, 20);
  REQUIRE(h1.wait_events(20));
  REQUIRE(c.wait_events(s, 20));
  CHECK(first_mismatch(h1.events()) == 20);
  CHECK(first_mismatch(c.stream(s).events()) == 20);

  client plain(f.port());
  REQUIRE(plain.send(get("/proto")));
  auto r = read_response(plain);
  REQUIRE(r);
  CHECK(r->body == "HTTP/1.1 plain");
}

TEST_CASE("http2: an idle connection gets GOAWAY NO_ERROR at idle_timeout", "[http2]") {
  bool const tls = GENERATE(false, true);
  CAPTURE(tls);
  auto o = test_options();
  o.idle_timeout = 300ms;
  h2_fixture f(tls, o);
  auto c = f.connect();
  auto const p = c.get("/ping");
  REQUIRE(c.wait_answer(p));
  auto const t0 = steady::now();
  REQUIRE(c.wait_goaway(3000ms));
  CHECK(steady::now() - t0 >= 200ms);
  CHECK(c.goaway_code() == NGHTTP2_NO_ERROR);
  CHECK(c.wait_disconnected(3000ms));
  CHECK(eventually([&] { return f.ts.srv.stats().connections == 0; }));
}

TEST_CASE("tls: past max_connections a connection is closed without a cleartext 503", "[tls]") {
  // The TLS counterpart of test_server's "answers 503 past max_connections" (left out of
  // test_server_tls): over TLS the server cannot write its 503 before a handshake, so it closes.
  auto o = test_options();
  o.max_connections = 2;
  h2_fixture f(true, o);
  auto a = std::make_unique<h2_client>(f.port(), f.client_options());
  auto b = f.connect();
  REQUIRE(eventually([&] { return f.ts.srv.connections() == 2; }));
  client third(f.port());
  REQUIRE(third.read_until_closed(3000ms));
  CHECK(third.buffer().find("503") == std::string::npos);
  CHECK(f.ts.srv.stats().connections_rejected >= 1);
  auto const p = b.get("/ping");
  REQUIRE(b.wait_answer(p));
  CHECK(b.stream(p).status == 200);
  a.reset();
  REQUIRE(eventually([&] { return f.ts.srv.connections() == 1; }));
  CHECK(h2_serves(f.port(), true));
}
