#pragma once

// The server's routing table: exact paths and `{name}` segments, matched by method.

#include <sse/detail/http_parser.hpp>
#include <sse/http.hpp>
#include <sse/responder.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sse::detail {

/// Exact paths and `{name}` segments, matched by method; tells 404 from 405. A `HEAD` request
/// goes to the path's `HEAD` route, else to its `GET` route (the server sends no body).
class router {
public:
  /// A route's handler: synchronous (answers by returning) or asynchronous (answers through
  /// the responder, later, from any thread). Exactly one is set.
  struct handler {
    std::function<response(sse::request&)> sync;
    std::function<void(sse::request&, sse::responder)> async;
  };

  /// Runs before routing, for every request: a response answers on its own, nullopt lets the
  /// request go on (with what the hook attached to it).
  using hook = std::function<std::optional<response>(sse::request&)>;

  void add_hook(hook h) { hooks_.push_back(std::move(h)); }
  std::vector<hook> const& hooks() const noexcept { return hooks_; }

  /// The methods routed for `path` (HEAD where GET is), for `Allow`; empty if none.
  std::string allowed(std::string_view path) const { return find({}, path).allow; }

  void add(std::string method, std::string const& path, handler h) {
    route r;
    r.method = std::move(method);
    r.segments = split(path);
    r.h = std::move(h);
    routes_.push_back(std::move(r));
  }

  struct match {
    handler const* h = nullptr;
    std::vector<std::pair<std::string, std::string>> params;
    std::string allow; ///< methods the path has, when the method did not match
    bool bad_escape = false;
  };

  match find(std::string_view method, std::string_view path) const {
    match m;
    auto const segs = split(path);
    route const* get_route = nullptr;
    std::vector<std::pair<std::string, std::string>> get_params;
    for (auto const& r : routes_) {
      std::vector<std::pair<std::string, std::string>> params;
      if (!matches(r, segs, params, m.bad_escape))
        continue;
      if (r.method == method) {
        m.h = &r.h;
        m.params = std::move(params);
        m.allow.clear();
        return m;
      }
      if (r.method == "GET" && !get_route) {
        get_route = &r;
        get_params = std::move(params);
      }
      add_allowed(m.allow, r.method);
      if (r.method == "GET")
        add_allowed(m.allow, "HEAD");
    }
    if (method == "HEAD" && get_route) {
      m.h = &get_route->h;
      m.params = std::move(get_params);
      m.allow.clear();
    }
    return m;
  }

private:
  struct route {
    std::string method;
    std::vector<std::string> segments;
    handler h;
  };

  static void add_allowed(std::string& allow, std::string_view method) {
    std::string_view rest = allow;
    while (!rest.empty()) {
      auto const comma = rest.find(", ");
      if (rest.substr(0, comma) == method)
        return;
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 2);
    }
    if (!allow.empty())
      allow += ", ";
    allow += method;
  }

  static std::vector<std::string> split(std::string_view path) {
    std::vector<std::string> out;
    std::size_t start = 1;
    while (start <= path.size()) {
      auto const slash = path.find('/', start);
      auto const end = slash == std::string_view::npos ? path.size() : slash;
      out.emplace_back(path.substr(start, end - start));
      start = end + 1;
    }
    return out;
  }

  static bool matches(route const& r, std::vector<std::string> const& segs,
                      std::vector<std::pair<std::string, std::string>>& params, bool& bad) {
    if (r.segments.size() != segs.size())
      return false;
    for (std::size_t i = 0; i < segs.size(); ++i) {
      auto const& pat = r.segments[i];
      if (pat.size() >= 2 && pat.front() == '{' && pat.back() == '}') {
        std::string value;
        if (segs[i].empty())
          return false;
        if (!percent_decode(segs[i], value)) {
          bad = true;
          return false;
        }
        params.emplace_back(pat.substr(1, pat.size() - 2), std::move(value));
      } else if (pat != segs[i]) {
        return false;
      }
    }
    return true;
  }

  std::vector<route> routes_;
  std::vector<hook> hooks_;
};

} // namespace sse::detail
