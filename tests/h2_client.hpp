#pragma once

// A blocking HTTP/2 test client on nghttp2's client session (never hand-written framing):
// h2c by prior knowledge over a plain socket, or h2 over TLS (ALPN "h2"). Many streams on one
// connection, each with its own response and event-stream parser; flow control by hand
// (nghttp2_option_set_no_auto_window_update), so a test can stop reading one stream, or the
// whole connection; RST_STREAM and GOAWAY received are recorded; and the frames of the attack
// tests (resets, PINGs, SETTINGS, empty DATA) are produced by nghttp2 itself.

#include "event_reader.hpp"
#include "tls_client.hpp"

#include <nghttp2/nghttp2.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace sse_test {

using h2ms = std::chrono::milliseconds;
using h2clock = std::chrono::steady_clock;

struct h2_client_options {
  bool tls = false;
  std::string alpn = std::string("\x02h2", 3); ///< wire format, over TLS only
  /// Never send a connection-level WINDOW_UPDATE (streams' own windows still open).
  bool freeze_connection_window = false;
  bool no_auto_ping_ack = false;
  /// The server's SETTINGS_MAX_CONCURRENT_STREAMS assumed until its SETTINGS is read (0: the
  /// nghttp2 default, unlimited).
  std::uint32_t peer_max_concurrent_streams = 0;
  h2ms connect_timeout{3000};
};

/// One stream as the client sees it.
struct h2_stream {
  std::int32_t id = 0;
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  event_reader parser;
  bool end_stream = false;   ///< the server's END_STREAM arrived
  bool closed = false;       ///< nghttp2 closed the stream (either way)
  std::uint32_t close_code = 0;
  bool rst_received = false; ///< the server reset it
  std::uint32_t rst_code = 0;
  bool paused = false;       ///< its window is not opened again
  std::size_t unconsumed = 0;
  // The request body.
  std::string to_send;
  std::size_t sent = 0;
  std::size_t empty_frames = 0; ///< empty DATA frames to send before the body ends

  std::optional<std::string> header(std::string_view name) const {
    for (auto const& [k, v] : headers)
      if (k == name)
        return v;
    return std::nullopt;
  }
  bool ok() const { return status == 200 && header("content-type") == std::string("text/event-stream"); }
  std::vector<sse::parsed_event> const& events() const { return parser.events(); }
  bool answered() const { return status != 0 && (end_stream || closed); }
};

