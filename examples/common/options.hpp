#pragma once

// Command-line flags shared by the examples: --host, --port, --threads, --heartbeat,
// --max-connections, --allow-origin, --allow-credentials, --access-log, --drain, --tls-cert,
// --tls-key.

#include <sse/server_options.hpp>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace examples {

/// How long SIGTERM's drain spreads the streams' ends over (--drain SECONDS; 0: stop at once).
inline std::chrono::milliseconds drain_window{2000};
/// --tls-cert FILE --tls-key FILE: serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with this pair.
inline std::string tls_cert, tls_key;

/// Takes `name VALUE` out of argv and returns VALUE ("" when absent).
inline std::string take_text_flag(int& argc, char** argv, std::string_view name) {
  std::string value;
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (argv[i] == name && i + 1 < argc) {
      value = argv[++i];
      continue;
    }
    argv[out++] = argv[i];
  }
  argc = out;
  argv[argc] = nullptr;
  return value;
}

/// Takes `name N` out of argv (so parse_options does not see it) and returns N, or `fallback`;
/// exits with a message if N is not a number from `lo` to `hi`.
inline long take_flag(int& argc, char** argv, char const* program, std::string_view name,
                      long fallback, long lo, long hi) {
  long value = fallback;
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (argv[i] != name) {
      argv[out++] = argv[i];
      continue;
    }
    std::string_view const text = i + 1 < argc ? argv[++i] : "";
    auto const r = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || r.ec != std::errc() || r.ptr != text.data() + text.size() || value < lo ||
        value > hi) {
      std::cerr << program << ": " << name << " needs a number from " << lo << " to " << hi << "\n";
      std::exit(2);
    }
  }
  argc = out;
  argv[argc] = nullptr;
  return value;
}

/// One line per request on stderr: remote "METHOD target" status bytes duration [stream].
inline void print_access(sse::access_entry const& e) {
  std::fprintf(stderr, "%s:%u \"%.*s %.*s\" %d %llu B %.1f ms%s\n",
               e.remote.address().to_string().c_str(), static_cast<unsigned>(e.remote.port()),
               static_cast<int>(e.method.size()), e.method.data(), static_cast<int>(e.target.size()),
               e.target.data(), e.status, static_cast<unsigned long long>(e.bytes),
               static_cast<double>(e.duration.count()) / 1000.0, e.stream ? " stream" : "");
}

/// Parses the common flags into `o`; prints usage and exits on --help or a bad flag.
inline sse::server_options parse_options(int argc, char** argv, char const* name,
                                         char const* what) {
  sse::server_options o;
  o.host = "127.0.0.1";
  o.port = 8080;
  auto usage = [&](std::ostream& os) {
    os << "usage: " << name
       << " [--host ADDR] [--port N] [--threads N] [--heartbeat SECONDS] [--max-connections N]\n"
       << "       [--allow-origin ORIGIN]... [--allow-credentials] [--access-log] [--drain SECONDS]\n"
       << "       [--tls-cert FILE --tls-key FILE]\n"
       << what << "\n"
       << "Serves on 127.0.0.1:8080 by default. --max-connections defaults to the descriptor\n"
       << "limit (ulimit -n) less a reserve; past it new connections get 503.\n"
       << "--allow-origin lets pages from ORIGIN (e.g. http://localhost:3000; * for any) use\n"
       << "the routes (CORS); --allow-credentials lets them send cookies. --access-log prints\n"
       << "a line per request to stderr. SIGTERM drains: streams end spread over --drain\n"
       << "seconds (default 2; 0: at once), so clients reconnect a few at a time; a second\n"
       << "signal stops at once. With --tls-cert and --tls-key (PEM: the certificate chain and\n"
       << "its key) it serves HTTPS, HTTP/2 and HTTP/1.1 by ALPN; without them HTTP/1.1, and\n"
       << "HTTP/2 in cleartext to clients that know to speak it (h2c, prior knowledge).\n";
  };
  auto number = [&](std::string_view flag, char const* value, long lo, long hi) {
    char* end = nullptr;
    long const v = value ? std::strtol(value, &end, 10) : 0;
    if (!value || *end != '\0' || v < lo || v > hi) {
      std::cerr << name << ": " << flag << " needs a number from " << lo << " to " << hi << "\n";
      std::exit(2);
    }
    return v;
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view const flag = argv[i];
    char const* value = i + 1 < argc ? argv[i + 1] : nullptr;
    if (flag == "--help" || flag == "-h") {
      usage(std::cout);
      std::exit(0);
    } else if (flag == "--host" && value) {
      o.host = value;
      ++i;
    } else if (flag == "--port") {
      o.port = static_cast<std::uint16_t>(number(flag, value, 0, 65535));
      ++i;
    } else if (flag == "--threads") {
      o.threads = static_cast<std::size_t>(number(flag, value, 1, 256));
      ++i;
    } else if (flag == "--heartbeat") {
      o.heartbeat = std::chrono::seconds(number(flag, value, 1, 3600));
      ++i;
    } else if (flag == "--allow-origin" && value) {
      o.cors.allow_origins.emplace_back(value);
      ++i;
    } else if (flag == "--allow-credentials") {
      o.cors.allow_credentials = true;
    } else if (flag == "--drain") {
      drain_window = std::chrono::seconds(number(flag, value, 0, 3600));
      ++i;
    } else if (flag == "--tls-cert" && value) {
      tls_cert = value;
      ++i;
    } else if (flag == "--tls-key" && value) {
      tls_key = value;
      ++i;
    } else if (flag == "--access-log") {
      o.access_log = print_access;
    } else if (flag == "--max-connections") {
      o.max_connections = static_cast<std::size_t>(number(flag, value, 1, 10'000'000));
      ++i;
    } else {
      std::cerr << name << ": unknown or incomplete flag '" << flag << "'\n";
      usage(std::cerr);
      std::exit(2);
    }
  }
  if (tls_cert.empty() != tls_key.empty()) {
    std::cerr << name << ": --tls-cert and --tls-key go together\n";
    std::exit(2);
  }
  return o;
}

} // namespace examples
