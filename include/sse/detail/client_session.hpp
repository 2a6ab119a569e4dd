#pragma once

/// The state machine behind `sse::client`: connect, request, response head, body, parser,
/// and the wait before the next attempt. Everything here runs on one strand.

#include <sse/client_options.hpp>
#include <sse/detail/client_http.hpp>
#include <sse/detail/client_policy.hpp>
#include <sse/detail/client_transport.hpp>
#include <sse/detail/client_waiter.hpp>
#include <sse/detail/deadline.hpp>
#include <sse/error.hpp>
#include <sse/parser.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/error.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace sse::detail {

class client_session : public std::enable_shared_from_this<client_session> {
public:
  using clock = std::chrono::steady_clock;
  using ms = std::chrono::milliseconds;

  // Set before start(), read on the strand only.
  std::function<void(parsed_event)> on_event;
  std::function<void()> on_open;
  std::function<void(std::error_code, ms)> on_reconnect;
  std::function<void(std::error_code)> on_close;
  client_transport_factory secure_transport;

  client_session(asio::any_io_executor const& ex, client_options o)
      : options_(std::move(o)), strand_(asio::make_strand(ex)), resolver_(strand_),
        timer_(strand_), retry_timer_(strand_), parser_(options_.limits),
        rng_(std::random_device{}()) {
    auto checked = check_options(options_);
    origin_ = std::move(checked.origin);
    own_accept_ = checked.own_accept;
    if (!options_.last_event_id.empty()) // the parser's last event id starts from it
      parser_.feed("id: " + options_.last_event_id + "\n\n");
    url_ = origin_;
    last_id_ = last_id_seen_ = options_.last_event_id;
    retry_ = options_.retry;
  }

  client_options const& options() const noexcept { return options_; }
  asio::any_io_executor executor() const noexcept { return strand_; }

  /// Where the stream is, as parsed from the options.
  client_http::url const& origin() const noexcept { return origin_; }

  void start() {
    if (started_.exchange(true))
      throw std::logic_error("sse::client::start: already started");
    if (origin_.secure && !secure_transport)
      throw std::logic_error("sse::client: an https URL needs the TLS component: include "
                             "<sse/tls_client.hpp> and call sse::tls::enable(client) first");
    asio::post(strand_, [self = shared_from_this()] { self->connect(); });
  }

  bool started() const noexcept { return started_; }

  /// From any thread. No callback runs once it returns (one running on another thread is
  /// waited for); a pending async_next completes with operation_aborted.
  void stop() noexcept {
    {
      std::lock_guard<std::recursive_mutex> lk(callback_mutex_);
      if (stopped_)
        return;
      stopped_ = true;
    }
    set_reason(asio::error::operation_aborted);
    try {
      asio::post(strand_, [self = shared_from_this()] { self->shut(asio::error::operation_aborted); });
    } catch (...) { // only if the executor is gone: nothing left to shut
    }
  }

  template <class Handler>
  void initiate_next(Handler&& h) {
    if (on_event)
      throw std::logic_error("sse::client::async_next: events go to on_event; use one or the other");
    if (waiting_.exchange(true))
      throw std::logic_error("sse::client::async_next: a wait is already pending");
    std::shared_ptr<next_waiter> w =
        std::make_shared<async_next_waiter<std::decay_t<Handler>>>(std::forward<Handler>(h), strand_);
    asio::post(strand_, [self = shared_from_this(), w]() mutable { self->take_waiter(std::move(w)); });
  }

  // Snapshots, from any thread.
  std::string last_event_id() const {
    std::lock_guard<std::mutex> lk(state_mutex_);
    return last_id_;
  }
  int status() const {
    std::lock_guard<std::mutex> lk(state_mutex_);
    return status_;
  }
  std::error_code reason() const {
    std::lock_guard<std::mutex> lk(state_mutex_);
    return reason_;
  }
  ms retry() const {
    std::lock_guard<std::mutex> lk(state_mutex_);
    return retry_;
  }

private:
  enum class phase { idle, connecting, head, body, waiting, closed };

