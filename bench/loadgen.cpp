// sse_loadgen: a load generator for Server-Sent Events servers (bench/run.sh drives it).
//
// One thread, one epoll set. It opens N subscriber connections to an event-stream URL, then
// POSTs events to a publish URL over keep-alive connections and measures what comes back:
// deliveries per second, publish rate, latency (receive time minus the send time carried in the
// payload), lost events, and the server's CPU time and resident memory read from /proc.
// The receive time is the kernel's (SO_TIMESTAMPNS on each subscriber socket): when the server's
// bytes reached the socket, not when this single thread got round to reading that socket.
//
// Every payload is exactly --size bytes: "t=<send ns> p=<publisher> s=<seq> " padded with 'x'.
// Sequence numbers count per publisher connection; a connection has its POSTs handled in order,
// so each subscriber must see each publisher's numbers rise one by one: a jump is a gap.
//
// Only the C++ standard library and POSIX. Built with SSE_LOADGEN_H2 (sse_h2_loadgen, from
// bench/h2_loadgen.cpp) it also speaks TLS (OpenSSL, https:// URLs, for subscribers and
// publishers) and HTTP/2 for the subscribers (--h2: nghttp2's client, h2 by ALPN over TLS, h2c by
// prior knowledge in cleartext), many streams per connection (--conns). TLS runs over memory
// BIOs, so the socket reads stay ours and keep their kernel receive timestamps.

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#if SSE_LOADGEN_H2
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <memory>
#endif

namespace {

using ns_t = std::int64_t;
constexpr ns_t ns_per_s = 1000000000;

ns_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<ns_t>(ts.tv_sec) * ns_per_s + ts.tv_nsec;
}

ns_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<ns_t>(ts.tv_sec) * ns_per_s + ts.tv_nsec;
}

ns_t seconds_to_ns(double s) { return static_cast<ns_t>(s * 1e9); }

[[noreturn]] void die(char const* fmt, char const* arg = "") {
  std::fprintf(stderr, "sse_loadgen: ");
  std::fprintf(stderr, fmt, arg);
  std::fprintf(stderr, "\n");
  std::exit(2);
}

// --- options ------------------------------------------------------------------------------

struct url {
  std::string host;
  std::string port = "80";
  std::string path = "/";
  std::string authority; ///< for the Host header
  bool tls = false;      ///< https://
};

url parse_url(std::string const& s) {
  std::string_view v = s;
  url u;
  if (v.substr(0, 7) == "http://") {
    v.remove_prefix(7);
#if SSE_LOADGEN_H2
  } else if (v.substr(0, 8) == "https://") {
    v.remove_prefix(8);
    u.tls = true;
    u.port = "443";
#endif
  } else if (v.find("://") != std::string_view::npos) {
#if SSE_LOADGEN_H2
    die("only http:// and https:// URLs are supported: %s", s.c_str());
#else
    die("only http:// URLs are supported (sse_h2_loadgen speaks https://): %s", s.c_str());
#endif
  }
  auto const slash = v.find('/');
  std::string_view auth = v.substr(0, slash);
  if (slash != std::string_view::npos)
    u.path = std::string(v.substr(slash));
  u.authority = std::string(auth);
  if (!auth.empty() && auth.front() == '[') { // [::1]:port
    auto const close = auth.find(']');
    if (close == std::string_view::npos)
      die("bad URL: %s", s.c_str());
    u.host = std::string(auth.substr(1, close - 1));
    if (close + 1 < auth.size() && auth[close + 1] == ':')
      u.port = std::string(auth.substr(close + 2));
  } else {
    auto const colon = auth.rfind(':');
    u.host = std::string(auth.substr(0, colon));
    if (colon != std::string_view::npos)
      u.port = std::string(auth.substr(colon + 1));
  }
  if (u.host.empty())
    die("bad URL: %s", s.c_str());
  return u;
}

struct options {
  std::vector<std::string> sub_urls, pub_urls; ///< several: spread over them in turn
  std::size_t subs = 100;
  std::size_t size = 64;
  double duration = 10;
  double warmup = 2;
  double rate = 0; ///< events/s; 0 = as fast as the server accepts (closed loop)
  std::size_t window = 8;
  std::size_t pub_conns = 0; ///< 0: one per window slot
  double stall_fraction = 0;
  std::vector<long> server_pids; ///< CPU time, waits and RSS are summed over them
  bool idle = false;
  bool json = false;
  bool kernel_rx_time = true; ///< latency from the socket's receive timestamp (SO_TIMESTAMPNS)
  std::size_t connect_batch = 200;
  double connect_timeout = 20;
  double settle = 1;
  double drain = 3;
  std::string label;
  bool h2 = false;         ///< subscribers are HTTP/2 streams (sse_h2_loadgen)
  std::size_t conns = 0;   ///< HTTP/2 connections the streams share (0: one per 100 streams)
  std::string probe_path;  ///< fairness probe: GET this path on the subscribers' server ("": none)
  double probe_interval_ms = 10;
};

void usage(FILE* f) {
  std::fprintf(f,
      "usage: sse_loadgen --sub-url URL [--pub-url URL] [options]\n"
      "  --sub-url URL         event stream to subscribe to (GET); given several times, the\n"
      "                        subscribers are spread over the URLs in turn\n"
      "  --pub-url URL         where to POST events (not needed with --idle); given several\n"
      "                        times, the publisher connections are spread over them in turn\n"
      "  --subs N              subscriber connections (100)\n"
      "  --size B              payload bytes per event (64, at least 48)\n"
      "  --duration S          measured seconds (10)\n"
      "  --warmup S            publishing seconds before measuring (2)\n"
      "  --rate R|max          events/s, or max: closed loop with --window POSTs outstanding (max)\n"
      "  --window W            POSTs outstanding at most (8)\n"
      "  --pub-conns C         publisher connections (default: W, one POST in flight each;\n"
      "                        fewer connections pipeline up to ceil(W/C) each)\n"
      "  --stall-fraction F    that fraction of subscribers never reads after connecting (0)\n"
      "  --server-pid PID      process whose CPU time and RSS to report (several times: summed)\n"
      "  --idle                connect the subscribers, publish nothing, measure memory\n"
      "  --json                one JSON object on stdout instead of the text report\n"
      "  --user-rx-time        latency ends when the load generator reads the event, not when\n"
      "                        the kernel queued it on the socket (SO_TIMESTAMPNS, the default)\n"
      "  --connect-batch N     connections being set up at once (200)\n"
      "  --connect-timeout S   give up on a subscriber not streaming after S (20)\n"
      "  --settle S            wait after connecting, before measuring memory (1)\n"
      "  --drain S             after publishing, wait up to S of no progress for stragglers (3)\n"
      "  --label TEXT          copied into the JSON output\n"
      "  --probe-path PATH     while publishing, GET PATH on the first --sub-url's server over one\n"
      "                        keep-alive connection, one request at a time, and time the answers\n"
      "                        (an unrelated request's latency under the fan-out load)\n"
      "  --probe-interval-ms M a probe request due every M ms (10); one waiting for a late answer\n"
      "                        goes as soon as it comes, and its latency from due counts the wait\n"
#if SSE_LOADGEN_H2
      "  --h2                  subscribers are HTTP/2 streams: h2 by ALPN for https:// URLs,\n"
      "                        h2c by prior knowledge for http:// (publishers stay HTTP/1.1)\n"
      "  --conns C             HTTP/2 connections the --subs streams are spread over\n"
      "                        (default: one per 100 streams)\n"
      "  https:// URLs         TLS (any certificate is accepted: a benchmark, not a client)\n"
#endif
      "  --free-port           print a free TCP port on 127.0.0.1 and exit\n");
}

double parse_number(char const* flag, char const* v, double lo, double hi) {
  if (!v)
    die("%s needs a value", flag);
  char* end = nullptr;
  double const d = std::strtod(v, &end);
  if (end == v || *end != '\0' || !(d >= lo && d <= hi))
    die("bad value for %s", flag);
  return d;
}

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    die("cannot find a free port");
  int const port = ntohs(a.sin_port);
  close(fd);
  return port;
}

options parse_options(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view const f = argv[i];
    char const* v = i + 1 < argc ? argv[i + 1] : nullptr;
    auto num = [&](double lo, double hi) {
      ++i;
      return parse_number(argv[i - 1], v, lo, hi);
    };
    if (f == "--help" || f == "-h") {
      usage(stdout);
      std::exit(0);
    } else if (f == "--free-port") {
      std::printf("%d\n", free_port());
      std::exit(0);
    } else if (f == "--sub-url" && v) {
      o.sub_urls.emplace_back(v), ++i;
    } else if (f == "--pub-url" && v) {
      o.pub_urls.emplace_back(v), ++i;
    } else if (f == "--label" && v) {
      o.label = v, ++i;
    } else if (f == "--probe-path" && v) {
      o.probe_path = v, ++i;
      if (o.probe_path.empty() || o.probe_path.front() != '/')
        die("--probe-path must start with '/': %s", v);
    } else if (f == "--probe-interval-ms") {
      o.probe_interval_ms = num(0.1, 60000);
    } else if (f == "--subs") {
      o.subs = static_cast<std::size_t>(num(1, 1e6));
    } else if (f == "--size") {
      o.size = static_cast<std::size_t>(num(48, 1 << 20));
    } else if (f == "--duration") {
      o.duration = num(0.1, 86400);
    } else if (f == "--warmup") {
      o.warmup = num(0, 86400);
    } else if (f == "--rate") {
      if (v && std::string_view(v) == "max")
        o.rate = 0, ++i;
      else
        o.rate = num(0.001, 1e9);
    } else if (f == "--window") {
      o.window = static_cast<std::size_t>(num(1, 4096));
    } else if (f == "--pub-conns") {
      o.pub_conns = static_cast<std::size_t>(num(1, 4096));
    } else if (f == "--stall-fraction") {
      o.stall_fraction = num(0, 1);
    } else if (f == "--server-pid") {
      o.server_pids.push_back(static_cast<long>(num(1, 1e9)));
    } else if (f == "--idle") {
      o.idle = true;
    } else if (f == "--json") {
      o.json = true;
    } else if (f == "--user-rx-time") {
      o.kernel_rx_time = false;
    } else if (f == "--connect-batch") {
      o.connect_batch = static_cast<std::size_t>(num(1, 1e6));
    } else if (f == "--connect-timeout") {
      o.connect_timeout = num(0.1, 3600);
    } else if (f == "--settle") {
      o.settle = num(0, 3600);
    } else if (f == "--drain") {
      o.drain = num(0, 3600);
#if SSE_LOADGEN_H2
    } else if (f == "--h2") {
      o.h2 = true;
    } else if (f == "--conns") {
      o.conns = static_cast<std::size_t>(num(1, 1e6));
#endif
    } else {
      std::fprintf(stderr, "sse_loadgen: unknown or incomplete flag '%s'\n", argv[i]);
      usage(stderr);
      std::exit(2);
    }
  }
  if (o.sub_urls.empty())
    die("--sub-url is required");
  if (!o.idle && o.pub_urls.empty())
    die("--pub-url is required (or --idle)");
  if (o.idle && !o.probe_path.empty())
    die("--probe-path runs while publishing: not with --idle");
  if (o.h2 && o.conns == 0)
    o.conns = (o.subs + 99) / 100;
  if (o.h2 && o.stall_fraction > 0)
    die("--stall-fraction is for HTTP/1.1 subscribers only");
  o.conns = std::min(o.conns, o.subs);
  if (o.pub_conns == 0)
    o.pub_conns = o.window;
  o.pub_conns = std::min(o.pub_conns, o.window);
  return o;
}

