#pragma once

/// JSON payloads through nlohmann/json: the data is the compact dump.

#include <sse/format.hpp>

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace sse {

namespace detail {
template <class T>
inline constexpr bool is_json_v =
    std::is_same_v<T, nlohmann::json> || std::is_same_v<T, nlohmann::ordered_json>;

template <class Json>
std::string dump_json(char const* where, Json const& data) {
  try {
    return data.dump(); // strict: invalid UTF-8 in a string throws type_error 316
  } catch (nlohmann::json::type_error const& e) {
    throw std::invalid_argument(std::string(where) + ": JSON data is not valid UTF-8 (" +
                                e.what() + ")");
  }
}
} // namespace detail

/// A frame whose data is `data` as compact JSON (a single line, so one `data:` line).
/// @throws std::invalid_argument if a string in `data` is not valid UTF-8, or as format_event.
template <class Json, std::enable_if_t<detail::is_json_v<Json>, int> = 0>
std::string format_event(Json const& data, std::string_view event = {}, std::string_view id = {}) {
  return format_event(std::string_view(detail::dump_json("sse::format_event", data)), event, id);
}

/// An `sse::event` whose data is `data` as compact JSON: `sse::json_event({{"user", "ann"}})`.
inline event json_event(nlohmann::json const& data) {
  return event(detail::dump_json("sse::json_event", data));
}

/// The same for `nlohmann::ordered_json`, which keeps the keys in insertion order (a template,
/// so that a braced initializer picks the overload above).
template <class Json, std::enable_if_t<std::is_same_v<Json, nlohmann::ordered_json>, int> = 0>
event json_event(Json const& data) {
  return event(detail::dump_json("sse::json_event", data));
}

} // namespace sse
