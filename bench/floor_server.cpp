// sse_floor_server: the least an SSE fan-out server can do, as a floor to compare against.
//
// One thread, one epoll set, no queues and no limits beyond a sanity cap on a request's size.
//   GET  /listen    a fixed `200 OK`, `Content-Type: text/event-stream` head, then events
//   POST /publish   a Content-Length body, written to every subscriber as `data:` lines with
//                   exactly one write() per subscriber; a subscriber whose write would block,
//                   comes up short or fails is dropped on the spot. Then `200` with
//                   {"delivered":N}, keep-alive.
//   GET  /          with --page FILE: that file as text/html, keep-alive (the fairness probe's
//                   request in bench/run.sh; the chat example serves its page there)
// It shows what one write() per event per subscriber costs on this machine.
//
//   sse_floor_server [--host ADDR] [--port N] [--page FILE]
//                    (port 0: the kernel picks; the URL is printed)

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t max_request = 1024 * 1024; // sanity cap, not a tuned limit
std::string page_response; ///< the whole answer to GET / ("" without --page)

struct conn {
  int fd = -1;
  bool subscriber = false;
  std::size_t sub_index = 0; ///< position in the subscriber list
  std::string in;
};

std::vector<std::unique_ptr<conn>> conns; // by descriptor
std::vector<int> subscribers;
int ep = -1;
std::uint64_t dropped = 0;

void drop(int fd) {
  auto& c = conns[static_cast<std::size_t>(fd)];
  if (!c)
    return;
  if (c->subscriber) {
    int const last = subscribers.back();
    subscribers[c->sub_index] = last;
    conns[static_cast<std::size_t>(last)]->sub_index = c->sub_index;
    subscribers.pop_back();
  }
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
  close(fd);
  c.reset();
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z')
      x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z')
      y = static_cast<char>(y - 'A' + 'a');
    if (x != y)
      return false;
  }
  return true;
}

/// `data:` lines for `body` (CRLF, LF or CR break lines) and the blank line that ends the event.
std::string frame_for(std::string_view body) {
  std::string f;
  f.reserve(body.size() + 16);
  std::size_t start = 0;
  for (;;) {
    std::size_t const brk = body.find_first_of("\r\n", start);
    f += "data: ";
    f.append(body.substr(start, brk == std::string_view::npos ? body.npos : brk - start));
    f += '\n';
    if (brk == std::string_view::npos)
      break;
    start = brk + 1;
    if (body[brk] == '\r' && start < body.size() && body[start] == '\n')
      ++start;
  }
  f += '\n';
  return f;
}

/// Writes `s` in one call; false if it did not all go.
bool write_all_once(int fd, std::string_view s) {
  ssize_t const w = write(fd, s.data(), s.size());
  return w == static_cast<ssize_t>(s.size());
}

void publish(std::string_view body) {
  std::string const f = frame_for(body);
  for (std::size_t i = 0; i < subscribers.size();) {
    int const fd = subscribers[i];
    if (write_all_once(fd, f)) {
      ++i;
    } else {
      ++dropped;
      drop(fd); // moves the last subscriber into slot i
    }
  }
}