// --- /proc ----------------------------------------------------------------------------------

/// utime + stime of `pid` in seconds, or -1.
double proc_cpu_seconds(long pid) {
  if (pid <= 0)
    return -1;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto const paren = s.rfind(')');
  if (paren == std::string::npos)
    return -1;
  std::istringstream in(s.substr(paren + 2));
  std::string tok;
  unsigned long long utime = 0, stime = 0;
  // Field 3 (state) is the first after the command; utime and stime are fields 14 and 15.
  for (int field = 3; field <= 15 && (in >> tok); ++field) {
    if (field == 14)
      utime = std::strtoull(tok.c_str(), nullptr, 10);
    if (field == 15)
      stime = std::strtoull(tok.c_str(), nullptr, 10);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

/// VmRSS of `pid` in KiB, or -1.
long proc_rss_kib(long pid) {
  if (pid <= 0)
    return -1;
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.compare(0, 6, "VmRSS:") == 0)
      return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}

/// Time the threads of `pid` spent runnable but waiting for a CPU (sum of the second field of
/// /proc/PID/task/*/schedstat), in seconds, or -1: shows another process taking the core.
double proc_runqueue_wait_seconds(long pid) {
  if (pid <= 0)
    return -1;
  std::string const dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (!d)
    return -1;
  unsigned long long total = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.')
      continue;
    std::ifstream f(dir + "/" + e->d_name + "/schedstat");
    unsigned long long run = 0, wait = 0;
    if (f >> run >> wait)
      total += wait;
  }
  closedir(d);
  return static_cast<double>(total) / 1e9;
}

/// The sums of the above over `pids` (-1 if any is unknown; 0 pids: -1).
double sum_over(std::vector<long> const& pids, double (*f)(long)) {
  if (pids.empty())
    return -1;
  double total = 0;
  for (long pid : pids) {
    double const v = f(pid);
    if (v < 0)
      return -1;
    total += v;
  }
  return total;
}

long rss_kib_sum(std::vector<long> const& pids) {
  if (pids.empty())
    return -1;
  long total = 0;
  for (long pid : pids) {
    long const v = proc_rss_kib(pid);
    if (v < 0)
      return -1;
    total += v;
  }
  return total;
}

double self_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// --- latency histogram ------------------------------------------------------------------------

/// Log-linear buckets: exact below 64 ns, then 64 buckets per power of two (about 1.6 % wide).
/// Fixed memory whatever the number of samples.
class histogram {
public:
  histogram() : counts_(64 * 58, 0) {}

  void add(ns_t v) {
    if (v < 0)
      v = 0;
    counts_[index(static_cast<std::uint64_t>(v))]++;
    ++total_;
    max_ = std::max(max_, v);
  }
  std::uint64_t count() const { return total_; }
  ns_t max() const { return max_; }

  /// The value at quantile q (0..1): the middle of the bucket that holds it.
  ns_t quantile(double q) const {
    if (total_ == 0)
      return 0;
    auto const rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_)));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= std::max<std::uint64_t>(rank, 1)) {
        auto const lo = lower(i), hi = lower(i + 1);
        return std::min<ns_t>(static_cast<ns_t>(lo + (hi - lo) / 2), max_);
      }
    }
    return max_;
  }

private:
  static std::size_t index(std::uint64_t v) {
    if (v < 64)
      return static_cast<std::size_t>(v);
    int const e = 63 - __builtin_clzll(v); // >= 6
    std::uint64_t const m = v >> (e - 6);  // 64..127
    return static_cast<std::size_t>(e - 6) * 64 + static_cast<std::size_t>(m);
  }
  static std::uint64_t lower(std::size_t i) {
    if (i < 64)
      return i;
    std::size_t const e = i / 64 + 5, m = i % 64 + 64;
    return static_cast<std::uint64_t>(m) << (e - 6);
  }

  std::vector<std::uint64_t> counts_;
  std::uint64_t total_ = 0;
  ns_t max_ = 0;
};

// --- connections ----------------------------------------------------------------------------

enum class kind : std::uint32_t { sub = 1, pub = 2, h2 = 3, probe = 4 };

std::uint64_t tag(kind k, std::size_t index) {
  return (static_cast<std::uint64_t>(k) << 32) | static_cast<std::uint64_t>(index);
}

int set_nonblocking_socket(addrinfo const& ai) {
  int const fd = socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol);
  if (fd < 0)
    return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one); // used by subscribers only
  return fd;
}

/// Closes with a reset: no TIME_WAIT left behind on our side, so runs can follow each other.
void close_hard(int fd) {
  if (fd < 0)
    return;
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size())
    return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i])
      return false;
  return true;
}

bool icontains(std::string_view s, std::string_view needle) {
  for (std::size_t i = 0; i + needle.size() <= s.size(); ++i)
    if (iequals_prefix(s.substr(i), needle))
      return true;
  return false;
}

/// A parsed HTTP response head.
struct response_head {
  int status = 0;
  bool chunked = false;
  bool close = false;
  long long content_length = -1;
  bool ok = false; ///< parsed
};

response_head parse_head(std::string_view head) {
  response_head h;
  if (head.substr(0, 5) != "HTTP/" || head.size() < 12)
    return h;
  auto const sp = head.find(' ');
  if (sp == std::string_view::npos || sp + 4 > head.size())
    return h;
  h.status = std::atoi(std::string(head.substr(sp + 1, 3)).c_str());
  bool const http10 = head.substr(0, 8) == "HTTP/1.0";
  h.close = http10;
  std::size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    std::size_t const start = pos + 2;
    std::size_t const end = head.find("\r\n", start);
    std::string_view const line = head.substr(start, end == std::string_view::npos ? head.npos : end - start);
    auto const colon = line.find(':');
    if (colon != std::string_view::npos) {
      std::string_view const name = line.substr(0, colon);
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.remove_prefix(1);
      if (name.size() == 17 && iequals_prefix(name, "transfer-encoding"))
        h.chunked = icontains(value, "chunked");
      else if (name.size() == 14 && iequals_prefix(name, "content-length"))
        h.content_length = std::atoll(std::string(value).c_str());
      else if (name.size() == 10 && iequals_prefix(name, "connection"))
        h.close = icontains(value, "close") ? true : (icontains(value, "keep-alive") ? false : h.close);
    }
    pos = end;
  }
  h.ok = h.status > 0;
  return h;
}

/// Incremental decoder of a chunked body; hands the payload bytes to a sink.
struct chunk_decoder {
  enum state : std::uint8_t { size, ext, size_lf, data, data_cr, data_lf, done, bad };
  state st = size;
  std::uint64_t remaining = 0;
  bool digits = false;

  /// Feeds `n` bytes; returns false on a framing error. `sink(ptr, len)` gets the payload.
  template <class Sink>
  bool feed(char const* p, std::size_t n, Sink&& sink) {
    std::size_t i = 0;
    while (i < n) {
      switch (st) {
      case size: {
        char const c = p[i++];
        int d = -1;
        if (c >= '0' && c <= '9')
          d = c - '0';
        else if (c >= 'a' && c <= 'f')
          d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
          d = c - 'A' + 10;
        if (d >= 0) {
          if (remaining > (1ull << 40))
            return st = bad, false;
          remaining = remaining * 16 + static_cast<unsigned>(d);
          digits = true;
        } else if (c == ';' || c == ' ' || c == '\t') {
          st = ext;
        } else if (c == '\r') {
          st = size_lf;
        } else if (c == '\n') {
          if (!end_of_size_line())
            return false;
        } else {
          return st = bad, false;
        }
        break;
      }
      case ext:
        if (p[i] == '\r')
          st = size_lf;
        else if (p[i] == '\n' && !end_of_size_line())
          return false;
        ++i;
        break;
      case size_lf:
        if (p[i++] != '\n')
          return st = bad, false;
        if (!end_of_size_line())
          return false;
        break;
      case data: {
        std::size_t const take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, n - i));
        sink(p + i, take);
        i += take;
        remaining -= take;
        if (remaining == 0)
          st = data_cr;
        break;
      }
      case data_cr:
        if (p[i] == '\r') {
          st = data_lf;
          ++i;
        } else if (p[i] == '\n') {
          st = size;
          ++i;
        } else {
          return st = bad, false;
        }
        break;
      case data_lf:
        if (p[i++] != '\n')
          return st = bad, false;
        st = size;
        break;
      case done:
        return true; // trailers after the last chunk: ignored, the stream is over
      case bad:
        return false;
      }
    }
    return true;
  }

private:
  bool end_of_size_line() {
    if (!digits)
      return st = bad, false;
    digits = false;
    st = remaining == 0 ? done : data;
    return true;
  }
};

/// Where an answer's body ends, for answers read whole (publishers' and the probe's).
enum class body_end { partial, complete, bad, until_close };

/// The end of the body of the answer whose head `h` ends just before `body` in `in` (past its
/// blank line): complete (`end` set), partial (not all read yet), bad framing, or until_close
/// (no length: delimited by the server closing, so `end` is what is there).
body_end find_body_end(std::string const& in, response_head const& h, std::size_t body, std::size_t& end) {
  if (h.status == 204 || h.status == 304 || (h.status >= 100 && h.status < 200)) {
    end = body;
    return body_end::complete;
  }
  if (h.chunked) {
    chunk_decoder d;
    std::size_t const avail = in.size() - body;
    std::size_t used = 0;
    // Feed byte ranges until the decoder reaches the last chunk.
    while (used < avail && d.st != chunk_decoder::done && d.st != chunk_decoder::bad) {
      d.feed(in.data() + body + used, 1, [](char const*, std::size_t) {});
      ++used;
    }
    if (d.st == chunk_decoder::bad)
      return body_end::bad;
    if (d.st != chunk_decoder::done)
      return body_end::partial;
    // Skip the (empty) trailer section: the final CRLF.
    auto const crlf = in.find("\r\n", body + used);
    if (crlf == std::string::npos)
      return body_end::partial;
    end = crlf + 2;
    return body_end::complete;
  }
  if (h.content_length >= 0) {
    if (in.size() - body < static_cast<std::size_t>(h.content_length))
      return body_end::partial;
    end = body + static_cast<std::size_t>(h.content_length);
    return body_end::complete;
  }
  end = in.size();
  return body_end::until_close;
}

/// An event-stream parser (WHATWG "Server-sent events", section 9.2.6): lines end with CRLF,
/// LF or CR, possibly split across reads; only `data` matters here, other fields are skipped.
struct event_parser {
  std::string line;
  std::string data;
  bool has_data = false;
  bool pending_cr = false; ///< the last byte seen was CR: a following LF belongs to it
  std::uint8_t bom = 0;    ///< bytes of a leading BOM matched so far; 3 once past the start
  bool too_long = false;

