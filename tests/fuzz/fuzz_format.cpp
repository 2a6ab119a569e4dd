// libFuzzer harness for sse/format.hpp: every frame, read by the public sse::parser (itself
// checked against the HTML standard by test_parser and fuzz_parser), gives back exactly what
// was formatted (one event with the data, name and id; the retry; the comment), or formatting
// refused a field it had to refuse, and nothing else is refused.
//
// What must be refused is derived here from the standards, not from the library's checks:
// every field must be UTF-8 (a browser decodes the stream as UTF-8, so other bytes would come
// back as U+FFFD; utf8_decode.hpp is that decoder, and sse::parser, which keeps bytes, sees
// what a browser sees exactly when the frame is UTF-8); a name or id with CR or LF would end its
// line and inject fields; a client ignores an id with NUL; a retry is ASCII digits, so a negative
// delay cannot be sent.
//
// Input: byte 0 picks the function, the rest are its arguments (FuzzedDataProvider).

#include "utf8_decode.hpp"

#include <sse/format.hpp>
#include <sse/frame.hpp>
#include <sse/parser.hpp>

#include <fuzzer/FuzzedDataProvider.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using sse::parsed_event;
using sse_fuzz::is_utf8;

/// Sent before each frame so that "no id line" (the last id stays) differs from "id:" (reset).
constexpr std::string_view primer = "id: prior\n\n";
constexpr std::string_view prior_id = "prior";

[[noreturn]] void fail(char const* what, std::string_view frame = {}) {
  std::fprintf(stderr, "fuzz_format: %s\n", what);
  if (!frame.empty()) {
    std::fprintf(stderr, "frame (%zu bytes):", frame.size());
    for (unsigned char c : frame)
      std::fprintf(stderr, " %02x", c);
    std::fprintf(stderr, "\n");
  }
  std::abort();
}

void check(bool ok, char const* what, std::string_view frame = {}) {
  if (!ok) fail(what, frame);
}

bool has_line_break(std::string_view s) {
  return s.find_first_of("\r\n") != std::string_view::npos;
}

bool bad_name(std::string_view s) {
  return has_line_break(s) || !is_utf8(s);
}
bool bad_id(std::string_view s) {
  return has_line_break(s) || s.find('\0') != std::string_view::npos || !is_utf8(s);
}
bool bad_text(std::string_view s) {
  return !is_utf8(s);
}

/// The lines a client splits `text` into (CRLF, lone CR and lone LF each end one).
std::vector<std::string> client_lines(std::string_view text) {
  std::vector<std::string> lines(1);
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' || text[i] == '\n') {
      if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      lines.emplace_back();
    } else {
      lines.back().push_back(text[i]);
    }
  }
  return lines;
}

/// Data as the client's event.data shows it: its lines joined by LF.
std::string client_data(std::string_view data) {
  std::string out;
  auto const lines = client_lines(data);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i) out.push_back('\n');
    out += lines[i];
  }
  return out;
}

/// Comment lines as the parser records them (the text after ':'); the formatter writes ": ".
std::vector<std::string> client_comments(std::string_view comment) {
  auto lines = client_lines(comment);
  for (auto& l : lines)
    l.insert(l.begin(), ' ');
  return lines;
}

/// A refusal must be std::invalid_argument and name a field that is really wrong.
void check_refusal(std::invalid_argument const& e, bool name_bad, bool id_bad, bool data_bad,
                   bool other_bad) {
  std::string_view const what = e.what();
  bool const names_bad_field = (name_bad && what.find("event name") != std::string_view::npos) ||
                               (id_bad && what.find("event id") != std::string_view::npos) ||
                               (data_bad && what.find("data") != std::string_view::npos) ||
                               other_bad;
  if (!names_bad_field) {
    std::fprintf(stderr, "message: %s\n", e.what());
    fail("refused with a message that names no invalid field");
  }
}

/// What a client must see after the primer and one frame.
struct expected {
  std::optional<parsed_event> event; // the one event, or none
  std::string last_event_id{prior_id};
  std::optional<std::chrono::milliseconds> retry;
  std::vector<std::string> comments;
};

/// What sse::parser made of a whole stream, in one feed.
struct client_view {
  std::vector<parsed_event> events;
  std::vector<std::string> comments;
  std::optional<std::chrono::milliseconds> retry;
  std::string last_event_id;
  bool between_events = false;

  explicit client_view(std::string_view stream) {
    // Limits far above what a frame here can reach: a parse_error is a failure.
    sse::parser p(sse::parser_limits{1 << 20, 1 << 20});
    try {
      p.feed(
          stream, [this](parsed_event&& ev) { events.push_back(std::move(ev)); },
          [this](std::string_view text) { comments.emplace_back(text); });
    } catch (sse::parse_error const&) {
      fail("sse::parser refused a formatted frame", stream);
    }
    retry = p.retry();
    last_event_id = p.last_event_id();
    between_events = p.between_events();
  }
};

void check_frame(std::string_view frame, expected const& want) {
  std::string stream(primer);
  stream += frame;
  client_view const once(stream);
  if (want.event) {
    check(once.events.size() == 1, "frame is not exactly one event", frame);
    auto const& got = once.events.front();
    check(got.type == want.event->type, "event type differs", frame);
    check(got.data == want.event->data, "data differs", frame);
    check(got.id == want.event->id, "event's last id differs", frame);
  } else {
    check(once.events.empty(), "frame without data dispatched an event", frame);
  }
  check(once.last_event_id == want.last_event_id, "last event id differs", frame);
  check(once.retry == want.retry, "retry differs", frame);
  check(once.comments == want.comments, "comments differ", frame);
  // Even a frame whose fields act at once (retry, comment) ends with the blank line, so that
  // it is one whole frame to every reader, as the library documents: nothing is left pending
  // that a following frame would be glued to.
  check(once.between_events, "frame leaves a partial line or event pending", frame);

  // Self-contained: the same frame twice is the same event twice.
  stream += frame;
  client_view const twice(stream);
  check(twice.events.size() == (want.event ? 2u : 0u), "two frames are not two events", frame);
  if (want.event) check(twice.events[0] == twice.events[1], "second frame differs", frame);
}

