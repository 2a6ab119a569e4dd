#pragma once

// The connection logic shared by sse::redis::connection and sse::redis::subscriber: attempts
// (resolve, connect, AUTH/PING) under a timeout, reconnects with jittered backoff, state events.
// Everything runs on one strand; the public types only dispatch onto it.

#include <sse/detail/redis_context.hpp>
#include <sse/redis/error.hpp>
#include <sse/redis/options.hpp>
#include <sse/redis/reply.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/dispatch.hpp>
#include <asio/error.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace sse::detail::redis {

/// A completion posted to the strand (the session's own commands, e.g. AUTH).
class strand_pending final : public pending {
public:
  using fn = std::function<void(std::error_code, sse::redis::reply)>;
  strand_pending(strand ex, fn f) : ex_(std::move(ex)), f_(std::move(f)) {}
  void complete(std::error_code ec, sse::redis::reply r) override {
    asio::post(ex_, [f = std::move(f_), ec, r = std::move(r)]() mutable { f(ec, std::move(r)); });
  }

private:
  strand ex_;
  fn f_;
};

/// A one-shot `void(std::error_code)` completion (subscribe confirmations).
class waiter {
public:
  virtual ~waiter() = default;
  virtual void complete(std::error_code ec) = 0;
};

class session : public listener, public std::enable_shared_from_this<session> {
public:
  using state_handler = std::function<void(sse::redis::state_event const&)>;

  session(asio::any_io_executor const& ex, sse::redis::connection_options o)
      : ex_(asio::make_strand(ex)), opts_(checked(std::move(o))), resolver_(ex_),
        connect_timer_(ex_), retry_timer_(ex_), rng_(std::random_device{}()) {}

  strand const& get_strand() const noexcept { return ex_; }
  sse::redis::connection_options const& options() const noexcept { return opts_; }
  sse::redis::connection_state state() const noexcept { return public_state_.load(); }

  void set_state_handler(state_handler h) {
    std::lock_guard<std::recursive_mutex> lk(handlers_mutex_);
    on_state_ = h ? std::make_shared<state_handler const>(std::move(h)) : nullptr;
  }

  /// Forgets the handlers: once it returns none of them runs again (it waits for one that is
  /// running on another thread; from inside a handler it does not wait).
  void detach() {
    std::lock_guard<std::recursive_mutex> lk(handlers_mutex_);
    on_state_ = nullptr;
    on_message_ = nullptr;
  }

  void start() {
    asio::dispatch(ex_, [self = shared_from_this()] {
      if (self->started_ || self->closed_)
        return;
      self->started_ = true;
      self->attempt();
    });
  }

  void close() {
    asio::dispatch(ex_, [self = shared_from_this()] { self->do_close(); });
  }

protected:
  // Hooks for the two kinds of session, all on the strand.
  /// The context exists and its AUTH/PING is queued.
  virtual void on_context() {}
  /// AUTH/PING answered: call become_connected() once ready.
  virtual void on_handshake() = 0;
  /// The attempt or the connection ended (`operation_aborted`: closed): fail what waits on it.
  virtual void on_down(std::error_code ec) = 0;

  void become_connected() {
    connect_timer_.cancel();
    failures_ = 0;
    set_state(sse::redis::connection_state::connected);
  }

  // The current attempt or connection is over: close it, retry later, tell the owner.
  void fail(std::error_code ec, std::string what) {
    ++generation_;
    connect_timer_.cancel();
    resolver_.cancel();
    if (auto ctx = std::move(ctx_))
      ctx->close(ec);
    on_down(ec);
    std::chrono::milliseconds delay{0};
    if (opts_.reconnect && !closed_) {
      delay = backoff(failures_++);
      retry_timer_.expires_after(delay);
      retry_timer_.async_wait([w = weak_self(), gen = generation_](std::error_code e) {
        auto self = w.lock();
        if (e || !self || self->closed_ || gen != self->generation_)
          return;
        self->attempt();
      });
    }
    set_state(sse::redis::connection_state::disconnected, ec, std::move(what), delay);
  }

  std::weak_ptr<session> weak_self() { return shared_from_this(); }

  using message_handler = std::function<void(std::string_view, std::string_view)>;

  void deliver(std::string_view channel, std::string_view message) {
    std::lock_guard<std::recursive_mutex> lk(handlers_mutex_);
    if (auto h = on_message_)
      (*h)(channel, message);
  }

  // Held while a handler runs, so detach() can promise that none runs after it.
  std::recursive_mutex handlers_mutex_;
  std::shared_ptr<message_handler const> on_message_;