/// Handles every complete request in the connection's buffer; false if it was closed.
bool handle_requests(conn& c) {
  std::size_t pos = 0;
  for (;;) {
    auto const end = c.in.find("\r\n\r\n", pos);
    if (end == std::string::npos)
      break;
    std::string_view const head(c.in.data() + pos, end - pos);
    auto const sp1 = head.find(' ');
    auto const sp2 = head.find(' ', sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos) {
      drop(c.fd);
      return false;
    }
    std::string_view const method = head.substr(0, sp1), target = head.substr(sp1 + 1, sp2 - sp1 - 1);
    long long content_length = 0;
    for (std::size_t ls = head.find("\r\n"); ls != std::string_view::npos;) {
      std::size_t const le = head.find("\r\n", ls + 2);
      std::string_view const line = head.substr(ls + 2, le == std::string_view::npos ? head.npos : le - ls - 2);
      auto const colon = line.find(':');
      if (colon != std::string_view::npos && iequals(line.substr(0, colon), "content-length"))
        content_length = std::atoll(std::string(line.substr(colon + 1)).c_str());
      ls = le;
    }
    std::size_t const body_start = end + 4;
    if (method == "GET" && target == "/listen") {
      static constexpr std::string_view ok = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                             "Cache-Control: no-cache\r\nConnection: close\r\n\r\n";
      if (!write_all_once(c.fd, ok)) {
        drop(c.fd);
        return false;
      }
      c.subscriber = true;
      c.sub_index = subscribers.size();
      subscribers.push_back(c.fd);
      std::string().swap(c.in); // a stream reads nothing more
      return true;
    }
    if (method == "POST" && target == "/publish") {
      if (content_length < 0) {
        drop(c.fd);
        return false;
      }
      if (c.in.size() - body_start < static_cast<std::size_t>(content_length))
        break; // the body is still on its way
      publish(std::string_view(c.in.data() + body_start, static_cast<std::size_t>(content_length)));
      std::string const body = "{\"delivered\":" + std::to_string(subscribers.size()) + "}";
      std::string const res = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body;
      if (!write_all_once(c.fd, res)) {
        drop(c.fd);
        return false;
      }
      pos = body_start + static_cast<std::size_t>(content_length);
      continue;
    }
    if (method == "GET" && target == "/" && !page_response.empty()) {
      if (!write_all_once(c.fd, page_response)) {
        drop(c.fd);
        return false;
      }
      pos = body_start;
      continue;
    }
    static constexpr std::string_view nf = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    write_all_once(c.fd, nf);
    drop(c.fd);
    return false;
  }
  c.in.erase(0, pos);
  if (c.in.size() > max_request) {
    drop(c.fd);
    return false;
  }
  return true;
}

void on_readable(int fd) {
  auto* c = conns[static_cast<std::size_t>(fd)].get();
  if (!c)
    return;
  char buf[64 * 1024];
  ssize_t const n = read(fd, buf, sizeof buf);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    drop(fd);
    return;
  }
  if (n < 0 || c->subscriber)
    return; // whatever a subscriber sends is ignored; its EOF is what matters
  c->in.append(buf, static_cast<std::size_t>(n));
  handle_requests(*c);
}

void accept_all(int lfd) {
  for (;;) {
    int const fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return; // EAGAIN, or out of descriptors: try again on the next wakeup
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (static_cast<std::size_t>(fd) >= conns.size())
      conns.resize(static_cast<std::size_t>(fd) + 1024);
    conns[static_cast<std::size_t>(fd)] = std::make_unique<conn>();
    conns[static_cast<std::size_t>(fd)]->fd = fd;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
}

} // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    std::string_view const f = argv[i];
    if (f == "--host" && i + 1 < argc) {
      host = argv[++i];
    } else if (f == "--port" && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else if (f == "--page" && i + 1 < argc) {
      std::ifstream in(argv[++i], std::ios::binary);
      std::string const body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (!in.good() && !in.eof()) {
        std::fprintf(stderr, "sse_floor_server: cannot read %s\n", argv[i]);
        return 2;
      }
      page_response = "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\n\r\n" + body;
    } else {
      std::fprintf(stderr, "usage: sse_floor_server [--host ADDR] [--port N] [--page FILE]\n");
      return f == "--help" ? 0 : 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);

  int const lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
    std::fprintf(stderr, "sse_floor_server: bad IPv4 address %s\n", host.c_str());
    return 2;
  }
  if (bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(lfd, 4096) != 0) {
    std::fprintf(stderr, "sse_floor_server: cannot listen on %s:%d: %s\n", host.c_str(), port, std::strerror(errno));
    return 1;
  }
  socklen_t len = sizeof a;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  std::printf("sse_floor_server: serving http://%s:%d/\n", host.c_str(), ntohs(a.sin_port));
  std::fflush(stdout);

  ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.fd = lfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  std::vector<epoll_event> evs(1024);
  for (;;) {
    int const n = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), -1);
    for (int i = 0; i < n; ++i) {
      int const fd = evs[static_cast<std::size_t>(i)].data.fd;
      if (fd == lfd)
        accept_all(lfd);
      else
        on_readable(fd);
    }
  }
}
