#pragma once

// One client's HTTP/1.1 connection, in cleartext or over TLS: it parses requests and answers
// them, and for a stream it is the single writer of its socket. Also the worker's members that
// need a complete connection.

#include <sse/detail/cors.hpp>
#include <sse/detail/http_parser.hpp>
#include <sse/detail/router.hpp>
#include <sse/detail/subscriber_state.hpp>
#include <sse/detail/worker.hpp>
#include <sse/frame.hpp>
#include <sse/http.hpp>
#include <sse/responder.hpp>
#include <sse/server_options.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace sse::detail {

/// The comment written on an idle stream.
inline frame const& heartbeat_frame() {
  static frame const f(std::string_view(": \n\n"));
  return f;
}

class async_exchange;

/// Where an asynchronous answer goes: an HTTP/1.1 connection, or one HTTP/2 stream.
class answer_sink {
public:
  virtual ~answer_sink() = default;
  /// On the worker's thread: the handler answered `ex` (or dropped it: nullopt).
  virtual void on_answer(async_exchange& ex, std::optional<response> r) = 0;
};

/// An answer that came too late to be sent: an event_stream in it ends with `why`, so that
/// its producer learns (a subscription ends as the response is dropped). Its listeners run
/// through `closes` (none: the system executor).
inline void abandon_stream(response& r, errc why, std::shared_ptr<close_runner> const& closes) {
  auto* s = std::get_if<event_stream>(&r.source());
  if (!s)
    return;
  auto const& q = s->state();
  {
    std::lock_guard<std::mutex> lk(q->mutex);
    if (q->attached)
      return; // another response writes it: not ours to end
    q->attached = true;
    if (closes)
      q->close_run = closes;
    q->tell_closed_locked(make_error_code(why));
  }
  q->close_and_discard(); // nobody waits on a queue no connection writes
}

/// Takes `q` for a response; false if another response already writes it. From now on its
/// close listeners run through `closes` (the worker's thread), their exceptions to its log.
inline bool claim_queue(subscriber_state<frame>& q, std::shared_ptr<close_runner> const& closes) {
  std::lock_guard<std::mutex> lk(q.mutex);
  if (q.attached)
    return false;
  q.attached = true;
  q.close_run = closes;
  return true;
}

/// A stream response's source, claimed for the connection about to write it. Misuse (an
/// `event_stream` another response already writes, a subscription that has ended) goes to
/// the worker's log and gives a null queue: the caller answers 500 and leaves the source alone.
template <class Worker>
std::pair<std::shared_ptr<sse::subscription>, std::shared_ptr<subscriber_state<frame>>>
take_stream_source(response& res, sse::request const& req, Worker& w) {
  std::shared_ptr<sse::subscription> sub;
  std::shared_ptr<subscriber_state<frame>> queue;
  auto& src = res.source();
  if (auto* s = std::get_if<std::shared_ptr<sse::subscription>>(&src)) {
    sub = std::move(*s);
    if (sub)
      queue = sub->state();
  } else {
    queue = std::get<event_stream>(src).state();
  }
  if (queue && claim_queue(*queue, w.closes))
    return {std::move(sub), std::move(queue)};
  w.report("the handler of " + req.method() + " " + req.path() +
           (queue ? " returned an sse::event_stream that already serves another response "
                    "(make one per request)"
                  : " returned a subscription that has already ended"));
  return {};
}

/// One request waiting for its asynchronous handler: what the handler's responder completes.
/// Shared by the connection and the responder, so the request outlives neither.
class async_exchange final : public pending_answer,
                             public std::enable_shared_from_this<async_exchange> {
public:
  async_exchange(std::weak_ptr<answer_sink> c, std::shared_ptr<post_gate> g,
                 std::shared_ptr<close_runner> closes, sse::request r)
      : request(std::move(r)), conn_(std::move(c)), gate_(std::move(g)),
        closes_(std::move(closes)) {}

  void answer(response&& r) noexcept override { deliver(std::optional<response>(std::move(r))); }
  void abandon() noexcept override { deliver(std::nullopt); }
  bool waiting() const noexcept override { return waiting_.load(); }
  /// The connection stopped waiting (answered, timed out, or the client left).
  void finish() noexcept { waiting_ = false; }

  sse::request request;

private:
  void deliver(std::optional<response> r) noexcept;

  std::weak_ptr<answer_sink> conn_;
  std::shared_ptr<post_gate> gate_;
  std::shared_ptr<close_runner> closes_;
  std::atomic<bool> waiting_{true};
};

/// std::allocator under another name: an operation whose handler has it is allocated at its
/// own size, not from the blocks Asio recycles between a thread's operations.
template <class T>
struct exact_allocator {
  using value_type = T;
  exact_allocator() noexcept = default;
  template <class U>
  exact_allocator(exact_allocator<U> const&) noexcept {}
  T* allocate(std::size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>().deallocate(p, n); }
  template <class U>
  bool operator==(exact_allocator<U> const&) const noexcept {
    return true;
  }
  template <class U>
  bool operator!=(exact_allocator<U> const&) const noexcept {
    return false;
  }
};

/// The client preface that opens an HTTP/2 connection by prior knowledge (RFC 9113 3.4).
inline constexpr std::string_view h2_preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An HTTP/1.1 connection over `Stream`: a TCP socket, or a TLS stream over one.
template <class Stream>
class basic_connection final : public connection_base, public answer_sink, private waiter {
  /// A plain socket: writes are tried at once, and the HTTP/2 preface is looked for.
  static constexpr bool plain = std::is_same_v<Stream, asio::ip::tcp::socket>;

public:
  basic_connection(worker& w, Stream s) : w_(w), sock_(std::move(s)) {
    std::error_code ec;
    remote_ = raw().remote_endpoint(ec);
  }

  void start() {
    parser_ = std::make_unique<request_parser>(limits());
    rbuf_ = std::make_unique<char[]>(read_size);
    // A new connection owes us a request: one that sends nothing gets the header deadline,
    // not the (longer) keep-alive idle one.
    deadline_ = clock::now() + w_.opts.header_timeout;
    do_read();
  }