  bool halted() const noexcept { return stopped_.load(std::memory_order_acquire); }

  void set_reason(std::error_code ec) {
    std::lock_guard<std::mutex> lk(state_mutex_);
    if (!reason_)
      reason_ = ec;
  }

  /// Runs a user callback unless stop() came first; stop() from elsewhere waits for it.
  template <class F, class... Args>
  void call(F const& f, Args&&... args) {
    if (!f)
      return;
    std::lock_guard<std::recursive_mutex> lk(callback_mutex_);
    if (!stopped_)
      f(std::forward<Args>(args)...);
  }

  // --- one attempt ---------------------------------------------------------------------------

  void connect() {
    if (halted())
      return;
    ++gen_;
    phase_ = phase::connecting;
    head_.clear();
    parser_.reset();
    decoder_ = client_http::chunked_decoder{};
    body_ = body_kind::close_delimited;
    paused_ = false;
    transport_ = url_.secure ? secure_transport(strand_)
                             : std::make_shared<tcp_transport>(strand_);
    arm_timer(deadline_after(clock::now(), options_.connect_timeout));
    resolver_.async_resolve(
        url_.host, std::to_string(url_.port),
        [self = shared_from_this(), g = gen_](std::error_code ec,
                                              client_transport::endpoints eps) {
          if (g != self->gen_ || self->halted())
            return;
          if (ec)
            return self->fail(ec);
          auto t = self->transport_;
          t->async_open(eps, self->url_.host, [self, g, t](std::error_code ec2) {
            if (g != self->gen_ || self->halted())
              return;
            if (ec2)
              return self->fail(ec2);
            self->write_request();
          });
        });
  }

  void write_request() {
    request_ = "GET " + url_.target + " HTTP/1.1\r\nHost: " + url_.host_header() + "\r\n";
    if (own_accept_)
      request_ += "Accept: text/event-stream\r\n";
    request_ += "Cache-Control: no-cache\r\n";
    if (!parser_.last_event_id().empty())
      request_ += "Last-Event-ID: " + parser_.last_event_id() + "\r\n";
    for (auto const& [name, value] : options_.headers) {
      // Credentials are for the origin asked for, not for wherever it redirects to.
      if (cross_origin_ && (client_http::iequals(name, "authorization") ||
                            client_http::iequals(name, "cookie")))
        continue;
      request_ += name + ": " + value + "\r\n";
    }
    request_ += "\r\n";
    auto t = transport_;
    t->async_write(asio::buffer(request_),
                   [self = shared_from_this(), g = gen_, t](std::error_code ec, std::size_t) {
                     if (g != self->gen_ || self->halted())
                       return;
                     if (ec)
                       return self->fail(ec);
                     self->phase_ = phase::head;
                     self->read();
                   });
  }

  void read() {
    if (paused_)
      return;
    auto t = transport_;
    t->async_read_some(asio::buffer(buf_),
                       [self = shared_from_this(), g = gen_, t](std::error_code ec, std::size_t n) {
                         if (g != self->gen_ || self->halted())
                           return;
                         self->on_read(g, ec, n);
                       });
  }

  void on_read(std::uint64_t g, std::error_code ec, std::size_t n) {
    if (n > 0) {
      last_read_ = clock::now();
      std::string_view const bytes(buf_.data(), n);
      if (phase_ == phase::head)
        on_head_bytes(bytes);
      else
        on_body_bytes(bytes);
      if (g != gen_ || halted())
        return; // the bytes ended this attempt (or the client)
    }
    if (ec) {
      bool const eof = ec == asio::error::eof; // a TLS transport reports a truncation as eof
      if (phase_ == phase::head)
        return fail(eof ? make_error_code(errc::bad_response) : ec);
      // The end of a close-delimited body is its normal end; anywhere else it was cut short,
      // which EventSource treats the same way: reconnect.
      return fail(eof ? make_error_code(errc::stream_ended) : ec);
    }
    read();
  }

