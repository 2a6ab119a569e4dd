#pragma once

// One HTTP/2 connection (RFC 9113), in cleartext or over TLS: nghttp2 does the framing, HPACK
// and flow control; this class feeds it the socket's bytes, turns its streams into requests for
// the same routes and handlers as HTTP/1.1, and is the single writer of the socket.

#include <sse/detail/connection.hpp>
#include <sse/detail/cors.hpp>
#include <sse/detail/router.hpp>
#include <sse/detail/subscriber_state.hpp>
#include <sse/detail/worker.hpp>
#include <sse/frame.hpp>
#include <sse/http2_options.hpp>
#include <sse/http.hpp>
#include <sse/responder.hpp>

#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace sse::detail {

using h2_limits = sse::http2::options;

/// A token bucket: `burst` at once, `rate` more per second.
class token_bucket {
public:
  token_bucket(std::uint32_t burst, std::uint32_t rate)
      : burst_(burst), rate_(rate), tokens_(burst), at_(clock::now()) {}
  bool take() {
    auto const now = clock::now();
    double const refill = std::chrono::duration<double>(now - at_).count() * rate_;
    at_ = now;
    tokens_ = std::min<double>(burst_, tokens_ + refill);
    if (tokens_ < 1)
      return false;
    tokens_ -= 1;
    return true;
  }

private:
  double burst_, rate_, tokens_;
  clock::time_point at_;
};

/// Field names HTTP/2 forbids (RFC 9113 8.2.2): a handler's are left out, not sent.
inline bool connection_specific(std::string_view lower) {
  return lower == "connection" || lower == "keep-alive" || lower == "proxy-connection" ||
         lower == "transfer-encoding" || lower == "upgrade" || lower == "te";
}

template <class Stream>
class h2_session final : public connection_base {
  static constexpr bool plain = std::is_same_v<Stream, asio::ip::tcp::socket>;
  static constexpr std::size_t max_batch = 64;           ///< frames taken from a queue at once
  static constexpr std::size_t write_slice = 64 * 1024;  ///< bytes per write at most
  static constexpr std::size_t read_size = 8 * 1024;
  static constexpr int max_rounds = 8; ///< immediate writes in a row before yielding
  static constexpr std::size_t max_stray_bytes = 256 * 1024; ///< read after our GOAWAY

  /// One HTTP/2 stream: its request, then its answer.
  struct stream_state final : answer_sink, waiter {
    enum class phase { headers, body, awaiting, responding, streaming };
    std::int32_t id = 0;
    std::weak_ptr<connection_base> owner;
    worker* w = nullptr;
    phase ph = phase::headers;
    detail::request raw;
    std::string authority;
    std::size_t header_bytes = 0;
    int refuse = 0;     ///< a status decided while receiving (413, 414, 431, 400)
    bool answered = false; ///< a response was submitted
    bool head = false;
    clock::time_point deadline;
    // The answer.
    std::string body;
    std::size_t body_off = 0;
    std::shared_ptr<sse::subscription> sub;
    std::shared_ptr<subscriber_state<frame>> queue;
    std::vector<frame> pending;
    std::size_t pending_pos = 0, frame_off = 0;
    bool armed = false, ending = false, heartbeat_due = false, ended_by_us = false;
    enum class drain_state { none, due, hinted } drain = drain_state::none;
    std::atomic<bool> woken{false};
    clock::time_point last_write, blocked_since;
    bool blocked = false;
    std::shared_ptr<async_exchange> exchange;
    std::string origin;
    // The access log.
    std::string method, target;
    clock::time_point at;
    int status = 0;
    std::uint64_t bytes = 0;

    void notify(std::error_code) noexcept override {
      woken.store(true, std::memory_order_release);
      if (auto s = owner.lock()) // one wake per connection, however many of its streams
        if (!static_cast<h2_session&>(*s).wake_posted_.exchange(true, std::memory_order_acq_rel))
          w->enqueue_ready(std::move(s));
    }
    void on_answer(async_exchange& ex, std::optional<response> r) override {
      if (auto s = owner.lock())
        static_cast<h2_session&>(*s).answer_async(*this, ex, std::move(r));
      else if (r)
        abandon_stream(*r, errc::disconnected, w->closes);
    }
  };
  using stream_ptr = std::shared_ptr<stream_state>;

public:
  h2_session(worker& w, Stream s, h2_limits const& limits)
      : w_(w), sock_(std::move(s)), limits_(limits), resets_(limits.reset_burst, limits.reset_rate),
        controls_(limits.control_burst, limits.control_rate) {
    std::error_code ec;
    remote_ = raw().remote_endpoint(ec);
  }
  ~h2_session() override {
    if (s_)
      nghttp2_session_del(s_);
  }

