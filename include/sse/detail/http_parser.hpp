#ifndef SSE_DETAIL_HTTP_PARSER_HPP
#define SSE_DETAIL_HTTP_PARSER_HPP

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sse::detail {

/// Bounds on what one request may make the parser hold; every limit is checked as bytes arrive.
struct parser_limits {
  std::size_t max_request_line = 8 * 1024;  ///< request line without its line end
  std::size_t max_header_line = 8 * 1024;   ///< one field line without its line end -> 431
  std::size_t max_header_bytes = 64 * 1024; ///< whole header (or trailer) section -> 431
  std::size_t max_headers = 100;            ///< fields per header (or trailer) section -> 431
  std::size_t max_body = 1024 * 1024;       ///< decoded body -> 413
  std::size_t max_chunk_ext = 1024;         ///< extension bytes of one chunk-size line -> 400
  /// Accept a lone LF as a line end in the head (RFC 9112 section 2.2 allows it); off: 400,
  /// because a proxy in front that disagrees about line ends can be used to smuggle requests.
  bool accept_bare_lf = false;
};

/// One header field: the name as received, the value with surrounding whitespace trimmed.
struct header_field {
  std::string name;
  std::string value;
};

/// Text helpers of the parser, kept apart so other detail headers cannot collide with them.
namespace parse_util {

/// ASCII case-insensitive equality, as field names and most header tokens require.
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto x = static_cast<unsigned char>(a[i]);
    auto y = static_cast<unsigned char>(b[i]);
    if (x >= 'A' && x <= 'Z') x = static_cast<unsigned char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<unsigned char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

/// Strips optional whitespace (SP / HTAB) from both ends.
inline std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

/// Calls f(element) for each comma-separated element of a field value, trimmed, empty ones
/// included.
template <class F>
void for_each_list_element(std::string_view list, F&& f) {
  for (;;) {
    const auto comma = list.find(',');
    f(trim_ows(list.substr(0, comma)));
    if (comma == std::string_view::npos) return;
    list.remove_prefix(comma + 1);
  }
}

/// Value of a hex digit, or -1.
inline int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

} // namespace parse_util

/// A parsed HTTP/1.x request.
struct request {
  std::string method; ///< as received (methods are case-sensitive)
  std::string target; ///< raw request-target
  std::string path;   ///< raw path of the target, before '?'; "*" for asterisk-form
  std::string query;  ///< raw query without '?', may be empty
  int version_minor = 1;
  int version_major = 1; ///< 2: it came over HTTP/2 (version_minor 0)
  bool secure = false;   ///< it came over TLS
  std::vector<header_field> headers;
  std::string body; ///< de-chunked

  /// First field with this name (ASCII case-insensitive), or nullopt.
  std::optional<std::string_view> header(std::string_view name) const {
    for (const auto& f : headers)
      if (parse_util::iequals(f.name, name)) return std::string_view(f.value);
    return std::nullopt;
  }

  /// Whether the connection may carry another request (RFC 9112 section 9.3).
  bool keep_alive() const {
    bool close = false;
    bool keep = false;
    for (const auto& f : headers) {
      if (!parse_util::iequals(f.name, "connection")) continue;
      parse_util::for_each_list_element(f.value, [&](std::string_view token) {
        if (parse_util::iequals(token, "close")) close = true;
        if (parse_util::iequals(token, "keep-alive")) keep = true;
      });
    }
    if (close) return false;
    return version_minor == 1 || keep;
  }

  /// Expect: 100-continue; HTTP/1.0 clients cannot understand an interim response.
  bool expects_continue() const {
    if (version_minor != 1) return false;
    const auto expect = header("expect");
    return expect && parse_util::iequals(parse_util::trim_ows(*expect), "100-continue");
  }
};

/// Strict, incremental HTTP/1.1 request parser (RFC 9110 / 9112).
///
/// Each byte is examined once, so parsing is linear in the input however it is split, and
/// feeding a byte at a time gives the same result as feeding everything at once. Nothing is
/// buffered beyond the limits: an over-long line is refused as soon as it crosses its limit.
/// Lines end in CRLF; a lone LF is refused (400) unless `parser_limits::accept_bare_lf`, and
/// chunked framing (size lines, data ends, trailers) must use CRLF whatever the setting, since
/// disagreeing about line or chunk boundaries is how requests are smuggled.
class request_parser {
public:
  enum class status { need_more, complete, error };

  explicit request_parser(parser_limits limits = {}) : limits_(limits) {}

  /// Consumes bytes of one request and returns how many were used. Stops right after a
  /// complete request (pipelined bytes stay with the caller; call reset() before feeding them)
  /// and right after the byte that caused an error.
  std::size_t feed(const char* data, std::size_t size) {
    std::size_t used = 0;
    while (used < size && phase_ != phase::done && phase_ != phase::failed) {
      if (phase_ == phase::body || phase_ == phase::chunk_data) {
        // Body bytes need no inspection: copy as much of the remaining length as is here.
        const auto avail = static_cast<std::uint64_t>(size - used);
        const auto n = static_cast<std::size_t>(remaining_ < avail ? remaining_ : avail);
        request_.body.append(data + used, n);
        used += n;
        remaining_ -= n;
        if (remaining_ == 0) phase_ = phase_ == phase::body ? phase::done : phase::chunk_data_cr;
        continue;
      }
      consume(static_cast<unsigned char>(data[used]));
      ++used;
    }
    return used;
  }

  status state() const noexcept {
    if (phase_ == phase::done) return status::complete;
    if (phase_ == phase::failed) return status::error;
    return status::need_more;
  }

  /// True once the header block has been parsed and validated, so a server can answer
  /// 100-continue (or refuse) before the body arrives.
  bool header_complete() const noexcept { return header_complete_; }

  /// 400, 413, 414, 431, 501 or 505 when state() == error, else 0.
  int error_status() const noexcept { return error_status_; }

  /// Short human-readable cause of the error, empty when there is none.
  std::string_view error_reason() const noexcept { return error_reason_; }

  /// The parsed request; complete once state() == complete.
  request& get() noexcept { return request_; }

  /// Moves the request out; call reset() before parsing the next one.
  request release() { return std::move(request_); }

  /// Prepares for the next request on the same connection, keeping the limits.
  void reset() {
    const auto limits = limits_;
    *this = request_parser(limits);
  }

  const parser_limits& limits() const noexcept { return limits_; }

private:
  /// Ordered so that byte accounting can test a range for the request line and field sections.
  enum class phase : unsigned char {
    line_start,    // before the request line; empty lines are skipped
    line_start_lf, // CR seen before the request line
    method,
    target,
    version,
    request_line_lf,
    field_start, // start of a field line, or the empty line ending the section
    field_name,
    field_value_lead,
    field_value,
    field_lf,   // CR seen at the end of a field line
    section_lf, // CR seen on the empty line ending the section
    chunk_size,
    chunk_size_ws,
    chunk_ext,
    chunk_size_lf,
    chunk_data,
    chunk_data_cr,
    chunk_data_lf,
    body,
    done,
    failed
  };

  /// RFC 9112 section 2.2 asks to ignore at least one; a few more tolerate sloppy clients
  /// without letting a peer stream empty lines forever.
  static constexpr std::size_t max_leading_empty_lines = 4;
  /// 16 hex digits already exceed any sane body; more can only be an overflow attempt.
  static constexpr std::size_t max_chunk_size_digits = 16;
  static constexpr std::uint64_t max_content_length = 9223372036854775807ULL; // 2^63-1
  static constexpr std::string_view bare_lf = "bare LF as a line end (CRLF required)";

  static bool is_tchar(unsigned char c) noexcept {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
  }

  void fail(int code, std::string_view reason) {
    phase_ = phase::failed;
    error_status_ = code;
    error_reason_ = reason;
  }

  bool in_field_section() const noexcept {
    return phase_ >= phase::field_start && phase_ <= phase::section_lf;
  }

  bool in_request_line() const noexcept { return phase_ <= phase::version; }

  /// Charges one byte to the limits of the line or section it belongs to; false once over.
  bool account(unsigned char c) {
    const bool line_end = c == '\r' || c == '\n';
    if (in_request_line()) {
      if (line_end || phase_ == phase::line_start_lf || ++line_len_ <= limits_.max_request_line)
        return true;
      // Over the limit: blame the part being read when it was crossed.
      if (phase_ == phase::target)
        fail(414, "request-target too long");
      else if (phase_ == phase::version)
        fail(431, "request line too long");
      else
        fail(501, "method too long"); // RFC 9112 section 3: longer than any implemented
      return false;
    }
    if (!in_field_section()) return true;
    if (++section_bytes_ > limits_.max_header_bytes) {
      fail(431, in_trailers_ ? "trailer section too large" : "header section too large");
      return false;
    }
    if (!line_end && phase_ != phase::field_lf && phase_ != phase::section_lf &&
        ++line_len_ > limits_.max_header_line) {
      fail(431, in_trailers_ ? "trailer field line too long" : "header field line too long");
      return false;
    }
    return true;
  }

  void consume(unsigned char c) {
    if (!account(c)) return;
    switch (phase_) {
    case phase::line_start:
      if (c == '\r') {
        phase_ = phase::line_start_lf;
        return;
      }
      if (c == '\n') {
        if (!limits_.accept_bare_lf) return fail(400, bare_lf);
        return skip_empty_line();
      }
      phase_ = phase::method;
      [[fallthrough]];
    case phase::method:
      if (is_tchar(c)) {
        request_.method.push_back(static_cast<char>(c));
        return;
      }
      if (c == ' ' && !request_.method.empty()) {
        phase_ = phase::target;
        return;
      }
      if (c == ' ') return fail(400, "empty method");
      if (c == '\r' || c == '\n') return fail(400, "request line without a target");
      return fail(400, "invalid character in method");
    case phase::line_start_lf:
      if (c == '\n') return skip_empty_line();
      return fail(400, "bare CR before the request line");
    case phase::target:
      if (c == ' ') return end_target();
      if (c == '\r' || c == '\n') return fail(400, "request line without an HTTP version");
      if (c <= 0x20 || c == 0x7f) return fail(400, "control character in request-target");
      if (c == '#') return fail(400, "fragment in request-target");
      request_.target.push_back(static_cast<char>(c));
      return;
    case phase::version:
      return on_version(c);
    case phase::request_line_lf:
      if (c == '\n') return end_request_line();
      return fail(400, "bare CR in request line");
    case phase::field_start:
      if (c == '\r') {
        phase_ = phase::section_lf;
        return;
      }
      if (c == '\n') {
        // Chunked framing stays strict whatever the setting: lenient chunk parsing is a known
        // smuggling vector.
        if (in_trailers_) return fail(400, "trailer section must end in CRLF");
        if (!limits_.accept_bare_lf) return fail(400, bare_lf);
        return end_section();
      }
      if (c == ' ' || c == '\t') return fail(400, "obs-fold or whitespace before a field name");
      if (field_count_ == limits_.max_headers) {
        return fail(431, in_trailers_ ? "too many trailer fields" : "too many header fields");
      }
      ++field_count_;
      if (!in_trailers_) request_.headers.emplace_back();
      phase_ = phase::field_name;
      [[fallthrough]];
    case phase::field_name:
      if (is_tchar(c)) {
        if (!in_trailers_) request_.headers.back().name.push_back(static_cast<char>(c));
        field_name_empty_ = false;
        return;
      }
      if (c == ':') {
        if (field_name_empty_) return fail(400, "empty field name");
        phase_ = phase::field_value_lead;
        return;
      }
      if (c == ' ' || c == '\t') return fail(400, "whitespace between field name and colon");
      if (c == '\r' || c == '\n') return fail(400, "field line without a colon");
      return fail(400, "invalid character in field name");
    case phase::field_value_lead:
      if (c == ' ' || c == '\t') return;
      phase_ = phase::field_value;
      [[fallthrough]];
    case phase::field_value:
      if (c == '\r') {
        phase_ = phase::field_lf;
        return;
      }
      if (c == '\n') {
        if (in_trailers_) return fail(400, "trailer field line must end in CRLF");
        if (!limits_.accept_bare_lf) return fail(400, bare_lf);
        return end_field();
      }
      if (c == 0) return fail(400, "NUL in field value");
      // obs-text (0x80-0xFF) is allowed in values; other CTLs and DEL are not.
      if ((c < 0x20 && c != '\t') || c == 0x7f)
        return fail(400, "control character in field value");
      if (!in_trailers_) request_.headers.back().value.push_back(static_cast<char>(c));
      return;
    case phase::field_lf:
      if (c == '\n') return end_field();
      return fail(400, "bare CR in field line");
    case phase::section_lf:
      if (c == '\n') return end_section();
      return fail(400, "bare CR in header section");
    case phase::chunk_size:
      return on_chunk_size(c);
    case phase::chunk_size_ws:
      // BWS before ';' is in the grammar; it counts against the extension budget so a line
      // of blanks cannot go on forever.
      if (++chunk_ext_len_ > limits_.max_chunk_ext) return fail(400, "chunk extension too long");
      if (c == ' ' || c == '\t') return;
      if (c == ';') {
        phase_ = phase::chunk_ext;
        return;
      }
      return fail(400, "invalid character after chunk size");
    case phase::chunk_ext:
      if (c == '\r') {
        phase_ = phase::chunk_size_lf;
        return;
      }
      if (c == '\n') return fail(400, "chunk size line must end in CRLF");
      if ((c < 0x20 && c != '\t') || c == 0x7f) {
        return fail(400, "control character in chunk extension");
      }
      if (++chunk_ext_len_ > limits_.max_chunk_ext) return fail(400, "chunk extension too long");
      return;
    case phase::chunk_size_lf:
      if (c == '\n') return end_chunk_size();
      return fail(400, "bare CR in chunk size line");
    case phase::chunk_data_cr:
      if (c == '\r') {
        phase_ = phase::chunk_data_lf;
        return;
      }
      return fail(400, "chunk data not followed by CRLF");
    case phase::chunk_data_lf:
      if (c != '\n') return fail(400, "chunk data not followed by CRLF");
      phase_ = phase::chunk_size;
      chunk_size_ = 0;
      chunk_digits_ = 0;
      chunk_ext_len_ = 0;
      return;
    case phase::chunk_data:
    case phase::body:
    case phase::done:
    case phase::failed:
      return; // handled in feed(), never reached per byte
    }
  }

  void skip_empty_line() {
    if (++empty_lines_ > max_leading_empty_lines) return fail(400, "too many empty lines");
    phase_ = phase::line_start;
  }

  /// Splits the target into path and query; only the forms a server may receive are valid.
  void end_target() {
    const std::string_view t = request_.target;
    if (t.empty()) return fail(400, "empty request-target");
    std::string_view rest;
    if (t.front() == '/') {
      rest = t;
    } else if (t == "*") {
      if (request_.method != "OPTIONS") return fail(400, "asterisk-form is only for OPTIONS");
      request_.path = "*";
      phase_ = phase::version;
      return;
    } else {
      std::size_t scheme_len = 0;
      if (t.size() >= 7 && parse_util::iequals(t.substr(0, 7), "http://"))
        scheme_len = 7;
      else if (t.size() >= 8 && parse_util::iequals(t.substr(0, 8), "https://"))
        scheme_len = 8;
      if (scheme_len == 0) return fail(400, "unsupported request-target form");
      rest = t.substr(scheme_len);
      const auto authority_end = rest.find_first_of("/?");
      const auto authority = rest.substr(0, authority_end);
      if (authority.empty()) return fail(400, "absolute-form without a host");
      // RFC 9110 section 4.2.4: userinfo in an http(s) URI is to be treated as an error.
      if (authority.find('@') != std::string_view::npos)
        return fail(400, "userinfo in request-target");
      rest =
          authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
    }
    const auto q = rest.find('?');
    request_.path = std::string(rest.substr(0, q));
    if (request_.path.empty()) request_.path = "/";
    if (q != std::string_view::npos) request_.query = std::string(rest.substr(q + 1));
    phase_ = phase::version;
  }

  /// Matches "HTTP/" DIGIT "." DIGIT, then only a line end may follow.
  void on_version(unsigned char c) {
    static constexpr std::string_view prefix = "HTTP/";
    if (version_pos_ == 8) {
      if (c == '\r') {
        phase_ = phase::request_line_lf;
        return;
      }
      if (c == '\n') {
        if (!limits_.accept_bare_lf) return fail(400, bare_lf);
        return end_request_line();
      }
      return fail(400, "malformed HTTP version");
    }
    const bool digit = c >= '0' && c <= '9';
    bool ok = false;
    if (version_pos_ < prefix.size())
      ok = c == static_cast<unsigned char>(prefix[version_pos_]);
    else if (version_pos_ == 6)
      ok = c == '.';
    else
      ok = digit;
    if (!ok) return fail(400, "malformed HTTP version");
    if (version_pos_ == 5) version_major_ = c - '0';
    if (version_pos_ == 7) version_minor_ = c - '0';
    ++version_pos_;
  }

  void end_request_line() {
    if (version_major_ != 1 || version_minor_ > 1) return fail(505, "HTTP version not supported");
    request_.version_minor = version_minor_;
    start_section();
  }

  void start_section() {
    phase_ = phase::field_start;
    line_len_ = 0;
    section_bytes_ = 0;
    field_count_ = 0;
  }

  void end_field() {
    if (!in_trailers_) {
      auto& value = request_.headers.back().value;
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
        value.pop_back();
    }
    phase_ = phase::field_start;
    line_len_ = 0;
    field_name_empty_ = true;
  }

  void end_section() {
    if (in_trailers_) {
      phase_ = phase::done; // trailer fields were validated and are dropped
      return;
    }
    validate_headers();
  }

  /// Framing rules of RFC 9112 section 6: exactly one way to find the body's end.
  void validate_headers() {
    std::size_t hosts = 0;
    bool has_length = false;
    bool has_te = false;
    std::string te;
    for (const auto& f : request_.headers) {
      if (parse_util::iequals(f.name, "host")) {
        ++hosts;
      } else if (parse_util::iequals(f.name, "content-length")) {
        has_length = true;
      } else if (parse_util::iequals(f.name, "transfer-encoding")) {
        if (has_te) te += ", ";
        te += f.value;
        has_te = true;
      }
    }
    if (request_.version_minor == 1 && hosts == 0) return fail(400, "missing Host header");
    if (request_.version_minor == 1 && hosts > 1) return fail(400, "more than one Host header");
    if (has_te) {
      // Both framings at once is the classic smuggling setup: refuse rather than pick one.
      if (has_length) return fail(400, "Content-Length and Transfer-Encoding together");
      if (request_.version_minor == 0) return fail(400, "Transfer-Encoding in HTTP/1.0");
      if (!parse_util::iequals(parse_util::trim_ows(te), "chunked"))
        return fail(501, "Transfer-Encoding other than chunked");
      header_complete_ = true;
      phase_ = phase::chunk_size;
      return;
    }
    std::uint64_t length = 0;
    if (has_length) {
      const auto reason = parse_content_length(length);
      if (!reason.empty()) return fail(400, reason);
      if (length > limits_.max_body) return fail(413, "Content-Length over the body limit");
    }
    header_complete_ = true;
    remaining_ = length;
    phase_ = length == 0 ? phase::done : phase::body;
  }

  /// Reads every Content-Length field (each possibly a list) into one value; returns the
  /// reason on failure, empty on success.
  std::string_view parse_content_length(std::uint64_t& length) const {
    std::string_view reason;
    bool seen = false;
    for (const auto& f : request_.headers) {
      if (!parse_util::iequals(f.name, "content-length")) continue;
      parse_util::for_each_list_element(f.value, [&](std::string_view element) {
        if (element.empty()) {
          reason = "empty Content-Length";
          return;
        }
        std::uint64_t value = 0;
        for (const char ch : element) {
          if (ch < '0' || ch > '9') {
            reason = "invalid Content-Length";
            return;
          }
          const auto digit = static_cast<std::uint64_t>(ch - '0');
          if (value > (max_content_length - digit) / 10) {
            reason = "Content-Length too large";
            return;
          }
          value = value * 10 + digit;
        }
        if (seen && value != length) reason = "conflicting Content-Length values";
        length = value;
        seen = true;
      });
    }
    return reason;
  }

  void on_chunk_size(unsigned char c) {
    const int digit = parse_util::hex_value(static_cast<char>(c));
    if (digit >= 0) {
      if (++chunk_digits_ > max_chunk_size_digits)
        return fail(400, "chunk size over 16 hex digits");
      chunk_size_ = chunk_size_ * 16 + static_cast<std::uint64_t>(digit);
      return;
    }
    if (chunk_digits_ == 0) {
      if (c == '-') return fail(400, "negative chunk size");
      return fail(400, "missing chunk size");
    }
    if (c == ';') {
      phase_ = phase::chunk_ext;
      return;
    }
    if (c == ' ' || c == '\t') {
      phase_ = phase::chunk_size_ws;
      ++chunk_ext_len_;
      return;
    }
    if (c == '\r') {
      phase_ = phase::chunk_size_lf;
      return;
    }
    if (c == '\n') return fail(400, "chunk size line must end in CRLF");
    return fail(400, "invalid character after chunk size");
  }

  void end_chunk_size() {
    if (chunk_size_ == 0) {
      in_trailers_ = true;
      start_section();
      return;
    }
    // Refuse before reading the data, so the body never grows past the limit.
    const auto room = static_cast<std::uint64_t>(limits_.max_body - request_.body.size());
    if (chunk_size_ > room) return fail(413, "chunked body over the body limit");
    remaining_ = chunk_size_;
    phase_ = phase::chunk_data;
  }

  parser_limits limits_;
  request request_;
  phase phase_ = phase::line_start;
  bool header_complete_ = false;
  bool in_trailers_ = false;
  bool field_name_empty_ = true;
  int error_status_ = 0;
  std::string_view error_reason_;
  std::size_t empty_lines_ = 0;
  std::size_t line_len_ = 0;      // bytes of the current line, line end excluded
  std::size_t section_bytes_ = 0; // bytes of the current header or trailer section
  std::size_t field_count_ = 0;
  std::size_t version_pos_ = 0;
  int version_major_ = 0;
  int version_minor_ = 0;
  std::uint64_t remaining_ = 0; // body or chunk bytes still to copy
  std::uint64_t chunk_size_ = 0;
  std::size_t chunk_digits_ = 0;
  std::size_t chunk_ext_len_ = 0;
};

/// Percent-decodes `in` into `out`; false (and `out` cleared) on a malformed escape such as
/// "%G1" or a trailing "%". With plus_as_space, '+' becomes ' ' (form encoding).
inline bool percent_decode(std::string_view in, std::string& out, bool plus_as_space = false) {
  using parse_util::hex_value;
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      const int hi = i + 2 < in.size() ? hex_value(in[i + 1]) : -1;
      const int lo = i + 2 < in.size() ? hex_value(in[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        out.clear();
        return false;
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(plus_as_space && c == '+' ? ' ' : c);
    }
  }
  return true;
}

/// Splits "a=1&b=&c&a=2" into decoded (name, value) pairs in order, '+' read as a space and
/// empty segments skipped; false (and `out` cleared) if any escape is malformed.
inline bool parse_query(std::string_view query,
                        std::vector<std::pair<std::string, std::string>>& out) {
  out.clear();
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    const auto eq = part.find('=');
    std::string name;
    std::string value;
    if (!percent_decode(part.substr(0, eq), name, true) ||
        (eq != std::string_view::npos && !percent_decode(part.substr(eq + 1), value, true))) {
      out.clear();
      return false;
    }
    out.emplace_back(std::move(name), std::move(value));
  }
  return true;
}

} // namespace sse::detail

#endif // SSE_DETAIL_HTTP_PARSER_HPP
