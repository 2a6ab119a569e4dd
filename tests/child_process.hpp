#pragma once

// Programs the client tests start (nginx, node): spawned with their output in a file, waited
// for by a line they print, stopped with SIGTERM (then SIGKILL).

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace sse_test {

class child_process {
public:
  /// Starts `argv` with stdout and stderr appended to `log`.
  child_process(std::vector<std::string> argv, std::string log) : log_(std::move(log)) {
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(a.data());
    args.push_back(nullptr);
    int const out = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out < 0)
      throw std::runtime_error("cannot open " + log_);
    long const max_fd = ::sysconf(_SC_OPEN_MAX);
    pid_ = ::fork();
    if (pid_ == 0) {
      // Only what is async-signal-safe until exec. Asio's sockets are not close-on-exec: a
      // listening socket of the test's server inherited here would keep its port bound (and
      // queue connections nobody accepts) after the server stopped.
      ::dup2(out, 1);
      ::dup2(out, 2);
      for (long fd = 3; fd < max_fd; ++fd)
        ::close(static_cast<int>(fd));
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
    ::close(out);
    if (pid_ < 0)
      throw std::runtime_error("cannot start " + argv[0]);
  }
  child_process(child_process const&) = delete;
  child_process& operator=(child_process const&) = delete;
  ~child_process() { stop(); }

  /// Whether it still runs.
  bool running() {
    if (pid_ <= 0)
      return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }

  void stop() {
    if (!running())
      return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 100 && running(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (running()) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

  std::string output() const { return read_file(log_); }

  /// Waits for a line of its output that starts with `prefix`; returns the rest of it.
  std::optional<std::string> wait_for_line(std::string const& prefix,
                                           std::chrono::milliseconds timeout) {
    auto const until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      std::istringstream in(output());
      for (std::string line; std::getline(in, line);)
        if (line.rfind(prefix, 0) == 0)
          return line.substr(prefix.size());
      if (!running())
        return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::nullopt;
  }

  static std::string read_file(std::string const& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }

private:
  std::string log_;
  pid_t pid_ = -1;
};

} // namespace sse_test