  /// Starts the session with what was already read of the connection (the h2c preface).
  void start(std::string_view initial) {
    if (!make_session()) {
      close();
      return;
    }
    last_activity_ = clock::now();
    if constexpr (plain) {
      std::error_code ec;
      sock_.non_blocking(true, ec);
    } else {
      rbuf_ = std::make_unique<char[]>(read_size);
    }
    if (!initial.empty() && !receive(initial.data(), initial.size()))
      return;
    flush();
    if (!closed_)
      do_read();
  }

  void on_ready() override {
    wake_posted_.store(false, std::memory_order_release); // a wake from now on posts again
    if (closed_)
      return;
    for (auto& [id, st] : streams_)
      if (st->woken.exchange(false, std::memory_order_acq_rel) && st->armed) {
        st->armed = false;
        nghttp2_session_resume_data(s_, id);
      }
    flush();
  }

  void on_sweep(clock::time_point now) override {
    if (closed_)
      return;
    if (lingering_) {
      if (now >= linger_until_)
        close(errc::stream_closed);
      return;
    }
    if (w_.stopping && now >= w_.stop_deadline) {
      close(errc::stream_closed);
      return;
    }
    if (writing_ && now - last_progress_ >= w_.opts.write_timeout) {
      close(errc::write_timeout);
      return;
    }
    if (terminating_)
      return;
    if (streams_.empty()) {
      if (now - last_activity_ >= w_.opts.idle_timeout || w_.stopping)
        terminate(NGHTTP2_NO_ERROR);
      return;
    }
    bool const drain_due = drain_scheduled_ && now >= drain_at_;
    if (drain_due) {
      drain_scheduled_ = false;
      goaway();
    }
    std::vector<std::int32_t> reset;
    for (auto& [id, st] : streams_) {
      switch (st->ph) {
      case stream_state::phase::headers:
        if (now >= st->deadline) { // a header block that never ends
          terminate(NGHTTP2_PROTOCOL_ERROR);
          return;
        }
        break;
      case stream_state::phase::body:
        if (now >= st->deadline)
          refuse_now(*st, 408, "request not received in time");
        break;
      case stream_state::phase::awaiting:
        if (now >= st->deadline || (w_.refusing && now >= w_.refuse_deadline))
          give_up_waiting(*st);
        break;
      case stream_state::phase::responding:
        break;
      case stream_state::phase::streaming: {
        if (drain_due && st->drain == stream_state::drain_state::none) {
          st->drain = stream_state::drain_state::due;
          wake(*st);
        }
        // A window the client never opens again: a reader that stopped, as on HTTP/1.1.
        bool const window_shut = !st->armed && !st->ending &&
                                 (nghttp2_session_get_stream_remote_window_size(s_, id) <= 0 ||
                                  nghttp2_session_get_remote_window_size(s_) <= 0);
        if (!window_shut) {
          st->blocked = false;
        } else if (!st->blocked) {
          st->blocked = true;
          st->blocked_since = now;
        } else if (now - st->blocked_since >= w_.opts.write_timeout) {
          st->queue->tell_closed(make_error_code(errc::write_timeout));
          reset.push_back(id);
          break;
        }
        if (!st->ending && now - st->last_write >= w_.opts.heartbeat) {
          st->heartbeat_due = true;
          wake(*st);
        }
        break;
      }
      }
      if (closed_)
        return;
    }
    for (auto id : reset)
      nghttp2_submit_rst_stream(s_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    flush();
  }

  void begin_shutdown() override {
    if (closed_)
      return;
    goaway();
    for (auto& [id, st] : streams_)
      if (st->ph == stream_state::phase::streaming)
        wake(*st); // flushes what is queued, then ends (w_.stopping)
    if (streams_.empty())
      terminate(NGHTTP2_NO_ERROR);
    flush();
  }

  /// The whole connection drains at once: GOAWAY, then each stream gets what is queued, a
  /// `retry:` hint and its end.
  bool drain_at(clock::time_point at) override {
    if (closed_ || drain_scheduled_ || drain_counted_ || streams_.empty())
      return false;
    drain_scheduled_ = drain_counted_ = true;
    drain_at_ = at;
    return true;
  }

private:
  asio::ip::tcp::socket& raw() noexcept {
    if constexpr (plain)
      return sock_;
    else
      return sock_.next_layer();
  }
  std::shared_ptr<h2_session> shared_this() {
    return std::static_pointer_cast<h2_session>(shared_from_this());
  }
  static h2_session& self(void* ud) { return *static_cast<h2_session*>(ud); }

  // --- the nghttp2 session ----------------------------------------------------------------
  bool make_session() {
    nghttp2_session_callbacks* cb = nullptr;
    if (nghttp2_session_callbacks_new(&cb) != 0)
      return false;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &h2_session::on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, &h2_session::on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &h2_session::on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &h2_session::on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, &h2_session::on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, &h2_session::on_frame_send);
    nghttp2_option* opt = nullptr;
    if (nghttp2_option_new(&opt) != 0) {
      nghttp2_session_callbacks_del(cb);
      return false;
    }
    nghttp2_option_set_max_outbound_ack(opt, limits_.max_outbound_ack);
    nghttp2_option_set_stream_reset_rate_limit(opt, limits_.reset_burst, limits_.reset_rate);
    nghttp2_option_set_max_continuations(opt, limits_.max_continuations);
    nghttp2_option_set_max_settings(opt, 32);
    int const rv = nghttp2_session_server_new2(&s_, cb, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0) {
      s_ = nullptr;
      return false;
    }
    nghttp2_settings_entry const iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits_.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits_.initial_window_size},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
         static_cast<std::uint32_t>(std::min<std::size_t>(w_.opts.max_header_bytes, 0xffffffffu))},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    return nghttp2_submit_settings(s_, NGHTTP2_FLAG_NONE, iv, std::size(iv)) == 0;
  }

  stream_state* find(std::int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }

  static int on_begin_headers(nghttp2_session*, nghttp2_frame const* f, void* ud) {
    auto& me = self(ud);
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
      return 0;
    auto st = std::make_shared<stream_state>();
    st->id = f->hd.stream_id;
    st->owner = me.weak_from_this();
    st->w = &me.w_;
    st->at = clock::now();
    st->deadline = st->at + me.w_.opts.header_timeout;
    st->raw.version_major = 2;
    st->raw.version_minor = 0;
    st->raw.secure = !plain;
    me.streams_.emplace(st->id, std::move(st));
    me.last_activity_ = clock::now();
    return 0;
  }

  static int on_header(nghttp2_session*, nghttp2_frame const* f, std::uint8_t const* name,
                       std::size_t namelen, std::uint8_t const* value, std::size_t valuelen,
                       std::uint8_t, void* ud) {
    auto& me = self(ud);
    auto* st = me.find(f->hd.stream_id);
    if (!st || st->ph != stream_state::phase::headers)
      return 0; // trailers: ignored
    std::string_view const k(reinterpret_cast<char const*>(name), namelen);
    std::string_view const v(reinterpret_cast<char const*>(value), valuelen);
    st->header_bytes += namelen + valuelen + 32; // as SETTINGS_MAX_HEADER_LIST_SIZE counts
    if (st->refuse)
      return 0;
    auto const& o = me.w_.opts;
    if (st->header_bytes > o.max_header_bytes || st->raw.headers.size() >= o.max_headers) {
      st->refuse = 431;
      return 0;
    }
    if (!k.empty() && k[0] == ':') {
      if (k == ":method")
        st->raw.method = v;
      else if (k == ":path") {
        if (v.size() > o.max_request_line)
          st->refuse = 414;
        st->raw.target = v;
      } else if (k == ":authority")
        st->authority = v;
      return 0; // :scheme is checked by nghttp2
    }
    st->raw.headers.push_back({std::string(k), std::string(v)});
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, nghttp2_frame const* f, void* ud) {
    auto& me = self(ud);
    me.last_activity_ = clock::now();
    switch (f->hd.type) {
    case NGHTTP2_HEADERS:
      if (auto* st = me.find(f->hd.stream_id); st && st->ph == stream_state::phase::headers)
        me.headers_done(*st, (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0);
      break;
    case NGHTTP2_DATA:
      if (f->hd.length == 0 && !(f->hd.flags & NGHTTP2_FLAG_END_STREAM) && !me.controls_.take())
        return me.calm();
      if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
        if (auto* st = me.find(f->hd.stream_id); st && st->ph == stream_state::phase::body)
          me.request_done(*st);
      break;
    case NGHTTP2_PING:
    case NGHTTP2_SETTINGS:
    case NGHTTP2_PRIORITY:
      if (!(f->hd.flags & NGHTTP2_FLAG_ACK) && !me.controls_.take())
        return me.calm();
      break;
    case NGHTTP2_RST_STREAM:
      // nghttp2 rate-limits resets too; this also counts those of streams never answered.
      if (!me.resets_.take())
        return me.calm();
      break;
    default:
      break;
    }
    return 0;
  }

  /// A client past an abuse limit: GOAWAY with ENHANCE_YOUR_CALM, then the connection closes.
  int calm() {
    terminate(NGHTTP2_ENHANCE_YOUR_CALM);
    return 0;
  }

  static int on_data_chunk(nghttp2_session*, std::uint8_t, std::int32_t id,
                           std::uint8_t const* data, std::size_t len, void* ud) {
    auto& me = self(ud);
    auto* st = me.find(id);
    if (!st || st->ph != stream_state::phase::body)
      return 0;
    if (st->raw.body.size() + len > me.w_.opts.max_body) {
      me.refuse_now(*st, 413, "request body too large");
      return 0;
    }
    st->raw.body.append(reinterpret_cast<char const*>(data), len);
    return 0;
  }

  static int on_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t code, void* ud) {
    auto& me = self(ud);
    auto it = me.streams_.find(id);
    if (it == me.streams_.end())
      return 0;
    auto st = std::move(it->second);
    me.streams_.erase(it);
    me.release(*st, code == NGHTTP2_NO_ERROR && st->ended_by_us ? errc::stream_closed
                                                                  : errc::disconnected);
    me.last_activity_ = clock::now();
    return 0;
  }

  static int on_frame_send(nghttp2_session* s, nghttp2_frame const* f, void* ud) {
    // An answer sent before its request was all received (413, 408): end our interest in the
    // rest (RFC 9113 8.1).
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
      if (auto* st = self(ud).find(f->hd.stream_id); st && st->refuse &&
                                                      !nghttp2_session_get_stream_remote_close(s, st->id))
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
    return 0;
  }

  // --- requests ---------------------------------------------------------------------------
  void headers_done(stream_state& st, bool end_stream) {
    st.ph = stream_state::phase::body;
    st.deadline = clock::now() + w_.opts.body_timeout;
    if (!st.refuse) {
      if (auto cl = st.raw.header("content-length")) { // its syntax nghttp2 checked
        unsigned long long n = 0;
        for (char c : *cl)
          n = n > w_.opts.max_body ? n : n * 10 + static_cast<unsigned>(c - '0');
        if (n > w_.opts.max_body)
          st.refuse = 413;
      }
    }
    if (st.refuse) {
      static constexpr char const* why[] = {"request header fields too large",
                                            "request body too large", "URI too long",
                                            "malformed request"};
      int const code = st.refuse;
      st.refuse = 0;
      refuse_now(st, code,
                 why[code == 431 ? 0 : code == 413 ? 1 : code == 414 ? 2 : 3]);
      return;
    }
    if (end_stream)
      request_done(st);
  }

  /// Answers a request that is refused before it is all received.
  void refuse_now(stream_state& st, int status, std::string_view why) {
    st.refuse = status;
    st.ph = stream_state::phase::responding;
    submit(st, response::text(status, std::string(why) + "\n"));
  }

  void request_done(stream_state& st) {
    auto& raw = st.raw;
    st.method = raw.method; // for the log: the request moves to the handler
    st.target = raw.target;
    auto q = raw.target.find('?');
    raw.path = raw.target.substr(0, q);
    raw.query = q == std::string::npos ? std::string() : raw.target.substr(q + 1);
    if (!raw.header("host") && !st.authority.empty())
      raw.headers.push_back({"host", st.authority});
    st.head = raw.method == "HEAD";
    st.ph = stream_state::phase::responding;
    if (w_.refusing) {
      submit(st, response::text(503, "the server is shutting down\n").header("Retry-After", "5"));
      return;
    }
    std::vector<std::pair<std::string, std::string>> query;
    if (!parse_query(raw.query, query)) {
      submit(st, response::text(400, "malformed percent-encoding in the query\n"));
      return;
    }
    sse::request req(std::move(raw), std::move(query), remote_);
    if (auto o = req.header("origin"))
      st.origin = std::string(*o);
    if (req.method() == "OPTIONS")
      if (auto r = options_answer(w_.routes, w_.opts.cors, req, st.origin)) {
        submit(st, *r);
        return;
      }
    for (auto const& hook : w_.routes.hooks()) {
      std::optional<response> early;
      if (!guarded(st, req, [&] { early = hook(req); }))
        return;
      if (early) {
        answer(st, *early, req);
        return;
      }
    }
    auto m = w_.routes.find(req.method(), req.path());
    if (!m.h) {
      if (m.bad_escape)
        submit(st, response::text(400, "malformed percent-encoding in the path\n"));
      else if (!m.allow.empty())
        submit(st, response::text(405, "method not allowed\n").header("Allow", m.allow));
      else
        submit(st, response::text(404, "not found\n"));
      return;
    }
    req.set_params(std::move(m.params));
    if (m.h->async) {
      begin_async(st, std::move(req), m.h->async);
      return;
    }
    response res;
    if (guarded(st, req, [&] { res = m.h->sync(req); }))
      answer(st, res, req);
  }

  template <class F>
  bool guarded(stream_state& st, sse::request const& req, F&& f) {
    try {
      f();
      return true;
    } catch (http_error const& e) {
      if (!st.answered) {
        int const status = e.status() >= 400 && e.status() <= 599 ? e.status() : 500;
        submit(st, response::text(status, std::string(e.what()) + "\n"));
      }
    } catch (std::exception const& e) {
      failed(st, req, e.what());
    } catch (...) {
      failed(st, req, "an exception not derived from std::exception");
    }
    return false;
  }

  void failed(stream_state& st, sse::request const& req, std::string_view what) {
    w_.report("the handler of " + req.method() + " " + req.path() + " threw: " + std::string(what));
    if (!st.answered)
      submit(st, response::text(500, "internal server error\n"));
  }

  void answer(stream_state& st, response& res, sse::request const& req) {
    if (res.is_stream())
      start_stream(st, res, req);
    else
      submit(st, res);
  }

  void begin_async(stream_state& st, sse::request&& req,
                   std::function<void(sse::request&, sse::responder)> const& h) {
    auto sp = streams_.at(st.id);
    auto ex = std::make_shared<async_exchange>(std::weak_ptr<answer_sink>(sp), w_.gate, w_.closes,
                                               std::move(req));
    st.exchange = ex;
    st.ph = stream_state::phase::awaiting;
    ++w_.awaiting;
    st.deadline = clock::now() + w_.opts.handler_timeout;
    try {
      h(ex->request, sse::responder(ex));
    } catch (http_error const& e) {
      if (st.exchange == ex) {
        stop_waiting(st);
        int const status = e.status() >= 400 && e.status() <= 599 ? e.status() : 500;
        submit(st, response::text(status, std::string(e.what()) + "\n"));
      }
    } catch (std::exception const& e) {
      if (st.exchange == ex) {
        stop_waiting(st);
        failed(st, ex->request, e.what());
      }
    } catch (...) {
      if (st.exchange == ex) {
        stop_waiting(st);
        failed(st, ex->request, "an exception not derived from std::exception");
      }
    }
  }

  std::shared_ptr<async_exchange> stop_waiting(stream_state& st) {
    auto ex = std::move(st.exchange);
    ex->finish();
    st.ph = stream_state::phase::responding;
    w_.answered();
    return ex;
  }

  void give_up_waiting(stream_state& st) {
    auto const ex = stop_waiting(st);
    w_.report("the handler of " + ex->request.method() + " " + ex->request.path() +
              " did not answer in time");
    submit(st, response::text(503, "the server did not answer in time\n").header("Retry-After", "5"));
  }

  void answer_async(stream_state& st, async_exchange& ex, std::optional<response> r) {
    if (closed_ || st.ph != stream_state::phase::awaiting || st.exchange.get() != &ex) {
      if (r)
        abandon_stream(*r, errc::stream_closed, w_.closes);
      return;
    }
    auto const keep = stop_waiting(st);
    if (!r) {
      w_.report("the handler of " + keep->request.method() + " " + keep->request.path() +
                " dropped its responder without answering");
      submit(st, response::text(500, "internal server error\n"));
    } else {
      answer(st, *r, keep->request);
    }
    flush();
  }

  // --- answers ----------------------------------------------------------------------------
  /// The response's fields for nghttp2: lower-case names, connection-specific ones left out.
  struct field_list {
    std::vector<std::pair<std::string, std::string>> fields;
    void add(std::string_view k, std::string_view v) {
      std::string name(k);
      for (auto& c : name)
        c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
      if (connection_specific(name))
        return;
      fields.emplace_back(std::move(name), std::string(v));
    }
    std::vector<nghttp2_nv> nva() {
      std::vector<nghttp2_nv> v;
      v.reserve(fields.size());
      for (auto& [k, val] : fields)
        v.push_back({reinterpret_cast<std::uint8_t*>(k.data()),
                     reinterpret_cast<std::uint8_t*>(val.data()), k.size(), val.size(),
                     NGHTTP2_NV_FLAG_NONE});
      return v;
    }
  };

  void common_fields(field_list& f, stream_state const& st, response const& res, int status) {
    f.add(":status", std::to_string(status));
    bool has_date = false;
    for (auto const& h : res.headers())
      if (parse_util::iequals(h.first, "Date"))
        has_date = true;
    if (!has_date)
      f.add("date", w_.date());
    cors_fields(w_.opts.cors, st.origin, [&](std::string_view k, std::string_view v) { f.add(k, v); });
  }

  void submit(stream_state& st, response const& res) {
    if (st.answered)
      return;
    st.answered = true;
    st.ph = stream_state::phase::responding;
    w_.counters.response(res.status());
    st.status = res.status();
    field_list f;
    common_fields(f, st, res, res.status());
    for (auto const& [k, v] : res.headers())
      f.add(k, v);
    bool const bodyless = res.status() < 200 || res.status() == 204 || res.status() == 304;
    if (!bodyless)
      f.add("content-length", std::to_string(res.body().size()));
    auto nva = f.nva();
    st.ended_by_us = true;
    if (bodyless || st.head || res.body().empty()) {
      nghttp2_submit_response(s_, st.id, nva.data(), nva.size(), nullptr);
      return;
    }
    st.body = res.body();
    st.body_off = 0;
    nghttp2_data_provider dp;
    dp.source.ptr = &st;
    dp.read_callback = &h2_session::read_body;
    nghttp2_submit_response(s_, st.id, nva.data(), nva.size(), &dp);
  }

  static ssize_t read_body(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length,
                           std::uint32_t* flags, nghttp2_data_source* src, void* ud) {
    auto& st = *static_cast<stream_state*>(src->ptr);
    if (st.queue)
      return self(ud).fill_stream(st, buf, length, flags);
    std::size_t const n = std::min(length, st.body.size() - st.body_off);
    std::memcpy(buf, st.body.data() + st.body_off, n);
    st.body_off += n;
    st.bytes += n;
    if (st.body_off == st.body.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      std::string().swap(st.body);
    }
    return static_cast<ssize_t>(n);
  }

  void start_stream(stream_state& st, response& res, sse::request const& req) {
    auto [sub, queue] = take_stream_source(res, req, w_);
    if (!queue) {
      submit(st, response::text(500, "internal server error\n"));
      return;
    }
    st.answered = true;
    w_.counters.response(200);
    st.status = 200;
    field_list f;
    common_fields(f, st, res, 200);
    f.add("content-type", "text/event-stream");
    f.add("cache-control", "no-cache, no-transform");
    f.add("x-accel-buffering", "no");
    for (auto const& [k, v] : res.headers())
      f.add(k, v);
    auto nva = f.nva();
    if (st.head) {
      if (sub)
        sub->unsubscribe();
      else if (waiter* wt = queue->close_and_discard())
        wt->notify(make_error_code(errc::closed));
      st.ended_by_us = true;
      nghttp2_submit_response(s_, st.id, nva.data(), nva.size(), nullptr);
      return;
    }
    st.sub = std::move(sub);
    st.queue = std::move(queue);
    if (w_.opts.retry.count() > 0)
      st.pending.push_back(w_.retry_frame());
    for (auto& fr : res.prelude_frames())
      st.pending.push_back(std::move(fr));
    st.ph = stream_state::phase::streaming;
    st.last_write = clock::now();
    w_.counters.streams_opened.add(1);
    w_.counters.streams.add(1);
    nghttp2_data_provider dp;
    dp.source.ptr = &st;
    dp.read_callback = &h2_session::read_body;
    nghttp2_submit_response(s_, st.id, nva.data(), nva.size(), &dp);
  }

  /// A stream's DATA: what its queue holds, as much as the frame takes (several events in one
  /// frame); deferred while the queue is empty, until a publisher wakes it.
  ssize_t fill_stream(stream_state& st, std::uint8_t* buf, std::size_t length, std::uint32_t* flags) {
    std::size_t n = 0;
    for (;;) {
      while (n < length && st.pending_pos < st.pending.size()) {
        auto const& fr = st.pending[st.pending_pos];
        std::size_t const k = std::min(length - n, fr.size() - st.frame_off);
        std::memcpy(buf + n, fr.data() + st.frame_off, k);
        n += k;
        st.frame_off += k;
        if (st.frame_off == fr.size()) {
          st.frame_off = 0;
          ++st.pending_pos;
        }
      }
      if (st.pending_pos == st.pending.size()) {
        st.pending.clear();
        st.pending_pos = 0;
      }
      if (n == length)
        break;
      if (st.ending) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        st.ended_by_us = true;
        break;
      }
      if (st.drain != stream_state::drain_state::hinted && st.queue->pop_all(st.pending, max_batch) > 0)
        continue;
      if (st.drain == stream_state::drain_state::due) {
        st.pending.push_back(w_.retry_frame());
        st.drain = stream_state::drain_state::hinted;
        continue;
      }
      if (st.heartbeat_due) {
        st.heartbeat_due = false;
        if (n == 0) {
          st.pending.push_back(heartbeat_frame());
          continue;
        }
      }
      if (w_.stopping || st.drain == stream_state::drain_state::hinted) {
        st.ending = true; // everything queued is in
        continue;
      }
      if (n > 0)
        break; // sent now; the next call looks at the queue again
      switch (st.queue->arm(st)) {
      case subscriber_state<frame>::arm_result::armed:
        st.armed = true;
        return NGHTTP2_ERR_DEFERRED;
      case subscriber_state<frame>::arm_result::ready:
        continue;
      case subscriber_state<frame>::arm_result::ended:
        st.ending = true;
        continue;
      }
    }
    if (n > 0) {
      st.last_write = clock::now();
      st.bytes += n;
    }
    return static_cast<ssize_t>(n);
  }

  void wake(stream_state& st) {
    if (st.armed) {
      st.queue->disarm(st);
      st.armed = false;
    }
    nghttp2_session_resume_data(s_, st.id);
  }

  /// The stream is over: its source goes back, its close listeners learn `why`.
  void release(stream_state& st, errc why) {
    if (st.ph == stream_state::phase::awaiting)
      stop_waiting(st);
    if (st.queue) {
      w_.counters.streams.sub(1);
      st.queue->tell_closed(make_error_code(why));
      if (st.sub) {
        st.sub->unsubscribe();
        st.sub.reset();
      } else {
        st.queue->close_and_discard();
      }
      st.queue.reset();
    }
    st.pending.clear();
    log(st);
  }

  void log(stream_state& st) noexcept {
    if (!w_.opts.access_log || st.status == 0)
      return;
    access_entry e;
    e.method = st.method.empty() ? std::string_view(st.raw.method) : std::string_view(st.method);
    e.target = st.target.empty() ? std::string_view(st.raw.target) : std::string_view(st.target);
    e.status = st.status;
    e.bytes = st.bytes;
    e.duration = std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - st.at);
    e.remote = remote_;
    e.stream = st.ph == stream_state::phase::streaming;
    try {
      w_.opts.access_log(e);
    } catch (...) {
    }
  }

  void goaway() {
    if (goaway_sent_)
      return;
    goaway_sent_ = true;
    nghttp2_submit_goaway(s_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s_),
                          NGHTTP2_NO_ERROR, nullptr, 0);
  }

  /// GOAWAY with `code`; the connection closes once it is written. From a callback too: the
  /// flush comes after nghttp2 returns.
  void terminate(std::uint32_t code) {
    if (terminating_)
      return;
    terminating_ = true;
    nghttp2_session_terminate_session(s_, code);
    flush();
  }

  // --- the socket ---------------------------------------------------------------------------
  void do_read() {
    if (read_pending_ || closed_)
      return;
    read_pending_ = true;
    if constexpr (plain) {
      sock_.async_wait(asio::ip::tcp::socket::wait_read,
                       [self = shared_this()](std::error_code ec) { self->on_readable(ec); });
    } else {
      sock_.async_read_some(asio::buffer(rbuf_.get(), read_size),
                            [self = shared_this()](std::error_code ec, std::size_t n) {
                              self->on_read(ec, self->rbuf_.get(), n);
                            });
    }
  }

  void on_readable(std::error_code ec) {
    read_pending_ = false;
    if (closed_)
      return;
    if (ec) {
      close();
      return;
    }
    // A cleartext read needs no buffer of its own while idle: one per thread, used at once.
    thread_local std::array<char, read_size> scratch;
    for (int i = 0; i < 4 && !closed_; ++i) {
      std::size_t const n = sock_.read_some(asio::buffer(scratch), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again)
        break;
      if (!take(ec, scratch.data(), n))
        return;
      if (n < scratch.size())
        break;
    }
    after_read();
  }

  void on_read(std::error_code ec, char const* data, std::size_t n) {
    read_pending_ = false;
    if (closed_)
      return;
    if (take(ec, data, n))
      after_read();
  }

  /// What one read brought; false once the connection is closed.
  bool take(std::error_code ec, char const* data, std::size_t n) {
    if (ec || n == 0) { // EOF or reset: the client is gone
      close();
      return false;
    }
    if (lingering_) { // after our GOAWAY: read and drop until the client closes
      if ((stray_bytes_ += n) > max_stray_bytes) {
        close();
        return false;
      }
      return true;
    }
    return receive(data, n);
  }

  void after_read() {
    flush();
    if (!closed_ && (!terminating_ || lingering_))
      do_read();
  }

  /// Feeds nghttp2; false if the connection is over (a protocol error closes it).
  bool receive(char const* data, std::size_t n) {
    last_activity_ = clock::now();
    in_nghttp2_ = true; // its callbacks may submit frames, never send them
    auto const rv = nghttp2_session_mem_recv(s_, reinterpret_cast<std::uint8_t const*>(data), n);
    in_nghttp2_ = false;
    if (rv < 0) {
      // Bad framing, a flood, a bad preface: nghttp2 queued a GOAWAY where it could.
      terminating_ = true;
      flush();
      return false;
    }
    return !closed_;
  }

  /// The single writer: what nghttp2 has to send, in slices of at most write_slice bytes.
  void flush() {
    if (in_nghttp2_)
      return; // called back from inside nghttp2: the caller flushes once it has returned
    for (int rounds = 0;; ++rounds) {
      if (writing_ || closed_)
        return;
      if (rounds == max_rounds) {
        w_.enqueue_ready(shared_from_this());
        return;
      }
      while (out_.size() < write_slice) {
        std::uint8_t const* data = nullptr;
        in_nghttp2_ = true;
        auto const n = nghttp2_session_mem_send(s_, &data);
        in_nghttp2_ = false;
        if (n < 0) {
          close();
          return;
        }
        if (n == 0)
          break;
        out_.append(reinterpret_cast<char const*>(data), static_cast<std::size_t>(n));
      }
      if (closed_)
        return;
      if (out_.empty()) {
        if (out_.capacity() > write_slice)
          std::string().swap(out_);
        bool const done = (nghttp2_session_want_read(s_) == 0 && nghttp2_session_want_write(s_) == 0) ||
                          (terminating_) || ((goaway_sent_ || w_.stopping) && streams_.empty());
        if (done)
          linger();
        return;
      }
      if constexpr (plain) {
        std::error_code ec;
        std::size_t const n = sock_.write_some(asio::buffer(out_), ec);
        if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
          close();
          return;
        }
        w_.counters.bytes_written.add(ec ? 0 : n);
        out_.erase(0, ec ? 0 : n);
        if (out_.empty())
          continue;
      }
      writing_ = true;
      last_progress_ = clock::now();
      write_rest();
      return;
    }
  }

  void write_rest() {
    sock_.async_write_some(asio::buffer(out_), [self = shared_this()](std::error_code ec,
                                                                        std::size_t n) {
      self->writing_ = false;
      if (self->closed_)
        return;
      if (ec) {
        self->close();
        return;
      }
      self->w_.counters.bytes_written.add(n);
      self->last_progress_ = clock::now();
      self->out_.erase(0, n);
      if (!self->out_.empty()) {
        self->writing_ = true;
        self->write_rest();
        return;
      }
      self->flush();
    });
  }

  /// Everything is written, the GOAWAY last: half-close, then read and drop what the client
  /// still sends until it closes (or for two seconds). Closing with unread input would reset
  /// the connection, and the reset would destroy the GOAWAY before the client reads it.
  void linger() {
    if (lingering_ || closed_)
      return;
    lingering_ = terminating_ = true;
    // Streams cut short by the client's abuse learn that it left; ours, that we ended them.
    release_all(goaway_sent_ || w_.stopping ? errc::stream_closed : errc::disconnected);
    std::error_code ec;
    raw().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    linger_until_ = clock::now() + std::chrono::seconds(2);
    do_read();
  }

  void release_all(errc why) {
    auto streams = std::move(streams_);
    streams_.clear();
    for (auto& [id, st] : streams)
      release(*st, st->ended_by_us ? errc::stream_closed : why);
  }

  void close(errc why = errc::disconnected) {
    if (closed_)
      return;
    closed_ = true;
    release_all(why);
    if (drain_counted_) {
      drain_counted_ = false;
      w_.stream_drained();
    }
    std::error_code ec;
    raw().close(ec);
    w_.unlink(this);
  }

  worker& w_;
  Stream sock_;
  h2_limits limits_;
  asio::ip::tcp::endpoint remote_;
  nghttp2_session* s_ = nullptr;
  std::map<std::int32_t, stream_ptr> streams_;
  std::unique_ptr<char[]> rbuf_; ///< over TLS: the read buffer
  std::string out_;
  token_bucket resets_, controls_;
  clock::time_point last_activity_, last_progress_, drain_at_;
  bool writing_ = false, closed_ = false, terminating_ = false, goaway_sent_ = false;
  bool drain_scheduled_ = false;
  bool drain_counted_ = false; ///< the worker's drain waits for this connection's end
  bool in_nghttp2_ = false;    ///< inside mem_recv or mem_send: no flush from callbacks
  bool read_pending_ = false;
  bool lingering_ = false;     ///< GOAWAY written: reading until the client closes
  clock::time_point linger_until_;
  std::size_t stray_bytes_ = 0;
  std::atomic<bool> wake_posted_{false}; ///< an on_ready is queued for woken streams
};

} // namespace sse::detail
