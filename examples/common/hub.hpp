#pragma once

// The examples' topics: a broker in this process, or (with --redis HOST:PORT) a broker shared
// with every other process on that Redis through sse::redis::backend. The routes are the same
// either way: `GET /listen?topic=a&topic=b` with Last-Event-ID, `POST /publish?topic=T&event=N`.

#include "options.hpp"
#include "topics.hpp"

#include <sse/sse.hpp>
#if SSE_EXAMPLES_REDIS
#include <sse/redis/backend.hpp>
#endif

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <charconv>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace examples {

class hub {
public:
  /// Takes `--redis HOST:PORT` from the command line (exits with a message if it is malformed,
  /// or if this build has no Redis component).
  hub(sse::broker& broker, int& argc, char** argv, char const* program) : broker_(broker) {
    std::string const where = take_text_flag(argc, argv, "--redis");
    if (where.empty())
      return;
#if SSE_EXAMPLES_REDIS
    auto const colon = where.rfind(':');
    unsigned port = 0;
    auto const r = colon == std::string::npos
                       ? std::from_chars_result{where.data(), std::errc::invalid_argument}
                       : std::from_chars(where.data() + colon + 1, where.data() + where.size(), port);
    if (colon == 0 || colon == std::string::npos || r.ec != std::errc() ||
        r.ptr != where.data() + where.size() || port == 0 || port > 65535) {
      std::cerr << program << ": --redis wants HOST:PORT, e.g. 127.0.0.1:6379\n";
      std::exit(2);
    }
    options_.redis.host = where.substr(0, colon);
    options_.redis.port = static_cast<std::uint16_t>(port);
    redis_ = true;
#else
    std::cerr << program << ": built without the Redis component (install libhiredis-dev and "
                            "build again) so --redis is not available\n";
    std::exit(2);
#endif
  }
  hub(hub const&) = delete;
  hub& operator=(hub const&) = delete;
  ~hub() {
#if SSE_EXAMPLES_REDIS
    if (backend_)
      backend_->close();
    work_.reset();
    if (thread_.joinable())
      thread_.join();
#endif
  }

  static constexpr char const* usage =
      "  --redis HOST:PORT    share topics with every process on this Redis (history there)";

  bool shared() const noexcept { return redis_; }

  /// History for resume: in Redis when shared, else in the broker.
  void set_history(sse::history_limits const& limits) {
#if SSE_EXAMPLES_REDIS
    if (redis_)
      return void(options_.history = limits);
#endif
    broker_.set_history(limits);
  }

  /// Connects to Redis (when shared); the broker's publishes go there from now on.
  void start() {
#if SSE_EXAMPLES_REDIS
    if (!redis_)
      return;
    backend_ = std::make_unique<sse::redis::backend>(io_.get_executor(), broker_, options_);
    backend_->start();
    thread_ = std::thread([this] { io_.run(); });
#endif
  }

  /// A stream of `topics` that first replays what the client missed since `o.last_event_id`;
  /// `attach` (if any) sees the subscription before its stream starts (e.g. for `on_close`)
  /// and may give a frame to send first.
  using attach_fn = std::function<std::optional<sse::frame>(sse::subscription&)>;
  void listen(std::vector<std::string> topics, sse::subscribe_options const& o,
              sse::responder res, attach_fn attach = {}) {
#if SSE_EXAMPLES_REDIS
    if (backend_) {
      backend_->async_subscribe(std::move(topics), o,
                                [res, attach](std::error_code ec, sse::subscription sub) mutable {
                                  if (ec)
                                    return res.send(unavailable(ec));
                                  res.send(stream(std::move(sub), attach));
                                });
      return;
    }
#endif
    res.send(stream(broker_.subscribe(std::move(topics), o), attach));
  }

  /// The request's topics (`?topic=`, or `fallback_topic`), resuming from its Last-Event-ID.
  void listen(sse::request& req, sse::responder res, std::string_view fallback_topic,
              bool replay_history = false) {
    sse::subscribe_options o;
    o.last_event_id = req.last_event_id();
    o.replay_history = replay_history;
    listen(topics_of(req, fallback_topic), o, std::move(res));
  }

  /// Publishes `ev` to `topic`; answers `{"id"}` (and, in-process, `"receivers"`), 413 past
  /// the broker's bound, 503 while Redis is unreachable.
  void publish(std::string const& topic, sse::event const& ev, sse::responder res,
               int ok_status = 200) {
    try {
#if SSE_EXAMPLES_REDIS
      if (backend_) {
        backend_->async_publish(topic, ev, [res, ok_status](std::error_code ec, std::string id) mutable {
          if (ec)
            return res.send(unavailable(ec));
          res.send(ok_status == 204 ? sse::response(204)
                                    : sse::response::json(ok_status, nlohmann::json{{"id", id}}.dump()));
        });
        return;
      }
#endif
      auto const r = broker_.publish(topic, ev);
      res.send(ok_status == 204
                   ? sse::response(204)
                   : sse::response::json(ok_status, nlohmann::json{{"id", r.id}, {"receivers", r.receivers}}.dump()));
    } catch (sse::message_too_large const& e) {
      res.send(too_large(e));
    }
  }

  /// `POST /publish?topic=T&event=NAME`: the body is the data of one event.
  void publish_body(sse::request& req, sse::responder res, std::string_view fallback_topic) {
    std::string topic(fallback_topic);
    if (auto t = req.query("topic"))
      topic = checked_topic(*t);
    sse::event ev;
    try {
      ev.data(req.body());
      if (auto name = req.query("event"))
        ev.name(std::string(*name));
    } catch (std::invalid_argument const& e) {
      throw sse::http_error(400, e.what());
    }
    publish(topic, ev, std::move(res));
  }

private:
  static sse::response stream(sse::subscription sub, attach_fn const& attach) {
    auto first = attach ? attach(sub) : std::nullopt;
    auto r = sse::response::stream(std::move(sub));
    if (first)
      r.prelude(std::move(*first));
    return r;
  }

  static sse::response unavailable(std::error_code ec) {
    return sse::response::text(503, "redis is unavailable: " + ec.message() + "\n")
        .header("Retry-After", "1");
  }

  sse::broker& broker_;
  bool redis_ = false;
#if SSE_EXAMPLES_REDIS
  sse::redis::backend_options options_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::unique_ptr<sse::redis::backend> backend_;
  std::thread thread_;
#endif
};

} // namespace examples
