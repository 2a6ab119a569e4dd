#include <sse/redis.hpp>

#include <asio/io_context.hpp>

#include <iostream>

int main() {
  // sse::redis through the package: hiredis must have come in with it (the command is
  // formatted by hiredis). Not started, so it is refused at once and needs no server.
  asio::io_context io;
  sse::redis::connection conn(io.get_executor());
  conn.async_command({"PING"}, [](std::error_code ec, sse::redis::reply) {
    std::cout << "redis: " << ec.message() << "\n";
  });
  io.run();
}
