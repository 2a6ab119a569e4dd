#pragma once

/// What `sse::client` connects to and how it behaves: limits, timeouts, reconnection.

#include <sse/parser.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sse {

/// Options of `sse::client`; every bound has a default a production client can keep.
struct client_options {
  /// The stream's URL, "http://host[:port]/path?query" ("https://" needs `sse::tls::enable`).
  /// When empty, `host`, `port` and `target` say where, over plain HTTP.
  std::string url;
  std::string host = "127.0.0.1";
  std::uint16_t port = 80;
  std::string target = "/"; ///< path and query, as sent in the request line

  /// Extra request headers (Authorization, Cookie, ...). `Accept: text/event-stream`,
  /// `Cache-Control: no-cache` and `Last-Event-ID` are sent by the client; an `Accept` here
  /// replaces its own. Host, Last-Event-ID and the framing headers are refused.
  std::vector<std::pair<std::string, std::string>> headers;

  /// The id to resume from on the first connection (sent as `Last-Event-ID`); afterwards the
  /// stream's own ids take over, as in EventSource.
  std::string last_event_id;

  /// The reconnection time until the server sends `retry:`.
  std::chrono::milliseconds retry{3000};
  /// No wait before a reconnect is longer than this, whatever `retry:` or backoff say.
  std::chrono::milliseconds max_reconnect_delay{30000};
  /// Each wait is drawn uniformly from [delay * (1 - jitter), delay], so that clients a
  /// restart dropped together do not come back together. 0 to 1.
  double jitter = 0.25;
  /// Reconnect at all. false: the first end or error of the stream is final.
  bool reconnect = true;
  /// Statuses retried like a network error (with backoff) instead of being final, which the
  /// standard makes every status but 200. Behind a proxy or load balancer, {502, 503, 504}
  /// keep a client through a restart of the server behind it.
  std::vector<int> retry_statuses;

  /// A stream that sends nothing at all (no event, no heartbeat comment) for this long is
  /// taken as dead and reconnected (`errc::read_timeout`). Three heartbeats of sse::server
  /// (15 s each) by default; set it to a few times your server's heartbeat. 0: never.
  std::chrono::milliseconds read_timeout{45000};
  /// Resolving, connecting, the TLS handshake and the response head together must take no
  /// longer than this (else `asio::error::timed_out`, and a reconnect).
  std::chrono::milliseconds connect_timeout{10000};

  /// The response head (status line and headers) may be at most this large.
  std::size_t max_header_bytes = 64 * 1024;
  /// Redirects (301, 302, 303, 307, 308) followed in a row before `errc::bad_redirect`.
  std::size_t max_redirects = 5;
  /// For `async_next`: reading pauses (and TCP pushes back) once this many events wait unread.
  std::size_t max_queued_events = 1024;
  /// A line or an event past these ends the client with `errc::event_too_large`.
  parser_limits limits;
};

} // namespace sse