void fuzz_format_event(FuzzedDataProvider& in) {
  std::string const data = in.ConsumeRandomLengthString(1024);
  std::string const name = in.ConsumeRandomLengthString(64);
  std::string const id = in.ConsumeRandomLengthString(64);
  bool const name_bad = bad_name(name), id_bad = bad_id(id), data_bad = bad_text(data);
  std::string frame;
  try {
    frame = sse::format_event(data, name, id);
  } catch (std::invalid_argument const& e) {
    check(name_bad || id_bad || data_bad, "format_event refused a valid event");
    check_refusal(e, name_bad, id_bad, data_bad, false);
    return;
  }
  check(!name_bad, "format_event accepted an invalid event name", frame);
  check(!id_bad, "format_event accepted an invalid event id", frame);
  check(!data_bad, "format_event accepted data that is not UTF-8", frame);
  expected want;
  // An empty id is left out, so the client keeps its last one.
  want.last_event_id = id.empty() ? std::string(prior_id) : id;
  want.event = parsed_event{name.empty() ? "message" : name, client_data(data), want.last_event_id};
  check_frame(frame, want);
}

void fuzz_event(FuzzedDataProvider& in) {
  std::uint8_t const present = in.ConsumeIntegral<std::uint8_t>();
  std::optional<std::string> data, name, id, comment;
  std::optional<std::int64_t> retry;
  if (present & 0x01) data = in.ConsumeRandomLengthString(1024);
  if (present & 0x02) name = in.ConsumeRandomLengthString(64);
  if (present & 0x04) id = in.ConsumeRandomLengthString(64);
  if (present & 0x08) comment = in.ConsumeRandomLengthString(256);
  if (present & 0x10) retry = in.ConsumeIntegral<std::int64_t>();
  bool const data_bad = data && bad_text(*data);
  bool const name_bad = name && bad_name(*name);
  bool const id_bad = id && bad_id(*id);
  bool const comment_bad = comment && bad_text(*comment);
  bool const retry_bad = retry && *retry < 0;
  bool const any_bad = data_bad || name_bad || id_bad || comment_bad || retry_bad;

  sse::event ev;
  try {
    if (data) ev.data(*data);
    if (name) ev.name(*name);
    if (id) ev.id(*id);
    if (comment) ev.comment(*comment);
    if (retry) ev.retry(std::chrono::milliseconds(*retry));
  } catch (std::invalid_argument const& e) {
    check(any_bad, "sse::event refused a valid field");
    std::string_view const what = e.what();
    check_refusal(e, name_bad, id_bad, data_bad,
                  (comment_bad && what.find("comment") != std::string_view::npos) ||
                      (retry_bad && what.find("retry") != std::string_view::npos));
    return;
  }
  check(!any_bad, "sse::event accepted an invalid field");

  std::string const frame = sse::format(ev);
  check(sse::formatted_size(ev) == frame.size(), "formatted_size differs from the frame's size",
        frame);
  std::string appended = "x";
  sse::format_to(appended, ev);
  check(appended.substr(1) == frame, "format_to differs from format", frame);
  check(sse::frame(ev).view() == frame, "sse::frame(event) differs from format", frame);

  bool const any_field = data || (name && !name->empty()) || id || comment || retry;
  check(frame.empty() == !any_field, "frame empty for an event with fields, or the reverse", frame);

  expected want;
  // An event without an id leaves the client's last id; an empty id resets it.
  want.last_event_id = id ? *id : std::string(prior_id);
  if (data) {
    std::string const type = name && !name->empty() ? *name : "message";
    want.event = parsed_event{type, client_data(*data), want.last_event_id};
  }
  if (retry) want.retry = std::chrono::milliseconds(*retry);
  if (comment) want.comments = client_comments(*comment);
  check_frame(frame, want);
}

void fuzz_format_retry(FuzzedDataProvider& in) {
  auto const ms = in.ConsumeIntegral<std::int64_t>();
  std::string frame;
  try {
    frame = sse::format_retry(std::chrono::milliseconds(ms));
  } catch (std::invalid_argument const&) {
    check(ms < 0, "format_retry refused a non-negative delay");
    return;
  }
  check(ms >= 0, "format_retry accepted a negative delay", frame);
  expected want;
  want.retry = std::chrono::milliseconds(ms);
  check_frame(frame, want);
}

void fuzz_format_comment(FuzzedDataProvider& in) {
  std::string const text = in.ConsumeRemainingBytesAsString();
  std::string frame;
  try {
    frame = sse::format_comment(text);
  } catch (std::invalid_argument const& e) {
    check(bad_text(text), "format_comment refused a valid comment");
    check_refusal(e, false, false, false,
                  std::string_view(e.what()).find("comment") != std::string_view::npos);
    return;
  }
  check(!bad_text(text), "format_comment accepted a comment that is not UTF-8", frame);
  expected want;
  want.comments = client_comments(text);
  check_frame(frame, want);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* bytes, std::size_t size) {
  if (size == 0) return 0;
  FuzzedDataProvider in(bytes + 1, size - 1);
  switch (bytes[0] % 4) {
  case 0:
    fuzz_format_event(in);
    break;
  case 1:
    fuzz_event(in);
    break;
  case 2:
    fuzz_format_retry(in);
    break;
  default:
    fuzz_format_comment(in);
    break;
  }
  return 0;
}
