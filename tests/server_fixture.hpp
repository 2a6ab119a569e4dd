#pragma once

// The server the integration tests run: a broker and a started sse::server with the routes
// every test uses, and helpers to publish and check numbered events.

#include "event_reader.hpp"
#include "test_client.hpp"

#include <sse/broker.hpp>
#include <sse/http.hpp>
#include <sse/server.hpp>
#include <sse/server_options.hpp>
#include <sse/stream.hpp>

#ifdef SSE_TEST_TLS
#include "tls_client.hpp"
#include <sse/tls.hpp>
#endif

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sse_test {

using namespace std::chrono_literals;


/// A new connection gets an ordinary answer: the server survived whatever came before.
inline bool serves_normally(std::uint16_t port) {
  client c(port);
  if (!c.send(get("/ping")))
    return false;
  auto r = read_response(c);
  return r && r->status == 200 && r->body == "pong\n";
}

// --- the server under test ----------------------------------------------------------------------

/// Hands handler-owned event_streams from the server's thread to the test.
class stream_slot {
public:
  void put(sse::event_stream s) {
    {
      std::lock_guard<std::mutex> lk(m_);
      streams_.push_back(std::move(s));
    }
    cv_.notify_all();
  }
  std::optional<sse::event_stream> take(ms timeout = 3000ms) {
    std::unique_lock<std::mutex> lk(m_);
    if (!cv_.wait_for(lk, timeout, [&] { return !streams_.empty(); }))
      return std::nullopt;
    sse::event_stream s = streams_.front();
    streams_.erase(streams_.begin());
    return s;
  }

private:
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<sse::event_stream> streams_;
};

/// Collects what the server reports through `server_options::error_log`.
struct error_log {
  std::mutex m;
  std::vector<std::string> lines;

  std::function<void(std::string_view)> sink() {
    return [this](std::string_view s) {
      std::lock_guard<std::mutex> lk(m);
      lines.emplace_back(s);
    };
  }
  bool has(std::string_view part) {
    std::lock_guard<std::mutex> lk(m);
    for (auto const& l : lines)
      if (l.find(part) != std::string::npos)
        return true;
    return false;
  }
};

#ifdef SSE_TEST_TLS
/// HTTPS with the process's self-signed certificate (tls_client.hpp).
inline void enable_test_tls(sse::server& srv, sse::tls::options o = {}) {
  o.cert_chain_file = self_signed().cert;
  o.private_key_file = self_signed().key;
  sse::tls::enable(srv, std::move(o));
}
#endif

inline sse::server_options test_options() {
  sse::server_options o;
  o.stop_timeout = 2000ms;
  return o;
}

/// A broker and a started server with the routes every test uses.
struct test_server {
  sse::broker broker;
  stream_slot generated; ///< streams made by GET /gen and GET /gen-big
  sse::server srv;

  /// `before_start` may add routes or protocols (sse::http2::enable) before the server starts.
  /// Built with SSE_TEST_TLS, the server speaks HTTPS with the test certificate.
  explicit test_server(sse::server_options o = test_options(),
                       std::function<void(test_server&)> const& before_start = {})
      : srv(std::move(o)) {
    srv.route("GET", "/ping", [](sse::request&) { return sse::response::text(200, "pong\n"); });
    srv.route("GET", "/n/{id}", [](sse::request& r) {
      return sse::response::text(200, std::string(r.param("id").value_or("")));
    });
    srv.route("POST", "/echo", [](sse::request& r) { return sse::response::text(200, r.body()); });
    // Puts a query value into a response header (the library must refuse CR/LF there).
    srv.route("GET", "/hdr", [](sse::request& r) {
      return sse::response::text(200, "ok\n").header("X-Echo", std::string(r.query("x").value_or("")));
    });
    // One event whose data is a query value, then the end of the stream.
    srv.route("GET", "/echo-event", [](sse::request& r) {
      sse::event_stream s;
      s.send(sse::event(std::string(r.query("x").value_or(""))));
      s.close();
      return sse::response::stream(s);
    });
    srv.route("GET", "/listen", [this](sse::request& r) {
      return sse::response::stream(broker.subscribe(r.query("topic").value_or("")));
    });
    // Small queues: 64 messages / 256 KiB, evicted on overflow.
    srv.route("GET", "/small", [this](sse::request&) {
      sse::subscribe_options so;
      so.limits = sse::queue_limits{64, 256 * 1024, sse::overflow_policy::evict};
      return sse::response::stream(broker.subscribe("", so));
    });
    // Room for long bursts: 16384 messages / 64 MiB.
    srv.route("GET", "/wide", [this](sse::request&) {
      sse::subscribe_options so;
      so.limits = sse::queue_limits{16384, 64u * 1024 * 1024, sse::overflow_policy::evict};
      return sse::response::stream(broker.subscribe("", so));
    });
    srv.route("GET", "/gen", [this](sse::request&) {
      sse::event_stream s;
      generated.put(s);
      return sse::response::stream(s);
    });
    // Room for 64 MiB, so only the server (not the queue) can make send() fail.
    srv.route("GET", "/gen-big", [this](sse::request&) {
      sse::event_stream s(sse::queue_limits{4096, 64u * 1024 * 1024, sse::overflow_policy::evict});
      generated.put(s);
      return sse::response::stream(s);
    });
#ifdef SSE_TEST_TLS
    enable_test_tls(srv);
#endif
    if (before_start)
      before_start(*this);
    srv.start();
  }

  std::uint16_t port() const { return srv.port(); }
  std::size_t subscribers() const { return broker.stats().subscribers; }
};


inline sse::parsed_event expected(std::string const& data, std::string const& id) {
  return {"message", sse_test::as_client_sees(data), id};
}

/// Data of the i-th numbered event; every tenth has mixed line breaks.
inline std::string numbered(std::size_t i) {
  if (i % 10 == 0)
    return "event " + std::to_string(i) + "\r\nsecond line\rthird\nfourth";
  return "event " + std::to_string(i);
}

/// Publishes `n` numbered events with ids 0..n-1 to the default topic.
inline void publish_numbered(sse::broker& b, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    b.publish(sse::event(numbered(i)).id(std::to_string(i)));
}

/// The first index where `got` differs from the numbered sequence, or got.size() if it is an
/// exact prefix of it.
inline std::size_t first_mismatch(std::vector<sse::parsed_event> const& got) {
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!(got[i] == expected(numbered(i), std::to_string(i))))
      return i;
  return got.size();
}

} // namespace sse_test
