// dashboard: live system metrics from /proc, charted in the browser.
//
//   GET /         the page (HTML, CSS and JavaScript inline; charts drawn on <canvas>)
//   GET /events   `metrics` events (JSON); a new page first gets the last minute from history,
//                 a reconnecting one exactly what it missed (Last-Event-ID)
//   GET /info     {"host", "cpus", "interval_ms"}
//   GET /metrics  the server's and the broker's metrics, for Prometheus
//
// A sampler on its own thread and io_context reads /proc/stat (CPU %), /proc/meminfo (memory),
// /proc/loadavg and /proc/net/dev (bytes per second over the interfaces other than lo) every
// --interval-ms and publishes one event to the broker topic "metrics".
#include "../common/options.hpp"
#include "../common/run.hpp"
#include "dashboard_page.hpp" // generated from page.html

#include <sse/sse.hpp>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {


// ---- reading /proc ---------------------------------------------------------------------------

struct cpu_times {
  std::uint64_t busy = 0, total = 0;
};

/// The "cpu" line of /proc/stat: user nice system idle iowait irq softirq steal (guest time is
/// already counted in user and nice).
std::optional<cpu_times> read_cpu() {
  std::ifstream in("/proc/stat");
  std::string label;
  if (!(in >> label) || label != "cpu")
    return std::nullopt;
  std::uint64_t v[8] = {};
  for (auto& x : v)
    if (!(in >> x))
      return std::nullopt;
  cpu_times t;
  for (auto x : v)
    t.total += x;
  t.busy = t.total - v[3] - v[4]; // idle and iowait are not busy
  return t;
}

struct memory {
  std::uint64_t total = 0, used = 0; // bytes
};

std::optional<memory> read_memory() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::uint64_t kb = 0;
  std::string unit;
  std::uint64_t total = 0, available = 0, free = 0, buffers = 0, cached = 0;
  bool have_available = false;
  while (in >> key >> kb) {
    std::getline(in, unit);
    if (key == "MemTotal:")
      total = kb;
    else if (key == "MemAvailable:")
      available = kb, have_available = true;
    else if (key == "MemFree:")
      free = kb;
    else if (key == "Buffers:")
      buffers = kb;
    else if (key == "Cached:")
      cached = kb;
  }
  if (total == 0)
    return std::nullopt;
  if (!have_available) // kernels before 3.14
    available = free + buffers + cached;
  memory m;
  m.total = total * 1024;
  m.used = (total - std::min(available, total)) * 1024;
  return m;
}

std::optional<std::vector<double>> read_load() {
  std::ifstream in("/proc/loadavg");
  std::vector<double> load(3);
  for (auto& x : load)
    if (!(in >> x))
      return std::nullopt;
  return load;
}

struct net_bytes {
  std::uint64_t rx = 0, tx = 0;
};

/// Received and sent bytes summed over the interfaces other than lo (or lo alone if that is
/// all there is).
std::optional<net_bytes> read_net() {
  std::ifstream in("/proc/net/dev");
  std::string line;
  net_bytes others, loopback;
  bool have_others = false, have_loopback = false;
  while (std::getline(in, line)) {
    auto const colon = line.find(':');
    if (colon == std::string::npos)
      continue; // the two header lines
    auto const first = line.find_first_not_of(' ');
    std::string const name = line.substr(first, colon - first);
    std::istringstream fields(line.substr(colon + 1));
    std::uint64_t v[9] = {}; // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes
    bool ok = true;
    for (auto& x : v)
      ok = ok && static_cast<bool>(fields >> x);
    if (!ok)
      continue;
    net_bytes& sum = name == "lo" ? loopback : others;
    (name == "lo" ? have_loopback : have_others) = true;
    sum.rx += v[0];
    sum.tx += v[8];
  }
  if (have_others)
    return others;
  if (have_loopback)
    return loopback;
  return std::nullopt;
}

double round_to(double v, int decimals) {
  double const f = std::pow(10.0, decimals);
  return std::round(v * f) / f;
}

/// Samples every `interval` on an io_context of its own (run by another thread than the server's)
/// and publishes each sample, as a `metrics` event, to the broker topic "metrics".
class sampler {
public:
  sampler(asio::io_context& io, std::chrono::milliseconds interval, sse::broker& broker)
      : timer_(io), interval_(interval), broker_(broker) {}

