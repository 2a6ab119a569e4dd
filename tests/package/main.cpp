#include <sse/sse.hpp>

#include <asio/io_context.hpp>

#include <iostream>

int main() {
  std::cout << sse::format_event("hello", "greeting", "1");
  // Through the broker on an io_context, so Asio must have come in through the package too.
  asio::io_context io;
  sse::broker broker;
  sse::subscribe_options options;
  options.executor = io.get_executor();
  auto sub = broker.subscribe("news", options);
  sub.async_wait([&](std::error_code ec) {
    if (!ec)
      std::cout << sub.try_pop()->view();
  });
  broker.publish("news", sse::json_event(nlohmann::json{{"ok", true}}).id("2"));
  io.run();
}
