# Sets SSE_HAS_ASIO_COROUTINES: whether this compiler has C++20 coroutines with Asio (g++ 10
# and later; clang 14 on libstdc++ has not). The coroutine example and the client's coroutine
# test are built, as C++20 for their own targets whatever the rest is, only where it is true.
# Not installed: the library itself needs no coroutines.
include(CheckCXXSourceCompiles)
set(CMAKE_REQUIRED_FLAGS "-std=c++20")
set(CMAKE_REQUIRED_DEFINITIONS -DASIO_STANDALONE)
set(CMAKE_REQUIRED_LIBRARIES Threads::Threads)
check_cxx_source_compiles([=[
#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
asio::awaitable<int> one() { co_return 1; }
int main() {
  asio::io_context io;
  asio::co_spawn(io, []() -> asio::awaitable<void> { co_await one(); }, asio::detached);
  io.run();
}
]=] SSE_HAS_ASIO_COROUTINES)
unset(CMAKE_REQUIRED_FLAGS)
unset(CMAKE_REQUIRED_DEFINITIONS)
unset(CMAKE_REQUIRED_LIBRARIES)