  void on_head_bytes(std::string_view bytes) {
    std::size_t const searched = head_.size() > 3 ? head_.size() - 3 : 0;
    head_.append(bytes);
    std::size_t end = client_http::find_head_end(std::string_view(head_).substr(searched));
    if (end == std::string_view::npos) {
      if (head_.size() > options_.max_header_bytes)
        finish(errc::header_too_large);
      return;
    }
    end += searched;
    if (end > options_.max_header_bytes)
      return finish(errc::header_too_large);
    auto head = client_http::parse_head(std::string_view(head_).substr(0, end));
    if (!head)
      return fail(errc::bad_response);
    std::string rest = head_.substr(end);
    head_.clear();
    if (head->status >= 100 && head->status < 200 && head->status != 101) {
      // 100 Continue, 103 Early Hints: the real head follows.
      if (!rest.empty())
        on_head_bytes(rest);
      return;
    }
    {
      std::lock_guard<std::mutex> lk(state_mutex_);
      status_ = head->status;
    }
    int const s = head->status;
    if (s == 301 || s == 302 || s == 303 || s == 307 || s == 308)
      return redirect(*head);
    if (std::find(options_.retry_statuses.begin(), options_.retry_statuses.end(), s) !=
        options_.retry_statuses.end())
      return fail(errc::bad_status);
    if (s == 204)
      return finish(errc::no_content);
    if (s != 200)
      return finish(errc::bad_status);
    auto const type = head->field("content-type");
    if (!type || client_http::media_type(*type) != "text/event-stream")
      return finish(errc::bad_content_type);
    if (auto ce = head->field("content-encoding"); ce && !client_http::iequals(*ce, "identity"))
      return finish(errc::bad_content_type); // not asked for (no Accept-Encoding sent)
    if (auto te = head->field("transfer-encoding")) {
      std::string_view v = client_http::trim(*te);
      auto const comma = v.rfind(',');
      std::string_view const last = client_http::trim(comma == std::string_view::npos ? v : v.substr(comma + 1));
      if (!client_http::iequals(last, "chunked") || head->minor_version == 0)
        return fail(errc::bad_response);
      if (v.find(',') != std::string_view::npos)
        return fail(errc::bad_response); // a coding under chunked: not asked for either
      body_ = body_kind::chunked;
    } else if (auto cl = head->field("content-length")) {
      auto n = client_http::parse_length(*cl);
      if (!n)
        return fail(errc::bad_response);
      body_ = body_kind::length;
      remaining_ = *n;
    } else {
      body_ = body_kind::close_delimited;
    }
    phase_ = phase::body;
    failures_ = 0;
    redirects_ = 0;
    if (options_.read_timeout.count() > 0)
      arm_timer(deadline_after(last_read_, options_.read_timeout));
    else
      cancel_timer();
    std::uint64_t const g = gen_;
    call(on_open);
    if (g != gen_ || halted())
      return;
    if (body_ == body_kind::length && remaining_ == 0)
      return fail(errc::stream_ended);
    if (!rest.empty())
      on_body_bytes(rest);
  }

