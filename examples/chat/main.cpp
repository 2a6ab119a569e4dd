// chat: a live chat room in one page, over Server-Sent Events.
//
//   GET  /         the page (HTML, CSS and JavaScript inline)
//   GET  /listen   the event stream: `chat` events (JSON: user, text, time) and plain notices;
//                  ?topic=a&topic=b for other topics; resumes from Last-Event-ID (history on);
//                  with the chat topic, `presence` events (JSON: users, more, joined/left):
//                  who is in the room, live; ?user=NAME counts this stream as NAME's
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

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

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

/// A name from `?user=`: trimmed, 1-64 characters of UTF-8 without control characters, or
/// an http_error 400. None without the parameter: the stream watches the room, unlisted.
std::optional<std::string> user_of(sse::request const& req) {
  auto q = req.query("user");
  if (!q)
    return std::nullopt;
  std::string s(*q);
  auto const first = s.find_first_not_of(' ');
  s = first == std::string::npos ? "" : s.substr(first, s.find_last_not_of(' ') - first + 1);
  if (s.empty() || code_points(s) > max_user)
    throw sse::http_error(400, "user= is 1 to " + std::to_string(max_user) + " characters");
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f)
      throw sse::http_error(400, "user= has no control characters");
  try {
    sse::event check(s); // refuses what is not UTF-8
  } catch (std::invalid_argument const&) {
    throw sse::http_error(400, "user= is not UTF-8");
  }
  return s;
}

/// Who is in the room, live: each name with how many streams (tabs) it has open, so that
/// several tabs count once until the last one leaves. At most `max_present` names are kept
/// (clients choose them, so memory is bounded); streams of further names are counted in
/// `more`. Every change publishes the whole list as a `presence` event on `presence_topic`,
/// under the lock, so that events go out in the order of the changes; a stream that changes
/// nothing gets the list first thing instead (a prelude).
///
/// The list is this process's: with a backend that spans processes (set_publisher), each
/// process tells its own clients who is connected to it.
class presence {
public:
  static constexpr std::size_t max_present = 200;
  static constexpr char const* topic = "chat:presence"; ///< no history: presence is not a log

  explicit presence(sse::broker& b) : broker_(b) {
    broker_.set_history(topic, sse::history_limits{0, 0, std::chrono::milliseconds(0)});
  }

  /// Counts `sub`'s stream as `user`'s (if any) until it closes and tells the room if that
  /// changes the list; else returns the list for this stream alone.
  std::optional<sse::frame> attach(sse::subscription& sub, std::optional<std::string> const& user) {
    std::lock_guard<std::mutex> lk(m_);
    char const* change = nullptr;
    bool listed = false;
    if (user) {
      auto it = tabs_.find(*user);
      if (it != tabs_.end())
        ++it->second, listed = true;
      else if (tabs_.size() < max_present)
        tabs_.emplace(*user, 1), listed = true, change = "joined";
      else
        ++more_, change = "";
      // Told once, on an I/O thread, whatever ends the stream (the tab closed, a stop, ...).
      sub.on_close([this, name = *user, listed](std::error_code) { leave(name, listed); });
    }
    if (!change)
      return sse::frame(event_locked(nullptr, {}));
    publish_locked(*change ? change : nullptr, user ? *user : std::string());
    return std::nullopt;
  }

private:
  void leave(std::string const& name, bool listed) {
    std::lock_guard<std::mutex> lk(m_);
    if (!listed) {
      --more_;
      publish_locked(nullptr, {});
      return;
    }
    auto it = tabs_.find(name);
    if (it == tabs_.end() || --it->second > 0)
      return; // another tab of the same name is still open
    tabs_.erase(it);
    publish_locked("left", name);
  }

  sse::event event_locked(char const* change, std::string const& name) const {
    nlohmann::json users = nlohmann::json::array();
    for (auto const& [n, count] : tabs_)
      users.push_back(n);
    // `v` orders the lists: one given to a new stream alone may overtake one queued for it.
    nlohmann::json j = {{"users", std::move(users)}, {"more", more_}, {"v", version_}};
    if (change)
      j[change] = name;
    return sse::json_event(j).name("presence");
  }

  void publish_locked(char const* change, std::string const& name) {
    ++version_;
    // deliver, not publish: the list is this process's, for this process's streams.
    broker_.deliver(topic, event_locked(change, name));
  }

  sse::broker& broker_;
  std::mutex m_;
  std::map<std::string, std::size_t, std::less<>> tabs_; ///< name -> streams open
  std::size_t more_ = 0;                                 ///< streams of names not listed
  std::uint64_t version_ = 0;                            ///< of the list, bumped on each change
};

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
  // Who is in the room (made before the server, whose streams' close callbacks use it); its
  // largest event fits in one event of this server.
  static_assert(presence::max_present * (4 * max_user + 3) + 8 * max_user + 64 <= max_event);
  presence room(broker);
  sse::server srv(options);
  srv.before(examples::access_hook(rules)); // also: private.* topics are closed without a token

  srv.route("GET", "/", [](sse::request&) { return sse::response::html(std::string(chat_page)); });

  srv.route("GET", "/listen", [&](sse::request& req, sse::responder res) {
    auto topics = examples::topics_of(req, "chat");
    auto user = user_of(req);
    sse::subscribe_options o;
    o.last_event_id = req.last_event_id();
    if (std::find(topics.begin(), topics.end(), "chat") == topics.end()) {
      if (user)
        throw sse::http_error(400, "user= is for streams of the chat topic");
      return hub.listen(std::move(topics), o, std::move(res));
    }
    topics.emplace_back(presence::topic);
    hub.listen(std::move(topics), o, std::move(res),
               [&room, user](sse::subscription& sub) { return room.attach(sub, user); });
  });

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
