#pragma once

/// `sse::redis::reply`: an owning copy of one Redis reply (RESP2), nested arrays included.

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sse::redis {

/// One reply: nil, status, error, integer, (bulk) string or array of replies.
///
/// A value type: it owns its text and elements and outlives the connection it came from.
class reply {
public:
  enum class kind { nil, status, error, integer, string, array };

  /// A nil reply.
  reply() = default;

  /// A status (`+OK`), error (`-ERR ...`) or bulk string reply with `text`.
  static reply make(kind k, std::string text) {
    reply r;
    r.kind_ = k;
    r.text_ = std::move(text);
    return r;
  }
  /// An integer reply.
  static reply make_integer(long long n) {
    reply r;
    r.kind_ = kind::integer;
    r.integer_ = n;
    return r;
  }
  /// An array reply.
  static reply make_array(std::vector<reply> elements) {
    reply r;
    r.kind_ = kind::array;
    r.elements_ = std::move(elements);
    return r;
  }

  /// Which of the six it is.
  kind type() const noexcept { return kind_; }
  bool is_nil() const noexcept { return kind_ == kind::nil; }
  bool is_status() const noexcept { return kind_ == kind::status; }
  bool is_error() const noexcept { return kind_ == kind::error; }
  bool is_integer() const noexcept { return kind_ == kind::integer; }
  bool is_string() const noexcept { return kind_ == kind::string; }
  bool is_array() const noexcept { return kind_ == kind::array; }

  /// The text of a status, error or string reply (binary-safe); empty for the others.
  std::string const& str() const noexcept { return text_; }
  /// The value of an integer reply; 0 for the others.
  long long integer() const noexcept { return integer_; }
  /// The elements of an array reply; empty for the others.
  std::vector<reply> const& elements() const noexcept { return elements_; }
  /// Number of elements of an array reply.
  std::size_t size() const noexcept { return elements_.size(); }
  /// Element `i` of an array reply (unchecked).
  reply const& operator[](std::size_t i) const { return elements_[i]; }

  friend bool operator==(reply const& a, reply const& b) {
    return a.kind_ == b.kind_ && a.integer_ == b.integer_ && a.text_ == b.text_ &&
           a.elements_ == b.elements_;
  }
  friend bool operator!=(reply const& a, reply const& b) { return !(a == b); }

private:
  kind kind_ = kind::nil;
  long long integer_ = 0;
  std::string text_;
  std::vector<reply> elements_;
};

} // namespace sse::redis
