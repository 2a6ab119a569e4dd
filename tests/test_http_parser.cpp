#include <sse/detail/http_parser.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace std::string_literals;
using sse::detail::parser_limits;
using sse::detail::request;
using sse::detail::request_parser;
using status = request_parser::status;

namespace {

struct outcome {
  status state;
  int code;
  std::string reason;
  std::size_t consumed;
  bool header_complete;
  request req;
};

void require_same_request(const request& a, const request& b) {
  REQUIRE(a.method == b.method);
  REQUIRE(a.target == b.target);
  REQUIRE(a.path == b.path);
  REQUIRE(a.query == b.query);
  REQUIRE(a.version_minor == b.version_minor);
  REQUIRE(a.headers.size() == b.headers.size());
  for (std::size_t i = 0; i < a.headers.size(); ++i) {
    REQUIRE(a.headers[i].name == b.headers[i].name);
    REQUIRE(a.headers[i].value == b.headers[i].value);
  }
  REQUIRE(a.body == b.body);
}

/// Parses one request from `input` twice, whole and one byte at a time, and requires both
/// to agree on everything before returning the result.
outcome parse(std::string_view input, parser_limits limits = {}) {
  request_parser whole(limits);
  const auto consumed = whole.feed(input.data(), input.size());

  request_parser bytewise(limits);
  std::size_t fed = 0;
  while (fed < input.size() && bytewise.state() == status::need_more) {
    REQUIRE(bytewise.feed(input.data() + fed, 1) == 1);
    ++fed;
  }

  REQUIRE(whole.state() == bytewise.state());
  REQUIRE(consumed == fed);
  REQUIRE(whole.error_status() == bytewise.error_status());
  REQUIRE(whole.error_reason() == bytewise.error_reason());
  REQUIRE(whole.header_complete() == bytewise.header_complete());
  require_same_request(whole.get(), bytewise.get());
  if (whole.state() == status::error)
    REQUIRE_FALSE(whole.error_reason().empty());
  else
    REQUIRE(whole.error_status() == 0);
  return {whole.state(), whole.error_status(),    std::string(whole.error_reason()),
          consumed,      whole.header_complete(), whole.release()};
}

request parse_ok(std::string_view input, parser_limits limits = {}) {
  auto r = parse(input, limits);
  INFO("error " << r.code);
  REQUIRE(r.state == status::complete);
  REQUIRE(r.consumed == input.size());
  return std::move(r.req);
}

int parse_error(std::string_view input, parser_limits limits = {}) {
  const auto r = parse(input, limits);
  REQUIRE(r.state == status::error);
  return r.code;
}

/// The reason given for a request that must fail with `code`.
std::string parse_reason(std::string_view input, int code, parser_limits limits = {}) {
  const auto r = parse(input, limits);
  REQUIRE(r.state == status::error);
  REQUIRE(r.code == code);
  return r.reason;
}

/// A minimal valid HTTP/1.1 request with extra header lines spliced in.
std::string get_with(std::string_view fields) {
  return "GET / HTTP/1.1\r\nHost: h\r\n" + std::string(fields) + "\r\n";
}

std::string post_with(std::string_view fields, std::string_view body) {
  return "POST /p HTTP/1.1\r\nHost: h\r\n" + std::string(fields) + "\r\n" + std::string(body);
}

std::string chunked(std::string_view body) {
  return post_with("Transfer-Encoding: chunked\r\n", body);
}

} // namespace

TEST_CASE("parser reads a GET with a query string", "[http_parser]") {
  const auto req = parse_ok("GET /search?q=a%20b&n=1 HTTP/1.1\r\nHost: example.com\r\n"
                            "Accept: */*\r\n\r\n");
  CHECK(req.method == "GET");
  CHECK(req.target == "/search?q=a%20b&n=1");
  CHECK(req.path == "/search");
  CHECK(req.query == "q=a%20b&n=1");
  CHECK(req.version_minor == 1);
  REQUIRE(req.headers.size() == 2);
  CHECK(req.headers[0].name == "Host");
  CHECK(req.headers[0].value == "example.com");
  CHECK(req.headers[1].value == "*/*");
  CHECK(req.body.empty());

  SECTION("a target without '?' has an empty query") {
    const auto plain = parse_ok(get_with(""));
    CHECK(plain.path == "/");
    CHECK(plain.query.empty());
  }
  SECTION("only the first '?' splits path from query") {
    const auto q = parse_ok("GET /a?b?c HTTP/1.1\r\nHost: h\r\n\r\n");
    CHECK(q.path == "/a");
    CHECK(q.query == "b?c");
  }
  SECTION("methods are case-sensitive tokens kept as received") {
    CHECK(parse_ok("get / HTTP/1.1\r\nHost: h\r\n\r\n").method == "get");
    CHECK(parse_ok("M-SEARCH / HTTP/1.1\r\nHost: h\r\n\r\n").method == "M-SEARCH");
  }
}

TEST_CASE("parser reads a POST body sized by Content-Length", "[http_parser]") {
  SECTION("the body is read exactly") {
    const auto req = parse_ok(post_with("Content-Length: 11\r\n", "hello world"));
    CHECK(req.method == "POST");
    CHECK(req.body == "hello world");
  }
  SECTION("bytes after the body are left for the next request") {
    const std::string input = post_with("Content-Length: 5\r\n", "helloGET");
    const auto r = parse(input);
    REQUIRE(r.state == status::complete);
    CHECK(r.consumed == input.size() - 3);
    CHECK(r.req.body == "hello");
  }
  SECTION("Content-Length 0 completes right after the headers") {
    CHECK(parse_ok(post_with("Content-Length: 0\r\n", "")).body.empty());
  }
  SECTION("leading zeros are digits like any other") {
    CHECK(parse_ok(post_with("Content-Length: 003\r\n", "abc")).body == "abc");
  }
}