  /// On the worker's thread, after a publisher woke this stream.
  void on_ready() override {
    armed_ = false;
    if (phase_ == phase::streaming)
      pump();
  }

  void on_sweep(clock::time_point now) override {
    if (w_.stopping && now >= w_.stop_deadline) {
      close(errc::stream_closed);
      return;
    }
    if (writing_ && now - last_progress_ >= w_.opts.write_timeout) {
      close(errc::write_timeout); // no byte accepted for write_timeout: the peer stopped reading
      return;
    }
    switch (phase_) {
    case phase::reading:
      if (now >= deadline_) {
        if (request_started_)
          fail(408, "request not received in time");
        else
          close();
      }
      break;
    case phase::streaming:
      if (drain_ == drain_state::scheduled && now >= deadline_) {
        drain_ = drain_state::due;
        pump();
      } else if (!writing_ && now - last_write_ >= w_.opts.heartbeat) {
        heartbeat_due_ = true;
        pump();
      }
      break;
    case phase::lingering:
      if (now >= deadline_)
        close();
      break;
    case phase::awaiting:
      if (now >= deadline_ || (w_.refusing && now >= w_.refuse_deadline))
        give_up_waiting();
      break;
    case phase::held:
    case phase::writing:
    case phase::closed:
      break;
    }
  }

  /// On the worker's thread: the asynchronous handler answered `ex` (or dropped it: nullopt).
  void on_answer(async_exchange& ex, std::optional<response> r) override {
    if (phase_ != phase::awaiting || exchange_.get() != &ex) {
      if (r) // too late: timed out, client gone, or already answered
        abandon_stream(*r, phase_ == phase::closed ? errc::disconnected : errc::stream_closed,
                       w_.closes);
      return;
    }
    auto const keep = stop_waiting();
    std::uint64_t const seq = std::exchange(pace_until_, 0);
    if (!r) {
      w_.report("the handler of " + keep->request.method() + " " + keep->request.path() +
                " dropped its responder without answering");
      respond(response::text(500, "internal server error\n"), false);
    } else {
      answer(*r, keep->request, seq);
    }
  }

  /// Stop: flush streams, finish responses in flight, close idle connections.
  void begin_shutdown() override {
    switch (phase_) {
    case phase::reading:
      if (!request_started_)
        close(); // idle: nothing to answer
      break;     // else its request gets 503 when complete, or stop_timeout ends it
    case phase::writing:
    case phase::awaiting: // answered, or 503 at the stop deadline
      keep_alive_ = false;
      break;
    case phase::held: // answered now, not after the writers' turns
      keep_alive_ = false;
      send_response();
      break;
    case phase::streaming:
      pump();
      break;
    case phase::lingering:
    case phase::closed:
      break;
    }
  }

  /// Closes the socket now; a stream's close listeners learn `why` (unless its source ended
  /// first: then they already know).
  void close(errc why = errc::disconnected) {
    if (phase_ == phase::closed)
      return;
    if (phase_ == phase::awaiting)
      stop_waiting(); // a late answer is dropped
    if (phase_ == phase::streaming) {
      w_.counters.streams.sub(1);
      queue_->tell_closed(make_error_code(why));
    }
    drained();
    end_log(); // a response cut off, or a stream that ended with its client
    phase_ = phase::closed;
    release_source();
    std::error_code ec;
    if (!handed_over_)
      raw().close(ec);
    w_.unlink(this);
  }

private:
  enum class phase { reading, awaiting, held, writing, streaming, lingering, closed };
  static constexpr std::size_t read_size = 4096;
  /// Frames per gather write: Asio passes at most 64 buffers to one writev, and the head,
  /// a chunk-size line and the chunk's CRLF take three.
  static constexpr std::size_t max_batch = 61;
  static constexpr int max_rounds = 8; ///< immediate writes in a row before yielding
  static constexpr std::size_t max_stray_bytes = 64 * 1024; ///< read after a stream's GET

  parser_limits limits() const;

  /// The TCP socket, under TLS if any.
  asio::ip::tcp::socket& raw() noexcept {
    if constexpr (plain)
      return sock_;
    else
      return sock_.next_layer();
  }

  std::shared_ptr<basic_connection> shared_this() {
    return std::static_pointer_cast<basic_connection>(shared_from_this());
  }

  // waiter: called by a publisher (any thread) with the queue's lock or the broker's held.
  void notify(std::error_code) noexcept override {
    if (auto self = weak_from_this().lock())
      w_.enqueue_ready(std::move(self));
  }

  // --- reading requests -------------------------------------------------------------------
  void do_read() {
    read_pending_ = true;
    sock_.async_read_some(asio::buffer(rbuf_.get() + held_, read_size - held_),
                          [self = shared_this()](std::error_code ec, std::size_t n) {
                            self->on_read(ec, n);
                          });
  }

  void on_read(std::error_code ec, std::size_t n) {
    read_pending_ = false;
    if (phase_ == phase::lingering) { // draining after an error answer: discard until EOF
      if (ec || n == 0 || (stray_bytes_ += n) > max_stray_bytes)
        close();
      else
        do_read();
      return;
    }
    if (phase_ != phase::reading)
      return;
    if (ec) {
      close();
      return;
    }
    rpos_ = 0;
    rlen_ = held_ + n;
    held_ = 0;
    if constexpr (plain) {
      if (!preface_checked_ && w_.hooks.h2c && look_for_preface())
        return;
    }
    if (!request_started_) {
      request_started_ = true;
      deadline_ = clock::now() + w_.opts.header_timeout;
    }
    process_buffer();
  }

