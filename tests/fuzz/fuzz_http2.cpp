// libFuzzer harness for the server's HTTP/2 side (sse::http2, on nghttp2): each input is what
// one h2c client sends after the connection preface. The server must not crash, leak or hang
// on it, must close the connection once the client has finished sending, and must then hold no
// connection and no subscriber: nothing a client sends leaves anything behind.
//
// The server runs on this harness's io_context, with an ordinary route, a POST that echoes its
// body, an asynchronous route, and a stream route on a broker that publishes after every input.

#include <sse/broker.hpp>
#include <sse/http2.hpp>
#include <sse/server.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <array>
#include <chrono>
#include <functional>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

namespace {

using namespace std::chrono_literals;

constexpr std::string_view preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct rig {
  asio::io_context io;
  sse::broker broker;
  std::unique_ptr<sse::server> srv;

  rig() {
    sse::server_options o;
    o.port = 0;
    o.heartbeat = 50ms;
    o.retry = 0ms;
    o.error_log = [](std::string_view) {}; // handlers never fail here; misuse would be ours
    srv = std::make_unique<sse::server>(io, o);
    srv->route("GET", "/ping", [](sse::request&) { return sse::response::text(200, "pong\n"); });
    srv->route("POST", "/echo", [](sse::request& r) { return sse::response::text(200, r.body()); });
    srv->route("GET", "/later", [](sse::request&, sse::responder res) {
      res.send(sse::response::text(200, "later\n"));
    });
    srv->route("GET", "/events", [this](sse::request& r) {
      sse::subscribe_options so;
      so.last_event_id = r.last_event_id();
      return sse::response::stream(broker.subscribe("t", so));
    });
    sse::http2::options h2;
    h2.max_concurrent_streams = 16;
    sse::http2::enable(*srv, h2);
    srv->start();
  }

  [[noreturn]] static void fail(char const* what) {
    std::fprintf(stderr, "fuzz_http2: %s\n", what);
    std::abort();
  }

  void run_until(std::function<bool()> const& done, std::chrono::milliseconds limit,
                 char const* what) {
    auto const deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline)
        fail(what);
      io.run_for(2ms);
    }
  }

  void one(std::uint8_t const* data, std::size_t size) {
    asio::ip::tcp::socket c(io);
    // Asynchronously: libFuzzer's -timeout alarm interrupts a blocking connect (EINTR).
    bool connected = false;
    std::error_code connect_error;
    c.async_connect({asio::ip::make_address("127.0.0.1"), srv->port()},
                    [&](std::error_code ec) {
                      connect_error = ec;
                      connected = true;
                    });
    run_until([&] { return connected; }, 10s, "the server's port did not accept");
    if (connect_error)
      fail("connecting to the server failed");
    std::string bytes(preface);
    bytes.append(reinterpret_cast<char const*>(data), size);
    bool written = false, ended = false;
    asio::async_write(c, asio::buffer(bytes), [&](std::error_code, std::size_t) {
      std::error_code ec;
      c.shutdown(asio::ip::tcp::socket::shutdown_send, ec); // the client has said everything
      written = true;
    });
    broker.publish("t", sse::event("tick").id(std::to_string(++published_)));
    // Read (and drop) what the server answers until it closes the connection.
    auto buf = std::make_shared<std::array<char, 16384>>();
    std::function<void()> read = [&] {
      c.async_read_some(asio::buffer(*buf), [&, buf](std::error_code ec, std::size_t) {
        if (ec) {
          ended = true;
          return;
        }
        read();
      });
    };
    read();
    run_until([&] { return written && ended; }, 10s, "the server did not close the connection");
    c.close();
    run_until([&] { return srv->connections() == 0 && broker.stats().subscribers == 0; }, 10s,
              "a connection or a subscriber outlived its client");
  }

  std::uint64_t published_ = 0;
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  // Never destroyed: the server runs on this io_context, which nobody runs once libFuzzer is
  // done, so a stop at exit would wait for itself. Still reachable, so no leak is reported.
  static rig& r = *new rig;
  r.one(data, size);
  return 0;
}
