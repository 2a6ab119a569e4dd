#pragma once

/// The client side of an event stream: the HTML standard's "interpreting an event stream",
/// byte for byte, bounded, and in any split.

#include <chrono>
#include <cstddef>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sse {

/// One dispatched event, as EventSource's MessageEvent sees it.
struct parsed_event {
  std::string type = "message"; ///< the event field; "message" when none or empty
  std::string data;             ///< the data lines joined with LF, without the final LF
  std::string id;               ///< the last event id at dispatch (carried across events)

  bool operator==(parsed_event const& o) const {
    return type == o.type && data == o.data && id == o.id;
  }
  bool operator!=(parsed_event const& o) const { return !(*this == o); }
};

/// Bounds of what a parser buffers, so a hostile or broken stream cannot grow it without end.
struct parser_limits {
  std::size_t max_line_bytes = 64 * 1024;   ///< one line, without its line end
  std::size_t max_data_bytes = 1024 * 1024; ///< one event's data, as dispatched
};

/// A stream went past one of the parser's limits; what() names the limit and its value.
class parse_error : public std::runtime_error {
public:
  /// Which of `parser_limits` was exceeded.
  enum class limit { line_bytes, data_bytes };

  parse_error(limit which, std::size_t value)
      : std::runtime_error(message(which, value)), which_(which), value_(value) {}

  limit which() const noexcept { return which_; }
  /// The limit's configured value.
  std::size_t value() const noexcept { return value_; }

private:
  static std::string message(limit which, std::size_t value) {
    return which == limit::line_bytes
               ? "sse::parser: a line is longer than max_line_bytes (" + std::to_string(value) + ")"
               : "sse::parser: an event's data is longer than max_data_bytes (" +
                     std::to_string(value) + ")";
  }

  limit which_;
  std::size_t value_;
};

/// An incremental event-stream parser (WHATWG HTML, "Interpreting an event stream").
///
/// Bytes may be split anywhere, even inside a CRLF or the leading byte order mark: any split
/// gives the same events. Lines are cut with memchr and a complete line inside one feed is
/// never copied; only a line split across feeds is buffered.
///
/// The parser works on bytes and does not decode UTF-8: for valid UTF-8 that is exactly what
/// a browser sees (CR and LF never occur inside a multi-byte sequence), while invalid bytes
/// are passed through where a browser would show U+FFFD.
///
/// Not thread-safe; one parser per connection.
class parser {
public:
  /// @throws std::invalid_argument if a limit is 0.
  explicit parser(parser_limits const& limits = {}) : limits_(limits) {
    if (limits_.max_line_bytes == 0)
      throw std::invalid_argument("sse::parser: max_line_bytes must not be 0");
    if (limits_.max_data_bytes == 0)
      throw std::invalid_argument("sse::parser: max_data_bytes must not be 0");
  }

  /// Parses `bytes`, calling `on_event(parsed_event&&)` for each dispatched event, in order.
  ///
  /// @throws parse_error when a line or an event's data goes past its limit; the events
  ///         before it have been delivered, and the parser is unusable until reset().
  /// An exception from `on_event` propagates, and leaves the parser unusable the same way.
  /// @throws std::logic_error when the parser is unusable, or called from its own callback.
  template <class OnEvent>
  void feed(std::string_view bytes, OnEvent&& on_event) {
    feed(bytes, on_event, [](std::string_view) {});
  }

  /// As above, and calls `on_comment(std::string_view)` for each comment line with the text
  /// after its ':' (a leading space included), which EventSource ignores.
  template <class OnEvent, class OnComment>
  void feed(std::string_view bytes, OnEvent&& on_event, OnComment&& on_comment) {
    if (busy_)
      throw std::logic_error(
          "sse::parser: used after a parse_error or an exception (call reset()), or from its "
          "own callback");
    busy_ = true; // stays set if anything below throws
    bytes = skip_bom(bytes, on_event, on_comment);
    parse(bytes, on_event, on_comment);
    busy_ = false;
  }

