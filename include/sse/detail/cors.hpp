#pragma once

// CORS and OPTIONS, the same for HTTP/1.1 and HTTP/2: which fields a response gets for the
// request's Origin, and the answer to an OPTIONS the application does not route itself.

#include <sse/detail/router.hpp>
#include <sse/http.hpp>
#include <sse/server_options.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>

namespace sse::detail {

inline bool origin_allowed(cors_options const& cors, std::string_view origin) {
  for (auto const& o : cors.allow_origins)
    if (o == "*" || o == origin)
      return true;
  return false;
}

/// The CORS fields of a response, through `add(name, value)`: none without CORS configured;
/// `Vary: Origin` whenever the answer depends on the origin; the rest only for an allowed one.
template <class Add>
void cors_fields(cors_options const& cors, std::string_view origin, Add&& add) {
  if (cors.allow_origins.empty())
    return;
  bool const any =
      std::find(cors.allow_origins.begin(), cors.allow_origins.end(), "*") != cors.allow_origins.end();
  bool const echo = cors.allow_credentials || !any;
  if (echo)
    add("Vary", "Origin");
  if (origin.empty() || !origin_allowed(cors, origin))
    return;
  add("Access-Control-Allow-Origin", echo ? origin : std::string_view("*"));
  if (cors.allow_credentials)
    add("Access-Control-Allow-Credentials", "true");
  if (!cors.expose_headers.empty()) {
    std::string exposed;
    for (auto const& h : cors.expose_headers)
      exposed += (exposed.empty() ? "" : ", ") + h;
    add("Access-Control-Expose-Headers", exposed);
  }
}

/// `OPTIONS` for a routed path the application does not answer itself: 204 with `Allow`, and
/// for a CORS preflight from an allowed origin the methods, headers and max age. Nullopt: the
/// request goes on to routing (an unknown path, or the application's own OPTIONS route).
inline std::optional<response> options_answer(router const& routes, cors_options const& cors,
                                              sse::request const& req, std::string_view origin) {
  std::string allow = routes.allowed(req.path());
  bool const preflight = !origin.empty() && req.header("Access-Control-Request-Method");
  if (allow.empty() || (!preflight && allow.find("OPTIONS") != std::string::npos))
    return std::nullopt;
  if (allow.find("OPTIONS") == std::string::npos)
    allow += ", OPTIONS";
  response r(204);
  r.header("Allow", allow);
  if (preflight && origin_allowed(cors, origin)) {
    r.header("Access-Control-Allow-Methods", allow);
    std::string headers;
    for (auto const& h : cors.allow_headers)
      headers += (headers.empty() ? "" : ", ") + h;
    if (!headers.empty())
      r.header("Access-Control-Allow-Headers", headers);
    r.header("Access-Control-Max-Age", std::to_string(cors.max_age.count()));
  }
  return r;
}

} // namespace sse::detail
