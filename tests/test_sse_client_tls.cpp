// sse::client over HTTPS (<sse/tls_client.hpp>) against sse::server with sse::tls: the peer
// verified against a CA file, SNI and the host name check, and what fails without them.
// Certificates made by the openssl command line, once per process.

#include "client_util.hpp"

#include <sse/testing.hpp>
#include <sse/tls.hpp>
#include <sse/tls_client.hpp>
#ifdef SSE_TEST_HTTP2
#include <sse/http2.hpp>
#endif

#include <catch2/catch.hpp>

#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;
using sse_test::client_runner;
using sse_test::quick_client;
using sse_test::recorder;

namespace {

struct cert_files {
  std::string dir, cert, key, other_cert, other_key;
};

/// A self-signed certificate for localhost and 127.0.0.1, and one for another name.
cert_files const& certs() {
  static cert_files const c = [] {
    char tmpl[] = "/tmp/sse-client-tls-XXXXXX";
    char* d = ::mkdtemp(tmpl);
    if (!d)
      throw std::runtime_error("mkdtemp failed");
    cert_files r{d, std::string(d) + "/cert.pem", std::string(d) + "/key.pem",
                 std::string(d) + "/other.pem", std::string(d) + "/other-key.pem"};
    auto make = [](std::string const& cert, std::string const& key, std::string const& subj,
                   std::string const& san) {
      std::string const cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
                              "-nodes -keyout '" + key + "' -out '" + cert + "' -days 2 -subj '" +
                              subj + "' -addext 'subjectAltName=" + san + "' >/dev/null 2>&1";
      if (std::system(cmd.c_str()) != 0)
        throw std::runtime_error("openssl req failed: is the openssl command installed?");
    };
    make(r.cert, r.key, "/CN=localhost", "DNS:localhost,IP:127.0.0.1");
    make(r.other_cert, r.other_key, "/CN=other.example", "DNS:other.example");
    return r;
  }();
  return c;
}

struct https_server {
  sse::testing::server server;
  explicit https_server(std::string const& cert, std::string const& key)
      : server([&](sse::server& s, sse::broker& b) {
          s.route("GET", "/listen", [&b](sse::request& req) {
            sse::subscribe_options o;
            o.last_event_id = req.last_event_id();
            return sse::response::stream(b.subscribe("t", o));
          });
          s.route("GET", "/proto", [](sse::request& req) {
            sse::event_stream st;
            st.send(sse::event(std::string(req.protocol())).id(req.secure() ? "secure" : "plain"));
            st.close();
            return sse::response::stream(st);
          });
          sse::tls::options t;
          t.cert_chain_file = cert;
          t.private_key_file = key;
          sse::tls::enable(s, t);
#ifdef SSE_TEST_HTTP2
          sse::http2::enable(s); // ALPN offers h2: the client must still get HTTP/1.1
#endif
        }) {
  }
  std::string url(std::string const& host, std::string const& path) const {
    return "https://" + host + ":" + std::to_string(server.port()) + path;
  }
};

} // namespace

TEST_CASE("client over HTTPS verifies the server against a CA file", "[client][tls]") {
  https_server srv(certs().cert, certs().key);
  std::string host = GENERATE(as<std::string>{}, "localhost", "127.0.0.1"); // SNI and a name; an IP SAN
  client_runner run;
  recorder rec;
  sse::client c(run.io, quick_client(srv.url(host, "/proto")));
  sse::tls::client_options t;
  t.ca_file = certs().cert;
  sse::tls::enable(c, t);
  rec.start(c);
  REQUIRE(rec.wait([&] { return rec.events.size() >= 1; }));
  std::lock_guard<std::mutex> lk(rec.m);
  CHECK(rec.events[0].data == "HTTP/1.1");
  CHECK(rec.events[0].id == "secure");
  CHECK(rec.opens >= 1);
}

TEST_CASE("client over HTTPS streams and resumes across a reconnect", "[client][tls]") {
  https_server srv(certs().cert, certs().key);
  srv.server.broker().set_history(sse::history_limits{100, 1 << 20, std::chrono::minutes(1)});
  client_runner run;
  recorder rec;
  sse::client c(run.io, quick_client(srv.url("localhost", "/listen")));
  sse::tls::client_options t;
  t.ca_file = certs().cert;
  sse::tls::enable(c, t);
  rec.start(c);
  REQUIRE(rec.wait([&] { return rec.opens == 1; }));
  srv.server.publish("t", sse::event("one"));
  REQUIRE(rec.wait([&] { return rec.events.size() == 1; }));
  CHECK(c.last_event_id() == rec.events[0].id);
}

TEST_CASE("client over HTTPS refuses a server it cannot verify", "[client][tls]") {
  client_runner run;
  recorder rec;
  std::string server_cert = certs().cert, server_key = certs().key, ca, host = "localhost";
  SECTION("a self-signed certificate against the system's trust store") {
    // ca left empty
  }
  SECTION("a certificate for another name (trusted, but not localhost's)") {
    server_cert = certs().other_cert, server_key = certs().other_key, ca = certs().other_cert;
  }
  SECTION("a certificate no trusted CA signed") {
    server_cert = certs().other_cert, server_key = certs().other_key, ca = certs().cert;
    host = "127.0.0.1";
  }
  https_server srv(server_cert, server_key);
  sse::tls::client_options t;
  t.ca_file = ca;
  auto o = quick_client(srv.url(host, "/listen"));
  o.reconnect = false;
  sse::client c(run.io, o);
  sse::tls::enable(c, t);
  rec.start(c);
  REQUIRE(rec.wait_closed());
  CHECK(*rec.closed);
  CHECK(*rec.closed != asio::error::operation_aborted);
  CHECK(std::string(rec.closed->category().name()).find("ssl") != std::string::npos);
  CHECK(rec.opens == 0);
  INFO(rec.closed->message());
}

TEST_CASE("client over HTTPS without verification, and a CA file that is not there", "[client][tls]") {
  https_server srv(certs().other_cert, certs().other_key);
  client_runner run;
  recorder rec;
  sse::client c(run.io, quick_client(srv.url("localhost", "/proto")));
  sse::tls::client_options t;
  t.verify_peer = false;
  sse::tls::enable(c, t);
  rec.start(c);
  REQUIRE(rec.wait([&] { return rec.events.size() >= 1; }));

  sse::client d(run.io, quick_client(srv.url("localhost", "/proto")));
  sse::tls::client_options missing;
  missing.ca_file = "/nonexistent/ca.pem";
  CHECK_THROWS_WITH(sse::tls::enable(d, missing), Catch::Contains("/nonexistent/ca.pem"));
}