TEST_CASE("parser reads a chunked body with extensions and trailers", "[http_parser]") {
  SECTION("extensions and trailer fields are dropped, data is joined") {
    const auto req = parse_ok(chunked("5;name=value\r\nhello\r\n"
                                      "6 ; a=\"b c\"\r\n world\r\n"
                                      "0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n"));
    CHECK(req.body == "hello world");
    REQUIRE(req.headers.size() == 2);
    CHECK_FALSE(req.header("X-Checksum"));
  }
  SECTION("hex sizes in either case") {
    CHECK(parse_ok(chunked("a\r\n0123456789\r\nB\r\nabcdefghijk\r\n0\r\n\r\n")).body.size() == 21);
  }
  SECTION("the coding name is case-insensitive and trimmed") {
    const auto req =
        parse_ok(post_with("Transfer-Encoding:  CHUNKED \r\n", "3\r\nabc\r\n0\r\n\r\n"));
    CHECK(req.body == "abc");
  }
  SECTION("an empty chunked body") {
    CHECK(parse_ok(chunked("0\r\n\r\n")).body.empty());
  }
  SECTION("sixteen hex digits with leading zeros are accepted") {
    CHECK(parse_ok(chunked("0000000000000005\r\nhello\r\n0\r\n\r\n")).body == "hello");
  }
}

TEST_CASE("parser accepts HTTP/1.0 without a Host header", "[http_parser]") {
  const auto req = parse_ok("GET /old HTTP/1.0\r\n\r\n");
  CHECK(req.version_minor == 0);
  CHECK(req.path == "/old");
  CHECK(req.headers.empty());

  SECTION("with a Content-Length body") {
    CHECK(parse_ok("POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi").body == "hi");
  }
}

