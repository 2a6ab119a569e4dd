#pragma once

// What the sse::client tests share: an io_context on a thread, and a recorder of everything
// a client reports.

#include <sse/client.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace sse_test {

/// An io_context run by one thread until destroyed (declare it before the clients).
struct client_runner {
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread{[this] { io.run(); }};
  ~client_runner() {
    work.reset();
    io.stop();
    thread.join();
  }
};

/// Everything one client told: events, opens, reconnects (why, and the wait), the end.
struct recorder {
  std::mutex m;
  std::condition_variable cv;
  std::vector<sse::parsed_event> events;
  int opens = 0;
  std::vector<std::pair<std::error_code, std::chrono::milliseconds>> reconnects;
  std::optional<std::error_code> closed;

  void attach(sse::client& c) {
    c.on_event([this](sse::parsed_event ev) { note([&] { events.push_back(std::move(ev)); }); });
    c.on_open([this] { note([&] { ++opens; }); });
    c.on_reconnect([this](std::error_code ec, std::chrono::milliseconds d) {
      note([&] { reconnects.emplace_back(ec, d); });
    });
    c.on_close([this](std::error_code ec) { note([&] { closed = ec; }); });
  }

  /// Attaches to `c` and starts it.
  void start(sse::client& c) {
    attach(c);
    c.start();
  }

  /// Waits until `pred()` (read under the lock) holds.
  template <class Pred>
  bool wait(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock<std::mutex> lk(m);
    return cv.wait_for(lk, timeout, pred);
  }

  /// Waits until the client has stopped for good.
  bool wait_closed(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    return wait([this] { return closed.has_value(); }, timeout);
  }

private:
  template <class F>
  void note(F f) {
    {
      std::lock_guard<std::mutex> lk(m);
      f();
    }
    cv.notify_all();
  }
};

/// A client of `url` that reconnects quickly (the tests' servers send retry: 100 ms or less).
inline sse::client_options quick_client(std::string url) {
  sse::client_options o;
  o.url = std::move(url);
  o.retry = std::chrono::milliseconds(50);
  o.max_reconnect_delay = std::chrono::milliseconds(200);
  return o;
}

} // namespace sse_test
