#pragma once

// A small blocking HTTP client for integration tests: raw bytes in and out over loopback, with
// deadlines, and an event-stream reader built on the independent parser.

#include "event_stream_parser.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

namespace sse_test {

class client {
public:
  explicit client(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("test client: connect failed");
  }
  client(client const&) = delete;
  client& operator=(client const&) = delete;
  ~client() { close(); }

  void close() {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }

  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      auto const n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0)
        throw std::runtime_error("test client: send failed");
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  /// Reads what arrives within `wait`; false on EOF or error.
  bool read_some(std::chrono::milliseconds wait) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0)
      return true;
    char buf[65536];
    auto const n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    received_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  /// Reads until `done(received())` holds or `timeout` passes; returns whether it held.
  template <class Pred>
  bool read_until(Pred done, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto const end = std::chrono::steady_clock::now() + timeout;
    while (!done(received_)) {
      if (std::chrono::steady_clock::now() >= end || !read_some(std::chrono::milliseconds(20)))
        return done(received_);
    }
    return true;
  }

  std::string const& received() const noexcept { return received_; }
  bool eof() const noexcept { return eof_; }
  int fd() const noexcept { return fd_; }

private:
  int fd_ = -1;
  std::string received_;
  bool eof_ = false;
};

/// An event-stream subscription over HTTP: sends the GET, checks the head, parses events.
class stream_client {
public:
  stream_client(std::uint16_t port, std::string const& target, std::string const& extra_headers = {})
      : c_(port) {
    c_.send("GET " + target + " HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n" +
            extra_headers + "\r\n");
    if (!c_.read_until([](std::string const& r) { return r.find("\r\n\r\n") != std::string::npos; }))
      throw std::runtime_error("stream client: no response head");
    auto const end = c_.received().find("\r\n\r\n");
    head_ = c_.received().substr(0, end);
    consumed_ = end + 4;
  }

  std::string const& head() const noexcept { return head_; }

  /// Parses until at least `n` events have arrived (or the timeout passes).
  std::vector<parsed_event> const& wait_events(std::size_t n,
                                               std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto const end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      feed();
      if (parser_.events().size() >= n || std::chrono::steady_clock::now() >= end)
        return parser_.events();
      if (!c_.read_some(std::chrono::milliseconds(20))) {
        feed();
        return parser_.events();
      }
    }
  }

  event_stream_parser const& parser() {
    feed();
    return parser_;
  }
  client& raw() noexcept { return c_; }

private:
  void feed() {
    if (c_.received().size() > consumed_) {
      parser_.feed(std::string_view(c_.received()).substr(consumed_));
      consumed_ = c_.received().size();
    }
  }

  client c_;
  std::string head_;
  std::size_t consumed_ = 0;
  event_stream_parser parser_;
};

/// One request on a fresh connection; returns the whole response (read until close).
inline std::string http_request(std::uint16_t port, std::string const& raw,
                                std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  client c(port);
  c.send(raw);
  c.read_until([&](std::string const&) { return c.eof(); }, timeout);
  return c.received();
}

/// Polls `cond` until it holds or `timeout` passes (for state the server changes on its own).
template <class Pred>
bool eventually(Pred cond, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  auto const end = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= end)
      return cond();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

} // namespace sse_test
