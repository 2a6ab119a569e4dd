#pragma once

// The examples' topics from a request (`GET /listen?topic=a&topic=b`), checked, and the answer
// to an event too large to publish.

#include <sse/sse.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace examples {

constexpr std::size_t max_topic_length = 64, max_topics_per_stream = 16;

/// A topic name from a client: 1-64 of [A-Za-z0-9_.:-], or an http_error 400.
inline std::string checked_topic(std::string_view t) {
  auto ok = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == ':' || c == '-';
  };
  if (t.empty() || t.size() > max_topic_length)
    throw sse::http_error(400, "a topic is 1 to 64 characters");
  for (char c : t)
    if (!ok(c))
      throw sse::http_error(400, "a topic has only letters, digits and _ . : -");
  return std::string(t);
}

/// The `topic` query parameters (or `fallback`), checked.
inline std::vector<std::string> topics_of(sse::request const& req, std::string_view fallback) {
  std::vector<std::string> topics;
  for (auto t : req.query_all("topic"))
    topics.push_back(checked_topic(t));
  if (topics.empty())
    topics.emplace_back(fallback);
  if (topics.size() > max_topics_per_stream)
    throw sse::http_error(400, "at most 16 topics per stream");
  return topics;
}

/// 413 for an event larger than the broker takes (`broker.max_message_bytes()`).
inline sse::response too_large(sse::message_too_large const& e) {
  return sse::response::text(413, "the event is " + std::to_string(e.size()) +
                                      " bytes once formatted; this server takes at most " +
                                      std::to_string(e.limit()) + " bytes per event\n");
}

} // namespace examples
