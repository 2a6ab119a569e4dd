// libFuzzer harness for sse::detail::request_parser: however the same bytes are split, and
// whether the parser is reset or made anew between pipelined requests, every request must come
// out identical (status, error, bytes consumed and every parsed field).
//
// Input: a 16-byte prefix, then the bytes of the connection.
//   byte 0       bit i set: limit i of parser_limits is small, taken from byte 1 + i
//                (0 request line, 1 header line, 2 header bytes, 3 header count, 4 body,
//                5 chunk extension)
//   bytes 7..15  sizes of the pieces of one split (cycled; 0 is an empty feed)
// A shorter input is all prefix and parses nothing.

#include <sse/detail/http_parser.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

using sse::detail::parser_limits;
using sse::detail::request_parser;

constexpr std::size_t prefix_size = 16;

/// Everything the parser says about one request, as a caller would read it.
struct outcome {
  request_parser::status state = request_parser::status::need_more;
  bool header_complete = false;
  int error_status = 0;
  std::string error_reason;
  std::size_t consumed = 0; // bytes of the connection this request used
  std::string method, target, path, query;
  int version_minor = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  bool operator==(outcome const& o) const {
    return state == o.state && header_complete == o.header_complete &&
           error_status == o.error_status && error_reason == o.error_reason &&
           consumed == o.consumed && method == o.method && target == o.target && path == o.path &&
           query == o.query && version_minor == o.version_minor && headers == o.headers &&
           body == o.body;
  }
};

[[noreturn]] void fail(char const* what) {
  std::fprintf(stderr, "fuzz_http_parser: %s\n", what);
  std::abort();
}

void check(bool ok, char const* what) {
  if (!ok) fail(what);
}

outcome snapshot(request_parser& p, std::size_t consumed) {
  outcome o;
  o.state = p.state();
  o.header_complete = p.header_complete();
  o.error_status = p.error_status();
  o.error_reason = std::string(p.error_reason());
  o.consumed = consumed;
  auto const& r = p.get();
  o.method = r.method;
  o.target = r.target;
  o.path = r.path;
  o.query = r.query;
  o.version_minor = r.version_minor;
  for (auto const& f : r.headers)
    o.headers.emplace_back(f.name, f.value);
  o.body = r.body;
  return o;
}

/// What must hold of any single outcome, whatever the split.
void check_invariants(outcome const& o, parser_limits const& limits) {
  using status = request_parser::status;
  if (o.state == status::error) {
    int const s = o.error_status;
    check(s == 400 || s == 413 || s == 414 || s == 431 || s == 501 || s == 505,
          "error status outside 400/413/414/431/501/505");
    check(!o.error_reason.empty(), "error without a reason");
  } else {
    check(o.error_status == 0, "error status without an error");
    check(o.error_reason.empty(), "error reason without an error");
  }
  if (o.state == status::complete) {
    check(o.header_complete, "complete request whose header is not complete");
    check(!o.method.empty(), "complete request without a method");
    check(!o.path.empty(), "complete request without a path");
    check(o.version_minor == 0 || o.version_minor == 1, "version other than 1.0 or 1.1");
  }
  check(o.body.size() <= limits.max_body, "body over max_body");
  check(o.headers.size() <= limits.max_headers, "more header fields than max_headers");
  if (o.header_complete) {
    for (auto const& [name, value] : o.headers) {
      check(!name.empty(), "empty field name accepted");
      for (char c : value)
        check(c != '\r' && c != '\n' && c != '\0', "CR, LF or NUL in a field value");
      if (!value.empty()) {
        check(value.front() != ' ' && value.front() != '\t', "field value with leading OWS");
        check(value.back() != ' ' && value.back() != '\t', "field value with trailing OWS");
      }
    }
  }
}

