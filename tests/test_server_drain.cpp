// server::drain: 1,000 streams ended spread over the window, each after what was queued for it
// and a retry: hint, new connections refused meanwhile, and a stop() that cuts a drain short.

#include "server_fixture.hpp"
#include "test_client.hpp"

#include <sse/broker.hpp>
#include <sse/server.hpp>

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace sse_test;

namespace {

/// Raises the soft descriptor limit so that one process can hold both ends of `n` streams.
void allow_descriptors(std::size_t n) {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < n) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, n);
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int open_stream(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (fd >= 0)
      ::close(fd);
    return -1;
  }
  std::string const req = get("/listen");
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return -1;
  }
  return fd;
}

struct stream_end {
  std::string bytes;
  bool ended = false;
  steady::duration at{};
};

/// Reads every fd until EOF (or `timeout`), noting when each ended relative to `t0`.
std::vector<stream_end> read_to_end(std::vector<int> const& fds, steady::time_point t0, ms timeout) {
  std::vector<stream_end> out(fds.size());
  std::vector<pollfd> pfds;
  for (int fd : fds)
    pfds.push_back({fd, POLLIN, 0});
  std::size_t open = fds.size();
  auto const deadline = steady::now() + timeout;
  char buf[16 * 1024];
  while (open > 0 && steady::now() < deadline) {
    if (::poll(pfds.data(), pfds.size(), 50) <= 0)
      continue;
    for (std::size_t i = 0; i < pfds.size(); ++i) {
      if (pfds[i].fd < 0 || !(pfds[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      ssize_t const n = ::recv(pfds[i].fd, buf, sizeof buf, 0);
      if (n > 0) {
        out[i].bytes.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      out[i].ended = true;
      out[i].at = steady::now() - t0;
      pfds[i].fd = -1;
      --open;
    }
  }
  return out;
}

} // namespace

TEST_CASE("drain ends 1,000 streams spread over its window, each after its events and a retry hint", "[server][drain]") {
  constexpr std::size_t n = 1000;
  allow_descriptors(2 * n + 200);
  auto o = test_options();
  o.threads = 2;
  o.retry = 1000ms;
  o.retry_jitter = 500ms;
  test_server ts(o);
  auto const port = ts.port();
  std::vector<int> fds;
  for (std::size_t i = 0; i < n; ++i) {
    int const fd = open_stream(port);
    REQUIRE(fd >= 0);
    fds.push_back(fd);
  }
  REQUIRE(eventually([&] { return ts.subscribers() == n; }, 10000ms));
  ts.broker.publish(sse::event("before-drain"));

  constexpr auto window = 2000ms;
  auto const t0 = steady::now();
  std::thread drainer([&] { ts.srv.drain(window); });
  auto const ends = read_to_end(fds, t0, window + 5000ms);
  CHECK_FALSE(can_connect(port)); // refused meanwhile
  drainer.join();
  auto const took = steady::now() - t0;
  for (int fd : fds)
    ::close(fd);

  std::vector<double> at; // seconds after the drain began
  std::size_t hinted = 0, complete = 0;
  for (auto const& e : ends) {
    REQUIRE(e.ended);
    at.push_back(std::chrono::duration<double>(e.at).count());
    auto const ev = e.bytes.find("data: before-drain\n\n");
    complete += ev != std::string::npos;
    hinted += ev != std::string::npos && e.bytes.find("retry: ", ev) != std::string::npos;
    complete -= e.bytes.find("0\r\n\r\n") == std::string::npos; // ended with the last chunk
  }
  CHECK(complete == n);
  CHECK(hinted == n);
  std::sort(at.begin(), at.end());
  auto q = [&](double f) { return at[static_cast<std::size_t>(f * static_cast<double>(at.size() - 1))]; };
  double const w = std::chrono::duration<double>(window).count();
  INFO("ends at p10 " << q(0.1) << " s, p50 " << q(0.5) << " s, p90 " << q(0.9) << " s, max " << at.back());
  // Spread over the window, not all at once: a tenth in each tenth, give or take.
  CHECK(q(0.1) > 0.05 * w);
  CHECK(q(0.1) < 0.3 * w);
  CHECK(q(0.5) > 0.3 * w);
  CHECK(q(0.5) < 0.7 * w);
  CHECK(q(0.9) > 0.7 * w);
  CHECK(at.back() < w + 1.0);
  CHECK(took < window + 3000ms);
}

TEST_CASE("stop during a drain ends the remaining streams at once", "[server][drain]") {
  auto o = test_options();
  test_server ts(o);
  std::vector<std::unique_ptr<stream_client>> streams;
  for (int i = 0; i < 10; ++i) {
    streams.push_back(std::make_unique<stream_client>(ts.port(), "/listen"));
    REQUIRE(streams.back()->ok());
  }
  REQUIRE(eventually([&] { return ts.subscribers() == 10; }));
  auto const t0 = steady::now();
  std::thread drainer([&] { ts.srv.drain(60s); });
  std::this_thread::sleep_for(100ms); // the drain has begun; a second signal comes
  ts.srv.stop();
  drainer.join();
  CHECK(steady::now() - t0 < 5s);
  for (auto& s : streams)
    CHECK(s->wait_closed(1000ms));
}
