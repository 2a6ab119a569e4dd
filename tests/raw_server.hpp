#pragma once

// A hand-written HTTP server for the client tests: it answers each connection with whatever
// bytes a test writes, split as it likes, or with nothing at all. Blocking sockets, one
// thread per connection; records every request head.

#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace sse_test {

class raw_server {
public:
  using tcp = asio::ip::tcp;
  /// One connection: `conn` is its index (0, 1, ...), `head` its request head.
  struct connection {
    raw_server& server;
    tcp::socket& socket;
    std::size_t index;
    std::string head;

    /// Writes `bytes` at once (TCP_NODELAY), so that separate writes tend to arrive as
    /// separate reads. false once the client has gone.
    bool write(std::string_view bytes) {
      std::error_code ec;
      asio::write(socket, asio::buffer(bytes), ec);
      return !ec;
    }
    /// Writes `bytes` one at a time, pausing between them: every split a reader can see.
    bool write_bytewise(std::string_view bytes, std::chrono::microseconds pause = std::chrono::microseconds(200)) {
      for (char c : bytes) {
        if (!write(std::string_view(&c, 1)))
          return false;
        std::this_thread::sleep_for(pause);
      }
      return true;
    }
    /// Blocks until the client closes (or the server stops), reading and dropping its bytes.
    void wait_for_close() {
      char buf[256];
      std::error_code ec;
      while (!ec)
        socket.read_some(asio::buffer(buf), ec);
    }
  };
  using handler = std::function<void(connection&)>;

  explicit raw_server(handler h) : handler_(std::move(h)), acceptor_(io_) {
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { accept_loop(); });
  }

  raw_server(raw_server const&) = delete;
  raw_server& operator=(raw_server const&) = delete;

  ~raw_server() {
    stopping_ = true;
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR); // wakes the blocking accept
    accept_thread_.join();
    {
      std::lock_guard<std::mutex> lk(m_);
      for (auto* s : open_)
        ::shutdown(s->native_handle(), SHUT_RDWR);
    }
    for (auto& t : threads_)
      t.join();
  }

  std::uint16_t port() const noexcept { return port_; }
  std::string url(std::string_view path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }
  bool stopping() const noexcept { return stopping_; }

  /// The request heads so far.
  std::vector<std::string> requests() const {
    std::lock_guard<std::mutex> lk(m_);
    return heads_;
  }
  /// Waits until `n` connections have sent their request head.
  bool wait_requests(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock<std::mutex> lk(m_);
    return cv_.wait_for(lk, timeout, [&] { return heads_.size() >= n; });
  }
  /// When each request head arrived.
  std::vector<std::chrono::steady_clock::time_point> request_times() const {
    std::lock_guard<std::mutex> lk(m_);
    return times_;
  }
  /// When each connection's handler returned (its socket then closes).
  std::vector<std::chrono::steady_clock::time_point> close_times() const {
    std::lock_guard<std::mutex> lk(m_);
    return closes_;
  }

private:
  void accept_loop() {
    for (std::size_t index = 0;; ++index) {
      auto s = std::make_unique<tcp::socket>(io_);
      std::error_code ec;
      acceptor_.accept(*s, ec);
      if (ec || stopping_)
        return;
      std::lock_guard<std::mutex> lk(m_);
      open_.push_back(s.get());
      threads_.emplace_back([this, index, sock = std::move(s)]() mutable { serve(index, std::move(sock)); });
    }
  }

  void serve(std::size_t index, std::unique_ptr<tcp::socket> s) {
    s->set_option(tcp::no_delay(true));
    asio::streambuf buf;
    std::error_code ec;
    std::size_t const n = asio::read_until(*s, buf, "\r\n\r\n", ec);
    if (!ec) {
      std::string head(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + static_cast<std::ptrdiff_t>(n));
      {
        std::lock_guard<std::mutex> lk(m_);
        heads_.push_back(head);
        times_.push_back(std::chrono::steady_clock::now());
      }
      cv_.notify_all();
      connection c{*this, *s, index, std::move(head)};
      handler_(c);
    }
    std::lock_guard<std::mutex> lk(m_);
    closes_.push_back(std::chrono::steady_clock::now());
    s->shutdown(tcp::socket::shutdown_both, ec);
    s->close(ec);
    open_.erase(std::find(open_.begin(), open_.end(), s.get()));
    // The socket object lives until the destructor joins this thread (open_ no longer has it).
    done_.push_back(std::move(s));
  }

  handler handler_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  mutable std::mutex m_;
  std::condition_variable cv_;
  std::vector<tcp::socket*> open_;
  std::vector<std::unique_ptr<tcp::socket>> done_;
  std::vector<std::thread> threads_;
  std::vector<std::string> heads_;
  std::vector<std::chrono::steady_clock::time_point> times_, closes_;
};

/// The value of header `name` in a request head ("" if absent); name matched exactly.
inline std::string header_of(std::string const& head, std::string const& name) {
  auto const at = head.find("\r\n" + name + ": ");
  if (at == std::string::npos)
    return "";
  auto const from = at + 4 + name.size();
  return head.substr(from, head.find("\r\n", from) - from);
}

} // namespace sse_test
