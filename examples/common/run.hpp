#pragma once

// Starts a server, prints its URL and serves until SIGINT or SIGTERM: the first drains (streams
// end spread over --drain seconds, so clients come back a few at a time), a second stops at once.

#include <sse/server.hpp>
#if SSE_EXAMPLES_HTTP2
#include <sse/http2.hpp>
#endif

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/signal_set.hpp>

#include "options.hpp"

#include <csignal>
#include <functional>
#include <iostream>
#include <string>
#include <system_error>
#include <thread>

namespace examples {

inline int serve_until_signal(sse::server& srv, char const* name) {
  bool const https = !tls_cert.empty();
#if SSE_EXAMPLES_HTTP2
  sse::http2::enable(srv); // h2c by prior knowledge; with TLS, h2 by ALPN
  if (https) {
    sse::tls::options tls;
    tls.cert_chain_file = tls_cert;
    tls.private_key_file = tls_key;
    sse::tls::enable(srv, std::move(tls));
  }
#else
  if (https) {
    std::cerr << name << ": built without sse::tls and sse::http2 (Debian: libssl-dev "
                         "libnghttp2-dev), so --tls-cert is not available\n";
    return 2;
  }
#endif
  try {
    srv.start();
  } catch (std::system_error const& e) {
    std::cerr << name << ": cannot listen on " << srv.options().host << ":" << srv.options().port
              << ": " << e.what() << "\n";
    return 1;
  } catch (std::exception const& e) {
    std::cerr << name << ": cannot start: " << e.what() << "\n";
    return 1;
  }
  std::string host = srv.options().host;
  if (host.find(':') != std::string::npos)
    host = "[" + host + "]";
  std::cout << name << ": serving " << (https ? "https" : "http") << "://" << host << ":" << srv.port() << "/" << std::endl;
  asio::io_context signals_io;
  asio::signal_set signals(signals_io, SIGINT, SIGTERM);
  std::thread drainer;
  std::function<void()> await_signal = [&] {
    signals.async_wait([&](std::error_code ec, int) {
      if (ec)
        return;
      if (drainer.joinable() || drain_window.count() == 0) {
        srv.stop(); // the second signal: at once (cuts a drain short)
        return;
      }
      std::cerr << name << ": draining for " << drain_window.count() << " ms\n";
      drainer = std::thread([&] {
        srv.drain(drain_window);
        asio::post(signals_io, [&] { signals.cancel(); });
      });
      await_signal();
    });
  };
  await_signal();
  signals_io.run();
  if (drainer.joinable())
    drainer.join();
  std::cerr << name << ": stopped\n";
  return 0;
}

} // namespace examples