TEST_CASE("parser takes path and query from an absolute-form target", "[http_parser]") {
  SECTION("http with path and query") {
    const auto req =
        parse_ok("GET http://example.com/p/q?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    CHECK(req.target == "http://example.com/p/q?x=1");
    CHECK(req.path == "/p/q");
    CHECK(req.query == "x=1");
  }
  SECTION("an empty path means /") {
    const auto req = parse_ok("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
    CHECK(req.path == "/");
    CHECK(req.query.empty());
  }
  SECTION("https with a port and a query but no path") {
    const auto req = parse_ok("GET https://example.com:8443?x HTTP/1.1\r\nHost: h\r\n\r\n");
    CHECK(req.path == "/");
    CHECK(req.query == "x");
  }
  SECTION("the scheme is case-insensitive") {
    CHECK(parse_ok("GET HTTP://Example.com/a HTTP/1.1\r\nHost: h\r\n\r\n").path == "/a");
  }
  SECTION("an empty host is refused") {
    CHECK(parse_error("GET http:///p HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  }
  SECTION("userinfo is refused") {
    CHECK(parse_error("GET http://user@h/p HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  }
  SECTION("other schemes, authority-form and relative targets are refused") {
    CHECK(parse_error("GET ftp://h/p HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(parse_error("CONNECT example.com:443 HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(parse_error("GET index.html HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(parse_error("GET http:/x HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  }
}

TEST_CASE("parser accepts asterisk-form only for OPTIONS", "[http_parser]") {
  SECTION("OPTIONS *") {
    const auto req = parse_ok("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    CHECK(req.target == "*");
    CHECK(req.path == "*");
  }
  SECTION("any other method with * is refused") {
    CHECK(parse_error("GET * HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  }
  SECTION("* followed by more is refused") {
    CHECK(parse_error("OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  }
}

TEST_CASE("parser reads pipelined requests one after the other with reset", "[http_parser]") {
  const std::string first = post_with("Content-Length: 3\r\n", "abc");
  const std::string second = "GET /b?z HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string both = first + second;

  SECTION("both in one feed") {
    request_parser p;
    const auto n = p.feed(both.data(), both.size());
    REQUIRE(p.state() == status::complete);
    REQUIRE(n == first.size());
    CHECK(p.get().body == "abc");
    CHECK(p.feed(both.data() + n, both.size() - n) == 0); // nothing more until reset
    p.reset();
    REQUIRE(p.feed(both.data() + n, both.size() - n) == second.size());
    REQUIRE(p.state() == status::complete);
    CHECK(p.get().path == "/b");
    CHECK(p.get().query == "z");
    CHECK(p.get().body.empty());
  }
  SECTION("one byte at a time") {
    request_parser p;
    std::vector<std::string> paths;
    for (const char c : both) {
      REQUIRE(p.feed(&c, 1) == 1);
      if (p.state() == status::complete) {
        paths.push_back(p.get().path);
        p.reset();
      }
    }
    CHECK(paths == std::vector<std::string>{"/p", "/b"});
  }
}

TEST_CASE("keep_alive follows the version and the Connection tokens", "[http_parser]") {
  SECTION("HTTP/1.1 keeps alive by default") {
    CHECK(parse_ok(get_with("")).keep_alive());
  }
  SECTION("HTTP/1.1 with a close token does not") {
    CHECK_FALSE(parse_ok(get_with("Connection: close\r\n")).keep_alive());
    CHECK_FALSE(parse_ok(get_with("Connection: Upgrade, Close\r\n")).keep_alive());
    CHECK_FALSE(parse_ok(get_with("Connection: upgrade\r\nConnection: close\r\n")).keep_alive());
  }
  SECTION("HTTP/1.0 closes by default") {
    CHECK_FALSE(parse_ok("GET / HTTP/1.0\r\n\r\n").keep_alive());
    CHECK_FALSE(parse_ok("GET / HTTP/1.0\r\nConnection: Upgrade\r\n\r\n").keep_alive());
  }
  SECTION("HTTP/1.0 keeps alive with a keep-alive token") {
    CHECK(parse_ok("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive());
    CHECK(parse_ok("GET / HTTP/1.0\r\nConnection: Keep-Alive, Upgrade\r\n\r\n").keep_alive());
  }
  SECTION("close wins over keep-alive") {
    CHECK_FALSE(parse_ok("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive());
  }
  SECTION("a token must match whole") {
    CHECK(parse_ok(get_with("Connection: closed\r\n")).keep_alive());
    CHECK_FALSE(parse_ok("GET / HTTP/1.0\r\nConnection: keep-alive-ish\r\n\r\n").keep_alive());
  }
}

TEST_CASE("expects_continue needs Expect 100-continue on HTTP/1.1", "[http_parser]") {
  CHECK(parse_ok(get_with("Expect: 100-continue\r\n")).expects_continue());
  CHECK(parse_ok(get_with("expect: 100-Continue\r\n")).expects_continue());
  CHECK_FALSE(parse_ok(get_with("")).expects_continue());
  CHECK_FALSE(parse_ok(get_with("Expect: something-else\r\n")).expects_continue());
  CHECK_FALSE(parse_ok("GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expects_continue());
}

TEST_CASE("header lookup is case-insensitive, first match, value trimmed", "[http_parser]") {
  const auto req = parse_ok(get_with("X-Thing:  \t value with  inner \t \r\n"
                                     "x-thing: second\r\nX-Empty:\r\nX-Blank:   \r\n"));
  REQUIRE(req.headers.size() == 5);
  CHECK(req.headers[1].name == "X-Thing");
  CHECK(req.headers[2].name == "x-thing");
  CHECK(req.header("x-THING") == std::string_view("value with  inner"));
  CHECK(req.header("X-Empty") == std::string_view(""));
  CHECK(req.header("X-Blank") == std::string_view(""));
  CHECK_FALSE(req.header("X-Missing"));
  CHECK_FALSE(req.header("X-Thin"));
}

TEST_CASE("parser refuses a malformed request line", "[http_parser]") {
  SECTION("empty method") {
    CHECK(parse_error(" / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  }
  SECTION("method with a non-token character") {
    CHECK(parse_error("G@T / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(parse_error("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  }
  SECTION("two spaces before the target") {
    CHECK(parse_reason("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400) == "empty request-target");
  }
  SECTION("two spaces before the version") {
    CHECK(parse_error("GET /  HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  }
  SECTION("a space before the line end") {
    CHECK(parse_error("GET / HTTP/1.1 \r\nHost: h\r\n\r\n") == 400);
  }
  SECTION("missing version or target") {
    CHECK(parse_error("GET /\r\n\r\n") == 400);
    CHECK(parse_error("GET\r\n\r\n") == 400);
    CHECK(parse_error("GET / \r\n\r\n") == 400);
  }
}

TEST_CASE("parser refuses targets with control bytes, spaces or a fragment", "[http_parser]") {
  SECTION("control bytes and DEL") {
    CHECK(parse_error("GET /a\x01z HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(parse_error("GET /a\x7fz HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(parse_error("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(parse_error("GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n"s) == 400);
  }
  SECTION("a fragment") {
    CHECK(parse_error("GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  }
  SECTION("a space inside the target splits it, leaving junk as the version") {
    CHECK(parse_error("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  }
  SECTION("bytes of 0x80 and above are not refused at this layer") {
    CHECK(parse_ok("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n").path == "/caf\xc3\xa9");
  }
}

TEST_CASE("parser answers an over-long request line by the part that is long", "[http_parser]") {
  parser_limits limits;
  limits.max_request_line = 32;

  SECTION("a long target is 414, refused at the limit") {
    const std::string input = "GET /" + std::string(100, 'a') + " HTTP/1.1\r\n";
    const auto r = parse(input, limits);
    REQUIRE(r.state == status::error);
    CHECK(r.code == 414);
    CHECK(r.consumed == limits.max_request_line + 1);
    CHECK(r.req.target.size() < limits.max_request_line);
  }
  SECTION("a long method is 501, longer than any implemented") {
    const auto r = parse(std::string(100, 'A') + " / HTTP/1.1\r\n", limits);
    REQUIRE(r.state == status::error);
    CHECK(r.code == 501);
    CHECK(r.consumed == limits.max_request_line + 1);
  }
  SECTION("a line that crosses the limit in the version is 431") {
    limits.max_request_line = 13;
    CHECK(parse_error("GET / HTTP/1.1\r\nHost: h\r\n\r\n", limits) == 431);
  }
  SECTION("a line exactly at the limit is accepted, its line end not counted") {
    limits.max_request_line = 14;
    parse_ok("GET / HTTP/1.1\r\nHost: h\r\n\r\n", limits);
  }
  SECTION("the default limit is 8 KiB") {
    const std::string at = "/" + std::string(8192 - 14, 'a');
    parse_ok("GET " + at + " HTTP/1.1\r\nHost: h\r\n\r\n");
    CHECK(parse_error("GET " + at + std::string(20, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n") == 414);
  }
}

TEST_CASE("parser answers 505 for other HTTP versions and 400 for malformed ones",
          "[http_parser]") {
  SECTION("well-formed but unsupported") {
    for (const char* v : {"HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3.1", "HTTP/1.9"}) {
      INFO(v);
      CHECK(parse_error("GET / " + std::string(v) + "\r\nHost: h\r\n\r\n") == 505);
    }
  }
  SECTION("malformed") {
    for (const char* v : {"HTTX/1.1", "HTTP/1.1x", "http/1.1", "HTTP/11", "HTTP/1.", "HTTP/1.1.1",
                          "HTTP/a.b", "HTTP/1,1", "HTTP /1.1", "HTTP/10.0"}) {
      INFO(v);
      CHECK(parse_error("GET / " + std::string(v) + "\r\nHost: h\r\n\r\n") == 400);
    }
  }
}

TEST_CASE("parser refuses a bare LF line end unless told to accept it", "[http_parser]") {
  parser_limits lenient;
  lenient.accept_bare_lf = true;
  const std::string reason = "bare LF as a line end (CRLF required)";
  SECTION("by default each place a line can end refuses it, naming the cause") {
    for (const char* input : {"GET /lf HTTP/1.1\nHost: h\r\n\r\n",   // request line
                              "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", // a field line
                              "GET / HTTP/1.1\r\nHost: h\r\n\n",         // the empty line
                              "\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"}) { // a leading empty line
      INFO(input);
      const auto r = parse(input);
      CHECK(r.state == status::error);
      CHECK(r.code == 400);
      CHECK(r.reason == reason);
    }
  }
  SECTION("accept_bare_lf: lone LF everywhere in the head") {
    const auto req = parse_ok("GET /lf HTTP/1.1\nHost: h\nX: y\n\n", lenient);
    CHECK(req.path == "/lf");
    CHECK(req.header("X") == std::string_view("y"));
  }
  SECTION("accept_bare_lf: mixed CRLF and LF") {
    parse_ok("GET / HTTP/1.1\r\nHost: h\nX: y\r\n\n", lenient);
    CHECK(parse_ok("\r\n\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n", lenient).path == "/x");
  }
  SECTION("accept_bare_lf still requires CRLF in chunked framing") {
    const std::string head = "POST / HTTP/1.1\nHost: h\nTransfer-Encoding: chunked\n\n";
    CHECK(parse_error(head + "5\nhello\r\n0\r\n\r\n", lenient) == 400);
    CHECK(parse_ok(head + "5\r\nhello\r\n0\r\n\r\n", lenient).body == "hello");
  }
}

TEST_CASE("parser refuses a bare CR", "[http_parser]") {
  SECTION("bare CR in the request line") {
    CHECK(parse_error("GET / HTTP/1.1\rHost: h\r\n\r\n") == 400);
    CHECK(parse_error("GET /\r HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
    CHECK(parse_error("GET\r / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  }
  SECTION("bare CR in a field line") {
    CHECK(parse_error(get_with("X: a\rb\r\n")) == 400);
    CHECK(parse_error(get_with("X: a\rX-Next: b\r\n")) == 400);
    CHECK(parse_error(get_with("X\r: a\r\n")) == 400);
  }
  SECTION("bare CR on the empty line that ends the head") {
    CHECK(parse_error("GET / HTTP/1.1\r\nHost: h\r\n\r\r\n") == 400);
  }
  SECTION("bare CR before the request line") {
    CHECK(parse_error("\rGET / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  }
}

TEST_CASE("parser skips a few leading empty lines but not unboundedly many", "[http_parser]") {
  SECTION("up to four are ignored") {
    CHECK(parse_ok("\r\n\r\n\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n").path == "/x");
  }
  SECTION("a fifth is refused") {
    CHECK(parse_error("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  }
}

TEST_CASE("parser refuses malformed header field lines", "[http_parser]") {
  SECTION("a line without a colon") {
    CHECK(parse_error(get_with("NoColonHere\r\n")) == 400);
    CHECK(parse_error(get_with("No colon here\r\n")) == 400);
  }
  SECTION("whitespace between name and colon") {
    CHECK(parse_error(get_with("X-Name : v\r\n")) == 400);
    CHECK(parse_error(get_with("X-Name\t: v\r\n")) == 400);
  }
  SECTION("obs-fold") {
    const auto reason = parse_reason(get_with("X: a\r\n b\r\n"), 400);
    CHECK(reason == "obs-fold or whitespace before a field name");
    CHECK(parse_reason(get_with("X: a\r\n\tb\r\n"), 400) == reason);
  }
  SECTION("whitespace before the first field") {
    CHECK(parse_error("GET / HTTP/1.1\r\n Host: h\r\n\r\n") == 400);
  }
  SECTION("an empty name") {
    CHECK(parse_error(get_with(": v\r\n")) == 400);
  }
  SECTION("a non-token character in the name") {
    CHECK(parse_error(get_with("X(y): v\r\n")) == 400);
    CHECK(parse_error(get_with("X\0Y: v\r\n"s)) == 400);
    CHECK(parse_error(get_with("X\xc3\xa9: v\r\n")) == 400);
  }
}

TEST_CASE("parser refuses NUL and control characters in field values", "[http_parser]") {
  SECTION("NUL") {
    CHECK(parse_reason(get_with("X: a\0b\r\n"s), 400) == "NUL in field value");
  }
  SECTION("other controls and DEL") {
    for (const char c : {'\x01', '\x08', '\x0b', '\x0c', '\x1b', '\x1f', '\x7f'}) {
      INFO(static_cast<int>(c));
      CHECK(parse_error(get_with("X: a"s + c + "b\r\n")) == 400);
    }
  }
  SECTION("HTAB and obs-text are allowed") {
    const auto req = parse_ok(get_with("X: a\tb \xc3\xa9\xff\r\n"));
    CHECK(req.header("X") == std::string_view("a\tb \xc3\xa9\xff"));
  }
}

TEST_CASE("parser answers 431 for header lines, sections and counts over the limits",
          "[http_parser]") {
  parser_limits limits;
  SECTION("one field line over max_header_line") {
    limits.max_header_line = 32;
    parse_ok(get_with("X: " + std::string(29, 'v') + "\r\n"), limits); // exactly 32
    CHECK(parse_error(get_with("X: " + std::string(30, 'v') + "\r\n"), limits) == 431);
    CHECK(parse_error(get_with(std::string(40, 'N') + ": v\r\n"), limits) == 431);
  }
  SECTION("the whole section over max_header_bytes") {
    limits.max_header_bytes = 64;
    // Host line 9 + three lines of 15 + the final CRLF = 56; a fourth line makes 71.
    parse_ok(get_with("A: 1234567890\r\nB: 1234567890\r\nC: 1234567890\r\n"), limits);
    CHECK(parse_error(get_with("A: 1234567890\r\nB: 1234567890\r\nC: 1234567890\r\n"
                               "D: 1234567890\r\n"),
                      limits) == 431);
  }
  SECTION("more fields than max_headers") {
    limits.max_headers = 3;
    parse_ok(get_with("A: 1\r\nB: 2\r\n"), limits);
    CHECK(parse_error(get_with("A: 1\r\nB: 2\r\nC: 3\r\n"), limits) == 431);
  }
}

TEST_CASE("parser requires exactly one Host in HTTP/1.1", "[http_parser]") {
  SECTION("missing") {
    CHECK(parse_reason("GET / HTTP/1.1\r\nX: y\r\n\r\n", 400) == "missing Host header");
  }
  SECTION("duplicated") {
    CHECK(parse_reason("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400) ==
          "more than one Host header");
  }
  SECTION("HTTP/1.0 needs none") {
    parse_ok("GET / HTTP/1.0\r\n\r\n");
  }
}

TEST_CASE("parser refuses a malformed Content-Length", "[http_parser]") {
  for (const char* v : {"-1", "+1", "0x10", "1Z", "", " ", "1 2", "1.0", "1,", ",1",
                        "9223372036854775808", "99999999999999999999"}) {
    INFO("Content-Length: '" << v << "'");
    CHECK(parse_error(post_with("Content-Length: " + std::string(v) + "\r\n", "x")) == 400);
  }
  SECTION("2^63-1 fits, so it is over the body limit rather than malformed") {
    CHECK(parse_error(post_with("Content-Length: 9223372036854775807\r\n", "x")) == 413);
  }
}

TEST_CASE("parser merges equal Content-Length values and refuses different ones", "[http_parser]") {
  SECTION("two equal fields are one value") {
    CHECK(parse_ok(post_with("Content-Length: 5\r\nContent-Length: 5\r\n", "hello")).body ==
          "hello");
  }
  SECTION("an equal comma list is one value") {
    CHECK(parse_ok(post_with("Content-Length: 5 , 5\r\n", "hello")).body == "hello");
  }
  SECTION("different fields are refused") {
    CHECK(parse_error(post_with("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!")) == 400);
  }
  SECTION("a list of different values is refused") {
    CHECK(parse_error(post_with("Content-Length: 5, 6\r\n", "hello!")) == 400);
  }
}

TEST_CASE("parser refuses a Content-Length over max_body with 413 before the body",
          "[http_parser]") {
  parser_limits limits;
  limits.max_body = 10;
  const std::string head = post_with("Content-Length: 11\r\n", "");
  const auto r = parse(head + "0123456789A", limits);
  REQUIRE(r.state == status::error);
  CHECK(r.code == 413);
  CHECK(r.consumed == head.size()); // no body byte read
  CHECK(r.req.body.empty());

  SECTION("exactly max_body is fine") {
    CHECK(parse_ok(post_with("Content-Length: 10\r\n", "0123456789"), limits).body.size() == 10);
  }
}

TEST_CASE("parser gives a POST without Content-Length or Transfer-Encoding an empty body",
          "[http_parser]") {
  const std::string head = "POST /p HTTP/1.1\r\nHost: h\r\n\r\n";
  const auto r = parse(head + "stray");
  REQUIRE(r.state == status::complete);
  CHECK(r.consumed == head.size());
  CHECK(r.req.body.empty());
}

TEST_CASE("parser refuses Content-Length with Transfer-Encoding", "[http_parser]") {
  CHECK(parse_reason(post_with("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"),
                     400) == "Content-Length and Transfer-Encoding together");
  CHECK(parse_error(
            post_with("Transfer-Encoding: chunked\r\nContent-Length: 0\r\n", "0\r\n\r\n")) == 400);
  SECTION("even when the coding itself is unsupported") {
    CHECK(parse_error(post_with("Transfer-Encoding: gzip\r\nContent-Length: 3\r\n", "abc")) == 400);
  }
}

TEST_CASE("parser answers 501 for a Transfer-Encoding other than exactly chunked",
          "[http_parser]") {
  for (const char* v : {"gzip", "chunked, gzip", "gzip, chunked", ",chunked", "chunked,",
                        "chunked, chunked", "chunked;q=1", "identity", ""}) {
    INFO("Transfer-Encoding: '" << v << "'");
    CHECK(parse_error(post_with("Transfer-Encoding: " + std::string(v) + "\r\n", "0\r\n\r\n")) ==
          501);
  }
  SECTION("two chunked fields join into a list that is not just chunked") {
    CHECK(parse_error(post_with("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                                "0\r\n\r\n")) == 501);
  }
}

TEST_CASE("parser refuses Transfer-Encoding in HTTP/1.0", "[http_parser]") {
  CHECK(parse_error("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == 400);
}

TEST_CASE("parser refuses malformed chunk size lines", "[http_parser]") {
  SECTION("negative") {
    CHECK(parse_reason(chunked("-5\r\nhello\r\n0\r\n\r\n"), 400) == "negative chunk size");
  }
  SECTION("more than 16 hex digits") {
    CHECK(parse_error(chunked("00000000000000005\r\nhello\r\n0\r\n\r\n")) == 400);
  }
  SECTION("junk after the size") {
    CHECK(parse_error(chunked("5x\r\nhello\r\n0\r\n\r\n")) == 400);
    CHECK(parse_error(chunked("0x5\r\nhello\r\n0\r\n\r\n")) == 400);
    CHECK(parse_error(chunked("5 x\r\nhello\r\n0\r\n\r\n")) == 400);
    CHECK(parse_error(chunked("5 \r\nhello\r\n0\r\n\r\n")) == 400);
  }
  SECTION("no size") {
    CHECK(parse_error(chunked("\r\nhello\r\n0\r\n\r\n")) == 400);
    CHECK(parse_error(chunked(";ext\r\nhello\r\n0\r\n\r\n")) == 400);
    CHECK(parse_error(chunked(" 5\r\nhello\r\n0\r\n\r\n")) == 400);
  }
  SECTION("a size line ending in a lone LF or a bare CR") {
    CHECK(parse_reason(chunked("5\nhello\r\n0\r\n\r\n"), 400) ==
          "chunk size line must end in CRLF");
    CHECK(parse_error(chunked("5;e\nhello\r\n0\r\n\r\n")) == 400);
    CHECK(parse_error(chunked("5\rhello\r\n0\r\n\r\n")) == 400);
  }
  SECTION("whitespace before the extension is allowed") {
    CHECK(parse_ok(chunked("5 \t;e=1\r\nhello\r\n0\r\n\r\n")).body == "hello");
  }
}

TEST_CASE("parser bounds chunk extensions by max_chunk_ext", "[http_parser]") {
  parser_limits limits;
  limits.max_chunk_ext = 16;
  SECTION("at the limit") {
    CHECK(parse_ok(chunked("5;" + std::string(16, 'e') + "\r\nhello\r\n0\r\n\r\n"), limits).body ==
          "hello");
  }
  SECTION("over the limit") {
    CHECK(parse_error(chunked("5;" + std::string(17, 'e') + "\r\nhello\r\n0\r\n\r\n"), limits) ==
          400);
  }
  SECTION("endless blanks before ';' count too") {
    const auto r = parse(chunked("5" + std::string(1000, ' ')), limits);
    REQUIRE(r.state == status::error);
    CHECK(r.code == 400);
  }
  SECTION("control characters in an extension") {
    CHECK(parse_error(chunked("5;a\x01\r\nhello\r\n0\r\n\r\n"), limits) == 400);
    CHECK(parse_error(chunked("5;a\0\r\nhello\r\n0\r\n\r\n"s), limits) == 400);
  }
}

TEST_CASE("parser requires CRLF right after chunk data", "[http_parser]") {
  CHECK(parse_error(chunked("5\r\nhelloX\r\n0\r\n\r\n")) == 400);
  CHECK(parse_error(chunked("5\r\nhello\n0\r\n\r\n")) == 400);
  CHECK(parse_error(chunked("5\r\nhello\r0\r\n\r\n")) == 400);
  CHECK(parse_error(chunked("5\r\nhelloX\n0\r\n\r\n")) == 400);
  CHECK(parse_error(chunked("5\r\nhello0\r\n\r\n")) == 400);
}

TEST_CASE("parser refuses a chunked body over max_body with 413 before its data", "[http_parser]") {
  parser_limits limits;
  limits.max_body = 10;
  SECTION("the chunk that would pass the limit is refused at its size line") {
    const std::string upto = chunked("6\r\nabcdef\r\n5\r\n");
    const auto r = parse(upto + "ghijk\r\n0\r\n\r\n", limits);
    REQUIRE(r.state == status::error);
    CHECK(r.code == 413);
    CHECK(r.consumed == upto.size());
    CHECK(r.req.body == "abcdef");
  }
  SECTION("a total of exactly max_body is fine") {
    CHECK(parse_ok(chunked("6\r\nabcdef\r\n4\r\nghij\r\n0\r\n\r\n"), limits).body.size() == 10);
  }
  SECTION("the largest 16-digit size") {
    CHECK(parse_error(chunked("FFFFFFFFFFFFFFFF\r\n"), limits) == 413);
  }
}

TEST_CASE("parser validates chunked trailers like headers and discards them", "[http_parser]") {
  SECTION("trailers are not added to the headers") {
    const auto req = parse_ok(chunked("1\r\na\r\n0\r\nHost: evil\r\nX-T: 1\r\n\r\n"));
    CHECK(req.headers.size() == 2);
    CHECK(req.header("Host") == std::string_view("h"));
  }
  SECTION("malformed trailer lines are 400") {
    CHECK(parse_error(chunked("0\r\nNoColon\r\n\r\n")) == 400);
    CHECK(parse_error(chunked("0\r\nX : v\r\n\r\n")) == 400);
    CHECK(parse_error(chunked("0\r\nX: v\r\n folded\r\n\r\n")) == 400);
    CHECK(parse_error(chunked("0\r\nX: a\0b\r\n\r\n"s)) == 400);
    CHECK(parse_error(chunked("0\r\nX: a\rb\r\n\r\n")) == 400);
  }
  SECTION("the trailer section must use CRLF") {
    CHECK(parse_error(chunked("0\r\n\n")) == 400);
    CHECK(parse_error(chunked("0\r\nX: v\n\r\n")) == 400);
  }
  SECTION("trailers are bounded by the header limits") {
    parser_limits limits;
    limits.max_headers = 2; // Host and Transfer-Encoding fill the header budget exactly
    parse_ok(chunked("0\r\nA: 1\r\nB: 2\r\n\r\n"), limits);
    CHECK(parse_error(chunked("0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"), limits) == 431);
    limits = parser_limits{};
    limits.max_header_line = 26; // "Transfer-Encoding: chunked" just fits
    parse_ok(chunked("0\r\nX: " + std::string(23, 'v') + "\r\n\r\n"), limits);
    CHECK(parse_error(chunked("0\r\nX: " + std::string(24, 'v') + "\r\n\r\n"), limits) == 431);
    limits = parser_limits{};
    limits.max_header_bytes = 64;
    std::string many;
    for (int i = 0; i < 10; ++i)
      many += "X: 12345\r\n";
    CHECK(parse_error(chunked("0\r\n" + many + "\r\n"), limits) == 431);
  }
}

TEST_CASE("parser keeps an unfinished chunked body pending within max_body", "[http_parser]") {
  parser_limits limits;
  limits.max_body = 64;
  request_parser p(limits);
  const std::string head = chunked("40\r\n0123456789");
  REQUIRE(p.feed(head.data(), head.size()) == head.size());
  CHECK(p.state() == status::need_more);
  CHECK(p.header_complete());
  CHECK(p.get().body == "0123456789");

  // A sender that keeps sending small chunks is refused once the total would pass the limit.
  const std::string rest = std::string(54, 'x') + "\r\n";
  REQUIRE(p.feed(rest.data(), rest.size()) == rest.size());
  CHECK(p.state() == status::need_more);
  const std::string one = "1\r\ny\r\n";
  std::size_t fed = 0;
  while (fed < 1000 && p.state() == status::need_more)
    fed += p.feed(one.data(), one.size());
  REQUIRE(p.state() == status::error);
  CHECK(p.error_status() == 413);
  CHECK(p.get().body.size() == 64);
}

TEST_CASE("parser stops at the limit on 10 MB without a line end", "[http_parser]") {
  const std::size_t total = 10 * 1024 * 1024;
  const std::string piece(64 * 1024, 'a');

  // Feeds the prefix then 10 MB in 64 KiB pieces; returns the bytes consumed.
  const auto flood = [&](request_parser& p, const std::string& prefix) {
    std::size_t consumed = p.feed(prefix.data(), prefix.size());
    for (std::size_t sent = 0; sent < total; sent += piece.size())
      consumed += p.feed(piece.data(), piece.size());
    return consumed;
  };

  SECTION("in the target: 414") {
    request_parser p;
    const auto consumed = flood(p, "GET /");
    REQUIRE(p.state() == status::error);
    CHECK(p.error_status() == 414);
    CHECK(consumed == p.limits().max_request_line + 1);
    CHECK(p.get().target.size() <= p.limits().max_request_line);
  }
  SECTION("in the method: 501") {
    request_parser p;
    const auto consumed = flood(p, "");
    REQUIRE(p.state() == status::error);
    CHECK(p.error_status() == 501);
    CHECK(consumed == p.limits().max_request_line + 1);
    CHECK(p.get().method.size() <= p.limits().max_request_line);
  }
  SECTION("in a header value: 431") {
    request_parser p;
    const std::string prefix = "GET / HTTP/1.1\r\nX: ";
    const auto consumed = flood(p, prefix);
    REQUIRE(p.state() == status::error);
    CHECK(p.error_status() == 431);
    CHECK(consumed == prefix.size() + p.limits().max_header_line - 2);
    CHECK(p.get().headers.back().value.size() <= p.limits().max_header_line);
  }
}

TEST_CASE("parser stays in error once it has failed", "[http_parser]") {
  request_parser p;
  const std::string bad = "GET / HTTP/1.1\r\nBad Name: v\r\n";
  const auto n = p.feed(bad.data(), bad.size());
  REQUIRE(p.state() == status::error);
  CHECK(n == std::string("GET / HTTP/1.1\r\nBad ").size());
  const std::string good = "Host: h\r\n\r\n";
  CHECK(p.feed(good.data(), good.size()) == 0);
  CHECK(p.state() == status::error);
  CHECK(p.error_status() == 400);
  CHECK(p.error_reason() == "whitespace between field name and colon");
}

TEST_CASE("parser reports a complete header block before the body arrives", "[http_parser]") {
  request_parser p;
  const std::string head = post_with("Content-Length: 10\r\nExpect: 100-continue\r\n", "");
  REQUIRE(p.feed(head.data(), head.size() - 1) == head.size() - 1);
  CHECK_FALSE(p.header_complete());
  REQUIRE(p.feed(head.data() + head.size() - 1, 1) == 1);
  CHECK(p.header_complete());
  CHECK(p.state() == status::need_more);
  CHECK(p.get().expects_continue());
  REQUIRE(p.feed("0123", 4) == 4);
  CHECK(p.state() == status::need_more);
  REQUIRE(p.feed("456789", 6) == 6);
  CHECK(p.state() == status::complete);
  CHECK(p.get().body == "0123456789");
}

TEST_CASE("parser gives the same result however the input is split", "[http_parser]") {
  // parse() already compares whole and byte-at-a-time feeding; this adds every two-piece split.
  const std::vector<std::string> inputs = {
      chunked("5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\n\r\n"),
      post_with("Content-Length: 4\r\n", "body"),
      "\r\nGET http://h/a?b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
      "GET / HTTP/1.1\nHost: h\r\n\r\n",
      get_with("X: a\rb\r\n"),
      chunked("5\r\nhelloX"),
  };
  for (const auto& input : inputs) {
    request_parser whole;
    const auto n = whole.feed(input.data(), input.size());
    for (std::size_t cut = 0; cut <= input.size(); ++cut) {
      INFO(input << " cut at " << cut);
      request_parser p;
      auto m = p.feed(input.data(), cut);
      if (p.state() == status::need_more) m += p.feed(input.data() + cut, input.size() - cut);
      REQUIRE(m == n);
      REQUIRE(p.state() == whole.state());
      REQUIRE(p.error_status() == whole.error_status());
      require_same_request(p.get(), whole.get());
    }
  }
}

TEST_CASE("reset keeps the limits and clears the request", "[http_parser]") {
  parser_limits limits;
  limits.max_body = 4;
  request_parser p(limits);
  const std::string first = post_with("Content-Length: 4\r\n", "abcd");
  REQUIRE(p.feed(first.data(), first.size()) == first.size());
  REQUIRE(p.state() == status::complete);
  p.reset();
  CHECK(p.state() == status::need_more);
  CHECK_FALSE(p.header_complete());
  CHECK(p.get().body.empty());
  CHECK(p.get().headers.empty());
  CHECK(p.limits().max_body == 4);
  const std::string second = post_with("Content-Length: 5\r\n", "abcde");
  p.feed(second.data(), second.size());
  CHECK(p.error_status() == 413);

  SECTION("reset also clears an error") {
    p.reset();
    CHECK(p.error_status() == 0);
    CHECK(p.error_reason().empty());
    const std::string third = get_with("");
    REQUIRE(p.feed(third.data(), third.size()) == third.size());
    CHECK(p.state() == status::complete);
  }
}

TEST_CASE("release moves the parsed request out", "[http_parser]") {
  request_parser p;
  const std::string input = post_with("Content-Length: 3\r\n", "xyz");
  p.feed(input.data(), input.size());
  REQUIRE(p.state() == status::complete);
  const request req = p.release();
  CHECK(req.body == "xyz");
  CHECK(req.path == "/p");
  CHECK(req.header("content-length") == std::string_view("3"));
}

TEST_CASE("percent_decode decodes escapes and refuses malformed ones", "[http_parser]") {
  using sse::detail::percent_decode;
  std::string out;
  SECTION("escapes in either case") {
    REQUIRE(percent_decode("a%20b%2Fc%2fd", out));
    CHECK(out == "a b/c/d");
  }
  SECTION("CR LF and NUL decode to bytes at this layer") {
    REQUIRE(percent_decode("x%0D%0Ay%00", out));
    CHECK(out == "x\r\ny\0"s);
  }
  SECTION("plus is a space only when asked") {
    REQUIRE(percent_decode("a+b", out));
    CHECK(out == "a+b");
    REQUIRE(percent_decode("a+b%2B", out, true));
    CHECK(out == "a b+");
  }
  SECTION("malformed escapes") {
    for (const char* in : {"%G1", "%1G", "abc%", "abc%4", "%%", "%-1", "% 1"}) {
      INFO(in);
      out = "stale";
      CHECK_FALSE(percent_decode(in, out));
      CHECK(out.empty());
    }
  }
  SECTION("the output is replaced, not appended to") {
    out = "old";
    REQUIRE(percent_decode("new", out));
    CHECK(out == "new");
  }
}

TEST_CASE("parse_query splits decoded pairs in order", "[http_parser]") {
  using sse::detail::parse_query;
  using pairs = std::vector<std::pair<std::string, std::string>>;
  pairs out;
  SECTION("names without values, empty values and repeats") {
    REQUIRE(parse_query("a=1&b=&c&a=2", out));
    CHECK(out == pairs{{"a", "1"}, {"b", ""}, {"c", ""}, {"a", "2"}});
  }
  SECTION("escapes and plus are decoded, only the first '=' splits") {
    REQUIRE(parse_query("topic=a%2Fb+c&x=y=z&%3D=%26", out));
    CHECK(out == pairs{{"topic", "a/b c"}, {"x", "y=z"}, {"=", "&"}});
  }
  SECTION("CR LF decodes to bytes") {
    REQUIRE(parse_query("id=1%0D%0Adata", out));
    CHECK(out == pairs{{"id", "1\r\ndata"}});
  }
  SECTION("empty segments and an empty query give nothing") {
    REQUIRE(parse_query("&&a=1&", out));
    CHECK(out == pairs{{"a", "1"}});
    REQUIRE(parse_query("", out));
    CHECK(out.empty());
  }
  SECTION("a malformed escape in a name or a value fails the whole query") {
    CHECK_FALSE(parse_query("a=1&b=%ZZ", out));
    CHECK(out.empty());
    CHECK_FALSE(parse_query("a%=1", out));
  }
}