  template <class OnEvent>
  void feed(char const* p, std::size_t n, OnEvent&& on_event) {
    std::size_t i = 0;
    while (bom < 3 && i < n) { // skip one U+FEFF at the very start
      static constexpr unsigned char b[3] = {0xEF, 0xBB, 0xBF};
      if (static_cast<unsigned char>(p[i]) == b[bom]) {
        ++bom, ++i;
      } else {
        if (bom != 0) // a partial BOM that was not one: give its bytes back
          line.append(reinterpret_cast<char const*>(b), bom);
        bom = 3;
      }
    }
    if (pending_cr && i < n) {
      pending_cr = false;
      if (p[i] == '\n')
        ++i;
    }
    while (i < n) {
      std::size_t j = i;
      while (j < n && p[j] != '\n' && p[j] != '\r')
        ++j;
      if (j == n) {
        line.append(p + i, n - i);
        if (line.size() > (1u << 20)) { // a megabyte without a line break: not a stream
          too_long = true;
          line.clear();
        }
        return;
      }
      if (line.empty()) {
        on_line(std::string_view(p + i, j - i), on_event);
      } else {
        line.append(p + i, j - i);
        on_line(line, on_event);
        line.clear();
      }
      i = j + 1;
      if (p[j] == '\r') {
        if (i < n) {
          if (p[i] == '\n')
            ++i;
        } else {
          pending_cr = true;
        }
      }
    }
  }

private:
  template <class OnEvent>
  void on_line(std::string_view l, OnEvent& on_event) {
    if (l.empty()) {
      if (has_data)
        on_event(std::string_view(data));
      data.clear();
      has_data = false;
      return;
    }
    if (l.front() == ':')
      return; // comment
    auto const colon = l.find(':');
    std::string_view const field = l.substr(0, colon);
    if (field != "data")
      return; // event, id, retry, unknown fields: not needed to measure
    std::string_view value = colon == std::string_view::npos ? std::string_view() : l.substr(colon + 1);
    if (!value.empty() && value.front() == ' ')
      value.remove_prefix(1);
    if (has_data)
      data.push_back('\n');
    data.append(value);
    has_data = true;
  }
};

struct payload {
  ns_t t = 0;
  std::int64_t p = -1, s = -1;
};

bool parse_number_after(std::string_view d, std::string_view key, std::int64_t& out) {
  auto pos = d.find(key);
  if (pos == std::string_view::npos)
    return false;
  pos += key.size();
  std::int64_t v = 0;
  std::size_t digits = 0;
  while (pos < d.size() && d[pos] >= '0' && d[pos] <= '9' && digits < 19)
    v = v * 10 + (d[pos++] - '0'), ++digits;
  out = v;
  return digits > 0;
}

bool parse_payload(std::string_view d, payload& out) {
  return parse_number_after(d, "t=", out.t) && parse_number_after(d, " p=", out.p) &&
         parse_number_after(d, " s=", out.s);
}

/// Where to connect: one per --sub-url or --pub-url.
struct endpoint {
  url u;
  std::vector<char> addr_storage;
  addrinfo ai{};
  std::string request; ///< subscribers: the GET request
};

#if SSE_LOADGEN_H2
/// One client TLS session over memory BIOs: ciphertext in from our socket reads, out to our
/// socket writes. Accepts any certificate.
class tls_session {
public:
  /// `alpn`: ALPN protocol list in wire format ("\x02h2"), or empty.
  explicit tls_session(std::string_view alpn) {
    static SSL_CTX* const ctx = [] {
      SSL_CTX* c = SSL_CTX_new(TLS_client_method());
      if (!c)
        die("SSL_CTX_new failed");
      SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
      SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
      return c;
    }();
    ssl_ = SSL_new(ctx);
    if (!ssl_)
      die("SSL_new failed");
    BIO* const in = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl_, in, out_);
    SSL_set_connect_state(ssl_);
    if (!alpn.empty())
      SSL_set_alpn_protos(ssl_, reinterpret_cast<unsigned char const*>(alpn.data()),
                          static_cast<unsigned>(alpn.size()));
  }
  ~tls_session() { SSL_free(ssl_); }
  tls_session(tls_session const&) = delete;
  tls_session& operator=(tls_session const&) = delete;

  bool established() const { return done_; }

  /// Starts or goes on with the handshake; false on failure. The bytes to send go to `out`.
  bool handshake(std::string& out) {
    int const r = SSL_do_handshake(ssl_);
    drain(out);
    if (r == 1)
      return done_ = true;
    int const e = SSL_get_error(ssl_, r);
    ERR_clear_error();
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
  }

  /// Takes ciphertext from the socket; appends the plaintext to `plain` and what to send
  /// (handshake, alerts) to `out`. False on failure or close.
  bool feed(char const* p, std::size_t n, std::string& plain, std::string& out) {
    BIO_write(SSL_get_rbio(ssl_), p, static_cast<int>(n));
    if (!done_) {
      if (!handshake(out))
        return false;
      if (!done_)
        return true;
    }
    char buf[16384];
    for (;;) {
      int const r = SSL_read(ssl_, buf, sizeof buf);
      if (r > 0) {
        plain.append(buf, static_cast<std::size_t>(r));
        continue;
      }
      int const e = SSL_get_error(ssl_, r);
      ERR_clear_error();
      drain(out);
      return e == SSL_ERROR_WANT_READ;
    }
  }

  /// Encrypts `n` bytes (after the handshake) and appends the records to `out`.
  void write(char const* p, std::size_t n, std::string& out) {
    if (n > 0 && SSL_write(ssl_, p, static_cast<int>(n)) <= 0)
      die("SSL_write failed");
    drain(out);
  }

  std::string_view alpn() const {
    unsigned char const* p = nullptr;
    unsigned n = 0;
    SSL_get0_alpn_selected(ssl_, &p, &n);
    return p ? std::string_view(reinterpret_cast<char const*>(p), n) : std::string_view();
  }

private:
  void drain(std::string& out) {
    char buf[16384];
    int n;
    while ((n = BIO_read(out_, buf, sizeof buf)) > 0)
      out.append(buf, static_cast<std::size_t>(n));
  }

  SSL* ssl_ = nullptr;
  BIO* out_ = nullptr; ///< owned by ssl_
  bool done_ = false;
};

/// One HTTP/2 connection carrying the streams of several subscribers.
struct h2conn {
  enum class state : std::uint8_t { idle, connecting, handshake, open, closed };
  int fd = -1;
  state st = state::idle;
  std::size_t ep = 0;
  std::vector<std::size_t> subs; ///< subscriber indices
  std::unique_ptr<tls_session> tls;
  nghttp2_session* ng = nullptr;
  std::string out;
  std::size_t out_off = 0;
  bool want_out = false;
};
#endif

struct subscriber {
  enum class state : std::uint8_t { waiting, connecting, header, streaming, stalled, closed, failed };
  int fd = -1;
  std::size_t ep = 0; ///< index into the subscriber endpoints
  state st = state::waiting;
  bool stall = false;
  bool chunked = false;
  bool before_publishing = false; ///< streaming before the first POST: every event is expected
  ns_t started = 0, established = 0;
  std::string head;
  chunk_decoder chunks;
  event_parser events;
#if SSE_LOADGEN_H2
  std::unique_ptr<tls_session> tls;
  std::string plain; ///< decrypted bytes being handed on
  bool sent_request = false;
  int status = 0; ///< HTTP/2: the :status seen
  std::size_t conn = 0; ///< HTTP/2: its connection
  std::int32_t stream = -1; ///< HTTP/2: its stream id
#endif
};

struct publisher {
  enum class state : std::uint8_t { idle, connecting, handshake, open, closed };
  int fd = -1;
  state st = state::idle;
  std::uint32_t id = 0;
  std::size_t ep = 0; ///< index into the publisher endpoints
  std::int64_t next_seq = 0;  ///< next sequence number to send
  std::uint64_t ok = 0;       ///< 2xx answers
  std::uint64_t failed = 0;   ///< other answers
  std::uint64_t unanswered = 0; ///< in flight when the connection ended
  std::size_t inflight = 0;
  std::string out;
  std::size_t out_off = 0;
  std::string in;
  bool want_out = false;
#if SSE_LOADGEN_H2
  std::unique_ptr<tls_session> tls;
#endif
};

/// The fairness probe (--probe-path): one keep-alive connection, one GET at a time.
struct probe_conn {
  int fd = -1;
  bool open = false;     ///< connected
  bool inflight = false; ///< a GET is waiting for its answer
  ns_t sent = 0;         ///< when that GET was written
  ns_t due = 0;          ///< when it was due (sent is later if the previous answer was late)
  ns_t next = 0;         ///< when the next one is due: one every interval, whatever happens
  std::string in;
};

class loadgen {
public:
  explicit loadgen(options o) : o_(std::move(o)) {}

  int run();

private:
  // setup
  addrinfo resolve(url const& u, std::vector<char>& storage);
  void epoll_set(int fd, std::uint64_t t, std::uint32_t events, int op);

  // subscribers
  void sub_start(std::size_t i);
  void sub_event(std::size_t i, std::uint32_t events);
  void sub_bytes(std::size_t i, char const* p, std::size_t n, ns_t t);
  void sub_body(std::size_t i, char const* p, std::size_t n, ns_t t);
  void sub_finish(std::size_t i, subscriber::state why);
  void on_event(std::size_t i, std::string_view data, ns_t t);

  // publishers
  void pub_connect(std::size_t k);
  void pub_event(std::size_t k, std::uint32_t events);
  void pub_send(std::size_t k);
  bool pub_flush(std::size_t k);
  void pub_responses(std::size_t k);
  void pub_lost_connection(std::size_t k);
  void publish_due(ns_t now);

  // the fairness probe
  void probe_connect();
  void probe_event(std::uint32_t events);
  void probe_due(ns_t now);
  void probe_lost_connection();

  /// Reads what `fd` has into rbuf_; sets rx_kernel_ (the kernel's receive time) and `t`.
  ssize_t read_stamped(int fd, ns_t& t);

#if SSE_LOADGEN_H2
  // HTTP/2 subscribers: streams over h2s_
  void h2_start(std::size_t c);
  void h2_event(std::size_t c, std::uint32_t events);
  void h2_open(std::size_t c);
  bool h2_flush(std::size_t c);
  void h2_close(std::size_t c);
  void h2_response(std::size_t i);
  void connect_all_h2();
  std::size_t h2_sub(nghttp2_session* ng, std::int32_t stream_id) const;
  static int h2_on_header(nghttp2_session* ng, nghttp2_frame const* f, std::uint8_t const* name,
                          std::size_t namelen, std::uint8_t const* value, std::size_t valuelen,
                          std::uint8_t flags, void* user);
  static int h2_on_frame(nghttp2_session* ng, nghttp2_frame const* f, void* user);
  static int h2_on_data(nghttp2_session* ng, std::uint8_t flags, std::int32_t stream_id,
                        std::uint8_t const* data, std::size_t len, void* user);
  static int h2_on_close(nghttp2_session* ng, std::int32_t stream_id, std::uint32_t error_code,
                         void* user);
  std::vector<h2conn> h2s_;
  std::size_t h2_opened_ = 0; ///< connections that got as far as HTTP/2
  ns_t rx_user_ = 0;          ///< when the bytes being parsed were read
#endif

  void poll(int timeout_ms);
  void connect_all();
  void settle(double seconds);
  void publish_and_measure();
  void drain();
  bool all_delivered() const;
  void report();

  options o_;
  std::vector<endpoint> sub_eps_, pub_eps_;
  int ep_ = -1;
  std::vector<char> rbuf_ = std::vector<char>(256 * 1024);

  std::vector<subscriber> subs_;
  std::vector<publisher> pubs_;
  endpoint probe_ep_;
  probe_conn probe_;
  histogram probe_latency_; ///< GET written -> the kernel queued the answer's last bytes
  /// GET due -> its answer: also counts the wait behind a slow previous answer, as a client
  /// arriving on time would see it (the probes a stall holds back are sent late, not skipped).
  histogram probe_due_latency_;
  /// Probes sent in the measured window; of those: answered (any status), answered 2xx, never
  /// answered (still waiting at the end, or their connection closed first).
  std::uint64_t probe_sent_ = 0, probe_answered_ = 0, probe_ok_ = 0, probe_unanswered_ = 0;
  std::uint64_t probe_reconnects_ = 0, probe_body_bytes_ = 0;
  int probe_last_status_ = 0;
  std::size_t pending_connects_ = 0;
  std::size_t established_ = 0, failed_ = 0, closed_early_ = 0, stalled_ = 0;
  std::size_t protocol_errors_ = 0, refused_status_ = 0;
  int last_bad_status_ = 0;