  strand ex_;
  sse::redis::connection_options const opts_;
  sse::redis::connection_state state_ = sse::redis::connection_state::disconnected;
  std::shared_ptr<context> ctx_;
  bool closed_ = false;

private:
  static sse::redis::connection_options checked(sse::redis::connection_options o) {
    if (o.reconnect_min.count() < 0 || o.reconnect_max < o.reconnect_min)
      throw std::invalid_argument("sse::redis: need 0 <= reconnect_min <= reconnect_max");
    if (o.connect_timeout.count() <= 0)
      throw std::invalid_argument("sse::redis: connect_timeout must be positive");
    return o;
  }

  std::chrono::milliseconds backoff(unsigned n) {
    auto lo = opts_.reconnect_min.count(), hi = opts_.reconnect_max.count();
    long long cap = lo;
    for (unsigned i = 0; i < n && cap < hi; ++i)
      cap = cap > hi / 2 ? hi : cap * 2;
    cap = std::max(std::min(cap, static_cast<long long>(hi)), 0LL);
    std::uniform_int_distribution<long long> pick(cap / 2, cap);
    return std::chrono::milliseconds(pick(rng_));
  }

  void set_state(sse::redis::connection_state s, std::error_code ec = {}, std::string what = {},
                 std::chrono::milliseconds retry_in = {}) {
    state_ = s;
    public_state_.store(s);
    std::lock_guard<std::recursive_mutex> lk(handlers_mutex_);
    if (auto h = on_state_) // a copy: the handler may replace itself
      (*h)(sse::redis::state_event{s, ec, std::move(what), retry_in});
  }

  void attempt() {
    auto gen = ++generation_;
    set_state(sse::redis::connection_state::connecting);
    if (closed_ || gen != generation_)
      return; // the state handler closed us
    connect_timer_.expires_after(opts_.connect_timeout);
    connect_timer_.async_wait([w = weak_self(), gen](std::error_code ec) {
      auto self = w.lock();
      if (ec || !self || gen != self->generation_)
        return;
      self->fail(sse::redis::errc::connect_timeout,
                 "no answer from " + self->opts_.host + ":" + std::to_string(self->opts_.port) +
                     " within " + std::to_string(self->opts_.connect_timeout.count()) + " ms");
    });
    resolver_.async_resolve(
        opts_.host, std::to_string(opts_.port), asio::ip::resolver_base::numeric_service,
        [w = weak_self(), gen](std::error_code ec, asio::ip::tcp::resolver::results_type rs) {
          auto self = w.lock();
          if (!self || gen != self->generation_)
            return;
          self->connect_to(ec, rs);
        });
  }

  void connect_to(std::error_code ec, asio::ip::tcp::resolver::results_type const& rs) {
    if (ec || rs.empty())
      return fail(sse::redis::errc::connect_failed,
                  "cannot resolve " + opts_.host + ": " + (ec ? ec.message() : "no address"));
    auto ctx = std::make_shared<context>(ex_, std::weak_ptr<listener>(shared_from_this()));
    std::string what;
    if (!ctx->connect(rs.begin()->endpoint().address().to_string(), opts_.port, what))
      return fail(sse::redis::errc::connect_failed, std::move(what));
    ctx_ = ctx;
    std::vector<std::string> hello{"PING"};
    if (!opts_.password.empty())
      hello = opts_.username.empty()
                  ? std::vector<std::string>{"AUTH", opts_.password}
                  : std::vector<std::string>{"AUTH", opts_.username, opts_.password};
    std::unique_ptr<pending> p = std::make_unique<strand_pending>(
        ex_, [w = weak_self(), gen = generation_](std::error_code e, sse::redis::reply r) {
          auto self = w.lock();
          if (!self || gen != self->generation_)
            return;
          if (!e)
            return self->on_handshake();
          // A lost connection is told by on_closed (with hiredis' text) or the timer.
          if (r.is_error())
            self->fail(self->opts_.password.empty() ? sse::redis::errc::reply_error
                                                    : sse::redis::errc::auth_failed,
                       r.str());
        });
    if (!ctx->send(formatted_command(hello), p))
      return fail(sse::redis::errc::connect_failed, "hiredis refused the first command");
    on_context();
  }

  void on_push(context const*, sse::redis::reply) override {}

  void on_closed(context const* from, std::error_code ec, std::string what) override {
    if (from == ctx_.get() && ctx_)
      fail(ec, std::move(what));
  }

