#pragma once

// Starts a server, prints its URL and serves until SIGINT or SIGTERM.

#include <sse/server.hpp>

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>

#include <csignal>
#include <iostream>
#include <string>

namespace examples {

inline int serve_until_signal(sse::server& srv, char const* name) {
  try {
    srv.start();
  } catch (std::exception const& e) {
    std::cerr << name << ": cannot listen on " << srv.options().host << ":" << srv.options().port
              << ": " << e.what() << "\n";
    return 1;
  }
  std::string host = srv.options().host;
  if (host.find(':') != std::string::npos)
    host = "[" + host + "]";
  std::cout << name << ": serving http://" << host << ":" << srv.port() << "/" << std::endl;
  asio::io_context signals_io;
  asio::signal_set signals(signals_io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code, int) { srv.stop(); });
  signals_io.run();
  std::cerr << name << ": stopped\n";
  return 0;
}

} // namespace examples
