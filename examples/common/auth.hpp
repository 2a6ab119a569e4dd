#pragma once

// The examples' access rules, as a before-route hook: a bearer token for the publish routes,
// and a subscriber token for topics named `private.*`, presented as `Authorization: Bearer T`
// or, since EventSource cannot set headers, as the cookie `sse_token=T`.

#include <sse/http.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace examples {

struct access_rules {
  std::string publish_token;        ///< empty: anyone may publish
  std::vector<std::string> publish; ///< the publish routes ("POST /publish", ...)
  std::string subscribe_token;      ///< empty: private topics are open to nobody
  std::string listen = "/listen";   ///< the stream route whose `topic` values are checked
};

/// Equal without leaking where the first difference is.
inline bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() != b.size();
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i)
    diff = static_cast<unsigned char>(diff | (a[i] ^ b[i]));
  return diff == 0;
}

/// The credential a request presents: a bearer token, else the cookie sse_token.
inline std::optional<std::string_view> presented_token(sse::request const& req) {
  if (auto auth = req.header("Authorization"); auth && auth->substr(0, 7) == "Bearer ")
    return auth->substr(7);
  if (auto cookies = req.header("Cookie")) {
    std::string_view rest = *cookies;
    while (!rest.empty()) {
      auto const semi = rest.find(';');
      auto part = rest.substr(0, semi);
      while (!part.empty() && part.front() == ' ')
        part.remove_prefix(1);
      if (part.substr(0, 10) == "sse_token=")
        return part.substr(10);
      rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
    }
  }
  return std::nullopt;
}

/// 401 for a publish without the publish token; 403 for a stream of a private topic without
/// the subscriber token, before any subscription is made.
inline auto access_hook(access_rules rules) {
  return [rules = std::move(rules)](sse::request& req) -> std::optional<sse::response> {
    auto const token = presented_token(req);
    std::string const route = req.method() + " " + req.path();
    for (auto const& p : rules.publish)
      if (route == p && !rules.publish_token.empty() &&
          !(token && same_secret(*token, rules.publish_token)))
        return sse::response::text(401, "publishing needs Authorization: Bearer <token>\n")
            .header("WWW-Authenticate", "Bearer");
    if (req.method() == "GET" && req.path() == rules.listen)
      for (auto topic : req.query_all("topic"))
        if (topic.substr(0, 8) == "private." &&
            (rules.subscribe_token.empty() || !(token && same_secret(*token, rules.subscribe_token))))
          return sse::response::text(403, "the topic " + std::string(topic) +
                                              " needs a subscriber token (cookie sse_token)\n");
    return std::nullopt;
  };
}

} // namespace examples
