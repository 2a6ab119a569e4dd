#pragma once

/// Spec-exact event-stream frames (WHATWG HTML, "Server-sent events").

#include <sse/detail/utf8.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace sse {

namespace detail {

[[noreturn]] inline void throw_field_error(char const* where, char const* field, char const* what) {
  throw std::invalid_argument(std::string(where) + ": " + field + " " + what);
}

inline void check_utf8(char const* where, char const* field, std::string_view v) {
  auto const bad = find_invalid_utf8(v);
  if (bad != std::string_view::npos)
    throw std::invalid_argument(std::string(where) + ": " + field +
                                " is not valid UTF-8 (byte " + std::to_string(bad) + ")");
}

/// A line break inside an event name or id would let the value inject fields of its own.
inline void check_event_name(char const* where, std::string_view name) {
  if (name.find_first_of("\r\n") != std::string_view::npos)
    throw_field_error(where, "event name", "must not contain CR or LF");
  check_utf8(where, "event name", name);
}

/// Clients ignore an id with NUL, so refusing it is kinder than sending a no-op.
inline void check_event_id(char const* where, std::string_view id) {
  if (id.find_first_of("\r\n") != std::string_view::npos)
    throw_field_error(where, "event id", "must not contain CR or LF");
  if (id.find('\0') != std::string_view::npos)
    throw_field_error(where, "event id", "must not contain NUL");
  check_utf8(where, "event id", id);
}

/// Appends `prefix` + each line of `text` + LF; lines break at CRLF, LF and lone CR, as the
/// client splits them, so no byte of `text` can end a line early or start a field.
inline void append_lines(std::string& out, std::string_view prefix, std::string_view text) {
  std::size_t start = 0;
  for (;;) {
    std::size_t const brk = text.find_first_of("\r\n", start);
    out.append(prefix);
    if (brk == std::string_view::npos) {
      out.append(text.substr(start));
      out.push_back('\n');
      return;
    }
    out.append(text.substr(start, brk - start));
    out.push_back('\n');
    start = brk + 1;
    if (text[brk] == '\r' && start < text.size() && text[start] == '\n')
      ++start;
  }
}

/// Exact bytes `append_lines(out, prefix, text)` appends, for reserving once.
inline std::size_t lines_size(std::size_t prefix, std::string_view text) noexcept {
  std::size_t lines = 1, break_bytes = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++lines, ++break_bytes;
    } else if (text[i] == '\r') {
      ++lines, ++break_bytes;
      if (i + 1 < text.size() && text[i + 1] == '\n')
        ++i, ++break_bytes;
    }
  }
  return text.size() - break_bytes + lines * (prefix + 1);
}

} // namespace detail

/// One server-sent event: data, an event name, an id, a retry delay and a comment.
///
/// Setters validate, so an `event` that exists can always be formatted: a name or id that
/// could split the frame throws `std::invalid_argument` naming the field.
class event {
public:
  /// An event with no fields: formats to nothing until a field is set.
  event() = default;

  /// An event carrying `data` (empty data is still one event, with empty data).
  explicit event(std::string data) { this->data(std::move(data)); }

  /// Sets the data; any mix of CR, LF and CRLF line breaks is allowed.
  event& data(std::string value) {
    detail::check_utf8("sse::event", "data", value);
    data_ = std::move(value);
    return *this;
  }
  /// Sets the event name (the `event:` field; the client's default is `message`).
  event& name(std::string value) {
    detail::check_event_name("sse::event", value);
    name_ = std::move(value);
    return *this;
  }
  /// Sets the id; an empty id is sent as `id:` and resets the client's last event id.
  event& id(std::string value) {
    detail::check_event_id("sse::event", value);
    id_ = std::move(value);
    return *this;
  }
  /// Sets the client's reconnection delay.
  event& retry(std::chrono::milliseconds value) {
    if (value.count() < 0)
      throw std::invalid_argument("sse::event: retry must not be negative");
    retry_ = value;
    return *this;
  }
  /// Sets a comment, sent as `: ` lines that clients ignore.
  event& comment(std::string value) {
    detail::check_utf8("sse::event", "comment", value);
    comment_ = std::move(value);
    return *this;
  }

