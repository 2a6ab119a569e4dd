// progress: background jobs whose progress streams to the browser.
//
//   GET  /                   the page (HTML, CSS and JavaScript inline)
//   POST /tasks[?client=C]   starts a job; 201 {"id": "..."}; 429 when --max-tasks are running.
//                            With a client id (1-64 of [A-Za-z0-9_-], chosen by the client) the
//                            job's events also go to that client's stream, GET /events.
//   GET  /events?client=C    one stream for all of a client's jobs, however many: `progress`
//                            {"task", "percent"} and `done` {"task", "percent", "ms"} of each,
//                            with broker ids. It stays open for the client's next jobs. A first
//                            connect gets what its jobs sent so far; a reconnect with
//                            Last-Event-ID (or ?lastEventId=) exactly what it missed, or
//                            `event: reset` when that is no longer kept (then ask GET /tasks/{id}).
//   GET  /tasks/{id}         {"id", "state": "running" | "done", "percent"[, "ms"]}; 404 if unknown
//   GET  /tasks/{id}/events  one job alone: `progress` events ({"percent": n}, id "<n>") then
//                            `done`, then the stream ends; 204 once the task has finished, 404
//                            for an unknown id
//   GET  /stats              {"running", "streams", "client_streams", "finished_kept",
//                            "connections"}
//   GET  /metrics            the server's and the clients' broker's metrics, for Prometheus
//
// A page shows many jobs at once, and a browser opens at most six HTTP/1.1 connections per
// host: so the page uses the one client stream (a broker topic per client), not a stream per job.
// The jobs run on their own thread and io_context (a steady_timer per job), never on the
// server's I/O threads. Several clients may watch one task; each gets every event.
#include "../common/options.hpp"
#include "../common/run.hpp"
#include "progress_page.hpp" // generated from page.html

#include <sse/sse.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {


/// A client's id from the query (`client`): 1-64 of [A-Za-z0-9_-], or an http_error 400.
std::optional<std::string> client_of(sse::request const& req) {
  auto const c = req.query("client");
  if (!c)
    return std::nullopt;
  bool ok = !c->empty() && c->size() <= 64;
  for (char ch : *c)
    ok = ok && ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                (ch >= '0' && ch <= '9') || ch == '_' || ch == '-');
  if (!ok)
    throw sse::http_error(400, "client is 1 to 64 letters, digits, _ or -");
  return std::string(*c);
}

/// The broker topic of a client's stream.
std::string client_topic(std::string_view client) { return "client:" + std::string(client); }

/// The running jobs, the streams watching them, and the ids of recently finished ones.
///
/// Handlers (I/O threads) start and attach; the jobs' thread ticks. One mutex guards it all;
/// nothing under it blocks (`event_stream::send` only queues). A job started for a client also
/// publishes to that client's topic on `clients`, outside the mutex (from the jobs' one
/// thread, so in order).
class task_board {
public:
  struct stats {
    std::size_t running, streams, finished_kept;
  };
  enum class attach_result { attached, finished, unknown };
  struct status {
    bool running;
    int percent;
    std::optional<long long> ms; // how long it ran, once done
  };

  task_board(asio::io_context& jobs, sse::broker& clients, std::chrono::milliseconds step,
             std::size_t max_running, std::size_t keep_finished)
      : jobs_(jobs), clients_(clients), step_(step), max_running_(max_running),
        keep_finished_(keep_finished) {}

  /// Starts a job (for `client`'s stream if given); its id, or nothing when `max_running` jobs
  /// are running already.
  std::optional<std::string> start(std::optional<std::string> const& client) {
    std::shared_ptr<task> t;
    {
      std::lock_guard<std::mutex> lk(mutex_);
      if (running_.size() >= max_running_)
        return std::nullopt;
      std::string id;
      do
        id = new_id();
      while (running_.count(id) || finished_.count(id));
      t = std::make_shared<task>(jobs_, id, client ? client_topic(*client) : "", rng_());
      running_.emplace(id, t);
    }
    // The timer belongs to the jobs' thread: arm it there.
    asio::post(jobs_, [this, t] { schedule(t); });
    return t->id;
  }

