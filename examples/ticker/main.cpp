// ticker: the smallest sse program. A thread publishes events through a broker; a subscriber
// on an io_context receives each frame, already formatted, and prints the bytes a browser
// would get on its event stream.
#include <sse/sse.hpp>

#include <asio/io_context.hpp>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <thread>

int main(int argc, char** argv) {
  int const count = argc > 1 ? std::atoi(argv[1]) : 5;
  asio::io_context io;
  sse::broker broker;

  sse::subscribe_options options;
  options.executor = io.get_executor();
  auto sub = broker.subscribe("ticks", options);

  int received = 0;
  std::function<void(std::error_code)> on_ready = [&](std::error_code ec) {
    if (ec)
      return;
    while (auto frame = sub.try_pop()) {
      std::cout << frame->view() << std::flush;
      ++received;
    }
    if (received < count)
      sub.async_wait(on_ready);
  };
  sub.async_wait(on_ready);

  std::thread publisher([&] {
    for (int i = 1; i <= count; ++i) {
      broker.publish("ticks", sse::json_event({{"tick", i}}).name("tick").id(std::to_string(i)));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  io.run();
  publisher.join();
  std::cerr << "ticker: " << received << " events, " << broker.stats().delivered
            << " delivered\n";
  return received == count ? 0 : 1;
}