  void on_body_bytes(std::string_view bytes) {
    std::uint64_t const g = gen_;
    switch (body_) {
    case body_kind::close_delimited:
      feed(bytes);
      return;
    case body_kind::length: {
      auto const n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, bytes.size()));
      remaining_ -= n;
      feed(bytes.substr(0, n));
      if (g == gen_ && !halted() && remaining_ == 0)
        fail(errc::stream_ended);
      return;
    }
    case body_kind::chunked: {
      auto const r = decoder_.feed(bytes, [&](std::string_view piece) {
        if (g == gen_ && !halted())
          feed(piece);
      });
      if (g != gen_ || halted())
        return;
      if (r == client_http::chunked_decoder::result::bad)
        fail(errc::bad_response);
      else if (r == client_http::chunked_decoder::result::done)
        fail(errc::stream_ended);
      return;
    }
    }
  }

  void feed(std::string_view bytes) {
    std::uint64_t const g = gen_;
    try {
      parser_.feed(bytes, [&](parsed_event&& ev) {
        if (g != gen_ || halted())
          return;
        note_parser(); // last_event_id() says this event's id by the time its callback runs
        deliver(std::move(ev));
      });
    } catch (parse_error const&) {
      note_parser();
      return finish(errc::event_too_large);
    } catch (...) {
      // A callback threw: it propagates out of io_context::run(), as any Asio handler's
      // exception does, and the client stops (its parser's state is no longer known).
      abandon();
      throw;
    }
    note_parser();
  }

  void note_parser() {
    bool const id_changed = parser_.last_event_id() != last_id_seen_;
    auto const r = parser_.retry();
    bool const retry_changed = r && *r != retry_seen_;
    if (!id_changed && !retry_changed)
      return;
    if (id_changed)
      last_id_seen_ = parser_.last_event_id();
    if (retry_changed)
      retry_seen_ = clamp_wait(*r);
    std::lock_guard<std::mutex> lk(state_mutex_);
    last_id_ = last_id_seen_;
    if (retry_changed)
      retry_ = retry_seen_;
  }

  void deliver(parsed_event&& ev) {
    if (on_event)
      return call(on_event, std::move(ev));
    if (waiter_) {
      auto w = std::move(waiter_);
      waiting_ = false;
      w->complete({}, std::move(ev));
      return;
    }
    queue_.push_back(std::move(ev));
    if (queue_.size() >= options_.max_queued_events)
      paused_ = true; // read() stops asking; the kernel's buffers, then TCP, push back
  }

  void take_waiter(std::shared_ptr<next_waiter> w) {
    if (!queue_.empty()) {
      parsed_event ev = std::move(queue_.front());
      queue_.pop_front();
      waiting_ = false;
      w->complete({}, std::move(ev));
      if (paused_ && queue_.size() < options_.max_queued_events && phase_ == phase::body) {
        paused_ = false;
        last_read_ = clock::now();
        read();
      }
      return;
    }
    if (phase_ == phase::closed || halted()) {
      waiting_ = false;
      std::error_code r = reason();
      w->complete(r ? r : make_error_code(asio::error::operation_aborted), {});
      return;
    }
    waiter_ = std::move(w);
  }

  void redirect(client_http::response_head const& head) {
    auto const loc = head.field("location");
    if (redirects_ >= options_.max_redirects || !loc)
      return finish(errc::bad_redirect);
    auto next = client_http::resolve_location(url_, *loc);
    if (!next || (url_.secure && !next->secure) || (next->secure && !secure_transport))
      return finish(errc::bad_redirect);
    if (!next->same_origin(url_))
      cross_origin_ = true;
    ++redirects_;
    drop_connection();
    url_ = std::move(*next);
    connect();
  }

  // --- timers --------------------------------------------------------------------------------

  void arm_timer(clock::time_point at) {
    deadline_ = at;
    timer_.expires_at(at);
    timer_.async_wait([self = shared_from_this(), g = gen_](std::error_code ec) {
      if (ec == asio::error::operation_aborted || g != self->gen_ || self->halted())
        return;
      self->on_timer();
    });
  }

  void cancel_timer() {
    deadline_ = clock::time_point::max();
    timer_.cancel();
  }

  void on_timer() {
    auto const now = clock::now();
    if (now < deadline_)
      return; // moved since this wait began: its newer wait is pending
    if (phase_ == phase::connecting || phase_ == phase::head)
      return fail(asio::error::timed_out);
    if (phase_ != phase::body)
      return;
    if (paused_) // the application is behind, not the server
      return arm_timer(deadline_after(now, options_.read_timeout));
    auto const due = deadline_after(last_read_, options_.read_timeout);
    if (now >= due)
      return fail(errc::read_timeout);
    arm_timer(due); // bytes came meanwhile: the timer is moved only when it fires
  }

  // --- ends ----------------------------------------------------------------------------------

  void drop_connection() {
    ++gen_;
    cancel_timer();
    resolver_.cancel();
    if (transport_)
      transport_->close();
    transport_.reset();
  }

  /// This attempt failed or ended: reconnect after the delay, unless reconnecting is off.
  void fail(std::error_code ec) {
    if (halted())
      return;
    if (!options_.reconnect)
      return finish(ec);
    drop_connection();
    phase_ = phase::waiting;
    ms const delay = reconnect_delay(retry(), failures_, options_.max_reconnect_delay,
                                     options_.jitter, rng_);
    if (failures_ < 64)
      ++failures_;
    call(on_reconnect, ec, delay);
    if (halted())
      return;
    retry_timer_.expires_after(delay);
    retry_timer_.async_wait([self = shared_from_this(), g = gen_](std::error_code tec) {
      if (tec || g != self->gen_ || self->halted())
        return;
      // As EventSource: the reconnect asks the URL given, not where a redirect went.
      self->url_ = self->origin_;
      self->cross_origin_ = false;
      self->redirects_ = 0;
      self->connect();
    });
  }

  /// The end, with why: no reconnect, on_close once, a pending async_next gets `ec` (after
  /// the events already queued).
  void finish(std::error_code ec) {
    {
      std::lock_guard<std::recursive_mutex> lk(callback_mutex_);
      if (stopped_)
        return;
      stopped_ = true;
      set_reason(ec);
      shut(ec);
      if (on_close)
        on_close(ec); // may destroy the client: the handler that got here holds the session
    }
  }

  void shut(std::error_code ec) {
    if (phase_ == phase::closed)
      return;
    phase_ = phase::closed;
    drop_connection();
    retry_timer_.cancel();
    if (ec == asio::error::operation_aborted)
      queue_.clear(); // stop(): nothing more for async_next, whatever was queued
    if (waiter_ && queue_.empty()) {
      auto w = std::move(waiter_);
      waiting_ = false;
      w->complete(ec, {});
    }
  }

  void abandon() {
    {
      std::lock_guard<std::recursive_mutex> lk(callback_mutex_);
      stopped_ = true;
    }
    set_reason(asio::error::operation_aborted);
    shut(asio::error::operation_aborted);
  }

  enum class body_kind { close_delimited, length, chunked };

  client_options options_;
  client_http::url origin_; ///< the URL asked for
  client_http::url url_;    ///< this attempt's (differs after a redirect)
  asio::strand<asio::any_io_executor> strand_;
  asio::ip::tcp::resolver resolver_;
  asio::steady_timer timer_;       ///< connect timeout, then read timeout
  asio::steady_timer retry_timer_; ///< the wait before a reconnect
  clock::time_point deadline_ = clock::time_point::max();
  clock::time_point last_read_ = clock::now();
  std::shared_ptr<client_transport> transport_;
  std::uint64_t gen_ = 0; ///< the attempt; completions of an older one are ignored
  phase phase_ = phase::idle;
  std::string request_;
  std::string head_;
  std::array<char, 16 * 1024> buf_{};
  body_kind body_ = body_kind::close_delimited;
  std::uint64_t remaining_ = 0;
  client_http::chunked_decoder decoder_;
  parser parser_;
  std::string last_id_seen_;
  ms retry_seen_{-1};
  std::minstd_rand rng_;
  unsigned failures_ = 0;
  std::size_t redirects_ = 0;
  bool cross_origin_ = false;
  bool own_accept_ = true;
  bool paused_ = false;
  std::deque<parsed_event> queue_;
  std::shared_ptr<next_waiter> waiter_;
  std::atomic<bool> waiting_{false};
  std::atomic<bool> started_{false};

  std::recursive_mutex callback_mutex_; ///< held while a user callback runs
  std::atomic<bool> stopped_{false};    ///< set under callback_mutex_

  mutable std::mutex state_mutex_; ///< guards the snapshots below
  std::string last_id_;
  int status_ = 0;
  std::error_code reason_;
  ms retry_;
};

} // namespace sse::detail