  std::optional<std::string> const& data() const noexcept { return data_; }
  std::string const& name() const noexcept { return name_; }
  std::optional<std::string> const& id() const noexcept { return id_; }
  std::optional<std::chrono::milliseconds> const& retry() const noexcept { return retry_; }
  std::optional<std::string> const& comment() const noexcept { return comment_; }

private:
  std::optional<std::string> data_;
  std::string name_;
  std::optional<std::string> id_;
  std::optional<std::chrono::milliseconds> retry_;
  std::optional<std::string> comment_;
};

/// Bytes `format_to` appends for `ev`; lets a caller reserve exactly once.
inline std::size_t formatted_size(event const& ev) noexcept {
  std::size_t n = 0;
  if (auto const& c = ev.comment())
    n += detail::lines_size(2, *c);
  if (auto const& r = ev.retry())
    n += 8 + std::to_string(r->count()).size();
  if (!ev.name().empty())
    n += 8 + ev.name().size();
  if (auto const& id = ev.id())
    n += 4 + id->size() + (id->empty() ? 0 : 1);
  if (auto const& d = ev.data())
    n += detail::lines_size(6, *d);
  return n == 0 ? 0 : n + 1;
}

namespace detail {
/// `format_to` with `id` in place of the event's own (used by the broker to stamp its ids).
inline void format_to(std::string& out, event const& ev, std::optional<std::string_view> id) {
  std::size_t const before = out.size();
  if (auto const& c = ev.comment())
    append_lines(out, ": ", *c);
  if (auto const& r = ev.retry()) {
    out.append("retry: ");
    out.append(std::to_string(r->count()));
    out.push_back('\n');
  }
  if (!ev.name().empty()) {
    out.append("event: ");
    out.append(ev.name());
    out.push_back('\n');
  }
  if (id) {
    // "id:" alone resets the client's last event id; "id: " would be the same, but be plain.
    out.append(id->empty() ? "id:" : "id: ");
    out.append(*id);
    out.push_back('\n');
  }
  if (auto const& d = ev.data())
    append_lines(out, "data: ", *d);
  if (out.size() != before)
    out.push_back('\n');
}
} // namespace detail

/// Appends the frame for `ev` to `out`: comment, retry, event, id, data lines, blank line.
inline void format_to(std::string& out, event const& ev) {
  auto const& id = ev.id();
  detail::format_to(out, ev, id ? std::optional<std::string_view>(*id) : std::nullopt);
}

/// The frame for `ev` as a new string (empty for an event with no fields).
inline std::string format(event const& ev) {
  std::string out;
  out.reserve(formatted_size(ev));
  format_to(out, ev);
  return out;
}

/// One complete frame: optional `event:` and `id:` lines, one `data: ` line per line of `data`,
/// then a blank line. Empty `event` or `id` are left out.
/// @throws std::invalid_argument if `event` or `id` contain CR or LF, `id` contains NUL, or any
///         of them is not valid UTF-8; the message names the field.
inline std::string format_event(std::string_view data, std::string_view event = {},
                                std::string_view id = {}) {
  char const* const where = "sse::format_event";
  detail::check_event_name(where, event);
  detail::check_event_id(where, id);
  detail::check_utf8(where, "data", data);
  std::string out;
  out.reserve(detail::lines_size(6, data) + event.size() + id.size() + 16);
  if (!event.empty()) {
    out.append("event: ");
    out.append(event);
    out.push_back('\n');
  }
  if (!id.empty()) {
    out.append("id: ");
    out.append(id);
    out.push_back('\n');
  }
  detail::append_lines(out, "data: ", data);
  out.push_back('\n');
  return out;
}

/// A comment frame (`: text`), e.g. a heartbeat; clients ignore it, proxies see traffic.
inline std::string format_comment(std::string_view text = {}) {
  detail::check_utf8("sse::format_comment", "comment", text);
  std::string out;
  detail::append_lines(out, ": ", text);
  out.push_back('\n');
  return out;
}

/// A frame that only sets the client's reconnection delay.
inline std::string format_retry(std::chrono::milliseconds delay) {
  if (delay.count() < 0)
    throw std::invalid_argument("sse::format_retry: retry must not be negative");
  return "retry: " + std::to_string(delay.count()) + "\n\n";
}

} // namespace sse
