#pragma once

// An independent event-stream parser for the tests, written from the WHATWG HTML standard
// ("Parsing an event stream" / "Interpreting an event stream"), not from the library's code.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sse_test {

struct parsed_event {
  std::string type; // "message" when no event field was given
  std::string data;
  std::string last_event_id;
  bool operator==(parsed_event const& o) const {
    return type == o.type && data == o.data && last_event_id == o.last_event_id;
  }
};

class event_stream_parser {
public:
  /// Feeds bytes in any split; dispatched events collect in events().
  void feed(std::string_view bytes) {
    for (char c : bytes) {
      if (!bom_checked_) {
        // One leading U+FEFF (EF BB BF) is stripped; buffer until we know.
        bom_buf_.push_back(c);
        std::string_view const bom("\xEF\xBB\xBF");
        if (bom.substr(0, bom_buf_.size()) == bom_buf_) {
          if (bom_buf_.size() == 3) {
            bom_checked_ = true;
            bom_buf_.clear();
          }
          continue;
        }
        bom_checked_ = true;
        std::string pending;
        pending.swap(bom_buf_);
        for (char p : pending)
          byte(p);
        continue;
      }
      byte(c);
    }
  }

  std::vector<parsed_event> const& events() const { return events_; }
  std::optional<long long> retry() const { return retry_; }
  std::string const& last_event_id() const { return last_event_id_; }
  std::vector<std::string> const& comments() const { return comments_; }
  /// Bytes of an unterminated line still buffered (a stream cut mid-line).
  std::string const& partial_line() const { return line_; }

private:
  void byte(char c) {
    if (after_cr_) {
      after_cr_ = false;
      if (c == '\n')
        return; // second half of CRLF
    }
    if (c == '\r') {
      after_cr_ = true;
      line(line_);
      line_.clear();
    } else if (c == '\n') {
      line(line_);
      line_.clear();
    } else {
      line_.push_back(c);
    }
  }

  void line(std::string const& l) {
    if (l.empty()) {
      dispatch();
      return;
    }
    if (l[0] == ':') {
      comments_.push_back(l.substr(1));
      return;
    }
    std::string field, value;
    auto colon = l.find(':');
    if (colon == std::string::npos) {
      field = l;
    } else {
      field = l.substr(0, colon);
      value = l.substr(colon + 1);
      if (!value.empty() && value[0] == ' ')
        value.erase(0, 1);
    }
    process(field, value);
  }

  void process(std::string const& field, std::string const& value) {
    if (field == "event") {
      type_ = value;
    } else if (field == "data") {
      data_ += value;
      data_ += '\n';
    } else if (field == "id") {
      if (value.find('\0') == std::string::npos)
        id_buffer_ = value;
    } else if (field == "retry") {
      if (!value.empty() && value.find_first_not_of("0123456789") == std::string::npos)
        retry_ = std::stoll(value);
    }
  }

  void dispatch() {
    last_event_id_ = id_buffer_;
    if (data_.empty()) {
      type_.clear();
      return;
    }
    data_.pop_back(); // the last LF
    events_.push_back({type_.empty() ? "message" : type_, data_, last_event_id_});
    data_.clear();
    type_.clear();
  }

  bool bom_checked_ = false;
  std::string bom_buf_;
  bool after_cr_ = false;
  std::string line_;
  std::string data_, type_, id_buffer_, last_event_id_;
  std::optional<long long> retry_;
  std::vector<std::string> comments_;
  std::vector<parsed_event> events_;
};

/// Normalises line breaks the way a client sees data: CRLF and lone CR become LF.
inline std::string as_client_sees(std::string_view data) {
  std::string out;
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (data[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < data.size() && data[i + 1] == '\n')
        ++i;
    } else {
      out.push_back(data[i]);
    }
  }
  return out;
}

inline std::vector<parsed_event> parse_all(std::string_view bytes) {
  event_stream_parser p;
  p.feed(bytes);
  return p.events();
}

} // namespace sse_test