  void do_close() {
    if (closed_)
      return;
    closed_ = true;
    ++generation_;
    connect_timer_.cancel();
    retry_timer_.cancel();
    resolver_.cancel();
    if (auto ctx = std::move(ctx_))
      ctx->close(asio::error::operation_aborted);
    on_down(asio::error::operation_aborted);
    set_state(sse::redis::connection_state::closed);
  }

  asio::ip::tcp::resolver resolver_;
  asio::steady_timer connect_timer_, retry_timer_;
  std::minstd_rand rng_;
  std::shared_ptr<state_handler const> on_state_;
  std::atomic<sse::redis::connection_state> public_state_{
      sse::redis::connection_state::disconnected};
  std::uint64_t generation_ = 0; // bumped per attempt and per ending: older callbacks are stale
  unsigned failures_ = 0;
  bool started_ = false;
};

/// Commands and their replies, in order, within a byte budget.
class command_session final : public session {
public:
  command_session(asio::any_io_executor const& ex, sse::redis::connection_options o)
      : session(ex, std::move(o)), budget_(std::make_shared<std::atomic<std::size_t>>(0)) {}

  /// Reserves `n` bytes of the budget; false when they do not fit. Any thread.
  bool reserve(std::size_t n) noexcept {
    auto cur = budget_->load();
    do {
      if (n > opts_.max_pending_bytes || cur > opts_.max_pending_bytes - n)
        return false;
    } while (!budget_->compare_exchange_weak(cur, cur + n));
    return true;
  }
  std::shared_ptr<std::atomic<std::size_t>> const& budget() const noexcept { return budget_; }

  /// Sends (on the strand) a command whose bytes are reserved; `p` completes exactly once.
  void submit(formatted_command cmd, std::unique_ptr<pending> p) {
    asio::dispatch(ex_, [self = std::static_pointer_cast<command_session>(shared_from_this()),
                         cmd = std::move(cmd), p = std::move(p)]() mutable {
      using sse::redis::connection_state;
      if (self->state_ == connection_state::connecting && !self->ctx_) {
        self->waiting_.emplace_back(std::move(cmd), std::move(p));
        return;
      }
      if (!self->ctx_ || !self->ctx_->send(cmd, p))
        p->complete(sse::redis::errc::not_connected, {});
    });
  }

private:
  void on_context() override {
    for (auto& [cmd, p] : std::exchange(waiting_, {}))
      if (!ctx_->send(cmd, p))
        p->complete(sse::redis::errc::not_connected, {});
  }
  void on_handshake() override { become_connected(); }
  void on_down(std::error_code ec) override {
    for (auto& w : std::exchange(waiting_, {}))
      w.second->complete(ec, {});
  }

  std::shared_ptr<std::atomic<std::size_t>> budget_;
  // Sent while an attempt has no context yet (resolving); flushed right after AUTH/PING.
  std::deque<std::pair<formatted_command, std::unique_ptr<pending>>> waiting_;
};

/// SUBSCRIBE/UNSUBSCRIBE at any time, messages in order, channels restored after reconnect.
class subscriber_session final : public session {
public:
  subscriber_session(asio::any_io_executor const& ex, sse::redis::connection_options o)
      : session(ex, std::move(o)) {}

  void set_message_handler(message_handler h) {
    std::lock_guard<std::recursive_mutex> lk(handlers_mutex_);
    on_message_ = h ? std::make_shared<message_handler const>(std::move(h)) : nullptr;
  }

  void subscribe(std::string name, std::unique_ptr<waiter> w) {
    asio::dispatch(ex_, [self = me(), name = std::move(name), w = std::move(w)]() mutable {
      self->do_subscribe(name, std::move(w));
    });
  }

  void unsubscribe(std::string name) {
    asio::dispatch(ex_, [self = me(), name = std::move(name)] { self->do_unsubscribe(name); });
  }

private:
  struct sent {
    bool subscribe;
    bool counts; // one of the subscriptions restored before `connected` is told
    std::vector<std::unique_ptr<waiter>> waiters;
  };
  struct channel {
    bool wanted = false;
    bool confirmed = false;
    std::deque<sent> inflight; // SUBSCRIBE/UNSUBSCRIBE sent, in order, not yet confirmed
    std::vector<std::unique_ptr<waiter>> parked; // subscribed while an attempt is under way
  };
  using channels = std::map<std::string, channel, std::less<>>;

  std::shared_ptr<subscriber_session> me() {
    return std::static_pointer_cast<subscriber_session>(shared_from_this());
  }

  static void complete(std::vector<std::unique_ptr<waiter>>& ws, std::error_code ec) {
    for (auto& w : std::exchange(ws, {}))
      if (w)
        w->complete(ec);
  }