  /// Adds `stream` to the watchers of task `id` and sends its progress at once, unless the
  /// client's last event id says it has seen it already.
  attach_result attach(std::string const& id, std::optional<std::string> const& last_event_id,
                       sse::event_stream& stream) {
    std::lock_guard<std::mutex> lk(mutex_);
    auto it = running_.find(id);
    if (it == running_.end())
      return finished_.count(id) ? attach_result::finished : attach_result::unknown;
    task& t = *it->second;
    if (!last_event_id || parse_percent(*last_event_id) != t.percent)
      stream.send(progress_frame(t.percent));
    t.streams.push_back(stream);
    ++streams_;
    return attach_result::attached;
  }

  /// Where task `id` is, or nothing if it is unknown.
  std::optional<status> find(std::string const& id) const {
    std::lock_guard<std::mutex> lk(mutex_);
    if (auto it = running_.find(id); it != running_.end())
      return status{true, it->second->percent, std::nullopt};
    if (auto it = finished_.find(id); it != finished_.end())
      return status{false, 100, it->second};
    return std::nullopt;
  }

  stats snapshot() const {
    std::lock_guard<std::mutex> lk(mutex_);
    return {running_.size(), streams_, finished_.size()};
  }

private:
  struct task {
    task(asio::io_context& io, std::string task_id, std::string client_topic, std::uint64_t seed)
        : id(std::move(task_id)), topic(std::move(client_topic)), timer(io), rng(seed),
          started(std::chrono::steady_clock::now()) {}
    std::string id;
    std::string topic; // the client's topic on the broker; "" for none
    int percent = 0;
    std::vector<sse::event_stream> streams;
    asio::steady_timer timer;                   // used on the jobs' thread only
    std::minstd_rand rng;                       // how far each step goes
    std::chrono::steady_clock::time_point started;
  };

  void schedule(std::shared_ptr<task> const& t) {
    t->timer.expires_after(step_);
    t->timer.async_wait([this, t](std::error_code ec) {
      if (!ec)
        tick(t);
    });
  }

  /// One step of a job (on the jobs' thread): advance, tell every watcher, finish at 100.
  void tick(std::shared_ptr<task> const& t) {
    int const advance = 1 + static_cast<int>(t->rng() % 5); // 1 to 5 percent a step
    int percent;
    long long ms = 0;
    {
      std::lock_guard<std::mutex> lk(mutex_);
      percent = t->percent = std::min(100, t->percent + advance);
      send_all(*t, progress_frame(percent));
      if (percent < 100) {
        schedule(t);
      } else {
        ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now() - t->started)
                 .count();
        send_all(*t, sse::frame(sse::json_event({{"percent", 100}, {"ms", ms}}).name("done")));
        for (auto& s : t->streams)
          s.close(); // each response ends after what is queued
        streams_ -= t->streams.size();
        t->streams.clear();
        running_.erase(t->id); // the task is freed when this handler returns
        remember_finished(t->id, ms);
      }
    }
    if (t->topic.empty())
      return;
    // The client's stream: the broker gives each event its id, so a reconnect resumes exactly.
    clients_.publish(t->topic,
                     sse::json_event({{"task", t->id}, {"percent", percent}}).name("progress"));
    if (percent == 100)
      clients_.publish(
          t->topic, sse::json_event({{"task", t->id}, {"percent", 100}, {"ms", ms}}).name("done"));
  }

  /// Sends `f` to every watcher; drops those whose client went away.
  void send_all(task& t, sse::frame const& f) {
    auto const before = t.streams.size();
    t.streams.erase(std::remove_if(t.streams.begin(), t.streams.end(),
                                   [&](sse::event_stream& s) { return !s.send(f); }),
                    t.streams.end());
    streams_ -= before - t.streams.size();
  }

  void remember_finished(std::string const& id, long long ms) {
    finished_.emplace(id, ms);
    finished_order_.push_back(id);
    while (finished_order_.size() > keep_finished_) {
      finished_.erase(finished_order_.front());
      finished_order_.pop_front();
    }
  }

  static sse::frame progress_frame(int percent) {
    return sse::frame(
        sse::json_event({{"percent", percent}}).name("progress").id(std::to_string(percent)));
  }

  static int parse_percent(std::string_view s) {
    int v = -1;
    auto const r = std::from_chars(s.data(), s.data() + s.size(), v);
    return r.ec == std::errc() && r.ptr == s.data() + s.size() ? v : -1;
  }

  std::string new_id() {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng_()));
    return buf;
  }

  asio::io_context& jobs_;
  sse::broker& clients_;
  std::chrono::milliseconds const step_;
  std::size_t const max_running_, keep_finished_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<task>> running_;
  std::unordered_map<std::string, long long> finished_; // id -> how long it ran, in ms
  std::deque<std::string> finished_order_;
  std::size_t streams_ = 0;
  std::mt19937_64 rng_{std::random_device{}()};
};

} // namespace

