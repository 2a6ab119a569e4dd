#pragma once

// Programs the tests start: nginx and node (child_process), spawned with their output in a
// file, waited for by a line they print, stopped with SIGTERM (then SIGKILL); and a program
// that inherits the test's descriptors (inheriting_child), to check which sockets it holds.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

extern char** environ; // for posix_spawn

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
      // Only what is async-signal-safe until exec. The program gets stdio and nothing else:
      // sse::server and sse::client mark their sockets close-on-exec (test_server_lifecycle
      // and test_sse_client check that, with inheriting_child), but the tests' own raw
      // servers and clients do not, and nginx or node must not hold those open.
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

/// A program started with posix_spawn and no file actions, so it inherits every descriptor
/// of the test process that is not close-on-exec; killed when this goes out of scope.
class inheriting_child {
public:
  explicit inheriting_child(std::vector<std::string> argv) {
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(a.data());
    args.push_back(nullptr);
    if (::posix_spawn(&pid_, args[0], nullptr, nullptr, args.data(), environ) != 0)
      pid_ = -1;
  }
  inheriting_child(inheriting_child const&) = delete;
  inheriting_child& operator=(inheriting_child const&) = delete;
  ~inheriting_child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  /// -1 if it could not start. posix_spawn returns once the program runs, so what it
  /// inherited it holds from then on.
  pid_t pid() const { return pid_; }

private:
  pid_t pid_ = -1;
};

enum class port_side { local, remote };

/// The inodes of this host's TCP sockets whose local (or remote) port is `port`. Local: a
/// server's listening socket and the connections it accepted; remote: the clients' ends.
inline std::set<std::string> tcp_socket_inodes(std::uint16_t port, port_side side) {
  std::set<std::string> inodes;
  for (char const* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line); // the column names
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
          timeout >> inode;
      std::string const& address = side == port_side::local ? local : remote;
      auto const colon = address.rfind(':');
      if (colon != std::string::npos &&
          std::stoul(address.substr(colon + 1), nullptr, 16) == port && inode != "0")
        inodes.insert(inode); // 0: in TIME_WAIT, no longer anybody's descriptor
    }
  }
  return inodes;
}

/// The inodes of the sockets process `pid` has open.
inline std::set<std::string> socket_inodes_of(pid_t pid) {
  std::set<std::string> inodes;
  std::error_code ec;
  for (auto const& fd :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::string const target = std::filesystem::read_symlink(fd.path(), ec).string();
    if (!ec && target.rfind("socket:[", 0) == 0)
      inodes.insert(target.substr(8, target.size() - 9));
  }
  return inodes;
}

} // namespace sse_test