  /// Convenience: the events `bytes` dispatch. On parse_error the events of this call before
  /// the error are lost with it; use the callback form to keep them.
  std::vector<parsed_event> feed(std::string_view bytes) {
    std::vector<parsed_event> out;
    feed(bytes, [&out](parsed_event&& ev) { out.push_back(std::move(ev)); });
    return out;
  }

  /// The latest valid retry field: the reconnection time in milliseconds. A value too big for
  /// std::chrono::milliseconds is held as milliseconds::max() (no overflow: saturated).
  std::optional<std::chrono::milliseconds> retry() const noexcept { return retry_; }

  /// The last event id string: set at every dispatch (even of an event without data), sent
  /// back as the Last-Event-ID header on reconnect.
  std::string const& last_event_id() const noexcept { return last_event_id_; }

  /// Bytes of an unterminated line still buffered (e.g. a stream cut mid-line); the first
  /// bytes of a possible BOM, held until it is one or is not, are not shown.
  std::string_view partial_line() const noexcept { return line_; }

  /// Bytes held for this connection: the partial line, the data, type and id buffers. At
  /// most 3 * max_line_bytes + max_data_bytes + 1, whatever the stream.
  std::size_t buffered_bytes() const noexcept {
    return line_.size() + data_.size() + type_.size() + id_buffer_.size();
  }

  /// True between events: the last line was blank (or none came yet) and no line is partly
  /// received, so whatever follows starts a new event. A stream that ends here lost nothing.
  bool between_events() const noexcept {
    return last_line_blank_ && line_.empty() && (bom_done_ || bom_seen_ == 0);
  }

  /// The limits this parser enforces.
  parser_limits const& limits() const noexcept { return limits_; }

  /// A new connection: drops the partial line and the undispatched event, and expects a byte
  /// order mark again; keeps last_event_id() and retry(), as EventSource does on reconnect.
  /// Also makes a parser usable again after a parse_error.
  void reset() {
    line_.clear();
    data_.clear();
    type_.clear();
    // The id buffer starts from the last dispatched id, so an id of the dropped event does
    // not leak into the next one (browsers carry the last event id across reconnects).
    id_buffer_ = last_event_id_;
    bom_seen_ = 0;
    bom_done_ = false;
    after_cr_ = false;
    last_line_blank_ = true;
    busy_ = false;
  }

private:
  static constexpr std::string_view bom = "\xEF\xBB\xBF";

  /// Strips one BOM at the very start of the stream, which may arrive a byte at a time.
  template <class OnEvent, class OnComment>
  std::string_view skip_bom(std::string_view bytes, OnEvent& on_event, OnComment& on_comment) {
    while (!bom_done_ && !bytes.empty()) {
      if (bytes.front() == bom[bom_seen_]) {
        bytes.remove_prefix(1);
        if (++bom_seen_ == bom.size()) bom_done_ = true;
        continue;
      }
      // Not a BOM after all: the bytes held back are the start of the first line.
      bom_done_ = true;
      parse(bom.substr(0, bom_seen_), on_event, on_comment);
    }
    return bytes;
  }

