#pragma once

// A blocking test client for integration tests over loopback: raw bytes in and out with
// deadlines, HTTP responses taken apart, and an event-stream reader on sse::parser.

#include "event_reader.hpp"

// Built with SSE_TEST_TLS, `client` speaks TLS (ALPN http/1.1) over its socket: the same
// HTTP/1.1 tests then run over HTTPS (test_server_tls).
#ifdef SSE_TEST_TLS
#include "tls_client.hpp"
#include <memory>
#endif

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace sse_test {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

/// Polls `cond` until it holds or `timeout` passes; returns whether it held.
template <class F>
bool eventually(F&& cond, ms timeout = 3000ms) {
  auto const deadline = steady::now() + timeout;
  for (;;) {
    if (cond())
      return true;
    if (steady::now() >= deadline)
      return false;
    std::this_thread::sleep_for(2ms);
  }
}

inline ms remaining(steady::time_point deadline) {
  auto const left = std::chrono::duration_cast<ms>(deadline - steady::now());
  return left.count() < 0 ? 0ms : left;
}

// --- a blocking test client ---------------------------------------------------------------------

enum class io_result { data, eof, reset, timeout };

/// One TCP connection to the server; everything received accumulates in buffer().
class client {
public:
  /// Connects to 127.0.0.1:`port`; a positive `rcvbuf` is set before connecting (so the
  /// advertised window stays small). Throws std::system_error if the connection is refused.
  explicit client(std::uint16_t port, int rcvbuf = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0)
      throw std::system_error(errno, std::generic_category(), "socket");
    if (rcvbuf > 0)
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr const*>(&addr), sizeof addr) != 0) {
      int const e = errno;
      ::close(fd_);
      fd_ = -1;
      throw std::system_error(e, std::generic_category(), "connect");
    }
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL, 0) | O_NONBLOCK);
#ifdef SSE_TEST_TLS
    // A handshake the server refuses (or never answers) reads as a reset connection.
    tls_ = std::make_unique<tls_conn>(fd_, std::string_view("\x08http/1.1", 9), 3000ms);
    if (!tls_->ok())
      reset_ = true;
#endif
  }
  client(client const&) = delete;
  client& operator=(client const&) = delete;
  ~client() { close(); }

  /// Sends every byte within `timeout`; false if the peer closed or reset first, or time ran out.
  bool send(std::string_view bytes, ms timeout = 3000ms) {
    auto const deadline = steady::now() + timeout;
    while (!bytes.empty()) {
#ifdef SSE_TEST_TLS
      if (reset_) {
        send_failed_ = true;
        return false;
      }
      long const t = tls_->write(bytes.data(), bytes.size());
      if (t > 0) {
        bytes.remove_prefix(static_cast<std::size_t>(t));
        sent_ += static_cast<std::size_t>(t);
        continue;
      }
      if (t == tls_conn::would_block) {
        pollfd p{fd_, tls_->wants(), 0};
        auto const left = remaining(deadline);
        if (left.count() == 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0)
          return false; // timed out
        continue;
      }
      send_failed_ = true;
      return false;
#endif
      ssize_t const n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n > 0) {
        bytes.remove_prefix(static_cast<std::size_t>(n));
        sent_ += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pollfd p{fd_, POLLOUT, 0};
        auto const left = remaining(deadline);
        if (left.count() == 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0)
          return false; // timed out
        continue;
      }
      send_failed_ = true;
      return false;
    }
    return true;
  }

  /// Waits up to `timeout` for bytes and appends what is there to buffer().
  io_result read_some(ms timeout) {
    if (eof_)
      return io_result::eof;
    if (reset_)
      return io_result::reset;
#ifdef SSE_TEST_TLS
    return tls_read_some(timeout);
#endif
    pollfd p{fd_, POLLIN, 0};
    int const r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (r <= 0)
      return io_result::timeout;
    char chunk[64 * 1024];
    ssize_t const n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n > 0) {
      buf_.append(chunk, static_cast<std::size_t>(n));
      received_ += static_cast<std::size_t>(n);
      return io_result::data;
    }
    if (n == 0) {
      eof_ = true;
      return io_result::eof;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
      return io_result::timeout;
    reset_ = true;
    return io_result::reset;
  }

  /// Reads until `pred(buffer())` holds, the connection ends, or `timeout` passes.
  template <class P>
  bool read_until(P&& pred, ms timeout = 3000ms) {
    auto const deadline = steady::now() + timeout;
    for (;;) {
      if (pred(buf_))
        return true;
      if (closed())
        return false;
      auto const left = remaining(deadline);
      if (left.count() == 0)
        return false;
      read_some(left);
    }
  }

  /// Reads (keeping the bytes) until the peer closes or resets; true if that happened in time.
  bool read_until_closed(ms timeout = 3000ms) {
    auto const deadline = steady::now() + timeout;
    while (!closed()) {
      auto const left = remaining(deadline);
      if (left.count() == 0)
        return false;
      read_some(left);
    }
    return true;
  }

  /// True if nothing arrives and the connection stays open for `d`.
  bool stays_quiet(ms d) {
    auto const before = buf_.size();
    auto const deadline = steady::now() + d;
    while (steady::now() < deadline && !closed())
      read_some(remaining(deadline));
    return !closed() && buf_.size() == before;
  }

  /// Sends FIN (over TLS: close_notify first) but keeps reading.
  void shutdown_write() {
#ifdef SSE_TEST_TLS
    if (tls_ && !reset_)
      tls_->shutdown();
#endif
    ::shutdown(fd_, SHUT_WR);
  }

  /// Aborts the connection with an RST (SO_LINGER 0, then close).
  void reset() {
    if (fd_ < 0)
      return;
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close();
  }

  void close() {
#ifdef SSE_TEST_TLS
    tls_.reset();
#endif
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }

  bool closed() const { return eof_ || reset_; }
  /// The socket (non-blocking), e.g. for a TLS session over it.
  int fd() const { return fd_; }
  bool got_eof() const { return eof_; }
  bool got_reset() const { return reset_; }
  bool send_failed() const { return send_failed_; }
  std::size_t bytes_sent() const { return sent_; }
  std::size_t bytes_received() const { return received_; }
  std::string& buffer() { return buf_; }

