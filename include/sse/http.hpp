#pragma once

/// Requests and responses as handlers see them.

#include <sse/broker.hpp>
#include <sse/detail/http_parser.hpp>
#include <sse/frame.hpp>
#include <sse/stream.hpp>

#include <asio/ip/tcp.hpp>

#include <any>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace sse {

using header_field = detail::header_field;

/// Thrown by a handler to answer with `status` and the message as a plain-text body.
class http_error : public std::runtime_error {
public:
  http_error(int status, std::string const& message)
      : std::runtime_error(message), status_(status) {}
  int status() const noexcept { return status_; }

private:
  int status_;
};

/// One parsed HTTP request. Header names compare case-insensitively; query values are
/// percent-decoded ('+' is a space).
class request {
public:
  request() = default;
  request(detail::request&& raw, std::vector<std::pair<std::string, std::string>> query,
          asio::ip::tcp::endpoint remote)
      : raw_(std::move(raw)), query_(std::move(query)), remote_(std::move(remote)) {}

  std::string const& method() const noexcept { return raw_.method; }
  /// The request-target as received (path and query, still encoded).
  std::string const& target() const noexcept { return raw_.target; }
  /// The path, still percent-encoded.
  std::string const& path() const noexcept { return raw_.path; }
  std::string const& query_string() const noexcept { return raw_.query; }
  std::string const& body() const noexcept { return raw_.body; }
  std::vector<header_field> const& headers() const noexcept { return raw_.headers; }
  int version_minor() const noexcept { return raw_.version_minor; }
  int version_major() const noexcept { return raw_.version_major; }
  /// "HTTP/1.1", "HTTP/1.0" or "HTTP/2": handlers are the same for all of them.
  std::string_view protocol() const noexcept {
    return raw_.version_major == 2 ? "HTTP/2" : raw_.version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
  }
  /// It came over TLS (HTTPS).
  bool secure() const noexcept { return raw_.secure; }
  asio::ip::tcp::endpoint const& remote_endpoint() const noexcept { return remote_; }

  /// The first field named `name`, if any.
  std::optional<std::string_view> header(std::string_view name) const { return raw_.header(name); }

  /// The first query value named `name`, if any.
  std::optional<std::string_view> query(std::string_view name) const {
    for (auto const& [k, v] : query_)
      if (k == name)
        return std::string_view(v);
    return std::nullopt;
  }
  /// Every query value named `name`, in order (`?topic=a&topic=b`).
  std::vector<std::string_view> query_all(std::string_view name) const {
    std::vector<std::string_view> out;
    for (auto const& [k, v] : query_)
      if (k == name)
        out.emplace_back(v);
    return out;
  }
  std::vector<std::pair<std::string, std::string>> const& query_params() const noexcept {
    return query_;
  }

  /// A `{name}` segment of the route pattern, percent-decoded.
  std::optional<std::string_view> param(std::string_view name) const {
    for (auto const& [k, v] : params_)
      if (k == name)
        return std::string_view(v);
    return std::nullopt;
  }

  bool keep_alive() const { return raw_.keep_alive(); }

  /// The client's last event id: the `Last-Event-ID` header, else a `lastEventId` query
  /// parameter (for clients that cannot set headers). Unchecked: hand it to
  /// `subscribe_options::last_event_id`, which refuses what it cannot trust.
  std::optional<std::string> last_event_id() const {
    if (auto h = header("Last-Event-ID"))
      return std::string(*h);
    if (auto q = query("lastEventId"))
      return std::string(*q);
    return std::nullopt;
  }

  /// Attaches what a before-route hook learned (a user id, a role) for the handler; a second
  /// value with the same name replaces the first.
  void set_attribute(std::string name, std::any value) {
    for (auto& [k, v] : attributes_)
      if (k == name) {
        v = std::move(value);
        return;
      }
    attributes_.emplace_back(std::move(name), std::move(value));
  }
  /// The attribute `name` if it is there and holds a T, else nullptr.
  template <class T>
  T const* attribute(std::string_view name) const {
    for (auto const& [k, v] : attributes_)
      if (k == name)
        return std::any_cast<T>(&v);
    return nullptr;
  }

  /// Set by the router.
  void set_params(std::vector<std::pair<std::string, std::string>> params) {
    params_ = std::move(params);
  }

private:
  detail::request raw_;
  std::vector<std::pair<std::string, std::string>> query_;
  std::vector<std::pair<std::string, std::string>> params_;
  std::vector<std::pair<std::string, std::any>> attributes_;
  asio::ip::tcp::endpoint remote_;
};

/// What a handler answers: an ordinary response, or an event stream.
class response {
public:
  /// An empty response with `status`.
  explicit response(int status = 200) : status_(status) {}

  static response text(int status, std::string body) {
    return response(status).header("Content-Type", "text/plain; charset=utf-8").body(std::move(body));
  }
  static response html(std::string body) {
    return response(200).header("Content-Type", "text/html; charset=utf-8").body(std::move(body));
  }
  static response json(int status, std::string body) {
    return response(status).header("Content-Type", "application/json").body(std::move(body));
  }

  /// An event stream fed by a broker subscription (topics chosen by the handler).
  static response stream(subscription sub) {
    response r(200);
    r.source_ = std::make_shared<subscription>(std::move(sub));
    return r;
  }
  /// An event stream fed by the handler through `s` (kept by the handler, written from any
  /// thread, then closed).
  static response stream(event_stream const& s) {
    response r(200);
    r.source_ = s;
    return r;
  }

  /// Adds a header field. Names and values with CR, LF or NUL are refused, and so are the
  /// fields that frame the message (`Content-Length`, `Transfer-Encoding`, `Connection`):
  /// the server sets those itself, and a second, different value is how responses are split.
  response& header(std::string name, std::string value) {
    if (name.empty() || name.find_first_of("\r\n\0: \t", 0, 6) != std::string::npos)
      throw std::invalid_argument("sse::response::header: bad header name");
    for (char const* framing : {"Content-Length", "Transfer-Encoding", "Connection"})
      if (detail::parse_util::iequals(name, framing))
        throw std::invalid_argument(std::string("sse::response::header: ") + framing +
                                    " is set by the server");
    if (value.find_first_of("\r\n\0", 0, 3) != std::string::npos)
      throw std::invalid_argument("sse::response::header: header value contains CR, LF or NUL");
    headers_.emplace_back(std::move(name), std::move(value));
    return *this;
  }
  response& body(std::string b) {
    body_ = std::move(b);
    return *this;
  }
  /// Frames written before anything else on a stream (e.g. `retry:` or a replay).
  response& prelude(frame f) {
    prelude_.push_back(std::move(f));
    return *this;
  }

  int status() const noexcept { return status_; }
  std::vector<std::pair<std::string, std::string>> const& headers() const noexcept {
    return headers_;
  }
  std::string const& body() const noexcept { return body_; }
  bool is_stream() const noexcept { return source_.index() != 0; }

  // For the server.
  using source_type =
      std::variant<std::monostate, std::shared_ptr<subscription>, event_stream>;
  source_type& source() noexcept { return source_; }
  std::vector<frame>& prelude_frames() noexcept { return prelude_; }

private:
  int status_;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::string body_;
  source_type source_;
  std::vector<frame> prelude_;
};

/// The reason phrase for a status code.
inline char const* reason_phrase(int status) noexcept {
  switch (status) {
  case 100: return "Continue";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 503: return "Service Unavailable";
  case 505: return "HTTP Version Not Supported";
  default: return "Unknown";
  }
}

} // namespace sse