  /// h2c by prior knowledge: a connection that opens with the HTTP/2 preface goes to HTTP/2,
  /// with what was read. True if it went, or if more must be read to tell.
  bool look_for_preface() {
    std::size_t const k = std::min(rlen_, h2_preface.size());
    if (std::string_view(rbuf_.get(), k) != h2_preface.substr(0, k)) {
      preface_checked_ = true; // HTTP/1.1
      return false;
    }
    if (rlen_ < h2_preface.size()) { // a prefix so far: keep it and read on
      held_ = rlen_;
      do_read();
      return true;
    }
    preface_checked_ = handed_over_ = true;
    std::string const got(rbuf_.get(), rlen_);
    auto const take = w_.hooks.h2c;
    phase_ = phase::closed; // this object is done; the socket lives on in the HTTP/2 session
    take(w_, std::move(sock_), got); // linked before this one leaves: never seen empty
    w_.unlink(this);
    return true;
  }

  void process_buffer() {
    while (rpos_ < rlen_) {
      bool const head_before = parser_->header_complete();
      std::size_t const used = parser_->feed(rbuf_.get() + rpos_, rlen_ - rpos_);
      rpos_ += used;
      auto const st = parser_->state();
      if (st == request_parser::status::error) {
        fail(parser_->error_status(), std::string(parser_->error_reason()));
        return;
      }
      if (!head_before && parser_->header_complete())
        deadline_ = clock::now() + w_.opts.body_timeout;
      if (st == request_parser::status::complete) {
        handle_request();
        return;
      }
      if (used == 0) { // cannot happen with a conforming parser; never spin on it
        fail(400, "unparseable request");
        return;
      }
    }
    rpos_ = rlen_ = 0;
    if (parser_->header_complete() && !continue_sent_ && parser_->get().expects_continue()) {
      continue_sent_ = true;
      static constexpr char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(sock_, asio::buffer(cont, sizeof cont - 1),
                        [self = shared_this()](std::error_code ec, std::size_t n) {
                          self->wrote(n);
                          if (ec)
                            self->close();
                          else if (self->phase_ == phase::reading)
                            self->do_read();
                        });
      return;
    }
    do_read();
  }

  void handle_request() {
    begin_log();
    origin_.clear();
    keep_alive_ = parser_->get().keep_alive();
    head_ = parser_->get().method == "HEAD";
    http10_ = parser_->get().version_minor == 0;
    if (w_.refusing) { // stopping: nothing new may start, so nothing is published after stop()
      respond(response::text(503, "the server is shutting down\n").header("Retry-After", "5"),
              false);
      return;
    }
    std::vector<std::pair<std::string, std::string>> query;
    if (!parse_query(parser_->get().query, query)) {
      respond(response::text(400, "malformed percent-encoding in the query\n"), false);
      return;
    }
    auto raw = parser_->release();
    raw.secure = !plain;
    sse::request req(std::move(raw), std::move(query), remote_);
    if (auto o = req.header("Origin"))
      origin_ = std::string(*o);
    if (req.method() == "OPTIONS" && answer_options(req))
      return;
    for (auto const& hook : w_.routes.hooks()) {
      std::optional<response> early;
      if (!guarded(req, [&] { early = hook(req); }))
        return;
      if (early) { // the hook answered (401, 403, 429, ...)
        answer(*early, req);
        return;
      }
    }
    auto m = w_.routes.find(req.method(), req.path());
    if (!m.h) {
      if (m.bad_escape) {
        respond(response::text(400, "malformed percent-encoding in the path\n"), false);
      } else if (!m.allow.empty()) {
        respond(response::text(405, "method not allowed\n").header("Allow", m.allow), keep_alive_);
      } else {
        respond(response::text(404, "not found\n"), keep_alive_);
      }
      return;
    }
    req.set_params(std::move(m.params));
    pace_mark const mark = pace_mark_now();
    if (m.h->async) {
      begin_async(std::move(req), m.h->async);
      pace_until_ = pace_target(mark); // its answer is posted: it runs after this
      return;
    }
    response res;
    bool const ok = guarded(req, [&] { res = m.h->sync(req); });
    if (ok)
      answer(res, req, pace_target(mark));
  }

  /// Where the thread was when a handler began: how many of its fan-outs had left a queue
  /// more than half full, and the pushes into its queues.
  struct pace_mark {
    std::uint64_t deep_runs, pushed;
  };
  pace_mark pace_mark_now() { return {w_.shard->deep_runs(), w_.shard->pushed()}; }

  /// The turn the answer to a handler that published into this thread's queues waits for, or
  /// 0 (see `server_options::pace_backlog`).
  std::uint64_t pace_target(pace_mark const& before) {
    std::size_t const share = w_.opts.pace_share;
    if (!share || w_.shard->pushed() == before.pushed)
      return 0;
    std::uint64_t const wakes = w_.wakes(), turns = w_.turns();
    if (w_.shard->deep_runs() != before.deep_runs)
      return wakes;
    if (wakes <= turns + w_.opts.pace_backlog)
      return 0;
    return turns + (wakes - turns + share - 1) / share;
  }

  /// Starts the stream, or answers once the writers have had turn `seq` (at once if 0).
  void answer(response& res, sse::request const& req, std::uint64_t seq = 0) {
    if (res.is_stream()) {
      start_stream(res, req);
    } else if (!seq) {
      respond(res, keep_alive_);
    } else {
      build_response(res, keep_alive_);
      phase_ = phase::held;
      w_.pace(shared_this(), seq);
    }
  }

  /// Runs a handler or hook; if it throws, answers for it (an http_error with its status,
  /// anything else 500 and a line in the error log) once `may_answer()` agrees, and returns
  /// false.
  template <class F, class G = bool (*)()>
  bool guarded(sse::request const& req, F&& f, G&& may_answer = [] { return true; }) {
    try {
      f();
      return true;
    } catch (http_error const& e) {
      if (may_answer()) {
        int const status = e.status() >= 400 && e.status() <= 599 ? e.status() : 500;
        respond(response::text(status, std::string(e.what()) + "\n"), keep_alive_);
      }
    } catch (std::exception const& e) {
      if (may_answer())
        handler_failed(req, e.what());
    } catch (...) {
      if (may_answer())
        handler_failed(req, "an exception not derived from std::exception");
    }
    return false;
  }