  // Subscribed now, or will be once what is in flight is confirmed.
  static bool heading_subscribed(channel const& c) {
    return c.inflight.empty() ? c.confirmed : c.inflight.back().subscribe;
  }

  void prune(channels::iterator it) {
    auto const& c = it->second;
    if (!c.wanted && !c.confirmed && c.inflight.empty() && c.parked.empty())
      channels_.erase(it);
  }

  bool send(char const* verb, std::vector<std::string> names) {
    names.insert(names.begin(), verb);
    return ctx_ && ctx_->send_pubsub(formatted_command(names));
  }

  void do_subscribe(std::string const& name, std::unique_ptr<waiter> w) {
    if (closed_) {
      if (w)
        w->complete(asio::error::operation_aborted);
      return;
    }
    auto& c = channels_[name];
    c.wanted = true;
    if (!live_) {
      if (state_ == sse::redis::connection_state::connecting)
        c.parked.push_back(std::move(w)); // restored with the others once the attempt is in
      else if (w)
        w->complete(sse::redis::errc::not_connected); // still wanted: subscribed on reconnect
      return;
    }
    if (heading_subscribed(c)) {
      if (c.inflight.empty()) {
        if (w)
          w->complete({});
      } else {
        c.inflight.back().waiters.push_back(std::move(w));
      }
      return;
    }
    if (!send("SUBSCRIBE", {name})) {
      if (w)
        w->complete(sse::redis::errc::not_connected);
      return;
    }
    sent s{true, false, {}};
    s.waiters.push_back(std::move(w));
    c.inflight.push_back(std::move(s));
  }

  void do_unsubscribe(std::string const& name) {
    auto it = channels_.find(name);
    if (it == channels_.end() || !it->second.wanted)
      return;
    auto& c = it->second;
    c.wanted = false;
    complete(c.parked, asio::error::operation_aborted);
    if (live_ && heading_subscribed(c) && send("UNSUBSCRIBE", {name}))
      c.inflight.push_back(sent{false, false, {}});
    prune(it);
  }

  void on_handshake() override {
    live_ = true;
    std::vector<std::string> names;
    for (auto& [name, c] : channels_) {
      if (!c.wanted)
        continue;
      names.push_back(name);
      c.inflight.push_back(sent{true, true, std::exchange(c.parked, {})});
    }
    restoring_ = names.size();
    if (restoring_ == 0)
      return become_connected();
    constexpr std::size_t batch = 512;
    for (std::size_t i = 0; i < names.size(); i += batch) {
      auto end = names.begin() + static_cast<std::ptrdiff_t>(std::min(names.size(), i + batch));
      if (!send("SUBSCRIBE", {names.begin() + static_cast<std::ptrdiff_t>(i), end}))
        return; // the loss is being told by on_closed
    }
  }

  void on_down(std::error_code ec) override {
    live_ = false;
    restoring_ = 0;
    bool closing = ec == asio::error::operation_aborted && closed_;
    for (auto it = channels_.begin(); it != channels_.end();) {
      auto& c = it->second;
      for (auto& s : c.inflight)
        complete(s.waiters, ec);
      c.inflight.clear();
      c.confirmed = false;
      complete(c.parked, ec);
      if (closing)
        c.wanted = false;
      auto next = std::next(it);
      prune(it);
      it = next;
    }
  }

  void on_push(context const* from, sse::redis::reply r) override {
    if (from != ctx_.get() || !ctx_ || !r.is_array() || r.size() < 3 || !r[0].is_string())
      return;
    auto const& kind = r[0].str();
    auto it = channels_.find(r[1].str());
    if (it == channels_.end())
      return;
    auto& c = it->second;
    if (kind == "message") {
      if (c.wanted)
        deliver(r[1].str(), r[2].str());
    } else if (kind == "subscribe") {
      if (c.inflight.empty() || !c.inflight.front().subscribe)
        return;
      sent s = std::move(c.inflight.front());
      c.inflight.pop_front();
      c.confirmed = true;
      complete(s.waiters, {});
      if (s.counts && restoring_ > 0 && --restoring_ == 0)
        become_connected();
    } else if (kind == "unsubscribe") {
      if (c.inflight.empty() || c.inflight.front().subscribe)
        return;
      c.inflight.pop_front();
      c.confirmed = false;
      prune(it);
    }
  }

  channels channels_;
  bool live_ = false;        // AUTH/PING answered on the current context
  std::size_t restoring_ = 0; // restored subscriptions not yet confirmed
};

} // namespace sse::detail::redis