class h2_client {
public:
  explicit h2_client(std::uint16_t port, h2_client_options o = {}) : opts_(std::move(o)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0)
      throw std::system_error(errno, std::generic_category(), "socket");
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
    if (opts_.tls) {
      tls_ = std::make_unique<tls_conn>(fd_, opts_.alpn, opts_.connect_timeout);
      if (!tls_->ok())
        throw std::runtime_error("h2_client: TLS handshake failed");
      if (tls_->alpn() != "h2")
        throw std::runtime_error("h2_client: ALPN did not choose h2 but '" + tls_->alpn() + "'");
    }
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, &h2_client::on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &h2_client::on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &h2_client::on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, &h2_client::on_stream_close);
    nghttp2_option* opt = nullptr;
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    if (opts_.no_auto_ping_ack)
      nghttp2_option_set_no_auto_ping_ack(opt, 1);
    if (opts_.peer_max_concurrent_streams)
      nghttp2_option_set_peer_max_concurrent_streams(opt, opts_.peer_max_concurrent_streams);
    int const rv = nghttp2_session_client_new2(&s_, cb, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0)
      throw std::runtime_error("nghttp2_session_client_new2 failed");
    nghttp2_settings_entry const iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                         {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 65535}};
    nghttp2_submit_settings(s_, NGHTTP2_FLAG_NONE, iv, 2);
    flush();
  }
  h2_client(h2_client const&) = delete;
  h2_client& operator=(h2_client const&) = delete;
  ~h2_client() {
    if (s_)
      nghttp2_session_del(s_);
    tls_.reset();
    if (fd_ >= 0)
      ::close(fd_);
  }

  // --- requests -------------------------------------------------------------------------------
  /// Submits a request (not yet sent: see flush()); the stream id, or a negative nghttp2 error.
  /// A `body` is sent as DATA (without content-length unless `extra` has one).
  std::int32_t submit(std::string_view method, std::string_view path,
                      std::optional<std::string> body = std::nullopt,
                      std::vector<std::pair<std::string, std::string>> const& extra = {},
                      std::size_t empty_frames = 0) {
    std::vector<std::pair<std::string, std::string>> f = {
        {":method", std::string(method)},
        {":scheme", opts_.tls ? "https" : "http"},
        {":authority", "localhost"},
        {":path", std::string(path)}};
    for (auto const& kv : extra)
      f.push_back(kv);
    std::vector<nghttp2_nv> nva;
    for (auto& [k, v] : f)
      nva.push_back({reinterpret_cast<std::uint8_t*>(k.data()), reinterpret_cast<std::uint8_t*>(v.data()),
                     k.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    auto st = std::make_unique<h2_stream>();
    nghttp2_data_provider dp{};
    bool const has_body = body.has_value() || empty_frames > 0;
    if (has_body) {
      st->to_send = body.value_or("");
      st->empty_frames = empty_frames;
      dp.source.ptr = st.get();
      dp.read_callback = &h2_client::read_body;
    }
    std::int32_t const id = nghttp2_submit_request(s_, nullptr, nva.data(), nva.size(),
                                                   has_body ? &dp : nullptr, st.get());
    if (id > 0) {
      st->id = id;
      streams_.emplace(id, std::move(st));
    }
    return id;
  }
  /// Submits and sends.
  std::int32_t get(std::string_view path,
                   std::vector<std::pair<std::string, std::string>> const& extra = {}) {
    auto const id = submit("GET", path, std::nullopt, extra);
    flush();
    return id;
  }
  std::int32_t post(std::string_view path, std::string body,
                    std::vector<std::pair<std::string, std::string>> const& extra = {}) {
    auto const id = submit("POST", path, std::move(body), extra);
    flush();
    return id;
  }

  /// Resets one stream (CANCEL unless told).
  void reset(std::int32_t id, std::uint32_t code = NGHTTP2_CANCEL) {
    nghttp2_submit_rst_stream(s_, NGHTTP2_FLAG_NONE, id, code);
    flush();
  }
  /// Stops opening the stream's window: the server's sends on it stop once it is full.
  void pause(std::int32_t id) { stream(id).paused = true; }
  void resume(std::int32_t id) {
    auto& st = stream(id);
    st.paused = false;
    if (st.unconsumed) {
      nghttp2_session_consume_stream(s_, id, st.unconsumed);
      st.unconsumed = 0;
    }
    flush();
  }

  // Frames for the attack tests, submitted (send with flush()).
  void submit_ping() { nghttp2_submit_ping(s_, NGHTTP2_FLAG_NONE, nullptr); }
  void submit_settings() {
    nghttp2_settings_entry const iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    nghttp2_submit_settings(s_, NGHTTP2_FLAG_NONE, iv, 1);
  }

  // --- I/O --------------------------------------------------------------------------------------
  /// Sends everything nghttp2 has to send within `timeout`, reading meanwhile; false if the
  /// connection ended or time ran out first.
  bool flush(h2ms timeout = h2ms(3000)) {
    auto const deadline = h2clock::now() + timeout;
    for (;;) {
      collect();
      if (out_.empty())
        return true;
      if (closed_)
        return false;
      if (!write_some())
        return false;
      if (out_.empty())
        continue;
      auto const left = std::chrono::duration_cast<h2ms>(deadline - h2clock::now());
      if (left.count() <= 0)
        return false;
      wait_io(left, true);
    }
  }

  /// Waits up to `timeout` for bytes, feeds them to nghttp2 and sends what it answers; false
  /// once the connection is closed.
  bool pump(h2ms timeout) {
    if (closed_)
      return false;
    flush();
    if (closed_)
      return false;
    if (!(tls_ && tls_->pending()))
      wait_io(timeout, !out_.empty());
    read_available();
    flush();
    return !closed_;
  }

  /// Pumps until `pred()` holds or `timeout` passes (or the connection closes: then pred is
  /// checked once more).
  template <class P>
  bool until(P&& pred, h2ms timeout = h2ms(3000)) {
    auto const deadline = h2clock::now() + timeout;
    for (;;) {
      if (pred())
        return true;
      auto const left = std::chrono::duration_cast<h2ms>(deadline - h2clock::now());
      if (left.count() <= 0 || closed_)
        return pred();
      pump(std::min(left, h2ms(50)));
    }
  }

  bool wait_events(std::int32_t id, std::size_t n, h2ms timeout = h2ms(3000)) {
    return until([&] { return stream(id).events().size() >= n; }, timeout);
  }
  bool wait_answer(std::int32_t id, h2ms timeout = h2ms(3000)) {
    return until([&] { return stream(id).answered() || stream(id).rst_received; }, timeout);
  }
  bool wait_head(std::int32_t id, h2ms timeout = h2ms(3000)) {
    return until([&] { return stream(id).status != 0 || stream(id).closed; }, timeout);
  }
  bool wait_closed(std::int32_t id, h2ms timeout = h2ms(3000)) {
    return until([&] { return stream(id).closed; }, timeout);
  }
  bool wait_goaway(h2ms timeout = h2ms(3000)) {
    return until([&] { return goaway_; }, timeout);
  }
  /// Until the server closes the TCP connection.
  bool wait_disconnected(h2ms timeout = h2ms(3000)) {
    return until([&] { return closed_; }, timeout);
  }

  h2_stream& stream(std::int32_t id) {
    auto it = streams_.find(id);
    if (it == streams_.end())
      throw std::out_of_range("h2_client: no stream " + std::to_string(id));
    return *it->second;
  }
  /// Forgets a closed stream (a loop of thousands need not keep them).
  void forget(std::int32_t id) { streams_.erase(id); }

  bool goaway() const { return goaway_; }
  std::uint32_t goaway_code() const { return goaway_code_; }
  std::int32_t goaway_last_stream() const { return goaway_last_; }
  bool disconnected() const { return closed_; }
  /// nghttp2_session_mem_recv failed (the server sent something nghttp2 refused).
  int recv_error() const { return recv_error_; }
  /// The errno of a failed send or recv (ECONNRESET: the server's close reset the connection;
  /// -1 over TLS), 0 after a clean end.
  int io_error() const { return io_error_; }
  std::size_t pings_received() const { return pings_; }
  std::size_t settings_acks() const { return settings_acks_; }
  nghttp2_session* session() { return s_; }
  /// The peer's SETTINGS arrived.
  bool settings_received() const { return settings_; }

private:
  void collect() {
    while (!closed_ && out_.size() < 256 * 1024) {
      std::uint8_t const* data = nullptr;
      auto const n = nghttp2_session_mem_send(s_, &data);
      if (n <= 0)
        break;
      out_.append(reinterpret_cast<char const*>(data), static_cast<std::size_t>(n));
    }
  }

  bool write_some() {
    for (;;) {
      if (out_.empty())
        return true;
      long n;
      if (tls_) {
        n = tls_->write(out_.data(), out_.size());
        if (n == tls_conn::would_block)
          return true;
      } else {
        n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
          return true;
      }
      if (n <= 0) {
        io_error_ = tls_ ? -1 : errno;
        closed_ = true;
        return false;
      }
      out_.erase(0, static_cast<std::size_t>(n));
    }
  }

  /// Polls for reading (and writing when `want_write`); reads what came in meanwhile.
  void wait_io(h2ms timeout, bool want_write) {
    short ev = POLLIN;
    if (want_write)
      ev |= POLLOUT;
    if (tls_ && tls_->wants() == POLLOUT)
      ev |= POLLOUT;
    pollfd p{fd_, ev, 0};
    int const r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (r > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)))
      read_available();
  }

  void read_available() {
    char buf[16 * 1024];
    for (int i = 0; i < 64 && !closed_; ++i) {
      long n;
      if (tls_) {
        n = tls_->read(buf, sizeof buf);
        if (n == tls_conn::would_block)
          return;
      } else {
        n = ::recv(fd_, buf, sizeof buf, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
          return;
      }
      if (n <= 0) {
        if (n < 0)
          io_error_ = tls_ ? -1 : errno;
        closed_ = true;
        return;
      }
      auto const rv = nghttp2_session_mem_recv(s_, reinterpret_cast<std::uint8_t const*>(buf),
                                               static_cast<std::size_t>(n));
      if (rv < 0) {
        recv_error_ = static_cast<int>(rv);
        closed_ = true;
        return;
      }
    }
  }

  h2_stream* find(std::int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }
  static h2_client& self(void* ud) { return *static_cast<h2_client*>(ud); }

  static ssize_t read_body(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length,
                           std::uint32_t* flags, nghttp2_data_source* src, void*) {
    auto& st = *static_cast<h2_stream*>(src->ptr);
    if (st.empty_frames > 0) {
      --st.empty_frames;
      return 0; // an empty DATA frame, not the end
    }
    std::size_t const n = std::min(length, st.to_send.size() - st.sent);
    std::memcpy(buf, st.to_send.data() + st.sent, n);
    st.sent += n;
    if (st.sent == st.to_send.size())
      *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

  static int on_header(nghttp2_session*, nghttp2_frame const* f, std::uint8_t const* name,
                       std::size_t namelen, std::uint8_t const* value, std::size_t valuelen,
                       std::uint8_t, void* ud) {
    auto* st = self(ud).find(f->hd.stream_id);
    if (!st || f->hd.type != NGHTTP2_HEADERS)
      return 0;
    std::string k(reinterpret_cast<char const*>(name), namelen);
    std::string v(reinterpret_cast<char const*>(value), valuelen);
    if (k == ":status")
      st->status = std::stoi(v);
    else
      st->headers.emplace_back(std::move(k), std::move(v));
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, nghttp2_frame const* f, void* ud) {
    auto& me = self(ud);
    switch (f->hd.type) {
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
      if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
        if (auto* st = me.find(f->hd.stream_id))
          st->end_stream = true;
      break;
    case NGHTTP2_RST_STREAM:
      if (auto* st = me.find(f->hd.stream_id)) {
        st->rst_received = true;
        st->rst_code = f->rst_stream.error_code;
      }
      break;
    case NGHTTP2_GOAWAY:
      me.goaway_ = true;
      me.goaway_code_ = f->goaway.error_code;
      me.goaway_last_ = f->goaway.last_stream_id;
      break;
    case NGHTTP2_PING:
      if (!(f->hd.flags & NGHTTP2_FLAG_ACK))
        ++me.pings_;
      break;
    case NGHTTP2_SETTINGS:
      if (f->hd.flags & NGHTTP2_FLAG_ACK)
        ++me.settings_acks_;
      else
        me.settings_ = true;
      break;
    default:
      break;
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session* s, std::uint8_t, std::int32_t id,
                           std::uint8_t const* data, std::size_t len, void* ud) {
    auto& me = self(ud);
    auto* st = me.find(id);
    if (st) {
      st->body.append(reinterpret_cast<char const*>(data), len);
      st->parser.feed(std::string_view(reinterpret_cast<char const*>(data), len));
    }
    if (!me.opts_.freeze_connection_window)
      nghttp2_session_consume_connection(s, len);
    if (st && st->paused)
      st->unconsumed += len;
    else
      nghttp2_session_consume_stream(s, id, len);
    return 0;
  }

  static int on_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t code, void* ud) {
    if (auto* st = self(ud).find(id)) {
      st->closed = true;
      st->close_code = code;
    }
    return 0;
  }

  h2_client_options opts_;
  int fd_ = -1;
  std::unique_ptr<tls_conn> tls_;
  nghttp2_session* s_ = nullptr;
  std::map<std::int32_t, std::unique_ptr<h2_stream>> streams_;
  std::string out_;
  bool closed_ = false;
  bool goaway_ = false;
  std::uint32_t goaway_code_ = 0;
  std::int32_t goaway_last_ = -1;
  int recv_error_ = 0;
  int io_error_ = 0;
  std::size_t pings_ = 0, settings_acks_ = 0;
  bool settings_ = false;
};

} // namespace sse_test