  bool answer_options(sse::request const& req) {
    auto r = options_answer(w_.routes, w_.opts.cors, req, origin_);
    if (!r)
      return false;
    respond(*r, keep_alive_);
    return true;
  }

  void append_cors() {
    cors_fields(w_.opts.cors, origin_,
                [this](std::string_view k, std::string_view v) { append_header(k, v); });
  }

  // --- asynchronous handlers ------------------------------------------------------------
  void begin_async(sse::request&& req, std::function<void(sse::request&, sse::responder)> const& h) {
    auto ex = std::make_shared<async_exchange>(std::weak_ptr<answer_sink>(shared_this()), w_.gate,
                                               w_.closes, std::move(req));
    exchange_ = ex;
    phase_ = phase::awaiting;
    ++w_.awaiting;
    deadline_ = clock::now() + w_.opts.handler_timeout;
    // An answer is posted, never handled in here; a throw answers unless that came first.
    bool const returned = guarded(
        ex->request, [&] { h(ex->request, sse::responder(ex)); },
        [&] {
          if (exchange_ != ex)
            return false;
          stop_waiting();
          return true;
        });
    if (returned && phase_ == phase::awaiting)
      watch_peer();
  }

  /// Leaves the awaiting phase; returns the exchange, which no later answer can complete.
  std::shared_ptr<async_exchange> stop_waiting() {
    auto ex = std::move(exchange_);
    ex->finish();
    phase_ = phase::reading; // whoever called decides what comes next
    w_.answered();
    return ex;
  }

  void give_up_waiting() {
    auto const ex = stop_waiting();
    w_.report("the handler of " + ex->request.method() + " " + ex->request.path() +
              " did not answer in time");
    respond(response::text(503, "the server did not answer in time\n").header("Retry-After", "5"),
            false);
  }

  /// While the handler works: notice a client that leaves (EOF, reset) without reading what
  /// it may have pipelined, which waits for its turn.
  void watch_peer() { watch_readable(); }

  void on_peer_readable(std::error_code ec) {
    if (!exchange_)
      return;
    if (!ec) {
      char byte;
      std::size_t const n =
          raw().receive(asio::buffer(&byte, 1), asio::socket_base::message_peek, ec);
      if (!ec && n == 1)
        return; // a pipelined request: the client is there, and its bytes stay unread
    }
    close(); // EOF or reset: the client left; the late answer will be dropped
  }

  /// The handler threw: 500 for this request only, and the cause to the error log.
  void handler_failed(sse::request const& req, std::string_view what) {
    w_.report("the handler of " + req.method() + " " + req.path() + " threw: " + std::string(what));
    respond(response::text(500, "internal server error\n"), false);
  }

  // --- ordinary responses -----------------------------------------------------------------
  void respond(response const& res, bool keep_alive) {
    build_response(res, keep_alive);
    send_response();
  }

  void build_response(response const& res, bool keep_alive) {
    w_.counters.response(res.status());
    if (log_)
      log_->status = res.status();
    keep_alive_ = keep_alive && !w_.stopping;
    out_.clear();
    append_status_line(res.status());
    append_date(res);
    append_cors();
    for (auto const& [k, v] : res.headers())
      append_header(k, v);
    bool const bodyless = res.status() < 200 || res.status() == 204 || res.status() == 304;
    if (!bodyless) // for HEAD too: the length the GET would have (RFC 9110 section 8.6)
      append_header("Content-Length", std::to_string(res.body().size()));
    append_header("Connection", keep_alive_ ? "keep-alive" : "close");
    out_ += "\r\n";
    if (!bodyless && !head_) // a response to HEAD never has a body
      out_ += res.body();
  }

  void send_response() {
    phase_ = phase::writing;
    bufs_.clear();
    bufs_.emplace_back(asio::buffer(out_));
    start_write_clock();
    write_rest(false);
  }

  void on_response_written(std::error_code ec) {
    writing_ = false;
    if (phase_ != phase::writing)
      return;
    end_log();
    if (ec) {
      close();
      return;
    }
    if (!keep_alive_ || w_.stopping) {
      linger_close();
      return;
    }
    out_.clear();
    parser_->reset();
    request_started_ = rpos_ < rlen_;
    continue_sent_ = false;
    phase_ = phase::reading;
    deadline_ = clock::now() + (request_started_ ? w_.opts.header_timeout : w_.opts.idle_timeout);
    read_next();
  }

  void on_paced() override {
    if (phase_ == phase::held)
      send_response();
  }

  void read_next() {
    if (rpos_ < rlen_)
      process_buffer(); // a pipelined request is already here
    else
      do_read();
  }

  void fail(int status, std::string reason) {
    if (!log_ || !log_->active)
      begin_log(); // what of the request line arrived
    origin_.clear();
    head_ = parser_ && parser_->get().method == "HEAD";
    respond(response::text(status, reason + "\n"), false);
  }

  /// Half-close, then drain what the peer still sends for a moment: a plain close with unread
  /// input resets the connection and can destroy the error response before it is read.
  void linger_close() {
    if (phase_ == phase::streaming) { // ended by us: everything queued is written
      w_.counters.streams.sub(1);
      queue_->tell_closed(make_error_code(errc::stream_closed));
      release_source(); // over now, not once the client has closed its end too
    }
    drained();
    end_log();
    phase_ = phase::lingering;
    deadline_ = clock::now() + std::chrono::seconds(2);
    parser_.reset();
    if constexpr (plain) {
      std::error_code ec;
      sock_.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
      if (read_pending_)
        return; // the pending read owns rbuf_; on_read goes on draining with it
      rbuf_.reset();
      watch_input();
    } else {
      if (read_pending_) { // the TLS stream reads already: no close_notify beside it
        close();
        return;
      }
      rbuf_.reset();
      // close_notify, then the peer's (or the lingering deadline) ends it.
      sock_.async_shutdown([self = shared_this()](std::error_code) { self->close(); });
    }
  }