int main(int argc, char** argv) {
  long const step_ms = examples::take_flag(argc, argv, "progress", "--step-ms", 50, 1, 60000);
  long const max_tasks = examples::take_flag(argc, argv, "progress", "--max-tasks", 1000, 1, 1000000);
  auto options = examples::parse_options(
      argc, argv, "progress",
      "Background jobs whose progress streams to the browser over Server-Sent Events.\n"
      "  --step-ms N     a job advances every N ms (default 50)\n"
      "  --max-tasks N   jobs running at once; more are refused with 429 (default 1000)");

  // The jobs' own thread: timers only, so the I/O threads never wait for a job.
  asio::io_context jobs(1);
  auto work = asio::make_work_guard(jobs);
  std::thread jobs_thread([&] { jobs.run(); });

  // The clients' streams: one topic per client. Its history is what a reconnect (or a reload)
  // resumes from; a client that was away longer gets `reset` and asks for its tasks' state.
  sse::broker clients;
  clients.set_history(sse::history_limits{4096, 256 * 1024, std::chrono::minutes(2)});
  clients.set_max_history_topics(1000);
  sse::queue_limits const client_queue{1024, 1024 * 1024, sse::overflow_policy::evict};

  task_board board(jobs, clients, std::chrono::milliseconds(step_ms),
                   static_cast<std::size_t>(max_tasks), 10000);
  sse::server srv(options);

  srv.route("GET", "/", [](sse::request&) {
    return sse::response::html(std::string(progress_page)).header("Cache-Control", "no-store");
  });

  srv.route("POST", "/tasks", [&](sse::request& req) {
    auto id = board.start(client_of(req));
    if (!id)
      return sse::response::text(429, "too many tasks are running; try again later\n")
          .header("Retry-After", "1");
    return sse::response::json(201, nlohmann::json{{"id", *id}}.dump())
        .header("Location", "/tasks/" + *id + "/events");
  });

  srv.route("GET", "/events", [&](sse::request& req) {
    auto const client = client_of(req);
    if (!client)
      throw sse::http_error(400, "which client? /events?client=C, as in POST /tasks?client=C");
    sse::subscribe_options o;
    o.last_event_id = req.last_event_id(); // the header after a reconnect, else ?lastEventId=
    o.replay_history = true;               // without one: everything its tasks sent so far
    o.limits = client_queue;
    return sse::response::stream(clients.subscribe(client_topic(*client), o));
  });

  srv.route("GET", "/tasks/{id}", [&](sse::request& req) {
    std::string const id(*req.param("id"));
    auto const s = board.find(id);
    if (!s)
      throw sse::http_error(404, "no such task");
    nlohmann::json j = {
        {"id", id}, {"state", s->running ? "running" : "done"}, {"percent", s->percent}};
    if (s->ms)
      j["ms"] = *s->ms;
    return sse::response::json(200, j.dump()).header("Cache-Control", "no-store");
  });

  srv.route("GET", "/tasks/{id}/events", [&](sse::request& req) {
    std::string const id(*req.param("id"));
    sse::event_stream stream;
    switch (board.attach(id, req.last_event_id(), stream)) {
    case task_board::attach_result::attached:
      return sse::response::stream(stream);
    case task_board::attach_result::finished:
      return sse::response(204); // tells EventSource to stop reconnecting
    case task_board::attach_result::unknown:
      break;
    }
    throw sse::http_error(404, "no such task");
  });

  srv.route("GET", "/stats", [&](sse::request&) {
    auto const s = board.snapshot();
    nlohmann::json const j = {{"running", s.running},
                              {"streams", s.streams},
                              {"client_streams", clients.stats().subscribers},
                              {"finished_kept", s.finished_kept},
                              {"connections", srv.connections()}};
    return sse::response::json(200, j.dump()).header("Cache-Control", "no-store");
  });

  srv.route("GET", "/metrics", sse::metrics_handler(srv, clients));

  int const rc = examples::serve_until_signal(srv, "progress");
  work.reset();
  jobs.stop();
  jobs_thread.join();
  return rc;
}
