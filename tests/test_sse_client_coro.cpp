// sse::client's async_next with asio::use_awaitable, in a C++20 coroutine (built only where
// the compiler has coroutines with Asio: tests/CMakeLists.txt).

#include "client_util.hpp"

#include <sse/client.hpp>
#include <sse/stream.hpp>
#include <sse/testing.hpp>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

TEST_CASE("client's async_next in a coroutine: events, then the final reason", "[client]") {
  int calls = 0;
  sse::testing::server server([&calls](sse::server& s) {
    s.route("GET", "/three", [&calls](sse::request&) {
      if (++calls > 1)
        return sse::response(204); // the reconnect is told to stop
      sse::event_stream st;
      for (int i = 0; i < 3; ++i)
        st.send(sse::event(std::to_string(i)).id(std::to_string(i)));
      st.close();
      return sse::response::stream(st);
    });
  });
  sse_test::client_runner run;
  sse::client_options o;
  o.url = server.url("/three");
  o.retry = std::chrono::milliseconds(10);
  sse::client c(run.io, o);
  c.start();
  auto done = asio::co_spawn(
      run.io,
      [&c]() -> asio::awaitable<std::pair<std::vector<std::string>, std::error_code>> {
        std::vector<std::string> got;
        for (;;) {
          auto [ec, ev] = co_await c.async_next(asio::experimental::as_tuple(asio::use_awaitable));
          if (ec)
            co_return std::make_pair(got, ec);
          got.push_back(ev.data + "@" + ev.id);
        }
      },
      asio::use_future);
  auto [got, why] = done.get();
  CHECK(got == std::vector<std::string>{"0@0", "1@1", "2@2"});
  CHECK(why == sse::errc::no_content);
}