  // per subscriber x publisher
  std::vector<std::int64_t> last_seq_;
  std::vector<std::uint32_t> recv_;

  bool publishing_ = false, measuring_ = false;
  ns_t pub_start_ = 0, m_start_ = 0, m_end_ = 0;
  std::size_t total_inflight_ = 0;
  std::uint64_t sent_ = 0, sent_before_end_ = 0;
  std::size_t rr_ = 0;
  std::uint64_t rate_k_ = 0;
  std::uint64_t pub_reconnects_ = 0;

  std::uint64_t events_all_ = 0;         ///< events received (any time, reading subscribers)
  std::uint64_t in_order_ = 0;           ///< counted towards recv_
  std::uint64_t delivered_window_ = 0;   ///< received inside the measured window
  std::uint64_t acks_window_ = 0;
  std::uint64_t foreign_events_ = 0;     ///< data we did not send (or could not parse)
  std::uint64_t gaps_ = 0, out_of_order_ = 0;
  histogram latency_;     ///< send -> the kernel queued it on the subscriber's socket
  histogram app_latency_; ///< send -> the load generator read it
  /// Per subscriber endpoint (reported with more than one --sub-url): latency_, streaming, lost.
  std::vector<histogram> ep_latency_;
  std::vector<std::size_t> ep_established_;
  std::vector<std::uint64_t> ep_lost_;
  ns_t rx_kernel_ = 0;    ///< receive time of the bytes being parsed (CLOCK_MONOTONIC)
  ns_t realtime_offset_ = 0; ///< CLOCK_REALTIME - CLOCK_MONOTONIC, refreshed every poll
  std::uint64_t kernel_stamps_ = 0, user_stamps_ = 0;

  long rss_before_ = -1, rss_connected_ = -1, rss_end_ = -1;
  double cpu_start_ = -1, cpu_end_ = -1, self_cpu_start_ = 0, self_cpu_end_ = 0;
  double wait_start_ = -1, wait_end_ = -1, self_wait_start_ = 0, self_wait_end_ = 0;
  void snapshot_start() {
    cpu_start_ = sum_over(o_.server_pids, proc_cpu_seconds);
    wait_start_ = sum_over(o_.server_pids, proc_runqueue_wait_seconds);
    self_cpu_start_ = self_cpu_seconds();
    self_wait_start_ = proc_runqueue_wait_seconds(static_cast<long>(getpid()));
  }
  void snapshot_end() {
    cpu_end_ = sum_over(o_.server_pids, proc_cpu_seconds);
    wait_end_ = sum_over(o_.server_pids, proc_runqueue_wait_seconds);
    self_cpu_end_ = self_cpu_seconds();
    self_wait_end_ = proc_runqueue_wait_seconds(static_cast<long>(getpid()));
    rss_end_ = rss_kib_sum(o_.server_pids);
  }
  double connect_seconds_ = 0;
  double measured_seconds_ = 0;
  std::uint64_t lost_ = 0, expected_ = 0;
};

addrinfo loadgen::resolve(url const& u, std::vector<char>& storage) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(u.host.c_str(), u.port.c_str(), &hints, &res) != 0 || !res)
    die("cannot resolve %s", u.host.c_str());
  addrinfo ai = *res;
  storage.assign(reinterpret_cast<char*>(res->ai_addr), reinterpret_cast<char*>(res->ai_addr) + res->ai_addrlen);
  ai.ai_addr = reinterpret_cast<sockaddr*>(storage.data());
  ai.ai_next = nullptr;
  ai.ai_canonname = nullptr;
  freeaddrinfo(res);
  return ai;
}

void loadgen::epoll_set(int fd, std::uint64_t t, std::uint32_t events, int op) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = t;
  if (epoll_ctl(ep_, op, fd, &ev) != 0 && op != EPOLL_CTL_DEL)
    die("epoll_ctl: %s", std::strerror(errno));
}

// --- subscribers ----------------------------------------------------------------------------

void loadgen::sub_start(std::size_t i) {
  auto& s = subs_[i];
  s.started = now_ns();
  auto const& ai = sub_eps_[s.ep].ai;
  s.fd = set_nonblocking_socket(ai);
  if (s.fd < 0) {
    std::fprintf(stderr, "sse_loadgen: socket: %s\n", std::strerror(errno));
    sub_finish(i, subscriber::state::failed);
    return;
  }
  ++pending_connects_;
  s.st = subscriber::state::connecting;
  int const r = connect(s.fd, ai.ai_addr, ai.ai_addrlen);
  if (r != 0 && errno != EINPROGRESS) {
    sub_finish(i, subscriber::state::failed);
    return;
  }
  epoll_set(s.fd, tag(kind::sub, i), EPOLLOUT, EPOLL_CTL_ADD);
}

void loadgen::sub_finish(std::size_t i, subscriber::state why) {
  auto& s = subs_[i];
  bool const was_pending = s.st == subscriber::state::connecting ||
                           s.st == subscriber::state::header;
  if (was_pending)
    --pending_connects_;
  if (s.st == subscriber::state::streaming && why == subscriber::state::closed)
    ++closed_early_;
  if (why == subscriber::state::failed)
    ++failed_;
  if (s.fd >= 0) {
    epoll_ctl(ep_, EPOLL_CTL_DEL, s.fd, nullptr);
    close_hard(s.fd);
    s.fd = -1;
  }
  s.st = why;
  std::string().swap(s.head);
}

void loadgen::sub_event(std::size_t i, std::uint32_t events) {
  auto& s = subs_[i];
  if (s.st == subscriber::state::connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
      sub_finish(i, subscriber::state::failed);
      return;
    }
#if SSE_LOADGEN_H2
    if (sub_eps_[s.ep].u.tls) {
      s.tls = std::make_unique<tls_session>(std::string_view("\x08http/1.1", 9));
      std::string out;
      if (!s.tls->handshake(out) ||
          send(s.fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
        sub_finish(i, subscriber::state::failed);
        return;
      }
      s.st = subscriber::state::header;
      epoll_set(s.fd, tag(kind::sub, i), EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
      return;
    }
#endif
    std::string const& request = sub_eps_[s.ep].request;
    ssize_t const w = send(s.fd, request.data(), request.size(), MSG_NOSIGNAL);
    if (w != static_cast<ssize_t>(request.size())) { // a fresh socket takes 100 bytes
      sub_finish(i, subscriber::state::failed);
      return;
    }
    s.st = subscriber::state::header;
    epoll_set(s.fd, tag(kind::sub, i), EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
    return;
  }
  if (s.st != subscriber::state::header && s.st != subscriber::state::streaming)
    return;
  ns_t t = 0;
  ssize_t const n = read_stamped(s.fd, t);
  if (n > 0) {
#if SSE_LOADGEN_H2
    if (s.tls) {
      std::string out;
      s.plain.clear();
      bool ok = s.tls->feed(rbuf_.data(), static_cast<std::size_t>(n), s.plain, out);
      if (ok && !s.sent_request && s.tls->established()) {
        std::string const& request = sub_eps_[s.ep].request;
        s.tls->write(request.data(), request.size(), out);
        s.sent_request = true;
      }
      if (!out.empty() && send(s.fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size()))
        ok = false;
      if (!ok) {
        sub_finish(i, s.st == subscriber::state::header ? subscriber::state::failed : subscriber::state::closed);
        return;
      }
      if (!s.plain.empty()) {
        std::string plain;
        plain.swap(s.plain);
        sub_bytes(i, plain.data(), plain.size(), t);
      }
      return;
    }
#endif
    sub_bytes(i, rbuf_.data(), static_cast<std::size_t>(n), t);
  } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
    sub_finish(i, s.st == subscriber::state::header ? subscriber::state::failed : subscriber::state::closed);
  }
}

ssize_t loadgen::read_stamped(int fd, ns_t& t) {
  iovec iov{rbuf_.data(), rbuf_.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec)) * 2];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t const n = recvmsg(fd, &msg, 0);
  t = now_ns();
  if (n > 0) {
    // The kernel's receive time of the newest bytes read (TCP reports the last segment's).
    rx_kernel_ = t;
    bool stamped = false;
    if (o_.kernel_rx_time) {
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
          timespec ts{};
          std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
          ns_t const k = static_cast<ns_t>(ts.tv_sec) * ns_per_s + ts.tv_nsec - realtime_offset_;
          rx_kernel_ = std::min(k, t);
          stamped = true;
        }
      }
    }
    ++(stamped ? kernel_stamps_ : user_stamps_);
  }
  return n;
}

void loadgen::sub_bytes(std::size_t i, char const* p, std::size_t n, ns_t t) {
  auto& s = subs_[i];
  if (s.st == subscriber::state::header) {
    std::size_t const old = s.head.size();
    s.head.append(p, n);
    auto const end = s.head.find("\r\n\r\n", old >= 3 ? old - 3 : 0);
    if (end == std::string::npos) {
      if (s.head.size() > 64 * 1024) {
        ++protocol_errors_;
        sub_finish(i, subscriber::state::failed);
      }
      return;
    }
    auto const h = parse_head(std::string_view(s.head).substr(0, end + 2));
    if (!h.ok || h.status != 200) {
      ++refused_status_;
      last_bad_status_ = h.status;
      sub_finish(i, subscriber::state::failed);
      return;
    }
    s.chunked = h.chunked;
    s.established = t;
    s.before_publishing = !publishing_;
    --pending_connects_;
    ++established_;
    ++ep_established_[s.ep];
    std::string rest = s.head.substr(end + 4);
    std::string().swap(s.head);
    if (s.stall) {
      // It never reads again: the server's writes back up into the socket buffers.
      s.st = subscriber::state::stalled;
      ++stalled_;
      epoll_ctl(ep_, EPOLL_CTL_DEL, s.fd, nullptr);
      return;
    }
    s.st = subscriber::state::streaming;
    if (!rest.empty())
      sub_body(i, rest.data(), rest.size(), t);
    return;
  }
  sub_body(i, p, n, t);
}

void loadgen::sub_body(std::size_t i, char const* p, std::size_t n, ns_t t) {
  auto& s = subs_[i];
  auto deliver = [&](char const* q, std::size_t m) {
    s.events.feed(q, m, [&](std::string_view data) { on_event(i, data, t); });
  };
  if (s.chunked) {
    if (!s.chunks.feed(p, n, deliver)) {
      ++protocol_errors_;
      sub_finish(i, subscriber::state::closed);
      return;
    }
    if (s.chunks.st == chunk_decoder::done) { // the server ended the stream
      sub_finish(i, subscriber::state::closed);
      return;
    }
  } else {
    deliver(p, n);
  }
  if (s.events.too_long) {
    ++protocol_errors_;
    sub_finish(i, subscriber::state::closed);
  }
}

void loadgen::on_event(std::size_t i, std::string_view data, ns_t t) {
  payload pl;
  if (!parse_payload(data, pl) || pl.p < 0 || static_cast<std::size_t>(pl.p) >= pubs_.size()) {
    ++foreign_events_;
    return;
  }
  ++events_all_;
  if (t >= m_start_ && t < m_end_ && measuring_)
    ++delivered_window_;
  if (pl.t >= m_start_ && pl.t < m_end_) {
    latency_.add(rx_kernel_ - pl.t);
    ep_latency_[subs_[i].ep].add(rx_kernel_ - pl.t);
    app_latency_.add(t - pl.t);
  }
  std::size_t const k = i * pubs_.size() + static_cast<std::size_t>(pl.p);
  std::int64_t const last = last_seq_[k];
  if (pl.s > last) {
    if (pl.s > last + 1)
      gaps_ += static_cast<std::uint64_t>(pl.s - last - 1);
    last_seq_[k] = pl.s;
    ++recv_[k];
    ++in_order_;
  } else {
    ++out_of_order_;
  }
}

