#pragma once

/// The HTTP/1.1 side of `sse::client`: URLs, the request, the response head and the chunked
/// body. Lenient where clients are (a lone LF ends a line), strict where a mistake would
/// misframe the body (lengths, chunk sizes), and bounded everywhere.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sse::detail::client_http {

inline char lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size())
    return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i]))
      return false;
  return true;
}

inline bool istarts_with(std::string_view s, std::string_view prefix) noexcept {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

inline std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

/// RFC 9110 token characters (header names).
inline bool is_token(std::string_view s) noexcept {
  if (s.empty())
    return false;
  for (char c : s) {
    auto const u = static_cast<unsigned char>(c);
    bool const alnum = (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z');
    if (!alnum && std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos)
      return false;
  }
  return true;
}

/// A header value we may send: no CR, LF or NUL (nothing that could end the line early).
inline bool is_safe_value(std::string_view s) noexcept {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

/// An absolute http(s) URL, split.
struct url {
  bool secure = false;
  std::string host; ///< without brackets for IPv6
  std::uint16_t port = 80;
  std::string target = "/"; ///< path and query, never the fragment

  /// scheme://host:port, to tell whether a redirect leaves the origin.
  bool same_origin(url const& o) const noexcept {
    return secure == o.secure && iequals(host, o.host) && port == o.port;
  }
  /// The Host header's value: the port only when it is not the scheme's default.
  std::string host_header() const {
    std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    if (port != (secure ? 443 : 80))
      h += ":" + std::to_string(port);
    return h;
  }
  std::string str() const {
    return std::string(secure ? "https://" : "http://") + host_header() + target;
  }
};

/// Parses "http://host[:port][/path][?query][#fragment]" (or https). nullopt if it is not one.
inline std::optional<url> parse_url(std::string_view s) {
  url u;
  if (istarts_with(s, "http://")) {
    s.remove_prefix(7);
  } else if (istarts_with(s, "https://")) {
    u.secure = true;
    u.port = 443;
    s.remove_prefix(8);
  } else {
    return std::nullopt;
  }
  auto const end_of_authority = s.find_first_of("/?#");
  std::string_view authority = s.substr(0, end_of_authority);
  std::string_view rest = end_of_authority == std::string_view::npos ? std::string_view{}
                                                                     : s.substr(end_of_authority);
  if (authority.find('@') != std::string_view::npos)
    return std::nullopt; // credentials in the URL: refused rather than sent in the clear
  std::string_view host = authority, port;
  if (!authority.empty() && authority.front() == '[') {
    auto const close = authority.find(']');
    if (close == std::string_view::npos)
      return std::nullopt;
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':')
        return std::nullopt;
      port = after.substr(1);
    }
  } else if (auto const colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty() || !is_safe_value(host) || host.find_first_of(" \t") != std::string_view::npos)
    return std::nullopt;
  if (!port.empty()) {
    unsigned long p = 0;
    if (port.size() > 5)
      return std::nullopt;
    for (char c : port) {
      if (c < '0' || c > '9')
        return std::nullopt;
      p = p * 10 + static_cast<unsigned long>(c - '0');
    }
    if (p == 0 || p > 65535)
      return std::nullopt;
    u.port = static_cast<std::uint16_t>(p);
  }
  u.host = std::string(host);
  rest = rest.substr(0, rest.find('#'));
  if (rest.empty())
    u.target = "/";
  else if (rest.front() == '?')
    u.target = "/" + std::string(rest);
  else
    u.target = std::string(rest);
  for (char c : u.target)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      return std::nullopt; // spaces and controls must be percent-encoded by the caller
  return u;
}

/// A redirect's Location against the URL it came from: absolute, scheme-relative ("//host/"),
/// path-absolute ("/p") or relative to the current directory.
inline std::optional<url> resolve_location(url const& base, std::string_view loc) {
  loc = trim(loc);
  if (istarts_with(loc, "http://") || istarts_with(loc, "https://"))
    return parse_url(loc);
  if (loc.size() >= 2 && loc[0] == '/' && loc[1] == '/')
    return parse_url(std::string(base.secure ? "https:" : "http:") + std::string(loc));
  std::string path;
  if (!loc.empty() && loc.front() == '/') {
    path = std::string(loc);
  } else {
    std::string dir = base.target.substr(0, base.target.find('?'));
    dir = dir.substr(0, dir.rfind('/') + 1);
    path = dir + std::string(loc);
  }
  path = path.substr(0, path.find('#'));
  for (char c : path)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      return std::nullopt;
  url r = base;
  r.target = path.empty() ? "/" : path;
  return r;
}

/// A response head, parsed.
struct response_head {
  int status = 0;
  int minor_version = 1;
  std::vector<std::pair<std::string, std::string>> fields;

  std::optional<std::string_view> field(std::string_view name) const {
    for (auto const& f : fields)
      if (iequals(f.first, name))
        return std::string_view(f.second);
    return std::nullopt;
  }
};

/// Where the head ends in `buf`: the offset just past its blank line (CRLF CRLF, or lone LFs),
/// or npos while incomplete.
inline std::size_t find_head_end(std::string_view buf) noexcept {
  for (std::size_t i = buf.find('\n'); i != std::string_view::npos; i = buf.find('\n', i + 1)) {
    std::size_t j = i + 1;
    if (j < buf.size() && buf[j] == '\r')
      ++j;
    if (j < buf.size() && buf[j] == '\n')
      return j + 1;
  }
  return std::string_view::npos;
}

/// Parses a complete head (as found by find_head_end). nullopt if it is not HTTP/1.x.
inline std::optional<response_head> parse_head(std::string_view head) {
  response_head r;
  auto next_line = [&head]() -> std::string_view {
    auto const nl = head.find('\n');
    std::string_view l = head.substr(0, nl);
    head.remove_prefix(nl == std::string_view::npos ? head.size() : nl + 1);
    if (!l.empty() && l.back() == '\r')
      l.remove_suffix(1);
    return l;
  };
  std::string_view status_line = next_line();
  // HTTP/1.x SP 3DIGIT [SP reason]
  if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." || status_line[8] != ' ')
    return std::nullopt;
  if (status_line[7] < '0' || status_line[7] > '9')
    return std::nullopt;
  r.minor_version = status_line[7] - '0';
  for (std::size_t i = 9; i < 12; ++i) {
    if (status_line[i] < '0' || status_line[i] > '9')
      return std::nullopt;
    r.status = r.status * 10 + (status_line[i] - '0');
  }
  if (status_line.size() > 12 && status_line[12] != ' ')
    return std::nullopt;
  for (;;) {
    std::string_view l = next_line();
    if (l.empty())
      break;
    auto const colon = l.find(':');
    if (colon == std::string_view::npos || !is_token(l.substr(0, colon)))
      return std::nullopt; // obs-fold, a space before the colon, or no colon at all
    std::string_view const value = trim(l.substr(colon + 1));
    if (value.find('\0') != std::string_view::npos)
      return std::nullopt;
    r.fields.emplace_back(std::string(l.substr(0, colon)), std::string(value));
  }
  return r;
}

/// The media type of a Content-Type value, lower-cased, without parameters.
inline std::string media_type(std::string_view content_type) {
  std::string_view t = trim(content_type.substr(0, content_type.find(';')));
  std::string r(t);
  for (char& c : r)
    c = lower(c);
  return r;
}

/// A decimal Content-Length; nullopt if it is not one (or overflows).
inline std::optional<std::uint64_t> parse_length(std::string_view v) {
  v = trim(v);
  if (v.empty() || v.size() > 18)
    return std::nullopt;
  std::uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9')
      return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return n;
}

/// Decodes `Transfer-Encoding: chunked` incrementally, in any split, with its control lines
/// (sizes, extensions, trailers) bounded.
class chunked_decoder {
public:
  enum class result { more, done, bad };

  /// Feeds `in`; calls `sink(std::string_view)` with each piece of body data. `done` once the
  /// last chunk and trailers are read (`rest()` is what followed), `bad` on malformed framing.
  template <class Sink>
  result feed(std::string_view in, Sink&& sink) {
    std::size_t i = 0;
    while (i < in.size()) {
      switch (state_) {
      case state::data: {
        std::size_t const n =
            static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, in.size() - i));
        sink(in.substr(i, n));
        i += n;
        remaining_ -= n;
        if (remaining_ == 0)
          state_ = state::data_end;
        break;
      }
      case state::size:
      case state::data_end:
      case state::trailer: {
        char const c = in[i++];
        if (c != '\n') {
          if (line_.size() >= max_control_line)
            return result::bad;
          line_.push_back(c);
          break;
        }
        if (!line_.empty() && line_.back() == '\r')
          line_.pop_back();
        if (!on_line())
          return result::bad;
        line_.clear();
        if (state_ == state::finished) {
          rest_ = in.substr(i);
          return result::done;
        }
        break;
      }
      case state::finished:
        return result::done;
      }
    }
    return state_ == state::finished ? result::done : result::more;
  }

  std::string_view rest() const noexcept { return rest_; }

private:
  static constexpr std::size_t max_control_line = 4096;
  enum class state { size, data, data_end, trailer, finished };

  bool on_line() {
    switch (state_) {
    case state::size: {
      std::string_view s = line_;
      s = trim(s.substr(0, s.find(';')));
      if (s.empty() || s.size() > 15)
        return false;
      std::uint64_t n = 0;
      for (char c : s) {
        int v = (c >= '0' && c <= '9')   ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : -1;
        if (v < 0)
          return false;
        n = n * 16 + static_cast<std::uint64_t>(v);
      }
      remaining_ = n;
      state_ = n == 0 ? state::trailer : state::data;
      return true;
    }
    case state::data_end:
      if (!line_.empty())
        return false; // chunk data longer than its size said
      state_ = state::size;
      return true;
    case state::trailer:
      if (line_.empty())
        state_ = state::finished;
      else if (++trailers_ > 100)
        return false;
      return true;
    default:
      return false;
    }
  }

  state state_ = state::size;
  std::uint64_t remaining_ = 0;
  std::string line_;
  std::size_t trailers_ = 0;
  std::string_view rest_;
};

} // namespace sse::detail::client_http