  // --- streams ----------------------------------------------------------------------------
  void start_stream(response& res, sse::request const& req) {
    auto [sub, queue] = take_stream_source(res, req, w_);
    if (!queue) { // misuse, not the client's fault (reported)
      respond(response::text(500, "internal server error\n"), false);
      return;
    }
    w_.counters.response(200);
    if (log_) {
      log_->status = 200;
      log_->stream = !head_;
    }
    chunked_ = !http10_; // HTTP/1.1 clients that read in blocks see each event at once
    out_.clear();
    append_status_line(200);
    append_date(res);
    append_header("Content-Type", "text/event-stream");
    append_header("Cache-Control", "no-cache, no-transform");
    append_header("X-Accel-Buffering", "no");
    append_cors();
    if (chunked_)
      append_header("Transfer-Encoding", "chunked");
    for (auto const& [k, v] : res.headers())
      append_header(k, v);
    if (head_) { // the stream's headers only: the source goes back at once
      if (sub)
        sub->unsubscribe();
      else if (waiter* w = queue->close_and_discard())
        w->notify(make_error_code(errc::closed));
      keep_alive_ = keep_alive_ && !w_.stopping;
      append_header("Connection", keep_alive_ ? "keep-alive" : "close");
      out_ += "\r\n";
      phase_ = phase::writing;
      bufs_.clear();
      bufs_.emplace_back(asio::buffer(out_));
      start_write_clock();
      write_rest(false);
      return;
    }
    append_header("Connection", "close");
    out_ += "\r\n";
    sub_ = std::move(sub);
    queue_ = std::move(queue);
    pending_.clear();
    if (w_.opts.retry.count() > 0)
      pending_.push_back(w_.retry_frame());
    for (auto& f : res.prelude_frames())
      pending_.push_back(std::move(f));
    // A stream reads nothing more, so give back the request buffers now.
    parser_.reset();
    rbuf_.reset();
    phase_ = phase::streaming;
    w_.counters.streams_opened.add(1);
    w_.counters.streams.add(1);
    last_write_ = clock::now();
    if constexpr (plain) {
      std::error_code ec;
      sock_.non_blocking(true, ec); // the writer tries each write before going async
    }
    watch_input();
    pump();
  }

public:
  /// Drain: at `at`, write what is queued then, a `retry:` hint, and end the stream. False if
  /// this is not a stream.
  bool drain_at(clock::time_point at) override {
    if (phase_ != phase::streaming || ending_ || drain_ != drain_state::none)
      return false;
    drain_ = drain_state::scheduled;
    deadline_ = at; // a stream has no other deadline
    return true;
  }

private:
  /// After the last event: the terminating chunk (for a chunked stream), then the close.
  void end_stream() {
    ending_ = true;
    if (chunked_)
      out_ = "0\r\n\r\n";
  }