// --- publishers -----------------------------------------------------------------------------

void loadgen::pub_connect(std::size_t k) {
  auto& p = pubs_[k];
  auto const& ai = pub_eps_[p.ep].ai;
  p.fd = set_nonblocking_socket(ai);
  if (p.fd < 0)
    die("socket: %s", std::strerror(errno));
  int const r = connect(p.fd, ai.ai_addr, ai.ai_addrlen);
  if (r != 0 && errno != EINPROGRESS)
    die("cannot connect a publisher: %s", std::strerror(errno));
  p.st = publisher::state::connecting;
  p.want_out = true;
#if SSE_LOADGEN_H2
  p.tls.reset();
#endif
  p.in.clear();
  p.out.clear();
  p.out_off = 0;
  epoll_set(p.fd, tag(kind::pub, k), EPOLLIN | EPOLLOUT | EPOLLRDHUP, EPOLL_CTL_ADD);
}

void loadgen::pub_lost_connection(std::size_t k) {
  auto& p = pubs_[k];
  p.unanswered += p.inflight;
  total_inflight_ -= p.inflight;
  p.inflight = 0;
  epoll_ctl(ep_, EPOLL_CTL_DEL, p.fd, nullptr);
  close_hard(p.fd);
  p.fd = -1;
  p.st = publisher::state::closed;
  if (publishing_) {
    ++pub_reconnects_;
    pub_connect(k);
  }
}

bool loadgen::pub_flush(std::size_t k) {
  auto& p = pubs_[k];
  while (p.out_off < p.out.size()) {
    ssize_t const w = send(p.fd, p.out.data() + p.out_off, p.out.size() - p.out_off, MSG_NOSIGNAL);
    if (w > 0) {
      p.out_off += static_cast<std::size_t>(w);
    } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      break;
    } else {
      pub_lost_connection(k);
      return false;
    }
  }
  if (p.out_off == p.out.size()) {
    p.out.clear();
    p.out_off = 0;
  }
  bool const want = !p.out.empty();
  if (want != p.want_out) {
    p.want_out = want;
    epoll_set(p.fd, tag(kind::pub, k), EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0u), EPOLL_CTL_MOD);
  }
  return true;
}

void loadgen::pub_send(std::size_t k) {
  auto& p = pubs_[k];
  char head[64];
  ns_t const t = now_ns();
  int const hn = std::snprintf(head, sizeof head, "t=%" PRId64 " p=%u s=%" PRId64 " ", t, p.id, p.next_seq);
  std::string body(head, static_cast<std::size_t>(hn));
  body.resize(o_.size, 'x');
  std::string req = "POST ";
  url const& u = pub_eps_[p.ep].u;
  req += u.path;
  req += " HTTP/1.1\r\nHost: ";
  req += u.authority;
  req += "\r\nContent-Type: text/plain\r\nContent-Length: ";
  req += std::to_string(body.size());
  req += "\r\n\r\n";
  req += body;
#if SSE_LOADGEN_H2
  if (p.tls)
    p.tls->write(req.data(), req.size(), p.out);
  else
#endif
    p.out += req;
  ++p.next_seq;
  ++p.inflight;
  ++total_inflight_;
  ++sent_;
  pub_flush(k);
}

void loadgen::pub_responses(std::size_t k) {
  auto& p = pubs_[k];
  std::size_t pos = 0;
  bool close_after = false;
  while (p.inflight > 0) {
    auto const end = p.in.find("\r\n\r\n", pos);
    if (end == std::string::npos)
      break;
    auto const h = parse_head(std::string_view(p.in).substr(pos, end + 2 - pos));
    if (!h.ok) {
      ++protocol_errors_;
      pub_lost_connection(k);
      return;
    }
    if (h.status == 100) { // interim; the real answer follows
      pos = end + 4;
      continue;
    }
    std::size_t answer_end = 0;
    body_end const b = find_body_end(p.in, h, end + 4, answer_end);
    if (b == body_end::bad) {
      ++protocol_errors_;
      pub_lost_connection(k);
      return;
    }
    if (b == body_end::partial)
      break;
    // Body until close: unusual for a keep-alive publish endpoint; treat as answered and reconnect.
    if (b == body_end::until_close)
      close_after = true;
    pos = answer_end;
    --p.inflight;
    --total_inflight_;
    if (h.status >= 200 && h.status < 300) {
      ++p.ok;
      if (measuring_) {
        ns_t const t = now_ns();
        if (t >= m_start_ && t < m_end_)
          ++acks_window_;
      }
    } else {
      ++p.failed;
      last_bad_status_ = h.status;
    }
    if (h.close) {
      close_after = true;
      break;
    }
  }
  p.in.erase(0, pos);
  if (close_after)
    pub_lost_connection(k);
}

void loadgen::pub_event(std::size_t k, std::uint32_t events) {
  auto& p = pubs_[k];
  if (p.st == publisher::state::connecting) {
    if (!(events & EPOLLOUT) && !(events & (EPOLLERR | EPOLLHUP)))
      return;
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0)
      die("a publisher cannot connect: %s", std::strerror(err));
    p.st = publisher::state::open;
#if SSE_LOADGEN_H2
    if (pub_eps_[p.ep].u.tls) {
      p.tls = std::make_unique<tls_session>(std::string_view("\x08http/1.1", 9));
      p.st = publisher::state::handshake;
      if (!p.tls->handshake(p.out))
        die("a publisher's TLS handshake failed");
    }
#endif
    if (!pub_flush(k))
      return;
  }
  if (p.st != publisher::state::open && p.st != publisher::state::handshake)
    return;
  if (events & EPOLLOUT) {
    if (!pub_flush(k))
      return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    ssize_t const n = read(p.fd, rbuf_.data(), rbuf_.size());
#if SSE_LOADGEN_H2
    if (n > 0 && p.tls) {
      std::string out;
      if (!p.tls->feed(rbuf_.data(), static_cast<std::size_t>(n), p.in, out)) {
        if (p.st == publisher::state::handshake)
          die("a publisher's TLS handshake failed");
        pub_lost_connection(k);
        return;
      }
      if (p.st == publisher::state::handshake && p.tls->established())
        p.st = publisher::state::open;
      if (!out.empty()) {
        p.out += out;
        if (!pub_flush(k))
          return;
      }
      if (p.st == publisher::state::open)
        pub_responses(k);
      return;
    }
#endif
    if (n > 0) {
      p.in.append(rbuf_.data(), static_cast<std::size_t>(n));
      pub_responses(k);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      pub_lost_connection(k);
    }
  }
}

/// Sends what is due: in closed loop, until the window is full; at a fixed rate, what the
/// schedule says by now (late sends go out as soon as the window allows).
void loadgen::publish_due(ns_t now) {
  if (!publishing_)
    return;
  std::size_t const depth = (o_.window + pubs_.size() - 1) / pubs_.size();
  auto pick = [&]() -> long {
    for (std::size_t tries = 0; tries < pubs_.size(); ++tries) {
      std::size_t const k = rr_++ % pubs_.size();
      auto const& p = pubs_[k];
      if (p.st == publisher::state::open && p.inflight < depth)
        return static_cast<long>(k);
    }
    return -1;
  };
  while (total_inflight_ < o_.window) {
    if (o_.rate > 0) {
      ns_t const due = pub_start_ + static_cast<ns_t>(static_cast<double>(rate_k_) * 1e9 / o_.rate);
      if (due > now)
        return;
    }
    long const k = pick();
    if (k < 0)
      return;
    pub_send(static_cast<std::size_t>(k));
    ++rate_k_;
  }
}

// --- the fairness probe ----------------------------------------------------------------------

void loadgen::probe_connect() {
  auto& q = probe_;
  ns_t const next = q.next; // the schedule goes on over a reconnection
  q = probe_conn{};
  q.next = next;
  auto const& ai = probe_ep_.ai;
  q.fd = set_nonblocking_socket(ai); // SO_TIMESTAMPNS too: the answers are timed like events
  if (q.fd < 0)
    die("socket: %s", std::strerror(errno));
  if (connect(q.fd, ai.ai_addr, ai.ai_addrlen) != 0 && errno != EINPROGRESS)
    die("cannot connect the probe: %s", std::strerror(errno));
  epoll_set(q.fd, tag(kind::probe, 0), EPOLLOUT, EPOLL_CTL_ADD);
}

void loadgen::probe_lost_connection() {
  auto& q = probe_;
  if (q.inflight && q.sent >= m_start_ && q.sent < m_end_)
    ++probe_unanswered_;
  epoll_ctl(ep_, EPOLL_CTL_DEL, q.fd, nullptr);
  close_hard(q.fd);
  q.fd = -1;
  q.open = q.inflight = false;
  if (publishing_ && now_ns() < m_end_) {
    ++probe_reconnects_;
    probe_connect();
  }
}

/// Sends the next GET when it is due and the previous one has been answered: one at a time, on
/// a fixed schedule; after a slow answer the overdue ones go out one after the other.
void loadgen::probe_due(ns_t now) {
  auto& q = probe_;
  if (o_.probe_path.empty() || !q.open || q.inflight || now < q.next || now >= m_end_)
    return;
  ssize_t const w = send(q.fd, probe_ep_.request.data(), probe_ep_.request.size(), MSG_NOSIGNAL);
  if (w != static_cast<ssize_t>(probe_ep_.request.size())) { // an idle socket takes 100 bytes
    probe_lost_connection();
    return;
  }
  q.inflight = true;
  q.sent = now;
  q.due = q.next;
  q.next += static_cast<ns_t>(o_.probe_interval_ms * 1e6);
  if (now >= m_start_)
    ++probe_sent_;
}

void loadgen::probe_event(std::uint32_t events) {
  auto& q = probe_;
  if (!q.open) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(q.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0 || (events & (EPOLLERR | EPOLLHUP)))
      die("the probe cannot connect: %s", std::strerror(err));
    q.open = true;
    epoll_set(q.fd, tag(kind::probe, 0), EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
    return;
  }
  ns_t t = 0;
  std::uint64_t const kernel = kernel_stamps_, user = user_stamps_;
  ssize_t const n = read_stamped(q.fd, t);
  kernel_stamps_ = kernel, user_stamps_ = user; // those count the subscribers' reads
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    probe_lost_connection();
    return;
  }
  if (n < 0)
    return;
  q.in.append(rbuf_.data(), static_cast<std::size_t>(n));
  auto const head_end = q.in.find("\r\n\r\n");
  if (!q.inflight || head_end == std::string::npos) {
    if (!q.inflight || q.in.size() > (1u << 20)) { // bytes nobody asked for, or no head in 1 MiB
      ++protocol_errors_;
      probe_lost_connection();
    }
    return;
  }
  auto const h = parse_head(std::string_view(q.in).substr(0, head_end + 2));
  if (h.ok && h.status >= 100 && h.status < 200) { // interim; the real answer follows
    q.in.erase(0, head_end + 4);
    return;
  }
  std::size_t end = 0;
  body_end const b = h.ok ? find_body_end(q.in, h, head_end + 4, end) : body_end::bad;
  if (b == body_end::partial)
    return;
  if (b == body_end::bad || b == body_end::until_close) { // a probe must be keep-alive
    ++protocol_errors_;
    probe_lost_connection();
    return;
  }
  q.inflight = false;
  if (q.sent >= m_start_ && q.sent < m_end_) {
    probe_latency_.add(rx_kernel_ - q.sent); // the receive time of the answer's last bytes
    probe_due_latency_.add(rx_kernel_ - q.due);
    ++probe_answered_;
    probe_ok_ += h.status >= 200 && h.status < 300;
  }
  probe_last_status_ = h.status;
  probe_body_bytes_ = end - (head_end + 4);
  q.in.erase(0, end);
  if (h.close)
    probe_lost_connection();
}

