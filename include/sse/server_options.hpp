#pragma once

/// Settings of `sse::server`.

#include <asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace sse {

/// Cross-origin access for pages served from other origins (CORS). Off while `allow_origins`
/// is empty.
struct cors_options {
  /// Origins allowed, exactly as browsers send them (`https://app.example.com`); "*": any.
  std::vector<std::string> allow_origins;
  /// Let pages send cookies (`EventSource(url, {withCredentials: true})`, `fetch` with
  /// `credentials: "include"`); the origin is then echoed, never "*".
  bool allow_credentials = false;
  /// Request headers a page may send, beyond the CORS-safelisted ones.
  std::vector<std::string> allow_headers = {"Last-Event-ID", "Content-Type", "Authorization"};
  /// Response headers a page may read, beyond the safelisted ones.
  std::vector<std::string> expose_headers;
  /// How long a browser may cache a preflight answer.
  std::chrono::seconds max_age{600};
};

/// One answered request, as `server_options::access_log` sees it.
struct access_entry {
  std::string_view method; ///< as received; empty if the request line was unreadable
  std::string_view target; ///< the request-target as received
  int status = 0;
  std::uint64_t bytes = 0; ///< written for it: head and body, or everything a stream sent
  /// From the request's arrival to its last byte written (for a stream: to its end).
  std::chrono::microseconds duration{0};
  asio::ip::tcp::endpoint remote;
  bool stream = false;
};

/// The server's settings; every limit is bounded and configurable.
struct server_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0; ///< 0: the kernel picks a free port, see `server::port()`
  std::size_t threads = 1; ///< one io_context per thread; connections spread round-robin
  int backlog = 1024;

  std::size_t max_request_line = 8 * 1024;   ///< longer: 414 (URI) or 431
  std::size_t max_header_line = 8 * 1024;    ///< longer: 431
  std::size_t max_header_bytes = 64 * 1024;  ///< whole header block; more: 431
  std::size_t max_headers = 100;             ///< more fields: 431
  std::size_t max_body = 1024 * 1024;        ///< larger: 413, refused before it is read
  /// Past it new connections get 503. 0: derived from the process's descriptor limit
  /// (RLIMIT_NOFILE, less a reserve for files, the broker's own and the application's).
  std::size_t max_connections = 0;
  /// Accept a bare LF as a line end in request heads. Off: 400, since a proxy in front that
  /// disagrees about where a line ends can be made to smuggle a request past its checks.
  bool accept_bare_lf = false;
  /// Kernel send buffer per connection (SO_SNDBUF; 0: the kernel's autotuning, which grows it
  /// to megabytes). Bounded, a client that stops reading fills it in a moment and the broker's
  /// overflow policy takes over, instead of the server pushing megabytes nobody reads.
  std::size_t send_buffer = 128 * 1024;
  /// Streams an I/O thread writes in one turn before it lets its other work run (reads,
  /// accepts, timers, the next publish): a publish to 10,000 streams is written in slices, so
  /// no request waits behind a whole fan-out, and what is published meanwhile joins the writes
  /// of the streams not yet written.
  std::size_t write_slice = 64;
  /// A publisher is paced by its subscribers' writes. A request whose handler published to
  /// streams of its own I/O thread while more than `pace_backlog` of its streams waited for
  /// their turn is answered once a `1/pace_share` part of them have had it. A publisher that
  /// sends its next event when the last is acknowledged then stays a bounded part of a pass
  /// ahead of the writers: its events share writes instead of each one lengthening the pass
  /// and the latency of everyone's events. A handler whose fan-out left a queue more than half
  /// full is answered after all of them, so no publisher outruns a queue into its overflow
  /// policy. Below the backlog nobody waits: a short pass costs less than a held answer.
  std::size_t pace_backlog = 2048;
  std::size_t pace_share = 4; ///< 0: publishers are never held

  // Durations over about a century (milliseconds::max() too) mean "never": the server clamps
  // them, so no deadline overflows.
  std::chrono::milliseconds header_timeout{10000}; ///< a request's head must arrive within this: 408
  std::chrono::milliseconds body_timeout{30000};   ///< and its body within this: 408
  std::chrono::milliseconds idle_timeout{60000};   ///< keep-alive connection with no request: closed
  std::chrono::milliseconds write_timeout{30000};  ///< a write that makes no progress: closed
  std::chrono::milliseconds heartbeat{15000};      ///< comment sent on an idle stream
  /// An asynchronous handler that has not answered within this gets 503 for its client; a
  /// later answer is dropped.
  std::chrono::milliseconds handler_timeout{30000};
  /// stop() waits this long for asynchronous handlers to answer, then as long again for
  /// streams to flush.
  std::chrono::milliseconds stop_timeout{5000};

  /// `retry:` sent when a stream opens (0: not sent), plus a random 0..retry_jitter per stream
  /// so that thousands of clients dropped at once do not come back in the same millisecond.
  std::chrono::milliseconds retry{3000};
  std::chrono::milliseconds retry_jitter{1000};

  /// Where the server reports what it cannot answer to anyone: a handler that threw, a misused
  /// stream, an exception out of a completion handler. Empty: one line on stderr. Called on an
  /// I/O thread; must not throw.
  std::function<void(std::string_view)> error_log;

  /// Called once per answered request (a stream: when it ends), on an I/O thread, after the
  /// last byte is written; must not block or throw. Empty: no access log.
  std::function<void(access_entry const&)> access_log;

  cors_options cors;
};

} // namespace sse