/// Feeds `data` to one connection's parser in pieces of the sizes `next_piece()` returns,
/// resetting (or replacing) the parser after each complete request and feeding it the rest,
/// as a server does. Stops at the first error or when the data runs out.
template <class NextPiece>
std::vector<outcome> run(std::string_view data, parser_limits const& limits, bool fresh_parser,
                         NextPiece next_piece) {
  std::vector<outcome> out;
  request_parser parser(limits);
  std::size_t pos = 0;      // next byte of data to feed
  std::size_t consumed = 0; // bytes the current request has used
  for (;;) {
    std::size_t const piece = next_piece();
    std::size_t const avail = data.size() - pos < piece ? data.size() - pos : piece;
    std::size_t fed = 0;
    // One piece may finish a request and start the next: feed it the rest after a reset.
    do {
      std::size_t const n = avail - fed;
      std::size_t const used = parser.feed(data.data() + pos + fed, n);
      check(used <= n, "feed used more bytes than it was given");
      fed += used;
      consumed += used;
      auto const state = parser.state();
      if (state == request_parser::status::need_more) {
        check(used == n, "feed stopped early while needing more");
        break;
      }
      check(parser.feed(data.data() + pos + fed, avail - fed) == 0,
            "feed used bytes after the request ended");
      out.push_back(snapshot(parser, consumed));
      if (state == request_parser::status::error) return out;
      consumed = 0;
      if (fresh_parser) {
        parser = request_parser(limits);
      } else {
        auto released = parser.release();
        (void)released;
        parser.reset();
      }
    } while (fed < avail);
    pos += avail;
    if (pos == data.size()) {
      // Whatever is pending once everything is fed must not depend on the split either.
      out.push_back(snapshot(parser, consumed));
      return out;
    }
  }
}

std::size_t small(std::uint8_t b, std::size_t mod) {
  return static_cast<std::size_t>(b) % mod;
}

void print(char const* label, std::vector<outcome> const& run) {
  std::fprintf(stderr, "%s: %zu outcome(s)\n", label, run.size());
  for (auto const& o : run) {
    std::fprintf(stderr,
                 "  state %d header_complete %d error %d \"%s\" consumed %zu method \"%s\" "
                 "target \"%s\" headers %zu body %zu\n",
                 static_cast<int>(o.state), o.header_complete ? 1 : 0, o.error_status,
                 o.error_reason.c_str(), o.consumed, o.method.c_str(), o.target.c_str(),
                 o.headers.size(), o.body.size());
  }
}

void expect_same(std::vector<outcome> const& got, std::vector<outcome> const& whole,
                 char const* what) {
  if (got == whole) return;
  print("one feed", whole);
  print(what, got);
  fail(what);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* bytes, std::size_t size) {
  if (size < prefix_size) return 0;
  parser_limits limits;
  std::uint8_t const flags = bytes[0];
  if (flags & 0x01) limits.max_request_line = small(bytes[1], 64);
  if (flags & 0x02) limits.max_header_line = small(bytes[2], 64);
  if (flags & 0x04) limits.max_header_bytes = small(bytes[3], 128);
  if (flags & 0x08) limits.max_headers = small(bytes[4], 8);
  if (flags & 0x10) limits.max_body = small(bytes[5], 64);
  if (flags & 0x20) limits.max_chunk_ext = small(bytes[6], 16);
  limits.accept_bare_lf = (flags & 0x40) != 0; // both line-end modes
  std::uint8_t const* const pieces = bytes + 7;
  constexpr std::size_t piece_count = prefix_size - 7;
  bool any_piece = false; // all-empty pieces would never advance
  for (std::size_t k = 0; k < piece_count; ++k)
    any_piece = any_piece || pieces[k] != 0;

  std::string_view const data(reinterpret_cast<char const*>(bytes) + prefix_size,
                              size - prefix_size);

  // The reference: everything in one feed.
  auto const whole = run(data, limits, false, [&] { return data.size(); });
  for (auto const& o : whole)
    check_invariants(o, limits);

  // One byte at a time, with a new parser per request instead of reset().
  auto const bytewise = run(data, limits, true, [] { return std::size_t(1); });
  expect_same(bytewise, whole, "one byte at a time differs from one feed");

  // Pieces whose sizes the input chooses (empty feeds included).
  std::size_t i = 0;
  auto const chosen = run(data, limits, false, [&] {
    return any_piece ? static_cast<std::size_t>(pieces[i++ % piece_count]) : std::size_t(1);
  });
  expect_same(chosen, whole, "split at the input's split points differs from one feed");

  // Irregular pieces of 1..32 bytes from a generator seeded by the input.
  std::uint32_t seed = 2166136261u;
  for (std::size_t k = 0; k < size; ++k)
    seed = (seed ^ bytes[k]) * 16777619u;
  auto const irregular = run(data, limits, true, [&] {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    return static_cast<std::size_t>(1 + seed % 32);
  });
  expect_same(irregular, whole, "irregular split differs from one feed");
  return 0;
}