void loadgen::poll(int timeout_ms) {
  epoll_event evs[1024];
  int const n = epoll_wait(ep_, evs, 1024, timeout_ms);
  {
    ns_t const m0 = now_ns(), r = realtime_ns(), m1 = now_ns();
    realtime_offset_ = r - (m0 + (m1 - m0) / 2);
  }
  if (n < 0) {
    if (errno == EINTR)
      return;
    die("epoll_wait: %s", std::strerror(errno));
  }
  for (int e = 0; e < n; ++e) {
    auto const k = static_cast<kind>(evs[e].data.u64 >> 32);
    auto const idx = static_cast<std::size_t>(evs[e].data.u64 & 0xffffffffu);
    if (k == kind::sub)
      sub_event(idx, evs[e].events);
    else if (k == kind::probe)
      probe_event(evs[e].events);
#if SSE_LOADGEN_H2
    else if (k == kind::h2)
      h2_event(idx, evs[e].events);
#endif
    else
      pub_event(idx, evs[e].events);
  }
}

#if SSE_LOADGEN_H2
// --- HTTP/2 subscribers ---------------------------------------------------------------------

void loadgen::h2_start(std::size_t c) {
  auto& h = h2s_[c];
  ns_t const now = now_ns();
  for (auto i : h.subs) {
    subs_[i].started = now;
    subs_[i].st = subscriber::state::connecting;
    ++pending_connects_;
  }
  auto const& ai = sub_eps_[h.ep].ai;
  h.fd = set_nonblocking_socket(ai);
  if (h.fd < 0) {
    std::fprintf(stderr, "sse_loadgen: socket: %s\n", std::strerror(errno));
    h2_close(c);
    return;
  }
  h.st = h2conn::state::connecting;
  if (connect(h.fd, ai.ai_addr, ai.ai_addrlen) != 0 && errno != EINPROGRESS) {
    h2_close(c);
    return;
  }
  epoll_set(h.fd, tag(kind::h2, c), EPOLLOUT, EPOLL_CTL_ADD);
}

/// Ends the connection: its streams still setting up fail, those streaming close.
void loadgen::h2_close(std::size_t c) {
  auto& h = h2s_[c];
  for (auto i : h.subs) {
    auto const st = subs_[i].st;
    if (st == subscriber::state::connecting || st == subscriber::state::header)
      sub_finish(i, subscriber::state::failed);
    else if (st == subscriber::state::streaming)
      sub_finish(i, subscriber::state::closed);
  }
  if (h.ng)
    nghttp2_session_del(h.ng), h.ng = nullptr;
  if (h.fd >= 0) {
    epoll_ctl(ep_, EPOLL_CTL_DEL, h.fd, nullptr);
    close_hard(h.fd);
    h.fd = -1;
  }
  h.tls.reset();
  h.st = h2conn::state::closed;
}

bool loadgen::h2_flush(std::size_t c) {
  auto& h = h2s_[c];
  if (h.ng) {
    for (;;) {
      std::uint8_t const* d = nullptr;
      ssize_t const n = nghttp2_session_mem_send(h.ng, &d);
      if (n < 0) {
        ++protocol_errors_;
        h2_close(c);
        return false;
      }
      if (n == 0)
        break;
      if (h.tls)
        h.tls->write(reinterpret_cast<char const*>(d), static_cast<std::size_t>(n), h.out);
      else
        h.out.append(reinterpret_cast<char const*>(d), static_cast<std::size_t>(n));
    }
  }
  while (h.out_off < h.out.size()) {
    ssize_t const w = send(h.fd, h.out.data() + h.out_off, h.out.size() - h.out_off, MSG_NOSIGNAL);
    if (w > 0) {
      h.out_off += static_cast<std::size_t>(w);
    } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      break;
    } else {
      h2_close(c);
      return false;
    }
  }
  if (h.out_off == h.out.size()) {
    h.out.clear();
    h.out_off = 0;
  }
  bool const want = !h.out.empty();
  if (want != h.want_out) {
    h.want_out = want;
    epoll_set(h.fd, tag(kind::h2, c), EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0u), EPOLL_CTL_MOD);
  }
  return true;
}

/// The connection speaks HTTP/2 now (h2c at once, h2 after the TLS handshake): the preface,
/// SETTINGS and one GET per subscriber.
void loadgen::h2_open(std::size_t c) {
  auto& h = h2s_[c];
  nghttp2_session_callbacks* cb = nullptr;
  if (nghttp2_session_callbacks_new(&cb) != 0)
    die("nghttp2_session_callbacks_new failed");
  nghttp2_session_callbacks_set_on_header_callback(cb, &loadgen::h2_on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &loadgen::h2_on_frame);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &loadgen::h2_on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, &loadgen::h2_on_close);
  int const r = nghttp2_session_client_new(&h.ng, cb, this);
  nghttp2_session_callbacks_del(cb);
  if (r != 0)
    die("nghttp2_session_client_new failed");
  // Windows like a browser's, so flow control never holds a stream back here.
  nghttp2_settings_entry const iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                       {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 20}};
  nghttp2_submit_settings(h.ng, NGHTTP2_FLAG_NONE, iv, 2);
  nghttp2_session_set_local_window_size(h.ng, NGHTTP2_FLAG_NONE, 0, 16 << 20);
  url const& u = sub_eps_[h.ep].u;
  std::string const scheme = u.tls ? "https" : "http";
  auto nv = [](char const* name, std::string const& value) {
    return nghttp2_nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(name)),
                      reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())),
                      std::strlen(name), value.size(), NGHTTP2_NV_FLAG_NONE};
  };
  std::string const get = "GET", accept = "text/event-stream", no_cache = "no-cache";
  nghttp2_nv const headers[] = {nv(":method", get),        nv(":scheme", scheme),
                                nv(":authority", u.authority), nv(":path", u.path),
                                nv("accept", accept),     nv("cache-control", no_cache)};
  for (auto i : h.subs) {
    auto& s = subs_[i];
    if (s.st != subscriber::state::connecting)
      continue; // timed out already
    std::int32_t const id = nghttp2_submit_request(
        h.ng, nullptr, headers, sizeof headers / sizeof headers[0], nullptr,
        reinterpret_cast<void*>(static_cast<std::uintptr_t>(i + 1)));
    if (id < 0) {
      sub_finish(i, subscriber::state::failed);
      continue;
    }
    s.stream = id;
    s.st = subscriber::state::header;
  }
  h.st = h2conn::state::open;
  ++h2_opened_;
  h2_flush(c);
}

void loadgen::h2_event(std::size_t c, std::uint32_t events) {
  auto& h = h2s_[c];
  if (h.st == h2conn::state::connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(h.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
      h2_close(c);
      return;
    }
    h.want_out = true;
    epoll_set(h.fd, tag(kind::h2, c), EPOLLIN | EPOLLRDHUP | EPOLLOUT, EPOLL_CTL_MOD);
    if (sub_eps_[h.ep].u.tls) {
      h.tls = std::make_unique<tls_session>(std::string_view("\x02h2", 3));
      h.st = h2conn::state::handshake;
      if (!h.tls->handshake(h.out)) {
        h2_close(c);
        return;
      }
      h2_flush(c);
    } else {
      h2_open(c); // h2c by prior knowledge: the preface first thing
    }
    return;
  }
  if (h.st != h2conn::state::handshake && h.st != h2conn::state::open)
    return;
  if ((events & EPOLLOUT) && !h2_flush(c))
    return;
  if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
    return;
  ns_t t = 0;
  ssize_t const n = read_stamped(h.fd, t);
  if (n <= 0) {
    if (n == 0 || (errno != EAGAIN && errno != EINTR))
      h2_close(c);
    return;
  }
  char const* data = rbuf_.data();
  std::size_t size = static_cast<std::size_t>(n);
  std::string plain;
  if (h.tls) {
    bool const was = h.tls->established();
    if (!h.tls->feed(data, size, plain, h.out)) {
      h2_close(c);
      return;
    }
    if (!was && h.tls->established()) {
      if (h.tls->alpn() != "h2") {
        std::fprintf(stderr, "sse_loadgen: the server did not choose h2 by ALPN\n");
        ++protocol_errors_;
        h2_close(c);
        return;
      }
      h2_open(c);
      if (h.st != h2conn::state::open)
        return;
    }
    data = plain.data();
    size = plain.size();
  }
  if (h.ng && size > 0) {
    rx_user_ = t;
    ssize_t const r = nghttp2_session_mem_recv(h.ng, reinterpret_cast<std::uint8_t const*>(data), size);
    if (r < 0) {
      std::fprintf(stderr, "sse_loadgen: HTTP/2: %s\n", nghttp2_strerror(static_cast<int>(r)));
      ++protocol_errors_;
      h2_close(c);
      return;
    }
  }
  if (!h2_flush(c))
    return;
  if (h.ng && !nghttp2_session_want_read(h.ng) && !nghttp2_session_want_write(h.ng))
    h2_close(c); // GOAWAY and nothing left
}

std::size_t loadgen::h2_sub(nghttp2_session* ng, std::int32_t stream_id) const {
  void* const d = nghttp2_session_get_stream_user_data(ng, stream_id);
  auto const v = reinterpret_cast<std::uintptr_t>(d);
  return v == 0 || v > subs_.size() ? static_cast<std::size_t>(-1) : static_cast<std::size_t>(v - 1);
}

int loadgen::h2_on_header(nghttp2_session* ng, nghttp2_frame const* f, std::uint8_t const* name,
                          std::size_t namelen, std::uint8_t const* value, std::size_t valuelen,
                          std::uint8_t, void* user) {
  auto& self = *static_cast<loadgen*>(user);
  if (f->hd.type != NGHTTP2_HEADERS || namelen != 7 || std::memcmp(name, ":status", 7) != 0)
    return 0;
  std::size_t const i = self.h2_sub(ng, f->hd.stream_id);
  if (i < self.subs_.size())
    self.subs_[i].status = std::atoi(std::string(reinterpret_cast<char const*>(value), valuelen).c_str());
  return 0;
}

int loadgen::h2_on_frame(nghttp2_session* ng, nghttp2_frame const* f, void* user) {
  auto& self = *static_cast<loadgen*>(user);
  if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_RESPONSE &&
      (f->hd.flags & NGHTTP2_FLAG_END_HEADERS)) {
    std::size_t const i = self.h2_sub(ng, f->hd.stream_id);
    if (i < self.subs_.size())
      self.h2_response(i);
  }
  return 0;
}

void loadgen::h2_response(std::size_t i) {
  auto& s = subs_[i];
  if (s.st != subscriber::state::header)
    return;
  if (s.status != 200) {
    ++refused_status_;
    last_bad_status_ = s.status;
    sub_finish(i, subscriber::state::failed);
    return;
  }
  s.established = rx_user_;
  s.before_publishing = !publishing_;
  --pending_connects_;
  ++established_;
  ++ep_established_[s.ep];
  s.st = subscriber::state::streaming;
}

