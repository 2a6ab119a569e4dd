// sse::client through a real nginx in front of sse::server, with the proxy settings of
// docs/deployment.md (tests/nginx/nginx.conf.in, whose proxy_read_timeout is 2 s): events at
// once, heartbeats past the proxy's read timeout, resume across a restart of the server
// behind nginx (502 meanwhile, retried with retry_statuses), and 204 through the proxy.
// nginx and the template come from the environment (tests/CMakeLists.txt).

#include "child_process.hpp"
#include "client_util.hpp"

#include <sse/broker.hpp>
#include <sse/server.hpp>
#include <sse/testing.hpp>

#include <asio/ip/tcp.hpp>

#include <catch2/catch.hpp>

#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>

using namespace std::chrono_literals;

namespace {

std::string env(char const* name, char const* fallback) {
  char const* v = std::getenv(name);
  return v && *v ? v : fallback;
}

std::string replace_all(std::string s, std::string const& from, std::string const& to) {
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

bool accepts(std::uint16_t port) {
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  std::error_code ec;
  s.connect({asio::ip::make_address("127.0.0.1"), port}, ec);
  return !ec;
}

/// nginx on a free port in front of 127.0.0.1:`app_port`, in a temp dir of its own.
class nginx_proxy {
public:
  explicit nginx_proxy(std::uint16_t app_port) {
    char tmpl[] = "/tmp/sse-client-nginx-XXXXXX";
    if (!::mkdtemp(tmpl))
      throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    std::string const tpl = sse_test::child_process::read_file(
        env("SSE_NGINX_TEMPLATE", SSE_NGINX_TEMPLATE_FILE));
    if (tpl.empty())
      throw std::runtime_error(std::string(SSE_NGINX_TEMPLATE_FILE) + " not found (SSE_NGINX_TEMPLATE)");
    std::string user = "# not root: nginx runs as the current user";
    if (::getuid() == 0)
      user = std::string("user ") + ::getpwuid(0)->pw_name + " " + ::getgrgid(0)->gr_name + ";";
    for (int attempt = 0; attempt < 3; ++attempt) { // a free port may be taken before nginx binds it
      port_ = free_port();
      std::string conf = replace_all(tpl, "@DIR@", dir_);
      conf = replace_all(conf, "@PORT@", std::to_string(port_));
      conf = replace_all(conf, "@APP_PORT@", std::to_string(app_port));
      conf = replace_all(conf, "@CONTROL_PORT@", std::to_string(app_port));
      conf = replace_all(conf, "@USER@", user);
      std::ofstream(dir_ + "/nginx.conf") << conf;
      proc_ = std::make_unique<sse_test::child_process>(
          std::vector<std::string>{env("SSE_NGINX", "/usr/sbin/nginx"), "-p", dir_, "-c",
                                   dir_ + "/nginx.conf", "-e", dir_ + "/error.log"},
          dir_ + "/nginx.out");
      for (int i = 0; i < 200 && proc_->running(); ++i) {
        if (accepts(port_))
          return;
        std::this_thread::sleep_for(20ms);
      }
      proc_->stop();
    }
    throw std::runtime_error("nginx did not start: " + error_log() + proc_->output());
  }
  ~nginx_proxy() {
    proc_.reset();
    std::system(("rm -rf '" + dir_ + "'").c_str());
  }
  std::string url(std::string const& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::string error_log() const { return sse_test::child_process::read_file(dir_ + "/error.log"); }

private:
  static std::uint16_t free_port() {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    return a.local_endpoint().port();
  }
  std::string dir_;
  std::uint16_t port_ = 0;
  std::unique_ptr<sse_test::child_process> proc_;
};

sse::server_options upstream(std::uint16_t port = 0) {
  sse::server_options o;
  o.host = "127.0.0.1";
  o.port = port;
  o.heartbeat = 500ms; // under the template's proxy_read_timeout of 2 s
  o.retry = 100ms;
  o.retry_jitter = 0ms;
  o.stop_timeout = 1000ms;
  return o;
}

void add_routes(sse::server& s, sse::broker& b) {
  s.route("GET", "/listen", [&b](sse::request& req) {
    sse::subscribe_options o;
    o.last_event_id = req.last_event_id();
    return sse::response::stream(b.subscribe("t", o));
  });
  s.route("GET", "/done", [](sse::request&) { return sse::response(204); });
}

} // namespace

TEST_CASE("client through nginx: events at once, alive past proxy_read_timeout, resumed across an upstream restart",
          "[client][nginx]") {
  sse::broker broker;
  broker.set_history(sse::history_limits{1000, 1 << 20, std::chrono::minutes(5)});
  auto first = std::make_unique<sse::server>(upstream());
  add_routes(*first, broker);
  first->start();
  std::uint16_t const app_port = first->port();
  nginx_proxy nginx(app_port);
  INFO("nginx error.log: " << nginx.error_log());

  sse::client_options o;
  o.url = nginx.url("/listen");
  o.retry_statuses = {502, 503, 504}; // nginx's answers while the server behind it restarts
  o.retry = 50ms;
  o.max_reconnect_delay = 300ms;
  o.read_timeout = 1500ms; // three of the server's heartbeats
  sse::testing::stream stream(o);

  auto const t0 = std::chrono::steady_clock::now();
  broker.publish("t", sse::event("0"));
  REQUIRE(stream.wait_for(1).size() == 1);
  CHECK(std::chrono::steady_clock::now() - t0 < 1s); // not buffered by nginx
  broker.publish("t", sse::event("1"));
  REQUIRE(stream.wait_for(2).size() == 2);
  std::this_thread::sleep_for(2500ms); // past proxy_read_timeout: only heartbeats flow
  CHECK(stream.opens() == 1);
  broker.publish("t", sse::event("2"));
  REQUIRE(stream.wait_for(3).size() == 3);
  CHECK(stream.opens() == 1);

  first->stop();
  first.reset();
  for (int i = 3; i < 6; ++i)
    broker.publish("t", sse::event(std::to_string(i)));
  std::this_thread::sleep_for(300ms); // nginx answers 502 meanwhile
  sse::server second(upstream(app_port));
  add_routes(second, broker);
  second.start();
  REQUIRE(stream.wait_for(6, 10s).size() == 6);
  for (int i = 6; i < 9; ++i)
    broker.publish("t", sse::event(std::to_string(i)));
  REQUIRE(stream.wait_for(9).size() == 9);
  std::this_thread::sleep_for(200ms);
  auto const events = stream.events();
  REQUIRE(events.size() == 9);
  std::set<std::string> ids;
  for (int i = 0; i < 9; ++i) {
    CHECK(events[i].data == std::to_string(i));
    CHECK(ids.insert(events[i].id).second);
  }
  CHECK(stream.opens() >= 2);
  second.stop();
}

TEST_CASE("client through nginx stops on the server's 204", "[client][nginx]") {
  sse::broker broker;
  sse::server app(upstream());
  add_routes(app, broker);
  app.start();
  nginx_proxy nginx(app.port());
  sse::client_options o;
  o.url = nginx.url("/done");
  sse_test::client_runner run;
  sse_test::recorder rec;
  sse::client c(run.io, o);
  rec.start(c);
  REQUIRE(rec.wait_closed());
  CHECK(*rec.closed == sse::errc::no_content);
  CHECK(c.status() == 204);
  app.stop();
}