private:
#ifdef SSE_TEST_TLS
  io_result tls_read_some(ms timeout) {
    if (!tls_->pending()) {
      pollfd p{fd_, tls_->wants() == POLLOUT ? short(POLLIN | POLLOUT) : short(POLLIN), 0};
      if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0)
        return io_result::timeout;
    }
    char chunk[64 * 1024];
    long const n = tls_->read(chunk, sizeof chunk);
    if (n > 0) {
      buf_.append(chunk, static_cast<std::size_t>(n));
      received_ += static_cast<std::size_t>(n);
      return io_result::data;
    }
    if (n == 0) {
      eof_ = true;
      return io_result::eof;
    }
    if (n == tls_conn::would_block)
      return io_result::timeout;
    reset_ = true;
    return io_result::reset;
  }
  std::unique_ptr<tls_conn> tls_;
#endif
  int fd_ = -1;
  std::string buf_;
  bool eof_ = false;
  bool reset_ = false;
  bool send_failed_ = false;
  std::size_t sent_ = 0;
  std::size_t received_ = 0;
};

/// True if a TCP connection to `port` is accepted.
inline bool can_connect(std::uint16_t port) {
  try {
    client c(port);
    return true;
  } catch (std::system_error const&) {
    return false;
  }
}

// --- reading HTTP responses ---------------------------------------------------------------------

inline bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
           return lower(x) == lower(y);
         });
}

struct http_response {
  int status = 0;
  std::string head; ///< status line and header fields, with the final empty line
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  std::optional<std::string> header(std::string_view name) const {
    for (auto const& [k, v] : headers)
      if (iequal(k, name))
        return v;
    return std::nullopt;
  }
  std::size_t count(std::string_view name) const {
    return static_cast<std::size_t>(std::count_if(
        headers.begin(), headers.end(), [&](auto const& kv) { return iequal(kv.first, name); }));
  }
};

/// Takes one complete response off the front of `buf` (the head only when `head_only`, as for a
/// stream); nullopt while it is incomplete.
inline std::optional<http_response> take_response(std::string& buf, bool head_only) {
  auto const end = buf.find("\r\n\r\n");
  if (end == std::string::npos)
    return std::nullopt;
  http_response r;
  r.head = buf.substr(0, end + 4);
  auto const status_end = r.head.find("\r\n");
  std::string_view const status_line(r.head.data(), status_end);
  r.status = -1;
  if (status_line.size() >= 12 && status_line.substr(0, 5) == "HTTP/" && status_line[8] == ' ') {
    auto const code = status_line.substr(9, 3);
    if (std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; }))
      r.status = std::stoi(std::string(code));
  }
  for (std::size_t pos = status_end + 2; pos < end;) {
    auto const eol = r.head.find("\r\n", pos);
    std::string_view const line(r.head.data() + pos, eol - pos);
    auto const colon = line.find(':');
    std::string_view name = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
      value.remove_suffix(1);
    r.headers.emplace_back(std::string(name), std::string(value));
    pos = eol + 2;
  }
  std::size_t body_len = 0;
  if (!head_only && r.status >= 200 && r.status != 204 && r.status != 304) {
    if (auto cl = r.header("Content-Length"))
      body_len = static_cast<std::size_t>(std::stoull(*cl));
  }
  if (buf.size() < end + 4 + body_len)
    return std::nullopt;
  r.body = buf.substr(end + 4, body_len);
  buf.erase(0, end + 4 + body_len);
  return r;
}

/// Reads the next response from `c`; nullopt if none arrived in time.
inline std::optional<http_response> read_response(client& c, ms timeout = 3000ms, bool head_only = false) {
  std::optional<http_response> r;
  c.read_until([&](std::string& b) { return (r = take_response(b, head_only)).has_value(); }, timeout);
  return r;
}