int loadgen::h2_on_data(nghttp2_session* ng, std::uint8_t, std::int32_t stream_id,
                        std::uint8_t const* data, std::size_t len, void* user) {
  auto& self = *static_cast<loadgen*>(user);
  std::size_t const i = self.h2_sub(ng, stream_id);
  if (i >= self.subs_.size() || self.subs_[i].st != subscriber::state::streaming)
    return 0;
  auto& s = self.subs_[i];
  ns_t const t = self.rx_user_;
  s.events.feed(reinterpret_cast<char const*>(data), len,
                [&](std::string_view d) { self.on_event(i, d, t); });
  if (s.events.too_long) {
    ++self.protocol_errors_;
    self.sub_finish(i, subscriber::state::closed);
  }
  return 0;
}

int loadgen::h2_on_close(nghttp2_session* ng, std::int32_t stream_id, std::uint32_t, void* user) {
  auto& self = *static_cast<loadgen*>(user);
  std::size_t const i = self.h2_sub(ng, stream_id);
  if (i >= self.subs_.size())
    return 0;
  auto const st = self.subs_[i].st;
  if (st == subscriber::state::header || st == subscriber::state::connecting)
    self.sub_finish(i, subscriber::state::failed);
  else if (st == subscriber::state::streaming)
    self.sub_finish(i, subscriber::state::closed);
  return 0;
}

void loadgen::connect_all_h2() {
  ns_t const t0 = now_ns();
  ns_t const timeout = seconds_to_ns(o_.connect_timeout);
  std::size_t next = 0;
  ns_t last_check = t0, last_progress_print = t0;
  while (next < h2s_.size() || pending_connects_ > 0) {
    while (pending_connects_ < o_.connect_batch && next < h2s_.size())
      h2_start(next++);
    poll(5);
    ns_t const now = now_ns();
    if (now - last_check > 100 * 1000000LL) {
      last_check = now;
      for (std::size_t i = 0; i < subs_.size(); ++i) {
        auto const st = subs_[i].st;
        if ((st == subscriber::state::connecting || st == subscriber::state::header) &&
            now - subs_[i].started > timeout)
          sub_finish(i, subscriber::state::failed);
      }
    }
    if (!o_.json && now - last_progress_print > 2 * ns_per_s) {
      last_progress_print = now;
      std::fprintf(stderr, "sse_loadgen: %zu/%zu streams open, %zu failed\n", established_, subs_.size(), failed_);
    }
  }
  connect_seconds_ = static_cast<double>(now_ns() - t0) / 1e9;
}
#endif

// --- phases ---------------------------------------------------------------------------------

void loadgen::connect_all() {
#if SSE_LOADGEN_H2
  if (o_.h2) {
    connect_all_h2();
    return;
  }
#endif
  ns_t const t0 = now_ns();
  ns_t const timeout = seconds_to_ns(o_.connect_timeout);
  std::size_t next = 0;
  std::vector<std::size_t> watch; // started, not yet streaming: checked for timeouts
  ns_t last_check = t0;
  ns_t last_progress_print = t0;
  while (next < subs_.size() || pending_connects_ > 0) {
    while (pending_connects_ < o_.connect_batch && next < subs_.size()) {
      watch.push_back(next);
      sub_start(next++);
    }
    poll(5);
    ns_t const now = now_ns();
    if (now - last_check > 100 * 1000000LL) {
      last_check = now;
      std::vector<std::size_t> still;
      for (auto i : watch) {
        auto const st = subs_[i].st;
        if (st == subscriber::state::connecting ||
            st == subscriber::state::header) {
          if (now - subs_[i].started > timeout)
            sub_finish(i, subscriber::state::failed);
          else
            still.push_back(i);
        }
      }
      watch.swap(still);
    }
    if (!o_.json && now - last_progress_print > 2 * ns_per_s) {
      last_progress_print = now;
      std::fprintf(stderr, "sse_loadgen: %zu/%zu subscribers streaming, %zu failed\n", established_,
                   subs_.size(), failed_);
    }
  }
  connect_seconds_ = static_cast<double>(now_ns() - t0) / 1e9;
}

void loadgen::settle(double seconds) {
  ns_t const until = now_ns() + seconds_to_ns(seconds);
  for (ns_t now = now_ns(); now < until; now = now_ns())
    poll(static_cast<int>(std::min<ns_t>((until - now) / 1000000 + 1, 50)));
}

void loadgen::publish_and_measure() {
  pubs_.resize(o_.pub_conns);
  for (std::size_t k = 0; k < pubs_.size(); ++k) {
    pubs_[k].id = static_cast<std::uint32_t>(k);
    pubs_[k].ep = k % pub_eps_.size();
    pub_connect(k);
  }
  last_seq_.assign(subs_.size() * pubs_.size(), -1);
  recv_.assign(subs_.size() * pubs_.size(), 0);
  if (!o_.probe_path.empty())
    probe_connect();
  // Wait for the publisher connections (and the probe's) before the clock starts.
  ns_t const deadline = now_ns() + 10 * ns_per_s;
  for (;;) {
    bool all = o_.probe_path.empty() || probe_.open;
    for (auto& p : pubs_)
      all = all && p.st == publisher::state::open;
    if (all)
      break;
    if (now_ns() > deadline)
      die("publisher connections did not open");
    poll(5);
  }
  publishing_ = true;
  pub_start_ = now_ns();
  m_start_ = pub_start_ + seconds_to_ns(o_.warmup);
  m_end_ = m_start_ + seconds_to_ns(o_.duration);
  probe_.next = pub_start_;
  bool started = false;
  for (;;) {
    ns_t const now = now_ns();
    if (!started && now >= m_start_) {
      started = measuring_ = true;
      snapshot_start();
    }
    if (now >= m_end_)
      break;
    publish_due(now);
    probe_due(now);
    int timeout = 50;
    if (o_.rate > 0 && total_inflight_ < o_.window) {
      ns_t const due = pub_start_ + static_cast<ns_t>(static_cast<double>(rate_k_) * 1e9 / o_.rate);
      timeout = static_cast<int>(std::clamp<ns_t>((due - now) / 1000000, 0, 50));
    }
    if (probe_.open && !probe_.inflight) // epoll's milliseconds: rounded up, never early
      timeout = std::min<int>(timeout, static_cast<int>(std::clamp<ns_t>((probe_.next - now + 999999) / 1000000, 0, 50)));
    ns_t const next_phase = started ? m_end_ : m_start_;
    timeout = std::min<int>(timeout, static_cast<int>(std::max<ns_t>((next_phase - now) / 1000000, 0)));
    poll(timeout);
  }
  measured_seconds_ = static_cast<double>(now_ns() - m_start_) / 1e9;
  snapshot_end();
  measuring_ = false;
  sent_before_end_ = sent_;
}

/// True when every reading subscriber still streaming has every event answered 2xx so far.
bool loadgen::all_delivered() const {
  std::size_t const np = pubs_.size();
  for (std::size_t i = 0; i < subs_.size(); ++i) {
    auto const& s = subs_[i];
    if (s.st != subscriber::state::streaming || !s.before_publishing)
      continue;
    for (std::size_t k = 0; k < np; ++k)
      if (recv_[i * np + k] < pubs_[k].ok)
        return false;
  }
  return true;
}

void loadgen::drain() {
  // Stop sending; wait for the answers still owed and for events still on their way.
  ns_t const hard = now_ns() + seconds_to_ns(std::max(30.0, o_.drain * 5));
  ns_t last_progress = now_ns();
  std::uint64_t last_count = in_order_;
  std::size_t last_inflight = total_inflight_;
  for (;;) {
    poll(20);
    ns_t const now = now_ns();
    if (total_inflight_ == 0 && all_delivered() && !probe_.inflight) // the probe's last answer too
      break;
    if (in_order_ != last_count || total_inflight_ != last_inflight) {
      last_count = in_order_;
      last_inflight = total_inflight_;
      last_progress = now;
    }
    if (now - last_progress > seconds_to_ns(o_.drain) || now > hard)
      break;
  }
  publishing_ = false;
}

int loadgen::run() {
  signal(SIGPIPE, SIG_IGN);
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur != RLIM_INFINITY && o_.subs + o_.window + 64 > rl.rlim_cur)
    std::fprintf(stderr, "sse_loadgen: warning: %zu subscribers but only %llu descriptors\n", o_.subs,
                 static_cast<unsigned long long>(rl.rlim_cur));

  for (auto const& s : o_.sub_urls) {
    endpoint& e = sub_eps_.emplace_back();
    e.u = parse_url(s);
    e.ai = resolve(e.u, e.addr_storage);
    e.request = "GET " + e.u.path + " HTTP/1.1\r\nHost: " + e.u.authority +
                "\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";
  }
  if (!o_.idle) {
    for (auto const& s : o_.pub_urls) {
      endpoint& e = pub_eps_.emplace_back();
      e.u = parse_url(s);
      e.ai = resolve(e.u, e.addr_storage);
    }
  }
  if (!o_.probe_path.empty()) {
    probe_ep_.u = sub_eps_.front().u;
    if (probe_ep_.u.tls)
      die("--probe-path speaks http:// only");
    probe_ep_.u.path = o_.probe_path;
    probe_ep_.ai = resolve(probe_ep_.u, probe_ep_.addr_storage);
    probe_ep_.request = "GET " + o_.probe_path + " HTTP/1.1\r\nHost: " + probe_ep_.u.authority +
                        "\r\nAccept: text/html\r\n\r\n";
  }
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  if (ep_ < 0)
    die("epoll_create1: %s", std::strerror(errno));

  subs_.resize(o_.subs);
  ep_latency_.resize(sub_eps_.size());
  ep_established_.assign(sub_eps_.size(), 0);
  ep_lost_.assign(sub_eps_.size(), 0);
  for (std::size_t i = 0; i < subs_.size(); ++i)
    subs_[i].ep = i % sub_eps_.size();
#if SSE_LOADGEN_H2
  if (o_.h2) { // stream i on connection i % conns; connection c on URL c % URLs
    h2s_.resize(o_.conns);
    for (std::size_t c = 0; c < h2s_.size(); ++c)
      h2s_[c].ep = c % sub_eps_.size();
    for (std::size_t i = 0; i < subs_.size(); ++i) {
      subs_[i].conn = i % h2s_.size();
      subs_[i].ep = h2s_[subs_[i].conn].ep;
      h2s_[subs_[i].conn].subs.push_back(i);
    }
  }
#endif
  // Spread the stalled subscribers evenly: subscriber i stalls when floor((i+1)F) > floor(iF).
  for (std::size_t i = 0; i < subs_.size(); ++i)
    subs_[i].stall = std::floor(static_cast<double>(i + 1) * o_.stall_fraction) >
                     std::floor(static_cast<double>(i) * o_.stall_fraction);

  rss_before_ = rss_kib_sum(o_.server_pids);
  connect_all();
  if (established_ == 0)
    die("no subscriber could connect to %s", o_.sub_urls.front().c_str());
  settle(o_.settle);
  rss_connected_ = rss_kib_sum(o_.server_pids);

  if (o_.idle) {
    // Hold the connections for --duration, measuring the server's CPU while they sit idle.
    snapshot_start();
    ns_t const t0 = now_ns();
    settle(o_.duration);
    measured_seconds_ = static_cast<double>(now_ns() - t0) / 1e9;
    snapshot_end();
  } else {
    publish_and_measure();
    drain();
    if (probe_.inflight && probe_.sent >= m_start_ && probe_.sent < m_end_)
      ++probe_unanswered_; // not answered by the end of the drain
    // Loss: for every reading subscriber that was streaming before the first POST, every
    // event answered 2xx should have arrived (those evicted or closed count as losses too).
    for (std::size_t i = 0; i < subs_.size(); ++i) {
      auto const& s = subs_[i];
      if (s.stall || !s.before_publishing || s.st == subscriber::state::failed ||
          s.st == subscriber::state::waiting)
        continue;
      for (std::size_t k = 0; k < pubs_.size(); ++k) {
        std::uint64_t const expected = pubs_[k].ok;
        std::uint64_t const got = recv_[i * pubs_.size() + k];
        expected_ += expected;
        if (got < expected) {
          lost_ += expected - got;
          ep_lost_[s.ep] += expected - got;
        }
      }
    }
  }
  report();
  for (auto& s : subs_)
    if (s.fd >= 0)
      close_hard(s.fd), s.fd = -1;
  for (auto& p : pubs_)
    if (p.fd >= 0)
      close_hard(p.fd), p.fd = -1;
  if (probe_.fd >= 0)
    close_hard(probe_.fd), probe_.fd = -1;