  template <class OnEvent, class OnComment>
  void parse(std::string_view bytes, OnEvent& on_event, OnComment& on_comment) {
    char const* p = bytes.data();
    char const* const end = p + bytes.size();
    if (p == end) return;
    if (after_cr_) {
      after_cr_ = false;
      if (*p == '\n') ++p; // the LF of a CRLF split across feeds
    }
    auto find = [end](char c, char const* from) {
      auto const* hit = static_cast<char const*>(std::memchr(from, c, end - from));
      return hit ? hit : end;
    };
    // The next CR and the next LF, each searched again only once passed, so a stream of
    // lone CRs (or lone LFs) is still one pass per byte class, not one per line.
    char const* cr = p < end ? find('\r', p) : end;
    char const* lf = p < end ? find('\n', p) : end;
    while (p < end) {
      if (cr < p) cr = find('\r', p);
      if (lf < p) lf = find('\n', p);
      char const* const eol = cr < lf ? cr : lf;
      if (eol == end) {
        check_line(line_.size() + static_cast<std::size_t>(end - p));
        line_.append(p, end);
        return;
      }
      std::string_view const piece(p, static_cast<std::size_t>(eol - p));
      if (line_.empty()) {
        check_line(piece.size());
        line(piece, on_event, on_comment);
      } else {
        check_line(line_.size() + piece.size());
        line_.append(piece);
        line(line_, on_event, on_comment);
        line_.clear();
      }
      p = eol + 1;
      if (*eol == '\r') {
        if (p == end)
          after_cr_ = true;
        else if (*p == '\n')
          ++p;
      }
    }
  }

  void check_line(std::size_t size) const {
    if (size > limits_.max_line_bytes)
      throw parse_error(parse_error::limit::line_bytes, limits_.max_line_bytes);
  }

  template <class OnEvent, class OnComment>
  void line(std::string_view l, OnEvent& on_event, OnComment& on_comment) {
    last_line_blank_ = l.empty();
    if (l.empty()) return dispatch(on_event);
    if (l.front() == ':') return static_cast<void>(on_comment(l.substr(1)));
    auto const colon = l.find(':');
    if (colon == std::string_view::npos) return field(l, {});
    std::string_view value = l.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    field(l.substr(0, colon), value);
  }

  void field(std::string_view name, std::string_view value) {
    if (name == "data") {
      // The buffer holds one LF per line; the dispatched data drops the last one.
      if (data_.size() + value.size() > limits_.max_data_bytes)
        throw parse_error(parse_error::limit::data_bytes, limits_.max_data_bytes);
      data_.append(value);
      data_.push_back('\n');
    } else if (name == "event") {
      type_.assign(value);
    } else if (name == "id") {
      if (value.find('\0') == std::string_view::npos) id_buffer_.assign(value);
    } else if (name == "retry") {
      set_retry(value);
    }
    // Any other field is ignored.
  }

  /// "If the field value consists of only ASCII digits"; an empty value is ignored, as
  /// browsers do, and a value past milliseconds::max() saturates instead of overflowing.
  void set_retry(std::string_view value) {
    if (value.empty()) return;
    using rep = std::chrono::milliseconds::rep;
    constexpr rep max = std::chrono::milliseconds::max().count();
    rep ms = 0;
    for (char c : value) {
      if (c < '0' || c > '9') return;
      rep const digit = c - '0';
      ms = ms > (max - digit) / 10 ? max : ms * 10 + digit;
    }
    retry_ = std::chrono::milliseconds(ms);
  }

  template <class OnEvent>
  void dispatch(OnEvent& on_event) {
    last_event_id_ = id_buffer_;
    if (data_.empty()) {
      type_.clear();
      return;
    }
    data_.pop_back(); // the last LF
    parsed_event ev;
    if (!type_.empty()) ev.type = std::move(type_);
    ev.data = std::move(data_);
    ev.id = last_event_id_;
    type_.clear();
    data_.clear();
    on_event(std::move(ev));
  }

  parser_limits limits_;
  std::string line_;      // the unterminated line from earlier feeds
  std::string data_;      // the data buffer, one LF after each data line
  std::string type_;      // the event type buffer
  std::string id_buffer_; // the last event ID buffer
  std::string last_event_id_;
  std::optional<std::chrono::milliseconds> retry_;
  std::size_t bom_seen_ = 0; // BOM bytes matched so far at the start
  bool bom_done_ = false;
  bool after_cr_ = false; // the last feed ended in CR: a leading LF completes its CRLF
  bool last_line_blank_ = true;
  bool busy_ = false; // in feed, or failed in it
};

} // namespace sse
