#pragma once

/// The client's rules that need no connection: which options are valid, and how long to wait
/// before the next reconnect. Kept apart from the state machine so each reads on its own.

#include <sse/client_options.hpp>
#include <sse/detail/client_http.hpp>
#include <sse/detail/deadline.hpp>

#include <algorithm>
#include <chrono>
#include <random>
#include <stdexcept>
#include <string>

namespace sse::detail {

/// What checked options say that the client needs to go on.
struct checked_options {
  client_http::url origin; ///< the URL asked for
  bool own_accept = true;  ///< false when the user set Accept: the client then sends none
};

/// Throws `std::invalid_argument` naming the first bad option; clamps the waits in `o` to
/// `max_wait`, so that the timers' arithmetic cannot overflow.
inline checked_options check_options(client_options& o) {
  auto bad = [](std::string const& what) { throw std::invalid_argument("sse::client: " + what); };
  checked_options r;
  if (!o.url.empty()) {
    auto u = client_http::parse_url(o.url);
    if (!u) bad("'" + o.url + "' is not an http:// or https:// URL");
    r.origin = *u;
  } else {
    auto u = client_http::parse_url(
        "http://" + (o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host) + ":" +
        std::to_string(o.port) + o.target);
    if (!u || o.target.empty() || o.target[0] != '/')
      bad("host, port and target do not make a URL (target must start with '/')");
    r.origin = *u;
  }
  for (auto const& [name, value] : o.headers) {
    if (!client_http::is_token(name) || !client_http::is_safe_value(value))
      bad("header '" + name + "' is not a valid header name and value");
    for (char const* own : {"host", "last-event-id", "content-length", "transfer-encoding",
                            "connection", "upgrade", "te", "expect"})
      if (client_http::iequals(name, own))
        bad("header '" + name + "' is the client's own (last_event_id sets Last-Event-ID)");
    if (client_http::iequals(name, "accept")) r.own_accept = false;
  }
  if (!client_http::is_safe_value(o.last_event_id))
    bad("last_event_id must not contain CR, LF or NUL");
  if (o.retry.count() < 0 || o.max_reconnect_delay.count() <= 0)
    bad("retry must not be negative and max_reconnect_delay must be positive");
  if (!(o.jitter >= 0.0 && o.jitter <= 1.0)) bad("jitter must be between 0 and 1");
  if (o.read_timeout.count() < 0 || o.connect_timeout.count() <= 0)
    bad("read_timeout must not be negative and connect_timeout must be positive");
  if (o.max_header_bytes == 0 || o.max_queued_events == 0)
    bad("max_header_bytes and max_queued_events must be positive");
  o.retry = clamp_wait(o.retry);
  o.max_reconnect_delay = clamp_wait(o.max_reconnect_delay);
  o.read_timeout = clamp_wait(o.read_timeout);
  o.connect_timeout = clamp_wait(o.connect_timeout);
  return r;
}

/// The wait before the next reconnect when `failures` attempts in a row have not opened a
/// stream: the reconnection time `base` doubled per failure, capped at `cap`, less up to
/// `jitter` of it (so that clients one restart dropped together do not return together).
/// `cap` and `jitter` as `check_options` leaves them.
inline std::chrono::milliseconds reconnect_delay(std::chrono::milliseconds base, unsigned failures,
                                                 std::chrono::milliseconds cap, double jitter,
                                                 std::minstd_rand& rng) {
  using ms = std::chrono::milliseconds;
  ms d = std::min(base, cap);
  if (failures > 0 && d < ms(1))
    d = ms(1); // retry: 0 reconnects at once, but never spins on a server that is down
  for (unsigned i = 0; i < failures && d < cap; ++i)
    d = d > cap / 2 ? cap : d * 2;
  if (jitter > 0 && d.count() > 0) {
    std::uniform_real_distribution<double> u(0.0, jitter);
    d -= ms(static_cast<ms::rep>(static_cast<double>(d.count()) * u(rng)));
  }
  return d;
}

} // namespace sse::detail