#if SSE_LOADGEN_H2
  for (auto& h : h2s_) {
    if (h.ng)
      nghttp2_session_del(h.ng), h.ng = nullptr;
    if (h.fd >= 0)
      close_hard(h.fd), h.fd = -1;
  }
#endif
  close(ep_);
  return 0;
}

void loadgen::report() {
  std::uint64_t ok = 0, failed = 0, unanswered = 0;
  for (auto& p : pubs_)
    ok += p.ok, failed += p.failed, unanswered += p.unanswered;
  double const secs = measured_seconds_ > 0 ? measured_seconds_ : 1;
  double const deliveries_per_s = static_cast<double>(delivered_window_) / secs;
  double const publish_rate = static_cast<double>(acks_window_) / secs;
  double const server_cpu = cpu_start_ >= 0 && cpu_end_ >= 0 ? cpu_end_ - cpu_start_ : -1;
  double const cpu_per_delivery_us =
      server_cpu >= 0 && delivered_window_ > 0 ? server_cpu * 1e6 / static_cast<double>(delivered_window_) : -1;
  double const self_cpu = (self_cpu_end_ - self_cpu_start_) / secs;
  double const server_wait = wait_start_ >= 0 && wait_end_ >= 0 ? (wait_end_ - wait_start_) / secs : -1;
  double const self_wait = (self_wait_end_ - self_wait_start_) / secs;
  std::size_t const reading = established_ - stalled_;
  double const per_conn = rss_before_ >= 0 && rss_connected_ >= 0 && established_ > 0
                              ? static_cast<double>(rss_connected_ - rss_before_) * 1024.0 / static_cast<double>(established_)
                              : -1;
  auto us = [](ns_t v) { return static_cast<double>(v) / 1000.0; };

  if (o_.json) {
    std::printf("{\"label\":\"%s\",\"mode\":\"%s\",\"subs\":%zu,\"established\":%zu,\"failed\":%zu,"
                "\"stalled\":%zu,\"reading\":%zu,\"closed_early\":%zu,\"refused_status\":%zu,"
                "\"last_bad_status\":%d,\"protocol_errors\":%zu,",
                o_.label.c_str(), o_.idle ? "idle" : "publish", o_.subs, established_, failed_, stalled_,
                reading, closed_early_, refused_status_, last_bad_status_, protocol_errors_);
    std::printf("\"size\":%zu,\"duration_s\":%.3f,\"warmup_s\":%.3f,\"measured_s\":%.3f,"
                "\"connect_s\":%.3f,\"rate\":%s,\"window\":%zu,\"pub_conns\":%zu,"
                "\"stall_fraction\":%g,",
                o_.size, o_.duration, o_.warmup, measured_seconds_, connect_seconds_,
                o_.rate > 0 ? std::to_string(o_.rate).c_str() : "\"max\"", o_.window, pubs_.size(),
                o_.stall_fraction);
    std::printf("\"published\":%" PRIu64 ",\"publish_failed\":%" PRIu64 ",\"publish_unanswered\":%" PRIu64
                ",\"publisher_reconnects\":%" PRIu64 ",\"publish_rate\":%.1f,"
                "\"deliveries\":%" PRIu64 ",\"deliveries_per_s\":%.1f,\"events_received\":%" PRIu64
                ",\"expected\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"gaps\":%" PRIu64 ",\"out_of_order\":%" PRIu64
                ",\"foreign_events\":%" PRIu64 ",",
                ok, failed, unanswered, pub_reconnects_, publish_rate, delivered_window_, deliveries_per_s,
                events_all_, expected_, lost_, gaps_, out_of_order_, foreign_events_);
    std::printf("\"latency_us\":{\"samples\":%" PRIu64 ",\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f},",
                latency_.count(), us(latency_.quantile(0.5)), us(latency_.quantile(0.99)), us(latency_.max()));
    std::printf("\"app_latency_us\":{\"samples\":%" PRIu64 ",\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f},"
                "\"rx_time\":\"%s\",\"kernel_stamped_reads\":%" PRIu64 ",\"user_stamped_reads\":%" PRIu64 ",",
                app_latency_.count(), us(app_latency_.quantile(0.5)), us(app_latency_.quantile(0.99)),
                us(app_latency_.max()), o_.kernel_rx_time ? "kernel" : "user", kernel_stamps_, user_stamps_);
    if (sub_eps_.size() > 1) {
      std::printf("\"per_sub_url\":[");
      for (std::size_t e = 0; e < sub_eps_.size(); ++e)
        std::printf("%s{\"url\":\"%s\",\"established\":%zu,\"lost\":%" PRIu64
                    ",\"latency_us\":{\"samples\":%" PRIu64 ",\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f}}",
                    e ? "," : "", o_.sub_urls[e].c_str(), ep_established_[e], ep_lost_[e],
                    ep_latency_[e].count(), us(ep_latency_[e].quantile(0.5)),
                    us(ep_latency_[e].quantile(0.99)), us(ep_latency_[e].max()));
      std::printf("],");
    }
    std::size_t connections = established_;
    char const* protocol = "h1";
    bool tls = !sub_eps_.empty() && sub_eps_.front().u.tls;
#if SSE_LOADGEN_H2
    if (o_.h2)
      connections = h2_opened_, protocol = "h2";
#endif
    std::printf("\"protocol\":\"%s\",\"tls\":%s,\"connections\":%zu,", protocol, tls ? "true" : "false",
                connections);
    if (!o_.probe_path.empty())
      std::printf("\"probe\":{\"path\":\"%s\",\"interval_ms\":%g,\"expected\":%.0f,\"sent\":%" PRIu64
                  ",\"answered\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"unanswered\":%" PRIu64
                  ",\"reconnects\":%" PRIu64 ",\"last_status\":%d,\"body_bytes\":%" PRIu64
                  ",\"latency_us\":{\"samples\":%" PRIu64 ",\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f}"
                  ",\"from_due_us\":{\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f}},",
                  o_.probe_path.c_str(), o_.probe_interval_ms, secs * 1000 / o_.probe_interval_ms, probe_sent_,
                  probe_answered_, probe_ok_, probe_unanswered_, probe_reconnects_, probe_last_status_,
                  probe_body_bytes_, probe_latency_.count(), us(probe_latency_.quantile(0.5)),
                  us(probe_latency_.quantile(0.99)), us(probe_latency_.max()), us(probe_due_latency_.quantile(0.5)),
                  us(probe_due_latency_.quantile(0.99)), us(probe_due_latency_.max()));
    std::printf("\"server_pids\":[");
    for (std::size_t k = 0; k < o_.server_pids.size(); ++k)
      std::printf("%s%ld", k ? "," : "", o_.server_pids[k]);
    std::printf("],");
    std::printf("\"server_pid\":%ld,\"server_cpu_s\":%.3f,\"server_cpu_us_per_delivery\":%.4f,"
                "\"rss_kib\":{\"before\":%ld,\"connected\":%ld,\"end\":%ld},\"rss_per_conn_bytes\":%.0f,"
                "\"server_cpu_util\":%.3f,\"server_runq_wait\":%.3f,\"loadgen_cpu\":%.3f,"
                "\"loadgen_runq_wait\":%.3f}\n",
                o_.server_pids.empty() ? 0L : o_.server_pids.front(), server_cpu, cpu_per_delivery_us, rss_before_, rss_connected_, rss_end_, per_conn,
                server_cpu >= 0 ? server_cpu / secs : -1, server_wait, self_cpu, self_wait);
    return;
  }
  std::printf("subscribers   %zu streaming of %zu (%zu failed, %zu stalled, %zu closed early), connected in %.2f s\n",
              established_, o_.subs, failed_, stalled_, closed_early_, connect_seconds_);
  if (refused_status_)
    std::printf("              %zu refused, last status %d\n", refused_status_, last_bad_status_);
  if (!o_.idle) {
    std::printf("published     %" PRIu64 " ok, %" PRIu64 " failed, %" PRIu64 " unanswered; %.0f/s measured\n", ok,
                failed, unanswered, publish_rate);
    std::printf("deliveries    %.0f/s over %.2f s (%" PRIu64 ")\n", deliveries_per_s, secs, delivered_window_);
    std::printf("latency       p50 %.1f us, p99 %.1f us, max %.1f us (%" PRIu64 " samples; %s receive time)\n",
                us(latency_.quantile(0.5)), us(latency_.quantile(0.99)), us(latency_.max()), latency_.count(),
                o_.kernel_rx_time && kernel_stamps_ > 0 ? "kernel" : "load generator");
    std::printf("  read by us  p50 %.1f us, p99 %.1f us, max %.1f us\n", us(app_latency_.quantile(0.5)),
                us(app_latency_.quantile(0.99)), us(app_latency_.max()));
    std::printf("lost          %" PRIu64 " of %" PRIu64 " expected (gaps %" PRIu64 ", out of order %" PRIu64
                ", foreign %" PRIu64 ")\n",
                lost_, expected_, gaps_, out_of_order_, foreign_events_);
  }
  if (!o_.probe_path.empty())
    std::printf("probe GET %s  p50 %.1f us, p99 %.1f us, max %.1f us (from due: p99 %.1f us); %" PRIu64
                " sent (%.0f due), %" PRIu64
                " answered (%" PRIu64 " 2xx, last %d, %" PRIu64 " body bytes), %" PRIu64 " unanswered\n",
                o_.probe_path.c_str(), us(probe_latency_.quantile(0.5)), us(probe_latency_.quantile(0.99)),
                us(probe_latency_.max()), us(probe_due_latency_.quantile(0.99)), probe_sent_,
                secs * 1000 / o_.probe_interval_ms, probe_answered_,
                probe_ok_, probe_last_status_, probe_body_bytes_, probe_unanswered_);
  if (sub_eps_.size() > 1 && !o_.idle)
    for (std::size_t e = 0; e < sub_eps_.size(); ++e)
      std::printf("  %-11s %zu streaming, p50 %.1f us, p99 %.1f us, %" PRIu64 " lost\n", o_.sub_urls[e].c_str(),
                  ep_established_[e], us(ep_latency_[e].quantile(0.5)), us(ep_latency_[e].quantile(0.99)),
                  ep_lost_[e]);
  if (!o_.server_pids.empty()) {
    std::printf("server cpu    %.2f s (%.0f %% of a core; %.0f %% runnable but waiting for one)", server_cpu,
                server_cpu / secs * 100, server_wait * 100);
    if (cpu_per_delivery_us >= 0)
      std::printf(", %.3f us per delivery", cpu_per_delivery_us);
    std::printf("\nserver rss    %ld KiB before, %ld connected, %ld at the end; %.0f bytes per connection\n",
                rss_before_, rss_connected_, rss_end_, per_conn);
  }
  std::printf("loadgen cpu   %.0f %% of one core (%.0f %% runnable but waiting for it)\n", self_cpu * 100,
              self_wait * 100);
}

} // namespace

int main(int argc, char** argv) {
  loadgen lg(parse_options(argc, argv));
  return lg.run();
}
