#pragma once

// One I/O thread of the server: its io_context, its connections, one timer for all of their
// deadlines and heartbeats, and the streams woken by publishers.

#include <sse/detail/close_notice.hpp>
#include <sse/detail/counters.hpp>
#include <sse/detail/deadline.hpp>
#include <sse/detail/fan_out_shard.hpp>
#include <sse/detail/router.hpp>
#include <sse/format.hpp>
#include <sse/frame.hpp>
#include <sse/server_options.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace sse::detail {

using clock = std::chrono::steady_clock;

/// An IMF-fixdate (RFC 9110 section 5.6.7) for the `Date` header; locale-independent.
inline std::string http_date(std::time_t t) {
  static constexpr char const* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr char const* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
                tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

class worker;

/// What the worker knows of a connection, whatever it speaks (HTTP/1.1 or HTTP/2, in cleartext
/// or over TLS): its turn after a publisher woke it, the sweep's deadlines, the stop.
class connection_base : public std::enable_shared_from_this<connection_base> {
public:
  connection_base() = default;
  connection_base(connection_base const&) = delete;
  connection_base& operator=(connection_base const&) = delete;
  virtual ~connection_base() = default;

  /// On the worker's thread, after a publisher woke it.
  virtual void on_ready() = 0;
  /// The sweep: deadlines, heartbeats, a drain's turn.
  virtual void on_sweep(clock::time_point now) = 0;
  /// Stop: flush streams, finish responses in flight, close idle connections.
  virtual void begin_shutdown() = 0;
  /// Drain: at `at`, end its streams with a `retry:` hint; false if it has none.
  virtual bool drain_at(clock::time_point at) = 0;
  /// After `worker::pace`: the writers have had the turn its held answer waited for.
  virtual void on_paced() {}

  connection_base* prev = nullptr;
  connection_base* next = nullptr;
};

/// Where the optional components plug in (`sse::tls`, `sse::http2`); the core serves HTTP/1.1
/// in cleartext. Set before `start()`, read-only afterwards.
struct protocol_hooks {
  /// TLS: takes every accepted socket (the handshake, then HTTP/1.1 or HTTP/2 by ALPN).
  std::function<void(worker&, asio::ip::tcp::socket&&)> accept;
  /// HTTP/2 by prior knowledge: a cleartext connection that opened with the client preface,
  /// with what was read of it.
  std::function<void(worker&, asio::ip::tcp::socket&&, std::string_view)> h2c;
  /// HTTP/2 over TLS, chosen by ALPN: `tls_stream` points to the stream to move from.
  std::function<void(worker&, void* tls_stream)> h2_over_tls;
  /// Run by `start()` before it binds: loads certificates and the like; throws as start() does.
  std::vector<std::function<void()>> prepare;
};

/// Lets other threads post to a worker only while it exists: a responder may outlive the
/// server.
class post_gate {
public:
  explicit post_gate(asio::any_io_executor ex) : ex_(std::move(ex)) {}
  /// Posts `f` unless the worker is gone; false if it was not posted.
  template <class F>
  bool post(F&& f) {
    std::lock_guard<std::mutex> lk(m_);
    if (!open_)
      return false;
    asio::post(ex_, std::forward<F>(f));
    return true;
  }
  void close() {
    std::lock_guard<std::mutex> lk(m_);
    open_ = false;
  }

private:
  std::mutex m_;
  asio::any_io_executor ex_;
  bool open_ = true;
};

/// Runs the close listeners of the streams a worker writes on its thread, exceptions to its
/// error log. A subscriber may outlive the server: once the worker is gone (its gate closed)
/// they go to the system executor instead.
template <class Worker>
class worker_close_runner final : public close_runner {
public:
  worker_close_runner(std::shared_ptr<post_gate> gate, Worker& w) : gate_(std::move(gate)), w_(w) {}

  void post(close_listeners ls, std::error_code why) noexcept override {
    try {
      auto held = std::make_shared<close_listeners>(std::move(ls)); // still ours if refused
      if (gate_->post([held, why, &w = w_] {
            complete_all(*held, why, [&w](std::string_view what) { w.report(what); });
          }))
        return;
      post_close_listeners(asio::system_executor(), std::move(*held), why);
    } catch (...) { // out of memory: the listeners are dropped
    }
  }

private:
  std::shared_ptr<post_gate> gate_;
  Worker& w_; ///< used only on the worker's thread, through the gate
};

/// One I/O thread's share of the server: everything it owns runs on one executor, `ex` (the
/// server's own io_context for that thread, or a strand of the application's io_context).
///
/// Stopping has two phases, each run on every worker before the next begins: `refuse` (new
/// requests get 503; once every worker has run it, no handler is running or will run, so
/// nothing more is published from a request), then `shut_down` (streams flush what is queued
/// and end, idle connections close).
class worker {
public:
  worker(asio::any_io_executor e, server_options const& o, router const& r,
         protocol_hooks const& h, std::atomic<std::size_t>& live)
      : ex(std::move(e)), opts(o), routes(r), hooks(h), live_connections(live),
        gate(std::make_shared<post_gate>(ex)),
        closes(std::make_shared<worker_close_runner<worker>>(gate, *this)),
        shard(std::make_shared<fan_out_shard>(ex)), sweep_timer(ex) {}
  worker(worker const&) = delete;
  worker& operator=(worker const&) = delete;
  ~worker() {
    gate->close();
    shard->close(); // its executor may be gone: publishers feed its subscribers from now on
  }

  void start();
  void adopt(asio::ip::tcp::socket s);
  /// From any thread: `c` has something to write. One post per batch, not per connection.
  void enqueue_ready(std::shared_ptr<connection_base> c) {
    std::lock_guard<std::mutex> lk(ready_mutex_);
    ready_.push_back(std::move(c));
    ++wakes_;
    if (!drain_posted_) {
      drain_posted_ = true;
      asio::post(ex, [this] { drain_ready(); });
    }
  }
  /// Streams woken so far (the sequence `pace` waits for).
  std::uint64_t wakes() {
    std::lock_guard<std::mutex> lk(ready_mutex_);
    return wakes_;
  }
  /// On this thread: how many woken streams have had their turn so far.
  std::uint64_t turns() const noexcept { return turns_; }
  /// On this thread: `c->on_paced()` once the streams woken up to `seq` have had their turn.
  /// A request that published to this thread's streams has its answer wait for their
  /// writes (see `server_options::pace_backlog`): a publisher is paced by its subscribers,
  /// while requests that publish nothing are never held.
  void pace(std::shared_ptr<connection_base> c, std::uint64_t seq);
  /// From any thread: requests from now on get 503; ready once no asynchronous handler of
  /// this worker is still to answer (each gets until `stop_timeout`).
  std::future<void> refuse();
  /// A connection stopped waiting for an asynchronous answer.
  void answered() {
    --awaiting;
    check_refused();
  }
  /// From any thread, after refuse: ends every stream at its own moment, evenly over
  /// `window`; the future is ready once all of them have ended.
  std::future<void> drain(std::chrono::milliseconds window);
  void stream_drained();
  /// From any thread: flush and close every connection; the future is ready when all are gone.
  std::future<void> shut_down();
  /// From any thread, after shut_down: no more timers, no more posts from responders; the
  /// future is ready once everything queued on `ex` before it has run.
  std::future<void> finish();

  /// Counts `c` as open; `accepted`: a new client (not one handed from a handshake or from
  /// HTTP/1.1 to HTTP/2).
  void link(connection_base* c, bool accepted = true);
  void unlink(connection_base* c);
  /// A new connection, or refused with 503 when the server is full or stopping.
  bool admit(asio::ip::tcp::socket& s);

  /// Reports what no client can be told (see `server_options::error_log`); never throws.
  void report(std::string_view what) const noexcept {
    try {
      if (opts.error_log) {
        opts.error_log(what);
        return;
      }
    } catch (...) {
    }
    std::fprintf(stderr, "sse::server: %.*s\n", static_cast<int>(what.size()), what.data());
  }

  /// The `retry:` a stream opens with (and a drain ends it with), jittered per stream.
  frame retry_frame() {
    auto ms = opts.retry;
    if (opts.retry_jitter.count() > 0)
      ms += std::chrono::milliseconds(
          std::uniform_int_distribution<long long>(0, opts.retry_jitter.count())(rng));
    return frame(format_retry(ms));
  }

  /// The `Date` header's value, formatted once a second.
  std::string const& date() {
    auto const now = std::time(nullptr);
    if (now != date_at_) {
      date_at_ = now;
      date_ = http_date(now);
    }
    return date_;
  }

  asio::any_io_executor ex;
  server_options const& opts;
  router const& routes;
  protocol_hooks const& hooks;
  std::atomic<std::size_t>& live_connections;
  std::shared_ptr<post_gate> gate;
  std::shared_ptr<close_runner> closes; ///< where the close listeners of its streams run
  /// The fan-outs to the subscribers made on this thread (used when the thread is the
  /// server's own: see `server::run`).
  std::shared_ptr<fan_out_shard> shard;
  std::size_t awaiting = 0; ///< connections waiting for an asynchronous handler's answer
  bool refusing = false;    ///< stop's first phase: requests get 503
  clock::time_point refuse_deadline; ///< until then stop waits for asynchronous answers
  bool stopping = false; ///< stop's second phase: streams drain, then everything closes
  bool finished = false; ///< stopped: the sweep timer is not armed again
  clock::time_point stop_deadline;
  std::minstd_rand rng{std::random_device{}()};
  worker_counters counters; ///< written on this worker's thread only; read by server::stats()

private:
  void drain_ready();
  void schedule_sweep();
  void sweep();
  void check_drained();
  void check_refused();
  void check_streams_drained();

  asio::steady_timer sweep_timer;
  connection_base* head_ = nullptr;
  std::mutex ready_mutex_;
  std::vector<std::shared_ptr<connection_base>> ready_, draining_;
  std::size_t draining_next_ = 0; ///< draining_[0, next) had their turn
  std::uint64_t wakes_ = 0;       ///< under ready_mutex_: streams woken so far
  std::uint64_t turns_ = 0;       ///< this thread: how many of those had their turn
  /// This thread: connections waiting for `turns_` to reach their sequence, oldest first.
  std::deque<std::pair<std::uint64_t, std::shared_ptr<connection_base>>> paced_;
  bool drain_posted_ = false;     ///< a drain_ready is queued (or running): enqueue posts none
  std::promise<void> drained_;
  bool drained_set_ = false;
  std::promise<void> refused_;
  bool refused_set_ = false;
  std::size_t drain_pending_ = 0;
  std::promise<void> streams_drained_;
  bool streams_drained_set_ = false;
  std::time_t date_at_ = 0;
  std::string date_;
};

} // namespace sse::detail
