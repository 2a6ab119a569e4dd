// coroutine: asynchronous handlers written as C++20 coroutines (Asio's co_await).
//
//   GET  /listen?token=T   checks the token "against a database" (an awaited timer on the
//                          application's own io_context), then streams topic `news`; 403
//                          for a token other than the one given with --token
//   POST /publish          publishes the body to `news`; answers its id
//
// The handlers return at once: each spawns a coroutine that answers through its responder
// when it is done, on the application's thread, never blocking the server's.
#include "../common/options.hpp"
#include "../common/run.hpp"

#include <sse/sse.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <string>
#include <thread>

namespace {

/// Stands for a database or auth service call: answers after a short wait.
asio::awaitable<bool> token_is_valid(std::string token, std::string expected) {
  asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(20));
  co_await timer.async_wait(asio::use_awaitable);
  co_return token == expected;
}

} // namespace

int main(int argc, char** argv) {
  std::string token = examples::take_text_flag(argc, argv, "--token");
  if (token.empty())
    token = "demo";
  auto options = examples::parse_options(argc, argv, "coroutine",
                                         "Asynchronous handlers as C++20 coroutines (--token T).");
  // The application's own io_context and thread, where its coroutines run.
  asio::io_context app;
  auto work = asio::make_work_guard(app);
  std::thread app_thread([&] { app.run(); });

  sse::broker broker;
  sse::server srv(options);
  srv.route("GET", "/listen", [&](sse::request& req, sse::responder res) {
    std::string given(req.query("token").value_or(""));
    asio::co_spawn(
        app,
        [&broker, &token, res, given]() mutable -> asio::awaitable<void> {
          if (!co_await token_is_valid(given, token))
            res.send(sse::response::text(403, "bad token\n"));
          else
            res.send(sse::response::stream(broker.subscribe("news")));
        },
        asio::detached);
  });
  srv.route("POST", "/publish", [&](sse::request& req, sse::responder res) {
    asio::co_spawn(
        app,
        [&broker, res, body = req.body()]() mutable -> asio::awaitable<void> {
          try {
            auto const r = broker.publish("news", sse::event(body));
            res.send(sse::response::json(200, nlohmann::json{{"receivers", r.receivers}}.dump()));
          } catch (std::invalid_argument const& e) {
            res.send(sse::response::text(400, std::string(e.what()) + "\n"));
          }
          co_return;
        },
        asio::detached);
  });
  int const rc = examples::serve_until_signal(srv, "coroutine");
  work.reset();
  app.stop();
  app_thread.join();
  return rc;
}