  /// The single writer: everything queued since the last write goes out in one gather write.
  void pump() {
    for (int rounds = 0;; ++rounds) {
      if (writing_ || phase_ != phase::streaming)
        return;
      if (rounds == max_rounds) { // let the thread's other connections write too
        w_.enqueue_ready(shared_this());
        return;
      }
      if (ending_) {
        if (out_.empty()) { // the last chunk is out: finish the response
          linger_close();
          return;
        }
      } else {
        if (drain_ != drain_state::hinted)
          queue_->pop_all(pending_, max_batch);
        if (drain_ == drain_state::due && pending_.size() < max_batch) {
          // Everything queued until now is in this write; then the hint, then the end. What
          // is published later the client gets where it reconnects, by its Last-Event-ID.
          pending_.push_back(w_.retry_frame());
          drain_ = drain_state::hinted;
        }
        if (heartbeat_due_) {
          heartbeat_due_ = false;
          if (pending_.empty() && out_.empty())
            pending_.push_back(heartbeat_frame());
        }
        if (pending_.empty() && out_.empty()) {
          if (w_.stopping || drain_ == drain_state::hinted) { // everything queued is written
            end_stream();
            continue;
          }
          if (armed_)
            return;
          switch (queue_->arm(*this)) {
          case subscriber_state<frame>::arm_result::armed:
            armed_ = true;
            return;
          case subscriber_state<frame>::arm_result::ended: // drained and ended
            end_stream();
            continue;
          case subscriber_state<frame>::arm_result::ready:
            continue; // something arrived between pop_all and arm
          }
        }
      }
      bufs_.clear();
      std::size_t total = 0;
      if (!out_.empty()) { // the response head, or the last chunk
        bufs_.emplace_back(asio::buffer(out_));
        total += out_.size();
      }
      std::size_t payload = 0;
      for (auto const& f : pending_)
        payload += f.size();
      if (chunked_ && payload > 0) { // the whole gather write is one chunk
        int const n = std::snprintf(chunk_head_, sizeof chunk_head_, "%zx\r\n", payload);
        bufs_.emplace_back(chunk_head_, static_cast<std::size_t>(n));
        total += static_cast<std::size_t>(n);
      }
      for (auto const& f : pending_)
        bufs_.emplace_back(f.data(), f.size());
      total += payload;
      if (chunked_ && payload > 0) {
        bufs_.emplace_back(asio::buffer(crlf, 2));
        total += 2;
      }
      if constexpr (!plain) {
        // A TLS stream encrypts one buffer per write: give it the batch in one piece.
        tls_out_.clear();
        for (auto const& b : bufs_)
          tls_out_.append(static_cast<char const*>(b.data()), b.size());
        bufs_.assign(1, asio::buffer(tls_out_));
        start_write_clock();
        write_rest(true);
        return;
      }
      // Try the write now: on a socket with room it completes at once, with no async
      // operation, no completion to schedule, and no second look at the queue.
      std::error_code ec;
      std::size_t const n = sock_.write_some(bufs_, ec);
      wrote(ec ? 0 : n);
      if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
        close();
        return;
      }
      if (!ec && n == total) {
        last_write_ = clock::now();
        batch_written();
        continue; // anything queued meanwhile goes in the next write
      }
      // The socket is full: send the rest asynchronously; the queue waits meanwhile.
      consume(bufs_, ec ? 0 : n);
      start_write_clock();
      write_rest(true);
      return;
    }
  }

  /// Writes what is left in bufs_ piece by piece, so that the write timeout measures progress:
  /// a slow reader that keeps reading is never cut off, one that stops is.
  void write_rest(bool stream) {
    sock_.async_write_some(bufs_, [self = shared_this(), stream](std::error_code ec,
                                                                       std::size_t n) {
      self->on_some_written(ec, n, stream);
    });
  }

  void on_some_written(std::error_code ec, std::size_t n, bool stream) {
    if (!ec) {
      wrote(n);
      last_progress_ = clock::now(); // progress
      consume(bufs_, n);
      if (!bufs_.empty() && phase_ != phase::closed) {
        write_rest(stream);
        return;
      }
    }
    if (stream)
      on_stream_written(ec);
    else
      on_response_written(ec);
  }

  static void consume(std::vector<asio::const_buffer>& bufs, std::size_t n) {
    std::size_t first = 0;
    while (first < bufs.size() && n >= bufs[first].size()) {
      n -= bufs[first].size();
      ++first;
    }
    if (first < bufs.size())
      bufs[first] += n;
    bufs.erase(bufs.begin(), bufs.begin() + static_cast<std::ptrdiff_t>(first));
  }

  void on_stream_written(std::error_code ec) {
    writing_ = false;
    if (phase_ != phase::streaming)
      return;
    if (ec) {
      close();
      return;
    }
    last_write_ = clock::now();
    batch_written();
    // After a burst, give the batch vectors back so an idle stream stays small.
    if (pending_.capacity() > 64) {
      std::vector<frame>().swap(pending_);
      std::vector<asio::const_buffer>().swap(bufs_);
    }
    if constexpr (!plain)
      if (tls_out_.capacity() > 64 * 1024)
        std::string().swap(tls_out_);
    pump();
  }

  /// A stream's write is out. The one with the response head (and the preludes) is the
  /// largest an idle stream makes: its buffers go back with the head, so a stream that then
  /// waits keeps none, and one that gets events grows them to its events' size.
  void batch_written() {
    pending_.clear();
    if (out_.empty())
      return;
    std::string().swap(out_);
    std::vector<frame>().swap(pending_);
    std::vector<asio::const_buffer>().swap(bufs_);
  }

  /// Notices a peer that leaves (EOF, reset) without keeping a read buffer: wait for
  /// readability, then read into a small stack buffer and discard.
  void watch_input() {
    // Over TLS too: a stream reads nothing more, so the bytes are not decrypted, only counted.
    watch_readable();
  }

  /// One wait for readability at a time, whichever phase asked: the wait an asynchronous
  /// handler's request left pending goes on watching its stream, so a stream holds one wait
  /// operation, and none that pins the spent exchange's memory.
  void watch_readable() {
    if (watching_)
      return;
    watching_ = true;
    raw().async_wait(asio::ip::tcp::socket::wait_read, readable_handler{shared_this()});
  }

  /// The wait's handler. It stays pending as long as the stream, so its operation is
  /// allocated at its own size: Asio's default allocator would hand it whatever block the
  /// thread freed last (often an accept's, a third larger), kept for the stream's life.
  struct readable_handler {
    std::shared_ptr<basic_connection> self;
    using allocator_type = exact_allocator<void>;
    allocator_type get_allocator() const noexcept { return {}; }
    void operator()(std::error_code ec) const {
      self->watching_ = false;
      self->on_readable(ec);
    }
  };

  void on_readable(std::error_code ec) {
    if (phase_ == phase::awaiting) {
      on_peer_readable(ec);
      return;
    }
    if (phase_ != phase::streaming && phase_ != phase::lingering)
      return; // a wait left from an earlier exchange; the read in flight sees the bytes
    if (ec) {
      close();
      return;
    }
    std::array<char, 512> scratch;
    raw().non_blocking(true, ec);
    std::size_t const n = raw().read_some(asio::buffer(scratch), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      watch_input();
      return;
    }
    if (ec) { // EOF or reset: the client is gone
      close();
      return;
    }
    stray_bytes_ += n;
    if (stray_bytes_ > max_stray_bytes) {
      close(errc::stream_closed);
      return;
    }
    watch_input();
  }

  void release_source() {
    if (sub_) {
      sub_->unsubscribe(); // under the broker's lock: no publisher can wake us after this
      sub_.reset();
    } else if (queue_) {
      queue_->close_and_discard(); // the producer's send() now returns false; we are the waiter
    }
    queue_.reset();
    pending_.clear();
  }

  // --- helpers ----------------------------------------------------------------------------
  void start_write_clock() {
    writing_ = true;
    last_progress_ = clock::now();
  }
  void append_status_line(int status) {
    out_ += "HTTP/1.1 ";
    out_ += std::to_string(status);
    out_ += ' ';
    out_ += reason_phrase(status);
    out_ += "\r\n";
  }
  /// A stream the drain scheduled has ended.
  void drained() {
    if (drain_ == drain_state::none || drain_ == drain_state::done)
      return;
    drain_ = drain_state::done;
    w_.stream_drained();
  }

  /// Bytes of the current response went out.
  void wrote(std::size_t n) {
    w_.counters.bytes_written.add(n);
    if (log_)
      log_->bytes += n;
  }

  // --- the access log ---------------------------------------------------------------------
  struct log_state {
    bool active = false;
    std::string method, target;
    int status = 0;
    std::uint64_t bytes = 0;
    bool stream = false;
    clock::time_point at;
  };

  void begin_log() {
    if (!w_.opts.access_log)
      return;
    if (!log_)
      log_ = std::make_unique<log_state>();
    log_->active = true;
    log_->method = parser_ ? parser_->get().method : std::string();
    log_->target = parser_ ? parser_->get().target : std::string();
    log_->status = 0;
    log_->bytes = 0;
    log_->stream = false;
    log_->at = clock::now();
  }

  void end_log() noexcept {
    if (!log_ || !log_->active)
      return;
    log_->active = false;
    if (log_->status == 0)
      return; // nothing was answered (the client left first)
    access_entry e;
    e.method = log_->method;
    e.target = log_->target;
    e.status = log_->status;
    e.bytes = log_->bytes;
    e.duration = std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - log_->at);
    e.remote = remote_;
    e.stream = log_->stream;
    try {
      w_.opts.access_log(e);
    } catch (...) {
    }
  }

  /// `Date`, unless the handler set its own.
  void append_date(response const& res) {
    for (auto const& h : res.headers())
      if (parse_util::iequals(h.first, "Date"))
        return;
    append_header("Date", w_.date());
  }
  void append_header(std::string_view k, std::string_view v) {
    out_ += k;
    out_ += ": ";
    out_ += v;
    out_ += "\r\n";
  }

  // Word-sized members first, the flags together at the end: padding between them is paid
  // by every idle connection.
  worker& w_;
  Stream sock_;
  asio::ip::tcp::endpoint remote_;
  phase phase_ = phase::reading;
  std::unique_ptr<request_parser> parser_;
  std::unique_ptr<char[]> rbuf_;
  std::size_t rpos_ = 0, rlen_ = 0;
  std::uint64_t pace_until_ = 0; ///< its async handler published: its answer waits for this turn
  std::size_t stray_bytes_ = 0;
  /// The phase's: a request's or an answer's, the keep-alive's, the linger's; for a stream,
  /// the time a scheduled drain ends it.
  clock::time_point deadline_;
  clock::time_point last_progress_, last_write_;
  std::string out_;
  std::shared_ptr<sse::subscription> sub_;
  std::shared_ptr<subscriber_state<frame>> queue_;
  std::shared_ptr<async_exchange> exchange_; ///< while awaiting an asynchronous answer
  std::string origin_;                       ///< the request's Origin, for CORS
  /// The request being answered, for the access log: made by its first request only when
  /// there is one (two strings a connection without a log would carry all its life).
  std::unique_ptr<log_state> log_;
  std::vector<frame> pending_;
  std::vector<asio::const_buffer> bufs_;
  char chunk_head_[24] = {}; ///< the chunk-size line of the write in flight
  std::size_t held_ = 0;     ///< bytes at rbuf_'s start that might be the HTTP/2 preface
  enum class drain_state : std::uint8_t { none, scheduled, due, hinted, done };
  drain_state drain_ = drain_state::none; ///< server::drain: this stream's turn to end
  bool request_started_ = false;
  bool read_pending_ = false;
  bool continue_sent_ = false;
  bool keep_alive_ = true;
  bool writing_ = false;
  bool armed_ = false;
  bool heartbeat_due_ = false;
  bool head_ = false;    ///< the request being answered is HEAD: never a body
  bool http10_ = false;  ///< an HTTP/1.0 client: its stream is close-delimited, not chunked
  bool chunked_ = false; ///< the stream is sent in chunks, one per gather write
  bool ending_ = false;  ///< the stream's last chunk is queued: write it and close
  bool preface_checked_ = false;
  bool handed_over_ = false; ///< the socket went to an HTTP/2 session
  bool watching_ = false;    ///< a wait for readability is pending (watch_readable)
  struct no_buffer {};
  /// Over TLS: the batch in one buffer. A plain socket writes the gather list as it is, so
  /// its connections carry no string for it.
  std::conditional_t<plain, no_buffer, std::string> tls_out_;
  static constexpr char crlf[] = "\r\n";
};