inline std::string get(std::string_view target, std::string_view extra_headers = "") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra_headers) +
         "\r\n";
}

inline std::string post(std::string_view target, std::string_view body) {
  return "POST " + std::string(target) + " HTTP/1.1\r\nHost: test\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

/// A strict decoder of a chunked body (RFC 9112 section 7.1) as the server must send it: hex
/// size, CRLF, data, CRLF; the last chunk "0" CRLF CRLF. Anything else is a framing error.
class chunk_decoder {
public:
  /// Appends the payload of `in` to `out`; false once the framing is broken.
  bool feed(std::string_view in, std::string& out) {
    for (std::size_t i = 0; i < in.size() && st_ != state::bad;) {
      char const c = in[i];
      switch (st_) {
      case state::size:
        if (auto d = hex(c); d >= 0 && digits_ < 8) {
          size_ = size_ * 16 + static_cast<std::size_t>(d);
          ++digits_;
        } else if (c == '\r' && digits_ > 0) {
          st_ = state::size_lf;
        } else {
          st_ = state::bad;
        }
        ++i;
        break;
      case state::size_lf:
        st_ = c != '\n' ? state::bad : size_ == 0 ? state::last_cr : state::data;
        if (st_ == state::data)
          payloads_.emplace_back();
        ++i;
        break;
      case state::data: {
        std::size_t const n = std::min(size_, in.size() - i);
        out.append(in.substr(i, n));
        payloads_.back().append(in.substr(i, n));
        i += n;
        size_ -= n;
        if (size_ == 0)
          st_ = state::data_cr;
        break;
      }
      case state::data_cr:
        st_ = c == '\r' ? state::data_lf : state::bad;
        ++i;
        break;
      case state::data_lf:
        st_ = c == '\n' ? state::size : state::bad;
        digits_ = 0;
        ++i;
        break;
      case state::last_cr:
        st_ = c == '\r' ? state::last_lf : state::bad;
        ++i;
        break;
      case state::last_lf:
        st_ = c == '\n' ? state::done : state::bad;
        ++i;
        break;
      case state::done: // nothing may follow the last chunk
      case state::bad:
        st_ = state::bad;
        break;
      }
    }
    return st_ != state::bad;
  }
  bool broken() const { return st_ == state::bad; }
  /// The last chunk and its CRLF arrived: the stream ended cleanly.
  bool finished() const { return st_ == state::done; }
  /// Between chunks: every chunk so far arrived whole.
  bool at_boundary() const { return st_ == state::size && digits_ == 0; }
  /// The payload of each chunk, in order.
  std::vector<std::string> const& payloads() const { return payloads_; }

private:
  enum class state { size, size_lf, data, data_cr, data_lf, last_cr, last_lf, done, bad };
  static int hex(char c) {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    return -1; // the server writes lower case
  }
  state st_ = state::size;
  std::size_t size_ = 0, digits_ = 0;
  std::vector<std::string> payloads_;
};

/// A client that has opened an event stream; the rest of the bytes go to the event parser
/// (through the chunk decoder when the response is chunked).
class stream_client {
public:
  stream_client(std::uint16_t port, std::string_view target, int rcvbuf = 0,
                std::string_view extra_headers = {})
      : c(port, rcvbuf) {
    if (c.send(get(target, extra_headers)))
      if (auto r = read_response(c, 3000ms, true))
        head = std::move(*r);
    chunked = head.header("Transfer-Encoding") == std::string("chunked");
    feed();
  }

  bool ok() const {
    return head.status == 200 && head.header("Content-Type") == std::string("text/event-stream");
  }

  /// Reads once (up to `timeout`) and parses what arrived.
  io_result pump(ms timeout) {
    auto const r = c.read_some(timeout);
    feed();
    return r;
  }
  bool wait_events(std::size_t n, ms timeout = 3000ms) {
    return c.read_until(
        [&](std::string&) {
          feed();
          return parser.events().size() >= n;
        },
        timeout);
  }
  bool wait_comments(std::size_t n, ms timeout) {
    return c.read_until(
        [&](std::string&) {
          feed();
          return parser.comments().size() >= n;
        },
        timeout);
  }
  /// Reads for `d`; true if the connection is still open afterwards.
  bool open_after(ms d) {
    auto const deadline = steady::now() + d;
    while (!c.closed() && steady::now() < deadline)
      pump(remaining(deadline));
    return !c.closed();
  }
  bool wait_closed(ms timeout = 3000ms) {
    bool const r = c.read_until_closed(timeout);
    feed();
    return r;
  }
  std::vector<sse::parsed_event> const& events() const { return parser.events(); }

  client c;
  http_response head;
  sse_test::event_reader parser;
  bool chunked = false;
  chunk_decoder chunks;

private:
  void feed() {
    if (chunked) {
      std::string payload;
      chunks.feed(c.buffer(), payload);
      parser.feed(payload);
    } else {
      parser.feed(c.buffer());
    }
    c.buffer().clear();
  }
};

} // namespace sse_test
