// chat: a live chat room in one page, over Server-Sent Events.
//
//   GET  /         the page (HTML, CSS and JavaScript inline)
//   GET  /listen   the event stream: `chat` events (JSON: user, text, time) and plain notices;
//                  ?topic=a&topic=b for other topics; resumes from Last-Event-ID (history on)
//   POST /message  {"user": "...", "text": "..."}: a chat message, stamped with the time
//   POST /publish  a plain-text body, published as it is (?topic=T&event=NAME); answers the id
//   GET  /metrics  the server's and the broker's metrics, for Prometheus
// With --redis HOST:PORT every chat process on that Redis is one room.
#include "../common/auth.hpp"
#include "../common/hub.hpp"
#include "../common/options.hpp"
#include "../common/run.hpp"
#include "../common/topics.hpp"
#include "chat_page.hpp" // generated from page.html

#include <sse/sse.hpp>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

namespace {

constexpr std::size_t max_user = 64, max_text = 4000; // in code points

std::size_t code_points(std::string const& s) {
  std::size_t n = 0;
  for (unsigned char c : s)
    n += (c & 0xC0) != 0x80;
  return n;
}

std::string utc_now_iso8601() {
  auto const now = std::chrono::system_clock::now();
  auto const t = std::chrono::system_clock::to_time_t(now);
  auto const ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

/// The trimmed string field `name` of `j`, or an http_error naming what is wrong.
std::string field(nlohmann::json const& j, char const* name, std::size_t max) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string())
    throw sse::http_error(400, std::string("\"") + name + "\" must be a string");
  auto s = it->get<std::string>();
  auto const first = s.find_first_not_of(" \t\r\n");
  s = first == std::string::npos ? "" : s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
  if (s.empty())
    throw sse::http_error(400, std::string("\"") + name + "\" must not be empty");
  if (code_points(s) > max)
    throw sse::http_error(400, std::string("\"") + name + "\" is longer than " +
                                   std::to_string(max) + " characters");
  return s;
}

} // namespace

int main(int argc, char** argv) {
  examples::access_rules rules;
  rules.publish_token = examples::take_text_flag(argc, argv, "--publish-token");
  rules.subscribe_token = examples::take_text_flag(argc, argv, "--subscribe-token");
  rules.publish = {"POST /message", "POST /publish"};
  // Consistent bounds: a body (64 KiB) fits in one event and a subscriber's queue holds at
  // least 16 of the largest, so no single publish can evict a listener; larger bodies get 413.
  constexpr std::size_t max_event = 64 * 1024;
  sse::broker broker(sse::queue_limits{256, 1024 * 1024, sse::overflow_policy::evict});
  broker.set_max_message_bytes(max_event + 1024); // the body plus its framing (`data: ` lines)
  examples::hub hub(broker, argc, argv, "chat");
  std::string const help =
      std::string("A live chat room over Server-Sent Events.\n"
                  "  --publish-token T    POST /message and /publish need Authorization: Bearer T\n"
                  "  --subscribe-token T  topics private.* need the cookie sse_token=T (or Bearer T)\n") +
      examples::hub::usage;
  auto options = examples::parse_options(argc, argv, "chat", help.c_str());
  options.max_body = max_event;
  // A page that reconnects gets the messages it missed: the last 1000, or 10 minutes' worth
  // (kept in Redis with --redis, so a page can come back to any of the processes).
  hub.set_history(sse::history_limits{1000, 4 * 1024 * 1024, std::chrono::minutes(10)});
  sse::server srv(options);
  srv.before(examples::access_hook(rules)); // also: private.* topics are closed without a token

  srv.route("GET", "/", [](sse::request&) { return sse::response::html(std::string(chat_page)); });

  srv.route("GET", "/listen",
            [&](sse::request& req, sse::responder res) { hub.listen(req, std::move(res), "chat"); });

  srv.route("POST", "/message", [&](sse::request& req, sse::responder res) {
    nlohmann::json body;
    try {
      body = nlohmann::json::parse(req.body());
    } catch (nlohmann::json::exception const&) {
      throw sse::http_error(400, "the body must be a JSON object {\"user\", \"text\"}");
    }
    if (!body.is_object())
      throw sse::http_error(400, "the body must be a JSON object {\"user\", \"text\"}");
    nlohmann::json const msg = {{"user", field(body, "user", max_user)},
                                {"text", field(body, "text", max_text)},
                                {"time", utc_now_iso8601()}};
    hub.publish("chat", sse::json_event(msg).name("chat"), std::move(res), 204);
  });

  srv.route("POST", "/publish", [&](sse::request& req, sse::responder res) {
    hub.publish_body(req, std::move(res), "chat");
  });

  srv.route("GET", "/metrics", sse::metrics_handler(srv, broker));

  hub.start();
  return examples::serve_until_signal(srv, "sse chat");
}