  void start() {
    prev_cpu_ = read_cpu();
    prev_net_ = read_net();
    prev_at_ = std::chrono::steady_clock::now();
    next_ = prev_at_ + interval_;
    arm();
  }

private:
  void arm() {
    timer_.expires_at(next_);
    timer_.async_wait([this](std::error_code ec) {
      if (ec)
        return;
      sample();
      next_ += interval_;
      auto const now = std::chrono::steady_clock::now();
      if (next_ < now) // fell behind (suspended?): skip, do not burst
        next_ = now + interval_;
      arm();
    });
  }

  void sample() {
    auto const now = std::chrono::steady_clock::now();
    double const seconds = std::chrono::duration<double>(now - prev_at_).count();
    prev_at_ = now;
    nlohmann::json j;
    j["t"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
    auto const cpu = read_cpu();
    if (cpu && prev_cpu_ && cpu->total > prev_cpu_->total) {
      double const busy = static_cast<double>(cpu->busy - prev_cpu_->busy);
      double const total = static_cast<double>(cpu->total - prev_cpu_->total);
      j["cpu"] = round_to(std::clamp(100.0 * busy / total, 0.0, 100.0), 1);
    } else {
      j["cpu"] = nullptr; // no ticks yet: unknown rather than a made-up 0
    }
    prev_cpu_ = cpu;
    if (auto const m = read_memory())
      j["mem"] = {{"used", m->used},
                  {"total", m->total},
                  {"percent", round_to(100.0 * static_cast<double>(m->used) /
                                           static_cast<double>(m->total),
                                       1)}};
    if (auto const l = read_load())
      j["load"] = *l;
    auto const net = read_net();
    if (net && prev_net_ && seconds > 0 && net->rx >= prev_net_->rx && net->tx >= prev_net_->tx) {
      j["net"] = {{"rx", std::llround(static_cast<double>(net->rx - prev_net_->rx) / seconds)},
                  {"tx", std::llround(static_cast<double>(net->tx - prev_net_->tx) / seconds)}};
    }
    prev_net_ = net;
    broker_.publish("metrics", sse::json_event(j).name("metrics"));
  }

  asio::steady_timer timer_;
  std::chrono::milliseconds const interval_;
  sse::broker& broker_;
  std::optional<cpu_times> prev_cpu_;
  std::optional<net_bytes> prev_net_;
  std::chrono::steady_clock::time_point prev_at_, next_;
};

/// The host's name, printable ASCII only (it goes into JSON).
std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0)
    return "localhost";
  std::string name;
  for (char const* p = buf; *p; ++p)
    if (*p > ' ' && *p < 0x7f)
      name += *p;
  return name.empty() ? "localhost" : name;
}

} // namespace

int main(int argc, char** argv) {
  long const interval_ms = examples::take_flag(argc, argv, "dashboard", "--interval-ms", 1000, 20, 60000);
  auto options = examples::parse_options(
      argc, argv, "dashboard",
      "Live system metrics from /proc, charted in the browser over Server-Sent Events.\n"
      "  --interval-ms N   sample every N ms (default 1000)");

  // The last minute of samples stays in the broker: a page opened later draws it at once, and a
  // reconnecting one resumes from its Last-Event-ID.
  sse::broker broker(sse::queue_limits{256, 1024 * 1024, sse::overflow_policy::evict});
  auto const kept = static_cast<std::size_t>(60000 / interval_ms + 5);
  broker.set_history("metrics", sse::history_limits{kept, 4 * 1024 * 1024, std::chrono::seconds(65)});

  asio::io_context sampling(1);
  sampler metrics(sampling, std::chrono::milliseconds(interval_ms), broker);
  metrics.start();
  std::thread sampling_thread([&] { sampling.run(); });

  sse::server srv(options);
  unsigned const cpus = std::max(1u, std::thread::hardware_concurrency());
  std::string const info = nlohmann::json{{"host", host_name()},
                                          {"cpus", cpus},
                                          {"interval_ms", interval_ms}}
                               .dump();

  srv.route("GET", "/", [](sse::request&) {
    return sse::response::html(std::string(dashboard_page)).header("Cache-Control", "no-store");
  });

  srv.route("GET", "/info", [&](sse::request&) { return sse::response::json(200, info); });

  srv.route("GET", "/events", [&](sse::request& req) {
    sse::subscribe_options o;
    o.last_event_id = req.last_event_id(); // a reconnect: exactly what it missed
    o.replay_history = true;               // a new page: the last minute
    return sse::response::stream(broker.subscribe("metrics", o));
  });

  srv.route("GET", "/metrics", sse::metrics_handler(srv, broker));

  int const rc = examples::serve_until_signal(srv, "dashboard");
  sampling.stop();
  sampling_thread.join();
  return rc;
}