template <class Stream>
parser_limits basic_connection<Stream>::limits() const {
  parser_limits l;
  l.max_request_line = w_.opts.max_request_line;
  l.max_header_line = w_.opts.max_header_line;
  l.max_header_bytes = w_.opts.max_header_bytes;
  l.max_headers = w_.opts.max_headers;
  l.max_body = w_.opts.max_body;
  l.accept_bare_lf = w_.opts.accept_bare_lf;
  return l;
}

inline void worker::start() { schedule_sweep(); }

inline bool worker::admit(asio::ip::tcp::socket& s) {
  std::error_code ec;
  if (refusing || live_connections.load() >= opts.max_connections) {
    static constexpr char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                   "Connection: close\r\nRetry-After: 5\r\n\r\n";
    counters.rejected.add(1);
    if (!hooks.accept) { // over TLS the client could not read it: just close
      s.non_blocking(true, ec);
      std::size_t const n = s.write_some(asio::buffer(busy, sizeof busy - 1), ec);
      counters.bytes_written.add(ec ? 0 : n);
    }
    s.close(ec);
    return false;
  }
  s.set_option(asio::ip::tcp::no_delay(true), ec);
  if (opts.send_buffer > 0)
    s.set_option(asio::socket_base::send_buffer_size(static_cast<int>(opts.send_buffer)), ec);
  return true;
}

inline void worker::adopt(asio::ip::tcp::socket s) {
  if (!admit(s))
    return;
  if (hooks.accept) {
    hooks.accept(*this, std::move(s));
    return;
  }
  auto c = std::make_shared<basic_connection<asio::ip::tcp::socket>>(*this, std::move(s));
  link(c.get());
  c->start();
}

inline void worker::link(connection_base* c, bool accepted) {
  c->next = head_;
  if (head_)
    head_->prev = c;
  head_ = c;
  live_connections.fetch_add(1);
  if (accepted)
    counters.accepted.add(1);
}

inline void worker::unlink(connection_base* c) {
  if (c->prev)
    c->prev->next = c->next;
  else if (head_ == c)
    head_ = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->prev = c->next = nullptr;
  live_connections.fetch_sub(1);
  if (stopping)
    check_drained();
}

/// The woken streams get their turn in slices of `write_slice`, each slice a handler of its
/// own: between two, the thread runs what else is ready (a read, an accept, a timer), so a
/// request never waits behind a whole fan-out, and a publish read meanwhile reaches the
/// queues of the streams not yet written, which then send both events in one write.
inline void worker::pace(std::shared_ptr<connection_base> c, std::uint64_t seq) {
  if (turns_ >= seq || finished) {
    c->on_paced();
    return;
  }
  try {
    paced_.emplace_back(seq, std::move(c));
  } catch (...) { // out of memory: not paced
    c->on_paced();
  }
}

