// A redis-server of the test's own: a free port on 127.0.0.1, a temporary directory, no
// persistence unless asked, killed (and its directory removed) at the end. The program is
// $SSE_REDIS_SERVER (set by CMake) or redis-server from PATH.

#pragma once

#include <hiredis/hiredis.h>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace sse_test {

/// A port the kernel just handed out (bound to port 0, then released).
inline std::uint16_t free_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

class redis_server {
public:
  explicit redis_server(std::vector<std::string> extra = {}) : extra_(std::move(extra)) {
    char tmpl[] = "/tmp/sse-redis-XXXXXX";
    if (!mkdtemp(tmpl))
      throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    for (int i = 0; i < 5; ++i) { // the port may be taken between free_port() and redis' bind
      port_ = free_port();
      if (launch())
        return;
    }
    throw std::runtime_error("redis-server did not start; see " + dir_ + "/redis.log");
  }
  redis_server(redis_server const&) = delete;
  redis_server& operator=(redis_server const&) = delete;
  ~redis_server() {
    kill();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::uint16_t port() const { return port_; }

  /// SIGKILL, and reaps it: its sockets are closed when this returns.
  void kill() {
    if (pid_ <= 0)
      return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  /// Freezes it (SIGSTOP): connections stay open, nothing is answered.
  void stop() { ::kill(pid_, SIGSTOP); }
  /// Thaws it (SIGCONT).
  void resume() { ::kill(pid_, SIGCONT); }
  /// Starts it again on the same port (after kill()).
  void restart() {
    for (int i = 0; i < 20; ++i)
      if (launch())
        return;
    throw std::runtime_error("redis-server did not restart on port " + std::to_string(port_));
  }

private:
  bool launch() {
    char const* env = std::getenv("SSE_REDIS_SERVER");
    std::string program = env && *env ? env : "redis-server";
    std::vector<std::string> args{program,         "--port",       std::to_string(port_),
                                  "--bind",        "127.0.0.1",    "--dir",
                                  dir_,            "--save",       "",
                                  "--appendonly",  "no",           "--daemonize",
                                  "no",            "--logfile",    dir_ + "/redis.log"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    if (posix_spawnp(&pid, program.c_str(), nullptr, nullptr, argv.data(), environ) != 0)
      throw std::runtime_error(program + " not found: install the Debian package redis-server");
    pid_ = pid;
    // Ready once it answers PING; gone if it exited (e.g. the port was taken).
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      if (ping())
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5)); // a process' start: no event
    }
    kill();
    return false;
  }

  bool ping() const {
    timeval tv{0, 200 * 1000};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
    bool ok = false;
    if (c && !c->err) {
      auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
      // NOAUTH: up, and wanting a password (--requirepass).
      ok = r && (r->type == REDIS_REPLY_STATUS ||
                 (r->type == REDIS_REPLY_ERROR && std::string(r->str).rfind("NOAUTH", 0) == 0));
      if (r)
        freeReplyObject(r);
    }
    if (c)
      redisFree(c);
    return ok;
  }

  std::vector<std::string> extra_;
  std::string dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

} // namespace sse_test