inline void worker::drain_ready() {
  if (finished) { // stopped: every connection is closed, and nothing of ours may stay queued
    draining_.clear();
    draining_next_ = 0;
    paced_.clear();
    std::lock_guard<std::mutex> lk(ready_mutex_);
    ready_.clear();
    drain_posted_ = false;
    return;
  }
  if (draining_next_ == draining_.size()) {
    draining_.clear();
    draining_next_ = 0;
    std::lock_guard<std::mutex> lk(ready_mutex_);
    if (ready_.empty()) {
      drain_posted_ = false;
      return;
    }
    ready_.swap(draining_);
  }
  std::size_t const end = std::min(draining_.size(), draining_next_ + opts.write_slice);
  while (draining_next_ < end) {
    auto c = std::move(draining_[draining_next_++]);
    ++turns_;
    c->on_ready();
  }
  while (!paced_.empty() && paced_.front().first <= turns_) {
    auto c = std::move(paced_.front().second);
    paced_.pop_front();
    c->on_paced();
  }
  // The rest, or the streams woken meanwhile, after what is ready now (drain_posted_ stays set).
  asio::post(ex, [this] { drain_ready(); });
}

inline void worker::schedule_sweep() {
  auto period = std::min({opts.heartbeat, opts.write_timeout, opts.header_timeout,
                          opts.body_timeout, opts.idle_timeout, opts.handler_timeout}) / 4;
  period = std::clamp(period, std::chrono::milliseconds(5), std::chrono::milliseconds(1000));
  if (refusing)
    period = std::min(period, std::chrono::milliseconds(20));
  sweep_timer.expires_after(period);
  sweep_timer.async_wait([this](std::error_code ec) {
    if (!ec && !finished)
      sweep();
  });
}

inline void worker::sweep() {
  auto const now = clock::now();
  // A connection may close itself in on_sweep; keep it alive and step past it first.
  for (connection_base* c = head_; c;) {
    auto keep = c->shared_from_this();
    connection_base* next = c->next;
    c->on_sweep(now);
    c = next;
  }
  schedule_sweep();
}

inline void async_exchange::deliver(std::optional<response> r) noexcept {
  try {
    auto held = std::make_shared<std::optional<response>>(std::move(r)); // ours if refused
    if (gate_->post([self = shared_from_this(), held] {
          if (auto c = self->conn_.lock())
            c->on_answer(*self, std::move(*held));
          else if (*held) // the connection is gone with its client
            abandon_stream(**held, errc::disconnected, self->closes_);
        }))
      return;
    if (*held) // the server is gone
      abandon_stream(**held, errc::stream_closed, nullptr);
  } catch (...) { // out of memory: the request times out instead
  }
}

inline std::future<void> worker::refuse() {
  auto done = std::make_shared<std::promise<std::future<void>>>();
  auto f = done->get_future();
  asio::post(ex, [this, done] {
    refusing = true;
    refuse_deadline = clock::now() + opts.stop_timeout;
    schedule_sweep(); // at the stopping pace now, not at the end of a long idle period
    done->set_value(refused_.get_future());
    check_refused();
  });
  return f.get();
}

inline void worker::check_refused() {
  if (refusing && !refused_set_ && awaiting == 0) {
    refused_set_ = true;
    refused_.set_value();
  }
}

inline std::future<void> worker::shut_down() {
  auto done = std::make_shared<std::promise<std::future<void>>>();
  auto f = done->get_future();
  asio::post(ex, [this, done] {
    refusing = stopping = true;
    stop_deadline = clock::now() + opts.stop_timeout;
    schedule_sweep();
    done->set_value(drained_.get_future());
    for (connection_base* c = head_; c;) {
      auto keep = c->shared_from_this();
      connection_base* next = c->next;
      c->begin_shutdown();
      c = next;
    }
    check_drained();
  });
  return f.get();
}

inline std::future<void> worker::drain(std::chrono::milliseconds window) {
  auto done = std::make_shared<std::promise<std::future<void>>>();
  auto f = done->get_future();
  asio::post(ex, [this, done, window] {
    std::vector<connection_base*> streams;
    for (connection_base* c = head_; c; c = c->next)
      streams.push_back(c);
    auto const now = clock::now();
    std::size_t const n = streams.size();
    // Evenly over the window, in a random order so no group of clients always goes first.
    std::shuffle(streams.begin(), streams.end(), rng);
    for (std::size_t i = 0; i < n; ++i)
      if (streams[i]->drain_at(now + window * static_cast<long>(i + 1) / static_cast<long>(n + 1)))
        ++drain_pending_;
    done->set_value(streams_drained_.get_future());
    check_streams_drained();
    schedule_sweep(); // each stream's turn is seen by the sweep: at its quicker pace from now
  });
  return f.get();
}

inline void worker::stream_drained() {
  --drain_pending_;
  check_streams_drained();
}

inline void worker::check_streams_drained() {
  if (!streams_drained_set_ && drain_pending_ == 0) {
    streams_drained_set_ = true;
    streams_drained_.set_value();
  }
}

inline std::future<void> worker::finish() {
  gate->close();
  auto done = std::make_shared<std::promise<void>>();
  auto f = done->get_future();
  asio::post(ex, [this, done] {
    finished = true;
    sweep_timer.cancel();
    shard->close(); // from now on publishers feed this thread's subscribers themselves
    // Posted behind the completions that closing and cancelling queued: once this runs, no
    // handler of ours is left on the executor.
    asio::post(ex, [done] { done->set_value(); });
  });
  return f;
}

inline void worker::check_drained() {
  if (!drained_set_ && head_ == nullptr) {
    drained_set_ = true;
    drained_.set_value();
  }
}

} // namespace sse::detail
